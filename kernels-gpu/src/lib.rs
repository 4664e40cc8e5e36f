//! pqtopk's GPU kernels, compiled to PTX by `cargo xtask build-ptx`.
//!
//! Kernel ABI: every entry point takes one `#[repr(C)]` struct from `pqtopk-abi` by value, runs
//! with `BLOCK_THREADS` threads per block, and documents its grid and dynamic shared memory.
//! The fused top-k is a fixed sequence of launches on one stream:
//! `pq_init`, then for each radix pass `pq_histogram` + `pq_select_step`, then `pq_collect` and
//! `pq_finalize`. Passes of finished rows return at once.
#![no_std]
#![feature(
    abi_ptx,
    stdarch_nvptx,
    asm_experimental_arch,
    core_intrinsics,
    gpu_intrinsics,
    gpu_launch_sized_workgroup_mem
)]
#![allow(internal_features)]

#[macro_use]
pub mod device;
pub mod score;
pub mod select;
pub mod smoke;

use device::Shared;
use pqtopk_abi::{CodeCheckParams, HIST_BINS, Order, RowState, TopkParams};
use score::{Codes, Tile};

fn row_state(p: &TopkParams, row: u32) -> *mut RowState {
    (p.row_state as *mut RowState).wrapping_add(row as usize)
}

fn histogram(p: &TopkParams, row: u32) -> *mut u32 {
    (p.histograms as *mut u32).wrapping_add(row as usize * HIST_BINS as usize)
}

/// Resets every row's selection state. Grid `(rows)`, no shared memory. Histograms are left zero
/// by `pq_select_step`, and zeroed here for a fresh workspace.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `TopkParams` documents.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_init(p: TopkParams) {
    let row = device::block_idx().0;
    let hist = histogram(&p, row);
    let mut bin = device::thread_idx();
    while bin < HIST_BINS {
        // SAFETY: bin < HIST_BINS of this row's histogram.
        unsafe { *hist.add(bin as usize) = 0 };
        bin += device::block_dim();
    }
    if device::thread_idx() == 0 {
        let batch = row / (p.rows_per_kv * p.hkv);
        // SAFETY: row < rows.
        unsafe { *row_state(&p, row) = select::initial_state(score::valid_keys(&p, batch), p.k) };
    }
}

/// Radix pass `p.pass`: histograms the digit of every key still in the running.
/// Grid `(key chunks, row tiles, b·hkv)`; dynamic shared memory
/// `rows_per_block · (m·c·4 + HIST_BINS·4)` bytes.
///
/// # Safety
/// As [`pq_init`], after it and the previous passes on the same stream.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_histogram(p: TopkParams) {
    let tile = Tile::of_block(&p);
    let states = tile_states(&p, &tile);
    if states.iter().all(|s| s.done != 0) {
        return;
    }
    let lut_len = score::lut_len(&p);
    // SAFETY: the host sized dynamic shared memory as documented above.
    let luts: Shared<f32> = unsafe { device::dynamic_shared(tile.rows as usize * lut_len) };
    // SAFETY: as above; the histograms follow the lookup tables.
    let hists: Shared<u32> = unsafe { luts.tail(luts.len(), (tile.rows * HIST_BINS) as usize) };
    let mut i = device::thread_idx();
    while i < hists.len() as u32 {
        // SAFETY: in bounds, one writer per element; the barrier in build_luts orders it.
        unsafe { hists.set(i as usize, 0) };
        i += device::block_dim();
    }
    // SAFETY: all threads; shapes validated by the host.
    unsafe { score::build_luts(&p, &tile, luts) };
    let digit = select::Digit::of_pass(p.pass);
    let valid = tile.valid_keys(&p);
    let mut key = tile.key0 + device::thread_idx();
    while key < tile.key_end.min(valid) {
        // SAFETY: key < n.
        let codes = unsafe { Codes::of_key(&p, &tile, key) };
        for r in 0..tile.rows as usize {
            if states[r].done != 0 {
                continue;
            }
            // SAFETY: row r's table was built before the barrier in build_luts.
            let s = unsafe { codes.score(&p, luts.sub(r * lut_len, lut_len)) };
            if let Some(bin) = digit.bin(score::selection_key(s, key, p.metric), &states[r]) {
                // SAFETY: bin < HIST_BINS.
                unsafe { hists.atomic_add(r * HIST_BINS as usize + bin as usize, 1) };
            }
        }
        key += device::block_dim();
    }
    // SAFETY: all threads reach it.
    unsafe { device::sync_threads() };
    for r in 0..tile.rows {
        if states[r as usize].done == 0 {
            // SAFETY: after the barrier; each row's histogram holds HIST_BINS.
            unsafe {
                select::flush_histogram(
                    hists.sub((r * HIST_BINS) as usize, HIST_BINS as usize),
                    histogram(&p, tile.row0 + r),
                )
            };
        }
    }
}

/// Most rows a scoring block can hold (bounded so their states live in registers).
pub const MAX_ROWS_PER_BLOCK: usize = 8;

/// The states of the tile's rows; slots past the tile read as finished.
fn tile_states(p: &TopkParams, tile: &Tile) -> [RowState; MAX_ROWS_PER_BLOCK] {
    let mut states = [RowState { done: 1, ..RowState::default() }; MAX_ROWS_PER_BLOCK];
    for (r, state) in states.iter_mut().enumerate().take(tile.rows as usize) {
        // SAFETY: the tile's rows are < rows; states are written only by pq_select_step.
        *state = unsafe { *row_state(p, tile.row0 + r as u32) };
    }
    states
}

/// Radix pass `p.pass`, second half: one block per row. Grid `(rows)`, no dynamic shared memory.
///
/// # Safety
/// As [`pq_histogram`], after it.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_select_step(p: TopkParams) {
    let row = device::block_idx().0;
    // SAFETY: row < rows; one block per row.
    unsafe { select::select_step(histogram(&p, row), row_state(&p, row), p.pass) };
}

/// Appends every selected key of the tile's rows to the row's candidates (in no fixed order).
/// Grid and shared memory as [`pq_histogram`], without the histograms.
///
/// # Safety
/// As [`pq_histogram`], after the last pass.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_collect(p: TopkParams) {
    let tile = Tile::of_block(&p);
    let states = tile_states(&p, &tile);
    let lut_len = score::lut_len(&p);
    // SAFETY: the host sized dynamic shared memory as documented.
    let luts: Shared<f32> = unsafe { device::dynamic_shared(tile.rows as usize * lut_len) };
    // SAFETY: all threads; shapes validated by the host.
    unsafe { score::build_luts(&p, &tile, luts) };
    let valid = tile.valid_keys(&p);
    let mut key = tile.key0 + device::thread_idx();
    while key < tile.key_end.min(valid) {
        // SAFETY: key < n.
        let codes = unsafe { Codes::of_key(&p, &tile, key) };
        for r in 0..tile.rows {
            // SAFETY: row r's table was built before the barrier in build_luts.
            let s = unsafe { codes.score(&p, luts.sub(r as usize * lut_len, lut_len)) };
            let selection_key = score::selection_key(s, key, p.metric);
            if select::is_selected(selection_key, &states[r as usize]) {
                let row = tile.row0 + r;
                // SAFETY: the counter is this row's; exactly min(k, valid) keys are selected, so
                // the slot stays below k, and the bound check only guards against a broken state.
                unsafe {
                    let slot = device::atomic_add(&raw mut (*row_state(&p, row)).collected, 1);
                    if slot < p.k {
                        let at = row as usize * p.k as usize + slot as usize;
                        *(p.cand_keys as *mut u64).add(at) = selection_key;
                        *(p.cand_scores as *mut f32).add(at) = s;
                    }
                }
            }
        }
        key += device::block_dim();
    }
}

/// Ranks each row's candidates into the requested order and writes the outputs, padding rows
/// with fewer valid keys than k. Grid `(rows · ceil(k / BLOCK_THREADS))`, no dynamic shared
/// memory.
///
/// # Safety
/// As [`pq_collect`], after it.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_finalize(p: TopkParams) {
    let chunks = p.k.div_ceil(pqtopk_abi::BLOCK_THREADS);
    let row = device::block_idx().0 / chunks;
    let slot = (device::block_idx().0 % chunks) * pqtopk_abi::BLOCK_THREADS + device::thread_idx();
    // SAFETY: row < rows; pq_collect has finished on this stream.
    let count = unsafe { (*row_state(&p, row)).collected }.min(p.k);
    let base = row as usize * p.k as usize;
    let by_index = p.order != Order::ByScore as u32;
    let out_scores =
        if p.out_scores == 0 { core::ptr::null_mut() } else { (p.out_scores as *mut f32).wrapping_add(base) };
    // SAFETY: the row's candidate and output ranges hold k entries each.
    unsafe {
        select::rank_and_scatter(
            (p.cand_keys as *const u64).add(base),
            (p.cand_scores as *const f32).add(base),
            count,
            p.k,
            slot,
            // The low half of a selection key is the complemented index: larger is a smaller index.
            |key| if by_index { key & 0xffff_ffff } else { key },
            score::index_of,
            score::padding_score(p.metric),
            (p.out_indices as *mut u32).add(base),
            out_scores,
        )
    };
}

/// Counts codes ≥ c. Grid-stride over `len` codes; any grid.
///
/// # Safety
/// `p.codes` holds `p.len` bytes and `p.bad_count` one u32.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_count_bad_codes(p: CodeCheckParams) {
    let stride = device::grid_dim_x() as u64 * device::block_dim() as u64;
    let mut i = device::block_idx().0 as u64 * device::block_dim() as u64 + device::thread_idx() as u64;
    let mut bad = 0;
    while i < p.len {
        // SAFETY: i < len.
        bad += (unsafe { device::load_nc_u8((p.codes as *const u8).add(i as usize)) } as u32 >= p.c) as u32;
        i += stride;
    }
    if bad != 0 {
        // SAFETY: the counter is valid by the caller's promise.
        unsafe { device::atomic_add(p.bad_count as *mut u32, bad) };
    }
}

//! pqtopk's GPU kernels, compiled to PTX by `cargo xtask build-ptx`.
//!
//! Kernel ABI: every entry point takes one `#[repr(C)]` struct from `pqtopk-abi` by value, runs
//! with `BLOCK_THREADS` threads per block, and documents its grid and dynamic shared memory.
//! The fused top-k is one cooperative launch of `pq_topk`.
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

use device::{GridBarrier, Shared};
use pqtopk_abi::{
    BLOCK_THREADS, CodeCheckParams, DIGIT_BITS, HIST_BINS, MAX_ROWS_PER_BLOCK, Order, RowState, SyncWords, TopkParams,
};
use score::Tile;

const MAX_ROWS: usize = MAX_ROWS_PER_BLOCK as usize;

fn row_state(p: &TopkParams, row: u32) -> *mut RowState {
    (p.row_state as *mut RowState).wrapping_add(row as usize)
}

fn histogram(p: &TopkParams, row: u32) -> *mut u32 {
    (p.histograms as *mut u32).wrapping_add(row as usize * HIST_BINS as usize)
}

fn sync_words(p: &TopkParams) -> *mut SyncWords {
    p.sync as *mut SyncWords
}

fn total_rows(p: &TopkParams) -> u32 {
    p.b * p.hkv * p.rows_per_kv
}

/// The fused score + top-k, in one cooperative launch of at most as many blocks as fit on the
/// device at once, with dynamic shared memory of
/// `max(rows_per_block · (m·c + HIST_BINS) · 4, sort_capacity · 8)` bytes.
///
/// Phases, separated by grid barriers: reset the rows; up to six radix passes, each scoring every
/// key of the unfinished rows into digit histograms (the last item of a row tile to finish runs
/// the tile's select step); collect the selected keys; order them into the outputs.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `TopkParams` documents; the sync words are
/// zero; the launch is cooperative with the documented shared memory.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_topk(p: TopkParams) {
    let sync = sync_words(&p);
    // SAFETY: the sync words are zeroed device memory of this launch alone.
    let barrier = unsafe { GridBarrier::new(&raw mut (*sync).barrier_count, &raw mut (*sync).barrier_generation) };
    trace(&p, 0);
    reset_rows(&p);
    let mut cached_luts = u32::MAX;
    trace(&p, 1);
    // SAFETY (all waits): cooperative launch; every thread of every block runs the same loop
    // trip counts, since `finished_rows` reads counters no block changes during the read.
    unsafe { barrier.wait() };
    for pass in 0..DIGIT_BITS.len() as u32 {
        if finished_rows(&p, pass) == total_rows(&p) {
            break;
        }
        for item in block_items(p.key_chunks * p.row_tiles * p.b * p.hkv) {
            // SAFETY: as for the kernel.
            unsafe { histogram_item(&p, Tile::of_item(&p, item), pass, &mut cached_luts) };
        }
        trace(&p, 2 + pass as usize);
        unsafe { barrier.wait() };
    }
    for item in block_items(p.key_chunks * p.row_tiles * p.b * p.hkv) {
        // SAFETY: as for the kernel.
        unsafe { collect_item(&p, Tile::of_item(&p, item), &mut cached_luts) };
    }
    trace(&p, 8);
    unsafe { barrier.wait() };
    // SAFETY: as for the kernel; every candidate is written.
    unsafe { finalize(&p) };
    trace(&p, 9);
}

/// Records when the slowest block reached trace point `point` (see `TRACE_POINTS`).
#[inline(always)]
fn trace(p: &TopkParams, point: usize) {
    if p.trace != 0 && device::thread_idx() == 0 {
        // SAFETY: the trace buffer holds TRACE_POINTS u32 when set.
        unsafe { device::atomic_max((p.trace as *mut u32).add(point), device::global_timer_ns()) };
    }
}

/// Work items `block, block + grid, …` below `count`.
fn block_items(count: u32) -> impl Iterator<Item = u32> {
    (device::block_idx().0..count).step_by(device::grid_dim_x() as usize)
}

/// Grid-stride indices of this thread below `count`.
fn grid_threads(count: usize) -> impl Iterator<Item = usize> {
    let first = (device::block_idx().0 * device::block_dim() + device::thread_idx()) as usize;
    (first..count).step_by((device::grid_dim_x() * device::block_dim()) as usize)
}

/// Initial row states, zero histograms and tickets.
fn reset_rows(p: &TopkParams) {
    let rows = total_rows(p);
    for word in grid_threads(rows as usize * HIST_BINS as usize) {
        // SAFETY: inside the histograms.
        unsafe { *(p.histograms as *mut u32).add(word) = 0 };
    }
    for ticket in grid_threads((p.row_tiles * p.b * p.hkv) as usize) {
        // SAFETY: inside the tickets.
        unsafe { *(p.tickets as *mut u32).add(ticket) = 0 };
    }
    for row in grid_threads(rows as usize) {
        let batch = row as u32 / (p.rows_per_kv * p.hkv);
        let state = select::initial_state(score::valid_keys(p, batch), p.k);
        // SAFETY: row < rows; the counter is a sync word.
        unsafe {
            *row_state(p, row as u32) = state;
            if state.done != 0 {
                device::atomic_add(&raw mut (*sync_words(p)).finished[0], 1);
            }
        }
    }
}

/// Rows settled before radix pass `pass`.
fn finished_rows(p: &TopkParams, pass: u32) -> u32 {
    let sync = sync_words(p);
    // SAFETY: the sync words are valid and 16-byte aligned; other blocks wrote them before the
    // barrier, hence the device-scope load.
    let finished = unsafe { device::load_relaxed_v8(&raw const (*sync).finished) };
    finished[..=pass as usize].iter().sum()
}

/// The states of the tile's rows; slots past the tile read as finished.
#[inline(always)]
fn tile_states(p: &TopkParams, tile: &Tile) -> [RowState; MAX_ROWS] {
    let mut states = [RowState { done: 1, ..RowState::default() }; MAX_ROWS];
    for (r, state) in states.iter_mut().enumerate().take(tile.rows as usize) {
        // SAFETY: the tile's rows are < rows; states change only between grid barriers.
        *state = unsafe { *row_state(p, tile.row0 + r as u32) };
    }
    states
}

/// Builds the tile's lookup tables in shared memory unless this block already holds them.
///
/// # Safety
/// All threads of the block call it; shared memory as `pq_topk` documents.
unsafe fn ensure_luts(p: &TopkParams, tile: &Tile, cached: &mut u32) -> Shared<f32> {
    // SAFETY: launched with at least rows_per_block lookup tables of shared memory.
    let luts = unsafe { device::dynamic_shared::<f32>(p.rows_per_block as usize * score::lut_len(p)) };
    if *cached != tile.row0 {
        // SAFETY: every thread calls it; the first barrier ends every read of the tables this
        // block built for its previous item, the shapes were validated by the host.
        unsafe {
            device::sync_threads();
            score::build_luts(p, tile, luts)
        };
        *cached = tile.row0;
    }
    luts
}

/// Radix pass `pass` over one scoring item: count the digit of each unfinished row's keys that
/// still share its prefix; the item that completes its tile runs the tile's select step.
///
/// # Safety
/// All threads of the block call it between the same grid barriers.
unsafe fn histogram_item(p: &TopkParams, tile: Tile, pass: u32, cached_luts: &mut u32) {
    let states = tile_states(p, &tile);
    if states.iter().all(|s| s.done != 0) {
        return;
    }
    let t = device::thread_idx() as usize;
    // SAFETY: all threads call it.
    let luts = unsafe { ensure_luts(p, &tile, cached_luts) };
    // SAFETY: the histograms follow the lookup tables in the launch-sized shared memory.
    let hists: Shared<u32> = unsafe { luts.tail(luts.len(), (tile.rows * HIST_BINS) as usize) };
    for i in (t..hists.len()).step_by(BLOCK_THREADS as usize) {
        // SAFETY: in bounds, one writer per element, ordered by the barrier below.
        unsafe { hists.set(i, 0) };
    }
    // SAFETY: all threads reach it.
    unsafe { device::sync_threads() };
    let digit = select::Digit::of_pass(pass);
    let end = tile.key_end.min(tile.valid_keys(p));
    let mut key = tile.key0 + t as u32;
    while key < end {
        // SAFETY: key < n; the tables were built before a barrier.
        let scores = unsafe { score::score_rows(p, &tile, key, luts) };
        for r in 0..MAX_ROWS {
            if states[r].done == 0 {
                if let Some(bin) = digit.bin(score::selection_key(scores[r], key, p.metric), &states[r]) {
                    // SAFETY: r < rows (finished slots are skipped) and bin < HIST_BINS.
                    unsafe { hists.atomic_add(r * HIST_BINS as usize + bin as usize, 1) };
                }
            }
        }
        key += BLOCK_THREADS;
    }
    // SAFETY: all threads reach it.
    unsafe { device::sync_threads() };
    for r in 0..tile.rows {
        if states[r as usize].done == 0 {
            // SAFETY: after the barrier; each row's histogram holds HIST_BINS.
            unsafe {
                select::flush_histogram(
                    hists.sub((r * HIST_BINS) as usize, HIST_BINS as usize),
                    histogram(p, tile.row0 + r),
                )
            };
        }
    }
    // SAFETY: all threads call it; the ticket and row buffers belong to this tile.
    if unsafe { last_of_tile(p, &tile) } {
        // Pull the tile's complete histograms into shared memory, all loads in flight at once,
        // and leave the global ones zero for the next pass.
        for r in 0..tile.rows {
            if states[r as usize].done == 0 {
                let global = histogram(p, tile.row0 + r);
                for bin in (t..HIST_BINS as usize).step_by(BLOCK_THREADS as usize) {
                    // SAFETY: bin < HIST_BINS; the shared slot has this one writer.
                    unsafe {
                        hists.set(r as usize * HIST_BINS as usize + bin, *global.add(bin));
                        *global.add(bin) = 0;
                    }
                }
            }
        }
        for r in 0..tile.rows {
            if states[r as usize].done == 0 {
                // SAFETY: the whole block runs it; select_step's first barrier orders the copies.
                unsafe {
                    select::select_step(
                        hists.sub((r * HIST_BINS) as usize, HIST_BINS as usize),
                        states[r as usize],
                        row_state(p, tile.row0 + r),
                        pass,
                        &raw mut (*sync_words(p)).finished[1 + pass as usize],
                    )
                };
            }
        }
    }
}

/// Whether this block finished the tile's last item of the pass (then resets the tile's ticket).
///
/// # Safety
/// All threads of the block call it after their last write for the item.
unsafe fn last_of_tile(p: &TopkParams, tile: &Tile) -> bool {
    let flag = static_shared!(LAST_OF_TILE: [u32; 1]);
    let ticket =
        (p.tickets as *mut u32).wrapping_add(((tile.kv_row0 / p.rows_per_kv) * p.row_tiles + tile.tile) as usize);
    // Publish this block's histogram additions before taking a ticket.
    device::fence_device();
    // SAFETY: all threads reach the barriers; thread 0 alone writes the flag between them.
    unsafe {
        device::sync_threads();
        if device::thread_idx() == 0 {
            let last = device::atomic_add(ticket, 1) == p.key_chunks - 1;
            if last {
                *ticket = 0;
            }
            flag.set(0, last as u32);
        }
        device::sync_threads();
    }
    // SAFETY: written before the barrier.
    let last = unsafe { flag.get(0) } != 0;
    if last {
        // Acquire the other blocks' additions.
        device::fence_device();
    }
    last
}

/// Appends every selected key of the tile's rows to its row's candidates, one global atomic per
/// warp and row.
///
/// # Safety
/// All threads of the block call it after the last radix pass.
unsafe fn collect_item(p: &TopkParams, tile: Tile, cached_luts: &mut u32) {
    let states = tile_states(p, &tile);
    // SAFETY: all threads call it.
    let luts = unsafe { ensure_luts(p, &tile, cached_luts) };
    let end = tile.key_end.min(tile.valid_keys(p));
    let lanes_below = (1u32 << device::lane()) - 1;
    // Warp-uniform trip count, so that the whole warp takes part in every ballot.
    let mut base = tile.key0;
    while base < end {
        let key = base + device::thread_idx();
        let active = key < end;
        // SAFETY: key < n when active; the tables were built before a barrier.
        let scores = if active { unsafe { score::score_rows(p, &tile, key, luts) } } else { [0.0; MAX_ROWS] };
        for r in 0..MAX_ROWS {
            if r >= tile.rows as usize {
                break;
            }
            let selection_key = score::selection_key(scores[r], key, p.metric);
            let take = active && select::is_selected(selection_key, &states[r]);
            // SAFETY: the whole warp runs the ballot and the shuffle (uniform trip counts).
            unsafe {
                let mask = device::ballot(take);
                if mask == 0 {
                    continue;
                }
                let row = tile.row0 + r as u32;
                let leader = mask.trailing_zeros();
                let mut first = 0;
                if device::lane() == leader {
                    first = device::atomic_add(&raw mut (*row_state(p, row)).collected, mask.count_ones());
                }
                first = device::shfl_idx(first, leader);
                let slot = first + (mask & lanes_below).count_ones();
                // Exactly min(k, valid) keys are selected; the bound only guards a broken state.
                if take && slot < p.k {
                    *(p.cand_keys as *mut u64).add(row as usize * p.k as usize + slot as usize) = selection_key;
                }
            }
        }
        base += BLOCK_THREADS;
    }
}

/// The sort key of the requested order, larger first: the selection key for score order; for
/// index order its halves swapped, so the complemented index leads (a smaller index is larger).
fn order_key(p: &TopkParams, key: u64) -> u64 {
    if p.order == Order::ByScore as u32 { key } else { key.rotate_left(32) }
}

fn from_order_key(p: &TopkParams, key: u64) -> u64 {
    if p.order == Order::ByScore as u32 { key } else { key.rotate_right(32) }
}

/// Writes slot `slot` of `row`: the candidate with order key `ordered`, or padding.
///
/// # Safety
/// `row < rows`, `slot < k`.
unsafe fn write_slot(p: &TopkParams, row: u32, slot: u32, ordered: Option<u64>) {
    let at = row as usize * p.k as usize + slot as usize;
    let (index, score) = match ordered {
        Some(ordered) => {
            let key = from_order_key(p, ordered);
            (score::index_of(key), score::score_of(key, p.metric))
        }
        None => (u32::MAX, score::padding_score(p.metric)),
    };
    // SAFETY: at < rows·k.
    unsafe {
        *(p.out_indices as *mut u32).add(at) = index;
        if p.out_scores != 0 {
            *(p.out_scores as *mut f32).add(at) = score;
        }
    }
}

/// Orders each row's candidates into the outputs: sorted in shared memory where they fit,
/// otherwise ranked against each other from global memory.
///
/// # Safety
/// All threads of every block call it after the collect phase.
unsafe fn finalize(p: &TopkParams) {
    let cap = p.sort_capacity as usize;
    let t = device::thread_idx() as usize;
    // SAFETY: launched with sort_capacity u64 of shared memory.
    let buf: Shared<u64> = unsafe { device::dynamic_shared(cap) };
    let count_of = |row: u32| unsafe { (*row_state(p, row)).collected }.min(p.k);
    for row in block_items(total_rows(p)) {
        let count = count_of(row) as usize;
        let len = count.next_power_of_two();
        if len > cap {
            continue;
        }
        let cands = (p.cand_keys as *const u64).wrapping_add(row as usize * p.k as usize);
        // SAFETY: i < count reads written candidates; the barriers order the shared accesses.
        unsafe {
            for i in (t..len).step_by(BLOCK_THREADS as usize) {
                buf.set(i, if i < count { order_key(p, *cands.add(i)) } else { 0 });
            }
            device::sync_threads();
            select::sort_descending(buf, len);
            for slot in (t..p.k as usize).step_by(BLOCK_THREADS as usize) {
                write_slot(p, row, slot as u32, (slot < count).then(|| buf.get(slot)));
            }
            device::sync_threads();
        }
    }
    let chunks = p.k.div_ceil(BLOCK_THREADS);
    for item in block_items(total_rows(p) * chunks) {
        let row = item / chunks;
        let count = count_of(row);
        if count.next_power_of_two() as usize <= cap {
            continue;
        }
        let slot = (item % chunks) * BLOCK_THREADS + t as u32;
        let cands = (p.cand_keys as *const u64).wrapping_add(row as usize * p.k as usize);
        // SAFETY: slot < count reads a written candidate; all threads call rank_among.
        unsafe {
            let mine = (slot < count).then(|| order_key(p, *cands.add(slot as usize)));
            let rank = select::rank_among(cands, count, mine, |key| order_key(p, key));
            match mine {
                Some(_) => write_slot(p, row, rank, mine),
                None if slot < p.k => write_slot(p, row, slot, None),
                None => {}
            }
        }
    }
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

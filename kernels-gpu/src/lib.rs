//! pqtopk's GPU kernels, compiled to PTX by `cargo xtask build-ptx`.
//!
//! Kernel ABI: every entry point takes one `#[repr(C)]` struct from `pqtopk-abi` by value and
//! documents its block size, grid and dynamic shared memory. A top-k call is three launches:
//! `pq_tables` builds each row tile's lookup tables (and zeroes the histograms), `pq_score`
//! writes every row's order keys and histogram (`pq_score_dense` instead, by tensor cores, where
//! many rows share a kv head), `pq_select` selects and orders each
//! row's top k (plus `pq_rank` for score order with k too large to sort in shared memory).
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

/// Runs `body` once per listed value of the constant, as straight-line code: LLVM leaves some
/// short loops rolled, which moves the arrays they index to local memory.
macro_rules! unrolled {
    ($i:ident in [$($n:literal),*] $body:block) => {
        $({
            const $i: usize = $n;
            $body
        })*
    };
}

// `device` first: its macros serve the modules after it.
#[macro_use]
pub mod device;

pub mod dense;
pub mod score;
pub mod select;
pub mod smoke;

use device::Shared;
use pqtopk_abi::{
    CodeCheckParams, DenseScoreParams, HIST_BINS, Order, RowBinning, SELECT_KEYS_PER_STEP, SPLIT_STATE_WORDS,
    ScoreParams, SelectParams, Shape, TablesParams,
};
use score::{Binning, Lut2, Lut4, Tile};
use select::{Class, Filter};

/// Builds the lookup tables of every row tile, and zeroes the histograms and the selection's
/// split state: one block of
/// `BLOCK_THREADS` (≥ c) per (tile, sub-space), `row_tiles · b·hkv · m` blocks, with dynamic
/// shared memory of `rows_per_block · (d/m) · 4` bytes for the staged queries.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `TablesParams` documents.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_tables(p: TablesParams) {
    let block = device::block_idx().0;
    let s = &p.shape;
    // The histograms and the split-selection state start from zero, 16 bytes per store, spread
    // over the whole grid.
    let vectors = (s.b * s.hkv * s.rows_per_kv * (HIST_BINS + SPLIT_STATE_WORDS) / 4) as usize;
    let first = (block * device::block_dim() + device::thread_idx()) as usize;
    for v in (first..vectors).step_by((device::grid_dim_x() * device::block_dim()) as usize) {
        // SAFETY: v < rows·(HIST_BINS + SPLIT_STATE_WORDS)/4, the region's length, which is
        // 16-byte aligned.
        unsafe { *(p.histograms as *mut [u32; 4]).add(v) = [0; 4] };
    }
    let tile = Tile::of(&p.shape, &p.tiling, block / p.shape.m, 0, 0);
    // SAFETY: launched with the documented shared memory; the shapes were validated.
    unsafe {
        let staging = device::dynamic_shared((tile.rows * (p.shape.d / p.shape.m)) as usize);
        score::build_tables(&p, tile, block % p.shape.m, staging);
    }
}

/// Scores every valid key of every output row and histograms the rows: one block of
/// `BLOCK_THREADS` per item (`key_chunks · row_tiles · b·hkv` of them, see `ScoreParams`), with
/// dynamic shared memory of `lut_width · (m·c + HIST_BINS) · 4` bytes for the row tile's lookup
/// tables and histograms.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `ScoreParams` documents; `pq_tables` has
/// finished; the histograms are zero.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_score(p: ScoreParams) {
    let tile = Tile::of_item(&p, device::block_idx().0);
    // SAFETY (all arms): forwarded to the caller; lut_width picks the table layout.
    unsafe {
        match p.tiling.lut_width {
            4 => score::score_item::<Lut4>(&p, tile),
            2 => score::score_item::<Lut2>(&p, tile),
            _ => score::score_item::<f32>(&p, tile),
        }
    }
}

/// Scores every valid key of every output row and histograms the rows by tensor cores, where
/// many rows share a kv head: one block of `DENSE_THREADS` per item (see `DenseScoreParams`),
/// with dynamic shared memory of `dense_shared_bytes(c, d)` bytes.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `DenseScoreParams` documents, with queries
/// and codebooks 16-byte aligned; `pq_tables` has finished; the histograms are zero.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_score_dense(p: DenseScoreParams) {
    // SAFETY: forwarded to the caller.
    unsafe { dense::score_item(&p) }
}

/// Selects each row's exact top k from the order keys and histogram that `pq_score` wrote, and
/// writes the outputs (for score order with k above `sort_capacity`: the candidates, which
/// `pq_rank` orders). `split` blocks per row (any multiple of 32 threads that divides `HIST_BINS`,
/// up to `SELECT_THREADS`), with dynamic shared memory of
/// `HIST_BINS · 4 + (tie_capacity + sort_capacity) · 8` bytes.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `SelectParams` documents, and `pq_score`
/// has finished; `sort_capacity` and `tie_capacity` are powers of two.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_select(p: SelectParams) {
    let s = &p.shape;
    let (row, part) = (device::block_idx().0 / p.split, device::block_idx().0 % p.split);
    let keys = RowKeys::of(&p, row);
    let valid = keys.end;
    let taken = s.k.min(valid);
    // SAFETY: launched with the documented dynamic shared memory, in this order.
    let (hist, ties, best) = unsafe {
        let hist: Shared<u32> = device::dynamic_shared(HIST_BINS as usize);
        let ties: Shared<u64> = hist.tail(HIST_BINS as usize, p.tie_capacity as usize);
        (hist, ties, ties.tail::<u64>(p.tie_capacity as usize, p.sort_capacity as usize))
    };
    let counters = static_shared!(SELECT_COUNTERS: [u32; 2]);
    let last = static_shared!(SELECT_LAST_TIE: [u64; 1]);
    // SAFETY (all): the whole block runs every step; valid > k ≥ 1 where narrowing.
    unsafe {
        let binning = Binning::from_raw(*(p.binning as *const RowBinning).add(row as usize));
        let filter = if valid <= s.k { Filter::take_all() } else { narrow(&p, row, &keys, binning, hist, taken) };
        // The row's top k fits in shared memory: one sweep gathers it, in either order.
        let in_shared = taken.next_power_of_two() <= p.sort_capacity;
        // Every block of a split row computed the same filter; they share the gather where one
        // follows (a row whose keys are all taken, or whose candidates go to pq_rank, is block
        // 0's alone).
        let shared_gather = p.split > 1 && !filter.takes_all() && (in_shared || s.order != Order::ByScore as u32);
        if p.split > 1 && !shared_gather && part != 0 {
            return;
        }
        let gathered = if shared_gather { keys.part(part, p.split) } else { keys };
        if in_shared {
            // One sweep gathers the taken keys and the tied ones; the best ties join the rest
            // (a row whose keys are all taken has no ties).
            gather(
                &gathered,
                counters,
                |key| filter.classify(key),
                |taken, slot, key| if taken { best } else { ties }.set(slot as usize, key),
            );
            if shared_gather && !merge_parts(&p, row, counters, Some(best), ties) {
                return;
            }
            let above = counters.get(0);
            best_ties(ties, counters.get(1), filter.remaining, |i, key| best.set((above + i) as usize, key));
            // Score order: the best ties follow every key of a higher bin, already in order, and
            // only the keys above them go by buckets. Index order: every key goes by buckets,
            // with its halves swapped, so that the top bits are the complemented index (unique,
            // larger for smaller indices). Crowded buckets call for the sort.
            let by_score = s.order == Order::ByScore as u32;
            let output = move |key: u64| if by_score { key } else { key.rotate_left(32) };
            let bucketed_keys = if by_score { above } else { taken };
            if !by_score {
                for i in (device::thread_idx()..taken).step_by(device::block_dim() as usize) {
                    best.set(i as usize, output(best.get(i as usize)));
                }
                device::sync_threads();
            }
            let bucketed = bucketed_keys <= p.tie_capacity
                && select::emit_by_buckets(hist, bucketed_keys, best, ties, |slot, key| {
                    write_slot(&p, row, slot, Some(output(key)))
                });
            if bucketed {
                for slot in (bucketed_keys + device::thread_idx()..taken).step_by(device::block_dim() as usize) {
                    write_slot(&p, row, slot, Some(best.get(slot as usize)));
                }
                pad_row(&p, row, taken);
            } else {
                write_sorted(&p, row, taken, best, output);
            }
        } else {
            let threshold_key = if filter.takes_all() {
                0
            } else {
                gather(
                    &gathered,
                    counters,
                    |key| filter.classify(key),
                    |taken, slot, key| {
                        if !taken {
                            ties.set(slot as usize, key)
                        }
                    },
                );
                if shared_gather && !merge_parts(&p, row, counters, None, ties) {
                    return;
                }
                best_ties(ties, counters.get(1), filter.remaining, |i, key| {
                    if i + 1 == filter.remaining {
                        last.set(0, key)
                    }
                });
                last.get(0)
            };
            let is_taken = |key: u64| {
                let class = filter.classify(key);
                class.taken || (class.tied && key >= threshold_key)
            };
            if s.order != Order::ByScore as u32 {
                write_in_index_order(&p, row, &keys, is_taken);
            } else {
                let candidates = (p.candidates as *mut u64).wrapping_add(row as usize * s.k as usize);
                gather(
                    &keys,
                    counters,
                    |key| Class { taken: is_taken(key), tied: false },
                    |_, slot, key| *candidates.add(slot as usize) = key,
                );
            }
        }
    }
}

/// Orders the candidates of rows whose top k is too large to sort in shared memory (score order
/// only): block `(row, chunk)` of `BLOCK_THREADS` ranks candidates `chunk·256..` of the row
/// against all of the row's and writes them (and the padding slots) to their places.
///
/// # Safety
/// `p` as for `pq_select`, which has finished writing the candidates of every row with
/// `min(k, valid)` above `sort_capacity`; grid `rows · ceil(k / 256)`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_rank(p: SelectParams) {
    let s = &p.shape;
    let chunks = s.k.div_ceil(device::block_dim());
    let (row, chunk) = (device::block_idx().0 / chunks, device::block_idx().0 % chunks);
    let taken = s.k.min(score::valid_keys(s, p.n_valid, score::batch_of_row(s, row)));
    if taken.next_power_of_two() <= p.sort_capacity {
        return;
    }
    let slot = chunk * device::block_dim() + device::thread_idx();
    let candidates = (p.candidates as *const u64).wrapping_add(row as usize * s.k as usize);
    // SAFETY: slot < taken reads a written candidate; all threads of the block call rank_among.
    unsafe {
        let mine = (slot < taken).then(|| *candidates.add(slot as usize));
        let rank = select::rank_among(candidates, taken, mine);
        match mine {
            Some(key) => write_slot(&p, row, rank, Some(key)),
            None if slot < s.k => write_slot(&p, row, slot, None),
            None => {}
        }
    }
}

/// Keys `begin..end` of a row whose order keys start at `ptr`, 16-byte aligned; `begin` is a
/// multiple of 4.
#[derive(Clone, Copy)]
struct RowKeys {
    ptr: *const u32,
    begin: u32,
    end: u32,
}

/// Four consecutive keys of a row, from index `first`, of which the first `count` are valid.
#[derive(Clone, Copy)]
struct Group {
    first: u32,
    orders: [u32; KEYS_PER_LOAD as usize],
    count: u32,
}

impl Group {
    #[inline(always)]
    fn valid(&self, i: usize) -> bool {
        (i as u32) < self.count
    }

    #[inline(always)]
    fn key(&self, i: usize) -> u64 {
        score::selection_key(self.orders[i], self.first + i as u32)
    }
}

/// Keys one thread takes per load of a sweep (16 bytes).
const KEYS_PER_LOAD: u32 = 4;
/// Loads each thread has in flight per step of a sweep.
const LOADS_PER_STEP: u32 = SELECT_KEYS_PER_STEP / KEYS_PER_LOAD;

impl RowKeys {
    fn of(p: &SelectParams, row: u32) -> RowKeys {
        let s = &p.shape;
        let valid = score::valid_keys(s, p.n_valid, score::batch_of_row(s, row));
        RowKeys {
            ptr: (p.scores as *const u32).wrapping_add(row as usize * s.score_stride as usize),
            begin: 0,
            end: valid,
        }
    }

    /// Slice `part` of `parts` of the keys, in whole sweep steps so that a slice's sweep loads
    /// no key of the next.
    fn part(self, part: u32, parts: u32) -> RowKeys {
        let per_step = SELECT_KEYS_PER_STEP * device::block_dim();
        let len = (self.end - self.begin).div_ceil(parts).next_multiple_of(per_step);
        let begin = (self.begin + part * len).min(self.end);
        RowKeys { ptr: self.ptr, begin, end: (begin + len).min(self.end) }
    }

    /// Calls `f` with this thread's `LOADS_PER_STEP` groups of four consecutive keys per step.
    /// The block visits the groups in index order: group 0 of every thread (thread order), then
    /// group 1 of every thread; every thread makes the same number of calls (groups past the row
    /// have 0 valid keys), so `f` may use warp and block collectives.
    ///
    /// # Safety
    /// The keys were written by an earlier launch and stay unchanged.
    #[inline(always)]
    unsafe fn sweep(&self, mut f: impl FnMut([Group; LOADS_PER_STEP as usize])) {
        let per_call = KEYS_PER_LOAD * device::block_dim();
        let per_step = LOADS_PER_STEP * per_call;
        // SAFETY: forwarded to the caller.
        let load_step = |base: u32| unsafe { self.load_step(base, per_call) };
        // Software-pipelined: the next step's loads are in flight while `f` handles this one.
        let mut next = load_step(self.begin);
        let mut base = self.begin;
        while base < self.end {
            let groups = next;
            if base + per_step < self.end {
                next = load_step(base + per_step);
            }
            f(groups);
            base += per_step;
        }
    }

    /// This thread's groups of one sweep step from key `base`.
    ///
    /// # Safety
    /// As [`RowKeys::sweep`].
    #[inline(always)]
    unsafe fn load_step(&self, base: u32, per_call: u32) -> [Group; LOADS_PER_STEP as usize] {
        let mut groups = [Group { first: 0, orders: [0; 4], count: 0 }; LOADS_PER_STEP as usize];
        // The list spells out 0..LOADS_PER_STEP.
        unrolled!(G in [0, 1] {
            let first = base + G as u32 * per_call + KEYS_PER_LOAD * device::thread_idx();
            let count = self.end.saturating_sub(first).min(KEYS_PER_LOAD);
            // SAFETY: rows are score_stride (a multiple of 4) apart and 16-byte aligned, and
            // groups start at multiples of 4, so a group that starts below end ≤ n lies inside
            // its row; lanes past end are ignored.
            let orders = if count > 0 {
                unsafe { device::load_nc_v4(self.ptr.add(first as usize) as *const [u32; 4]) }
            } else {
                [0; 4]
            };
            groups[G] = Group { first, orders, count };
        });
        groups
    }
}

/// Appends every taken key (through `store(true, slot, key)`) and every tied key
/// (`store(false, …)`), one shared-memory atomic per warp, sweep step and class on
/// `counters[0]` and `counters[1]`. Ends with a barrier; the counts are in `counters`.
///
/// # Safety
/// All threads of the block call it; `store` is valid for every slot below the number of keys of
/// its class.
#[inline(always)]
unsafe fn gather(
    keys: &RowKeys,
    counters: Shared<u32>,
    classify: impl Fn(u64) -> Class,
    mut store: impl FnMut(bool, u32, u64),
) {
    // SAFETY: every thread reaches the barriers; thread 0 alone resets the counters before them,
    // and the first barrier also ends earlier reads of them.
    unsafe {
        device::sync_threads();
        if device::thread_idx() == 0 {
            counters.set(0, 0);
            counters.set(1, 0);
        }
        device::sync_threads();
        keys.sweep(|groups| {
            // Bit 4g + i of a mask: key i of group g is of that class.
            let (mut taken, mut tied) = (0u32, 0u32);
            // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let class = classify(groups[G].key(I));
                    let valid = groups[G].valid(I);
                    taken |= ((valid && class.taken) as u32) << (4 * G + I);
                    tied |= ((valid && class.tied) as u32) << (4 * G + I);
                });
            });
            let (taken_slot, tied_slot) = select::reserve_pair(taken.count_ones(), tied.count_ones(), counters);
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let bit = 1u32 << (4 * G + I);
                    // Class and slot by selects, so that one predicated store remains.
                    let is_taken = taken & bit != 0;
                    let (mask, first) = if is_taken { (taken, taken_slot) } else { (tied, tied_slot) };
                    if (taken | tied) & bit != 0 {
                        store(is_taken, first + (mask & (bit - 1)).count_ones(), groups[G].key(I));
                    }
                });
            });
        });
        device::sync_threads();
    }
}

/// After each block of a split row has gathered its slice: publishes this block's gathered keys
/// (the taken ones from `taken`, if given, and the tied ones from `ties`) to the row's
/// `split_keys`, and returns whether this block arrived last. The last block then holds every
/// block's keys in `taken` and `ties`, and their counts in `counters`, as if it had gathered the
/// whole row itself; the others must return.
///
/// # Safety
/// All threads of the block call it, right after `gather`; `p.split > 1`; the split state was
/// zero at the launch, and every block of the row calls this once.
unsafe fn merge_parts(
    p: &SelectParams,
    row: u32,
    counters: Shared<u32>,
    taken: Option<Shared<u64>>,
    ties: Shared<u64>,
) -> bool {
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let state = (p.split_state as *mut u32).wrapping_add((row * SPLIT_STATE_WORDS) as usize);
    let published = (p.split_keys as *mut u64).wrapping_add(row as usize * (p.sort_capacity + p.tie_capacity) as usize);
    let tied_published = published.wrapping_add(p.sort_capacity as usize);
    let shared = static_shared!(SPLIT_SHARED: [u32; 3]);
    // SAFETY: the state and the published keys are this row's; the row's blocks reserve
    // disjoint ranges with the atomics, whose totals stay within the capacities (at most
    // min(k, valid) ≤ sort_capacity keys above the bin in score order, at most tie_capacity tied
    // keys after narrowing). The barriers order the shared broadcasts. The fences around the
    // arrival (release after every thread's stores, acquire after the last arrival) make every
    // block's keys visible to the last block, which reads them with coherent loads.
    unsafe {
        let (taken_here, tied_here) = (counters.get(0), counters.get(1));
        if t == 0 {
            shared.set(0, if taken.is_some() { device::atomic_add(state, taken_here) } else { 0 });
            shared.set(1, device::atomic_add(state.add(1), tied_here));
        }
        device::sync_threads();
        let (taken_base, tied_base) = (shared.get(0) as usize, shared.get(1) as usize);
        if let Some(taken) = taken {
            for i in (t as usize..taken_here as usize).step_by(threads) {
                *published.add(taken_base + i) = taken.get(i);
            }
        }
        for i in (t as usize..tied_here as usize).step_by(threads) {
            *tied_published.add(tied_base + i) = ties.get(i);
        }
        device::fence_acq_rel_gpu();
        device::sync_threads();
        if t == 0 {
            // Release the block's keys (the barrier ordered them before this thread's fence),
            // arrive, and acquire the keys of the blocks that arrived before.
            device::fence_acq_rel_gpu();
            let last = device::atomic_add(state.add(2), 1) == p.split - 1;
            device::fence_acq_rel_gpu();
            shared.set(2, last as u32);
        }
        device::sync_threads();
        if shared.get(2) == 0 {
            return false;
        }
        device::fence_acq_rel_gpu();
        // Totals, read as atomics (every block has added its counts by now).
        if t == 0 {
            shared.set(0, device::atomic_add(state, 0));
            shared.set(1, device::atomic_add(state.add(1), 0));
        }
        device::sync_threads();
        let (taken_total, tied_total) = (shared.get(0), shared.get(1));
        if let Some(taken) = taken {
            for i in (t as usize..taken_total as usize).step_by(threads) {
                taken.set(i, device::load_relaxed_u64(published.add(i)));
            }
        }
        for i in (t as usize..tied_total as usize).step_by(threads) {
            ties.set(i, device::load_relaxed_u64(tied_published.add(i)));
        }
        if t == 0 {
            counters.set(0, taken_total);
            counters.set(1, tied_total);
        }
        device::sync_threads();
        true
    }
}

/// The filter of a row with more valid keys than k: the bin of the `taken`-th key in the
/// histogram `pq_score` built (copied into `hist`), narrowed by refinement sweeps until at most
/// `tie_capacity` keys are tied.
///
/// # Safety
/// All threads of the block call it after `pq_score` finished; `1 ≤ taken < valid`.
unsafe fn narrow(
    p: &SelectParams,
    row: u32,
    keys: &RowKeys,
    binning: Binning,
    hist: Shared<u32>,
    taken: u32,
) -> Filter {
    let global = (p.histograms as *const u32).wrapping_add(row as usize * HIST_BINS as usize);
    // Bin `bin` starts at the smallest selection key whose order key falls in it; warp 0 finds
    // it and shares it.
    let found = static_shared!(SELECT_FIRST_KEY: [u64; 1]);
    let first_key_of = |bin: u32| {
        // SAFETY: first_filter calls it in the whole block, so every thread reaches the
        // barriers, and warp 0 runs the search convergently; one lane writes the result
        // between the barriers.
        unsafe {
            if device::thread_idx() < device::WARP {
                let order = if bin >= HIST_BINS { 1 << 32 } else { binning.first_key_of(bin) };
                if device::thread_idx() == 0 {
                    found.set(0, if order >= 1 << 32 { u64::MAX } else { order << 32 });
                }
            }
            device::sync_threads();
            let key = found.get(0);
            device::sync_threads();
            key
        }
    };
    // SAFETY: every thread reaches the barriers; each bin has one writer per round, and each
    // threshold's last barrier ends every read of the histogram.
    unsafe {
        for bin in (device::thread_idx()..HIST_BINS).step_by(device::block_dim() as usize) {
            hist.set(bin as usize, device::load_nc_u32(global.add(bin as usize)));
        }
        device::sync_threads();
        let mut filter = select::first_filter(hist, taken, first_key_of);
        while filter.tied > p.tie_capacity && filter.refinable() {
            for bin in (device::thread_idx()..HIST_BINS).step_by(device::block_dim() as usize) {
                hist.set(bin as usize, 0);
            }
            device::sync_threads();
            keys.sweep(|groups| {
                // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
                unrolled!(G in [0, 1] {
                    unrolled!(I in [0, 1, 2, 3] {
                        let key = groups[G].key(I);
                        if groups[G].valid(I) && filter.classify(key).tied {
                            hist.atomic_add_no_return(filter.digit(key) as usize, 1);
                        }
                    });
                });
            });
            device::sync_threads();
            filter.refine(select::threshold(hist, filter.remaining));
        }
        filter
    }
}

/// Calls `place(i, key)` for the `wanted` best of the `tied` gathered ties, `i` counting from
/// the best (each from one thread; may reorder `ties`). Few ties are ranked by comparing every
/// pair, all at once: a bitonic sort's chain of barriers costs more while
/// `tied² ≤ 64 · block size`; more ties are sorted.
///
/// # Safety
/// All threads of the block call it after the gather; `wanted ≤ tied`; `ties` holds
/// `tie_capacity ≥ tied.next_power_of_two()` keys. Ends with a barrier.
unsafe fn best_ties(ties: Shared<u64>, tied: u32, wanted: u32, mut place: impl FnMut(u32, u64)) {
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    // SAFETY: the padding slots have one writer each; the barriers order them before the sort
    // and the sort before the reads.
    unsafe {
        if (tied as usize).pow(2) <= 64 * threads {
            for i in (t..tied as usize).step_by(threads) {
                let key = ties.get(i);
                let rank = select::rank_among_shared(ties, tied, key);
                if rank < wanted {
                    place(rank, key);
                }
            }
        } else {
            let len = tied.next_power_of_two() as usize;
            for i in (tied as usize + t..len).step_by(threads) {
                ties.set(i, 0);
            }
            device::sync_threads();
            select::sort_descending(ties, len);
            for i in (t..wanted as usize).step_by(threads) {
                place(i as u32, ties.get(i));
            }
        }
        device::sync_threads();
    }
}

/// Writes the taken keys in index order, by a block-wide prefix count per sweep step, then
/// pads the row.
///
/// # Safety
/// All threads of the block call it; exactly `min(k, valid)` keys are taken.
unsafe fn write_in_index_order(p: &SelectParams, row: u32, keys: &RowKeys, is_taken: impl Fn(u64) -> bool) {
    let mut written = 0;
    // SAFETY: all threads sweep and scan together; slots stay below the taken count ≤ k.
    unsafe {
        keys.sweep(|groups| {
            let mut take = [[(false, 0u64); KEYS_PER_LOAD as usize]; LOADS_PER_STEP as usize];
            let mut mine = [0u32; LOADS_PER_STEP as usize];
            // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let key = groups[G].key(I);
                    take[G][I] = (groups[G].valid(I) && is_taken(key), key);
                    mine[G] += take[G][I].0 as u32;
                });
            });
            // One scan for both groups, 16 bits each: a group of the block holds at most
            // 4 · SELECT_THREADS = 4096 keys.
            let (before, total) = select::block_exclusive_sum(mine[0] | (mine[1] << 16));
            let totals = [total & 0xffff, total >> 16];
            let mut slots = [written + (before & 0xffff), written + totals[0] + (before >> 16)];
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    if take[G][I].0 {
                        write_slot(p, row, slots[G], Some(take[G][I].1));
                        slots[G] += 1;
                    }
                });
            });
            written += totals[0] + totals[1];
        });
        pad_row(p, row, written);
    }
}

/// Sorts the `taken` keys in `best` descending and writes them in that order (each as
/// `output(key)`), then pads the row.
///
/// # Safety
/// All threads of the block call it after the keys are in `best` (unordered, nonzero);
/// `taken.next_power_of_two() ≤ sort_capacity ≤ best.len()`.
unsafe fn write_sorted(p: &SelectParams, row: u32, taken: u32, best: Shared<u64>, output: impl Fn(u64) -> u64) {
    let len = taken.next_power_of_two() as usize;
    let t = device::thread_idx() as usize;
    let threads = device::block_dim() as usize;
    // SAFETY: the barriers order the keys, the padding and the sort; slots stay below taken.
    unsafe {
        device::sync_threads();
        for i in (taken as usize + t..len).step_by(threads) {
            best.set(i, 0);
        }
        device::sync_threads();
        select::sort_descending(best, len);
        device::sync_threads();
        for slot in (t..taken as usize).step_by(threads) {
            write_slot(p, row, slot as u32, Some(output(best.get(slot))));
        }
        pad_row(p, row, taken);
    }
}

/// Writes padding to slots `from..k` of `row`.
///
/// # Safety
/// `row < rows`.
unsafe fn pad_row(p: &SelectParams, row: u32, from: u32) {
    let mut slot = from + device::thread_idx();
    while slot < p.shape.k {
        // SAFETY: slot < k.
        unsafe { write_slot(p, row, slot, None) };
        slot += device::block_dim();
    }
}

/// Writes slot `slot` of `row`: the key with selection key `key`, or padding.
///
/// # Safety
/// `row < rows`, `slot < k`.
unsafe fn write_slot(p: &SelectParams, row: u32, slot: u32, key: Option<u64>) {
    let s: &Shape = &p.shape;
    let at = row as usize * s.k as usize + slot as usize;
    let (index, score) = match key {
        Some(key) => (score::index_of(key), score::score_of(key, s.metric)),
        None => (u32::MAX, score::padding_score(s.metric)),
    };
    // SAFETY: at < rows·k.
    unsafe {
        *(p.out_indices as *mut u32).add(at) = index;
        if p.out_scores != 0 {
            *(p.out_scores as *mut f32).add(at) = score;
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

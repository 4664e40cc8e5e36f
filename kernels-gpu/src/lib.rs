//! pqtopk's GPU kernels, compiled to PTX by `cargo xtask build-ptx`.
//!
//! Kernel ABI: every entry point takes one `#[repr(C)]` struct from `pqtopk-abi` by value and
//! documents its block size, grid and dynamic shared memory. A top-k call is a 4-byte-per-row
//! memset and two launches: `pq_score` writes every row's order keys and score range,
//! `pq_select` selects and orders each row's top k (plus `pq_rank` for score order with k too
//! large to sort in shared memory).
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

#[macro_use]
pub mod device;
pub mod score;
pub mod select;
pub mod smoke;

use device::Shared;
use pqtopk_abi::{CodeCheckParams, HIST_BINS, Order, ScoreBounds, ScoreParams, SelectParams, Shape};
use score::{Binning, Lut2, Lut4, Tile};
use select::{Class, Filter};

/// Scores every valid key of every output row: one block of `BLOCK_THREADS` per item
/// (`key_chunks · row_tiles · b·hkv` of them, see `ScoreParams`), with dynamic shared memory of
/// `rows_per_block.next_multiple_of(lut_width) · m · c · 4` bytes for the lookup tables.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `ScoreParams` documents; the bounds are
/// zero.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_score(p: ScoreParams) {
    let tile = Tile::of_item(&p, device::block_idx().0);
    // SAFETY (all arms): forwarded to the caller; lut_width picks the table layout.
    unsafe {
        match p.lut_width {
            4 => score::score_item::<Lut4>(&p, tile),
            2 => score::score_item::<Lut2>(&p, tile),
            _ => score::score_item::<f32>(&p, tile),
        }
    }
}

/// Selects each row's exact top k from the order keys `pq_score` wrote and writes the outputs
/// (for score order with k above `sort_capacity`: the candidates, which `pq_rank` orders). One
/// block of `SELECT_THREADS` per row, with dynamic shared memory of
/// `HIST_BINS · 4 + max(sort_capacity, tie_capacity) · 8` bytes.
///
/// # Safety
/// `p` describes valid device buffers of the shapes `SelectParams` documents, and `pq_score`
/// has finished writing the scores and bounds; `sort_capacity` and `tie_capacity` are powers of
/// two.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn pq_select(p: SelectParams) {
    let s = &p.shape;
    let row = device::block_idx().0;
    let keys = RowKeys::of(&p, row);
    let taken = s.k.min(keys.valid);
    // SAFETY: launched with the documented dynamic shared memory.
    let hist: Shared<u32> = unsafe { device::dynamic_shared(HIST_BINS as usize) };
    // SAFETY: as above; the buffer follows the histogram.
    let buffer: Shared<u64> = unsafe { hist.tail(HIST_BINS as usize, p.sort_capacity.max(p.tie_capacity) as usize) };
    let counter = static_shared!(SELECT_COUNTER: [u32; 1]);
    // SAFETY: the bounds were complete when pq_score finished.
    let binning = Binning::of(unsafe { *(p.bounds as *const ScoreBounds).add(row as usize) });
    let (filter, threshold_key) = if keys.valid <= s.k {
        (Filter::take_all(), 0)
    } else {
        // SAFETY: the whole block runs both; taken ≥ 1 here since valid > k ≥ 1.
        unsafe {
            let filter = narrow(&p, &keys, binning, hist, taken);
            (filter, tie_threshold(&keys, binning, filter, buffer, counter))
        }
    };
    let taken_by = |index: u32, order: u32| {
        let key = score::selection_key(order, index);
        let take = match filter.classify(binning.bin(order), key) {
            Class::Taken => true,
            Class::Tied => key >= threshold_key,
            Class::Dropped => false,
        };
        (take, key)
    };
    // SAFETY (all arms): the whole block runs them; every output slot of the row is written.
    unsafe {
        if s.order != Order::ByScore as u32 {
            write_in_index_order(&p, row, &keys, taken_by);
        } else if taken.next_power_of_two() <= p.sort_capacity {
            write_in_score_order(&p, row, &keys, taken, taken_by, buffer, counter);
        } else {
            let candidates = (p.candidates as *mut u64).wrapping_add(row as usize * s.k as usize);
            gather(
                &keys,
                counter,
                |index, order| taken_by(index, order),
                |slot, key| *candidates.add(slot as usize) = key,
            );
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

/// A row's order keys: `valid` u32 from `ptr`, 16-byte aligned.
struct RowKeys {
    ptr: *const u32,
    valid: u32,
}

/// Keys one thread takes per load of a sweep (16 bytes).
const KEYS_PER_LOAD: u32 = 4;
/// Loads each thread has in flight per step of a sweep.
const LOADS_PER_STEP: u32 = 2;

impl RowKeys {
    fn of(p: &SelectParams, row: u32) -> RowKeys {
        let s = &p.shape;
        let valid = score::valid_keys(s, p.n_valid, score::batch_of_row(s, row));
        RowKeys { ptr: (p.scores as *const u32).wrapping_add(row as usize * s.score_stride as usize), valid }
    }

    /// Calls `f(first index, order keys, how many of them are valid)` for every group of four
    /// consecutive keys. The block visits the groups in index order, one group per thread and
    /// call, thread order within a call; every thread makes the same number of calls (groups
    /// past the row have 0 valid keys), so `f` may use warp and block collectives.
    ///
    /// # Safety
    /// The keys were written by an earlier launch and stay unchanged.
    #[inline(always)]
    unsafe fn sweep(&self, mut f: impl FnMut(u32, [u32; 4], u32)) {
        let per_call = KEYS_PER_LOAD * device::block_dim();
        let mut base = 0;
        while base < self.valid {
            let mut groups = [([0u32; 4], 0u32, 0u32); LOADS_PER_STEP as usize];
            for (i, group) in groups.iter_mut().enumerate() {
                let first = base + i as u32 * per_call + KEYS_PER_LOAD * device::thread_idx();
                let count = self.valid.saturating_sub(first).min(KEYS_PER_LOAD);
                // SAFETY: rows are score_stride (a multiple of 4) apart and 16-byte aligned, so a
                // group that starts below valid ≤ n lies inside its row; lanes past valid are
                // ignored.
                let orders = if count > 0 {
                    unsafe { device::load_nc_v4(self.ptr.add(first as usize) as *const [u32; 4]) }
                } else {
                    [0; 4]
                };
                *group = (orders, first, count);
            }
            // The list spells out 0..LOADS_PER_STEP.
            unrolled!(G in [0, 1] {
                f(groups[G].1, groups[G].0, groups[G].2);
            });
            base += LOADS_PER_STEP * per_call;
        }
    }
}

/// Appends every key with `take(index, order)` through `store(slot, selection key)`, one
/// shared-memory atomic per warp on `counter`. Ends with a barrier; the count is in `counter`.
///
/// # Safety
/// All threads of the block call it; `store` is valid for every slot below the number of taken
/// keys.
#[inline(always)]
unsafe fn gather(
    keys: &RowKeys,
    counter: Shared<u32>,
    mut take: impl FnMut(u32, u32) -> (bool, u64),
    mut store: impl FnMut(u32, u64),
) {
    // SAFETY: every thread reaches the barriers; thread 0 alone resets the counter before them,
    // and the first barrier also ends earlier reads of it.
    unsafe {
        device::sync_threads();
        if device::thread_idx() == 0 {
            counter.set(0, 0);
        }
        device::sync_threads();
        keys.sweep(|first, orders, count| {
            // The list spells out 0..KEYS_PER_LOAD.
            unrolled!(I in [0, 1, 2, 3] {
                let (taken, key) = if (I as u32) < count { take(first + I as u32, orders[I]) } else { (false, 0) };
                select::append(taken, key, counter, &mut store);
            });
        });
        device::sync_threads();
    }
}

/// Histograms the row until the bin (and digits) of the `taken`-th key leave at most
/// `tie_capacity` keys tied.
///
/// # Safety
/// All threads of the block call it; `1 ≤ taken < valid`.
unsafe fn narrow(p: &SelectParams, keys: &RowKeys, binning: Binning, hist: Shared<u32>, taken: u32) -> Filter {
    let mut filter: Option<Filter> = None;
    loop {
        if let Some(f) = filter {
            if f.tied <= p.tie_capacity || !f.refinable() {
                return f;
            }
        }
        // SAFETY: every thread reaches the barriers; the previous threshold's last barrier ended
        // every read of the histogram.
        unsafe {
            for bin in (device::thread_idx()..HIST_BINS).step_by(device::block_dim() as usize) {
                hist.set(bin as usize, 0);
            }
            device::sync_threads();
            keys.sweep(|first, orders, count| {
                // The list spells out 0..KEYS_PER_LOAD.
                unrolled!(I in [0, 1, 2, 3] {
                    if (I as u32) < count {
                    let (i, order) = (I, orders[I]);
                    let bin = binning.bin(order);
                    let counted = match filter {
                        None => Some(bin),
                        Some(f) => {
                            let key = score::selection_key(order, first + i as u32);
                            (f.classify(bin, key) == Class::Tied).then(|| f.digit(key))
                        }
                    };
                    if let Some(slot) = counted {
                        hist.atomic_add(slot as usize, 1);
                    }
                    }
                });
            });
            device::sync_threads();
            filter = Some(match filter {
                None => select::first_filter(hist, taken),
                Some(mut f) => {
                    f.refine(select::threshold(hist, f.remaining));
                    f
                }
            });
        }
    }
}

/// Gathers the tied keys, sorts them and returns the `remaining`-th best: the smallest tied key
/// that is taken.
///
/// # Safety
/// All threads of the block call it; `buffer` holds `tie_capacity` keys, a power of two ≥
/// `filter.tied`.
unsafe fn tie_threshold(
    keys: &RowKeys,
    binning: Binning,
    filter: Filter,
    buffer: Shared<u64>,
    counter: Shared<u32>,
) -> u64 {
    // SAFETY: the whole block; at most filter.tied ≤ tie_capacity keys are tied.
    unsafe {
        gather(
            keys,
            counter,
            |index, order| {
                let key = score::selection_key(order, index);
                (filter.classify(binning.bin(order), key) == Class::Tied, key)
            },
            |slot, key| buffer.set(slot as usize, key),
        );
        let tied = counter.get(0) as usize;
        let len = tied.next_power_of_two();
        for i in (tied + device::thread_idx() as usize..len).step_by(device::block_dim() as usize) {
            buffer.set(i, 0);
        }
        device::sync_threads();
        select::sort_descending(buffer, len);
        buffer.get(filter.remaining as usize - 1)
    }
}

/// Writes the taken keys in index order, by a block-wide prefix count per group of keys, then
/// pads the row.
///
/// # Safety
/// All threads of the block call it; exactly `min(k, valid)` keys are taken.
unsafe fn write_in_index_order(p: &SelectParams, row: u32, keys: &RowKeys, taken_by: impl Fn(u32, u32) -> (bool, u64)) {
    let mut written = 0;
    // SAFETY: all threads sweep and scan together; slots stay below the taken count ≤ k.
    unsafe {
        keys.sweep(|first, orders, count| {
            let mut take = [(false, 0u64); KEYS_PER_LOAD as usize];
            let mut mine = 0;
            // The lists spell out 0..KEYS_PER_LOAD.
            unrolled!(I in [0, 1, 2, 3] {
                if (I as u32) < count {
                    take[I] = taken_by(first + I as u32, orders[I]);
                    mine += take[I].0 as u32;
                }
            });
            let (mut slot, total) = select::block_exclusive_sum(mine);
            slot += written;
            unrolled!(I in [0, 1, 2, 3] {
                if take[I].0 {
                    write_slot(p, row, slot, Some(take[I].1));
                    slot += 1;
                }
            });
            written += total;
        });
        pad_row(p, row, written);
    }
}

/// Gathers the taken keys in shared memory, sorts them best first and writes them, then pads
/// the row.
///
/// # Safety
/// All threads of the block call it; exactly `taken` keys are taken, and
/// `taken.next_power_of_two() ≤ sort_capacity ≤ buffer.len()`.
unsafe fn write_in_score_order(
    p: &SelectParams,
    row: u32,
    keys: &RowKeys,
    taken: u32,
    taken_by: impl Fn(u32, u32) -> (bool, u64),
    buffer: Shared<u64>,
    counter: Shared<u32>,
) {
    let len = taken.next_power_of_two() as usize;
    let t = device::thread_idx() as usize;
    let threads = device::block_dim() as usize;
    // SAFETY: gather's first barrier ends the reads of the tie threshold from the buffer; the
    // slots stay below taken; the barriers order the padding and the sort.
    unsafe {
        gather(keys, counter, |index, order| taken_by(index, order), |slot, key| buffer.set(slot as usize, key));
        for i in (taken as usize + t..len).step_by(threads) {
            buffer.set(i, 0);
        }
        device::sync_threads();
        select::sort_descending(buffer, len);
        for slot in (t..taken as usize).step_by(threads) {
            write_slot(p, row, slot as u32, Some(buffer.get(slot)));
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

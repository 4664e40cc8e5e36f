//! The selection of one row per block (or per few blocks, for long rows): the driver that runs
//! the primitives of `select` over a row's order keys from `pq_score` and hands the selected keys
//! to `output`.

use crate::device::{self, Shared};
use crate::output::OutputRows;
use crate::score::{self, Binning};
use crate::select::{self, Class, Filter, MergeSorted};
use pqtopk_abi::{
    HIST_BINS, REFINE_STATE_WORDS, RowBinning, SELECT_KEYS_PER_STEP, SPLIT_STATE_WORDS, SelectParams, WRITE_CHUNK_KEYS,
    WRITE_STATE_HEADER_WORDS, WRITE_STATE_ROW_WRITTEN, index_bitmap_fits, may_write_in_chunks, top_k_in_shared,
};

/// Selects row `block / split`'s exact top k (see the `pq_select` entry point), best first where
/// `BY_SCORE`, else in index order; `PAST_BITMAP`: rows may be too long for the index bitmap.
///
/// # Safety
/// As `pq_select`; `BY_SCORE` is `p.shape.order == ByScore`; without `PAST_BITMAP`, every row's
/// index bitmap fits ([`index_bitmap_fits`]) in index order.
#[inline(always)]
pub unsafe fn select_row<const BY_SCORE: bool, const PAST_BITMAP: bool>(p: &SelectParams) {
    let s = &p.shape;
    let (row, part) = (device::block_idx().0 / p.split, device::block_idx().0 % p.split);
    let keys = RowKeys::of(p, row);
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
        if !BY_SCORE && valid <= s.k {
            // Every valid key is taken, and index order puts key i in slot i: the row is a copy,
            // split over its blocks, with no gather, counters or bitmap (those took ~14 µs at
            // k = n = 4097 over 16 rows, perf-notes v25).
            write_all_in_index_order(p, row, &keys.part(part, p.split));
            if part == 0 {
                OutputRows::of(p).pad(row, valid);
            }
            return;
        }
        let binning = Binning::from_raw(*(p.binning as *const RowBinning).add(row as usize));
        let narrowed = if valid <= s.k {
            Narrowed { filter: Filter::take_all(), alone: p.split == 1 }
        } else {
            match narrow(p, row, part, &keys, binning, hist, taken) {
                Some(narrowed) => narrowed,
                // Another block of the row goes on with it.
                None => return,
            }
        };
        let Narrowed { filter, alone } = narrowed;
        // Tied keys that share their score (every bit above the index) rank by index: the first
        // `remaining` in index order are the best, and only those are kept (no refinement or
        // sort), by one block's sweep where the top k and its index bitmap fit in shared memory,
        // else by the chunks of the write. A split row does so where its ties overflow the tie
        // buffer (`narrow` stopped refining them), in one block alone.
        let ranked = !filter.takes_all()
            && filter.ties_differ_below(score::INDEX_BITS)
            && (alone || filter.tied > p.tie_capacity);
        // The row's top k fits in shared memory: one sweep gathers it.
        let in_shared = top_k_in_shared(taken, p.sort_capacity)
            && (!PAST_BITMAP || !ranked || index_bitmap_fits(valid, p.tie_capacity));
        let output = match (BY_SCORE, PAST_BITMAP) {
            (true, _) => OutputOrder::Score,
            (false, false) => OutputOrder::Index,
            (false, true) => OutputOrder::IndexPastBitmap,
        };
        // Every block of a split row that `narrow` left together computed the same filter; they
        // share the gather where one follows (a row whose keys are all taken, or whose ties rank
        // by index, is block 0's alone).
        let shared_gather = !alone && !filter.takes_all() && !ranked;
        if !alone && !shared_gather && part != 0 {
            return;
        }
        let gathered = if shared_gather { keys.part(part, p.split) } else { keys };
        let classify = |key| filter.classify(key);
        // Keys the filter takes outright (above its tied range).
        let above = taken - filter.remaining;
        if in_shared && ranked {
            gather_in_order(&keys, counters, classify, (above, filter.remaining), |taken, slot, key| {
                best.set(if taken { slot } else { above + slot } as usize, key)
            });
            finish_in_shared(OutputRows::of(p), row, output, taken, above, (0, 0), valid, hist, best, ties);
        } else if in_shared {
            // One sweep gathers the taken keys and the tied ones; the best ties join the rest
            // (a row whose keys are all taken has no ties).
            let store = move |taken, slot, key| if taken { best } else { ties }.set(slot as usize, key);
            // Bounds without index bits (a histogram bin's, before any refinement) classify by
            // the top 32 bits alone: a 32-bit comparison per bound instead of a 64-bit one.
            match filter.top_bounds() {
                Some(bounds) => gather(&gathered, counters, move |key| Class::by_top(bounds, key), store),
                None => gather(&gathered, counters, classify, store),
            }
            if shared_gather && !merge_parts(p, row, counters, Some(best), ties) {
                return;
            }
            let (above, tied) = (counters.get(0), counters.get(1));
            let out = OutputRows::of(p);
            finish_in_shared(out, row, output, taken, above, (tied, filter.remaining), valid, hist, best, ties);
            if PAST_BITMAP && may_write_in_chunks(BY_SCORE, s.k, valid, p.sort_capacity, p.tie_capacity) {
                publish_write_state(p, row, [0, 0, WRITE_STATE_ROW_WRITTEN]);
            }
        } else {
            // The row's top k (or in index order, its ranked ties) does not fit in shared memory:
            // the last block publishes what the row takes, and `pq_write_by_index` or `pq_write_candidates` writes it a chunk per
            // block. Ties that rank by index are ranked there too, by the chunks' chained counts.
            let header = if filter.takes_all() {
                [0; WRITE_STATE_HEADER_WORDS as usize]
            } else if ranked {
                let (lo, hi) = filter.tied_range();
                [lo, hi, filter.remaining as u64]
            } else {
                gather(&gathered, counters, classify, |taken, slot, key| {
                    if !taken {
                        ties.set(slot as usize, key)
                    }
                });
                if shared_gather && !merge_parts(p, row, counters, None, ties) {
                    return;
                }
                select::best_of(ties, counters.get(1), filter.remaining, hist, |i, key| {
                    if i + 1 == filter.remaining {
                        last.set(0, key)
                    }
                });
                let threshold_key = last.get(0);
                [threshold_key, threshold_key, 0]
            };
            publish_write_state(p, row, header);
        }
    }
}

/// How [`finish_in_shared`] orders a row's top k.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OutputOrder {
    /// Best first.
    Score,
    /// By index, through the index bitmap, which fits.
    Index,
    /// By index, through the bitmap where it fits, else by buckets over the keys' indices (or a
    /// sort where they crowd).
    IndexPastBitmap,
}

/// Orders and writes `row`'s top k from shared memory, then pads the row: `above` taken keys in
/// `best` (unordered), then from slot `above` any best ties already in place and in order, and
/// `ties = (tied, remaining)`: `tied` tied keys in `ties`, of which the best `remaining` are
/// taken too. Key indices are below `keys_bound` (the row's valid keys). `hist` is scratch.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the gather; `best` holds
/// `taken.next_power_of_two()` keys, `ties` at least `tied.next_power_of_two()`, and for
/// `OutputOrder::Index` at least
/// [`pqtopk_abi::index_bitmap_slots`]`(keys_bound)`; `above + remaining ≤ taken`, with slots
/// `above + remaining..taken` of `best` holding the placed ties.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn finish_in_shared(
    out: OutputRows,
    row: u32,
    order: OutputOrder,
    taken: u32,
    above: u32,
    (tied, remaining): (u32, u32),
    keys_bound: u32,
    hist: Shared<u32>,
    best: Shared<u64>,
    ties: Shared<u64>,
) {
    // SAFETY (all): the whole block runs every step; the barriers order the buffers.
    unsafe {
        // The best ties follow the keys above them: some unordered (they join those), the rest
        // in order.
        let above = above + select::best_of(ties, tied, remaining, hist, |i, key| best.set((above + i) as usize, key));
        let by_bitmap = match order {
            OutputOrder::Score => false,
            OutputOrder::Index => true,
            OutputOrder::IndexPastBitmap => index_bitmap_fits(keys_bound, ties.len() as u32),
        };
        if by_bitmap {
            // Every taken key is placed by the index bitmap, in the tie buffer (free by now).
            select::emit_by_index(best, taken, keys_bound, ties, score::index_of, move |slot, key| {
                out.write(row, slot, Some(key))
            });
            out.pad(row, taken);
            return;
        }
        // By score, the best ties follow every key of a higher bin, already in order, and only
        // the keys above them go by buckets, which rank by the goodness (the order bits are a
        // float's, far from linear where the scores span many powers of two). By index, every
        // taken key goes by buckets over the indices: the keys, halves swapped, rank by index
        // (a row too long for the bitmap then needs no chunks of `pq_write_by_index`: a launch
        // and a sweep of the row, ~26 µs at n = 1 M, perf-notes v28). Crowded buckets call for
        // the sort.
        let by_score = order == OutputOrder::Score;
        if !by_score {
            for slot in device::strided(device::thread_idx(), taken, device::block_dim() as usize) {
                best.set(slot as usize, score::index_major(best.get(slot as usize)));
            }
            device::sync_threads();
        }
        let unordered = if by_score { above } else { taken };
        let key_of = move |key| if by_score { key } else { score::from_index_major(key) };
        let value = move |key| if by_score { score::goodness_value(key) } else { score::index_major_value(key) };
        let bucketed = unordered as usize <= ties.len()
            && select::emit_by_buckets(hist, unordered, best, ties, value, move |slot, key| {
                out.write(row, slot, Some(key_of(key)))
            });
        if bucketed {
            for slot in device::strided(unordered + device::thread_idx(), taken, device::block_dim() as usize) {
                out.write(row, slot, Some(best.get(slot as usize)));
            }
            out.pad(row, taken);
        } else {
            write_sorted(out, row, taken, best, ties, key_of);
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

    /// Bit i set for each valid key i.
    #[inline(always)]
    fn valid_mask(&self) -> u32 {
        (1 << self.count) - 1
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
        // SAFETY: forwarded to the caller.
        unsafe {
            self.sweep_until(|groups| {
                f(groups);
                false
            })
        }
    }

    /// As [`RowKeys::sweep`], ending after the first step for which `f` returns true.
    ///
    /// # Safety
    /// As [`RowKeys::sweep`]; `f` returns the same in every thread of the block.
    #[inline(always)]
    unsafe fn sweep_until(&self, mut f: impl FnMut([Group; LOADS_PER_STEP as usize]) -> bool) {
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
            if f(groups) {
                return;
            }
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

/// Zeroes `counters[0]` and `counters[1]` between two barriers (the first ends earlier reads).
///
/// # Safety
/// All threads of the block call it.
#[inline(always)]
unsafe fn reset_counters(counters: Shared<u32>) {
    // SAFETY: every thread reaches both barriers; thread 0 alone writes between them.
    unsafe {
        device::sync_threads();
        if device::thread_idx() == 0 {
            counters.set(0, 0);
            counters.set(1, 0);
        }
        device::sync_threads();
    }
}

/// The classes of this thread's keys of a sweep step, as masks: bit 4g + i is key i of group g
/// (valid keys only). Every key is classified and the invalid ones are masked off at the end:
/// a validity test per key cost the sweeps' hottest loop two instructions per key.
#[inline(always)]
fn class_masks(groups: [Group; LOADS_PER_STEP as usize], classify: impl Fn(u64) -> Class) -> (u32, u32) {
    let (mut taken, mut tied) = (0u32, 0u32);
    // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
    unrolled!(G in [0, 1] {
        unrolled!(I in [0, 1, 2, 3] {
            let class = classify(groups[G].key(I));
            taken |= (class.taken as u32) << (4 * G + I);
            tied |= (class.tied as u32) << (4 * G + I);
        });
    });
    let valid = groups[0].valid_mask() | groups[1].valid_mask() << KEYS_PER_LOAD;
    (taken & valid, tied & valid)
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
    // SAFETY: every thread reaches the barriers, the first and last of them in
    // `reset_counters` and at the end.
    unsafe {
        reset_counters(counters);
        keys.sweep(|groups| {
            let (taken, tied) = class_masks(groups, &classify);
            let mut slots = select::reserve_pair(taken.count_ones(), tied.count_ones(), counters);
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let bit = 1u32 << (4 * G + I);
                    // Running slots, advanced by the class bits: a count of the lower bits per
                    // key cost five instructions where these cost three.
                    let (is_taken, is_tied) = (taken & bit != 0, tied & bit != 0);
                    if is_taken || is_tied {
                        store(is_taken, if is_taken { slots.0 } else { slots.1 }, groups[G].key(I));
                    }
                    slots = (slots.0 + is_taken as u32, slots.1 + is_tied as u32);
                });
            });
        });
        device::sync_threads();
    }
}

/// As [`gather`] for a filter whose tied keys share their score ([`Filter::ties_differ_below`]),
/// so that they rank by index, which is the sweep's order: the taken keys go through
/// `store(true, slot, key)` as there, and of the tied keys only the best `wanted`, through
/// `store(false, rank, key)`, `rank` counting from the best. A block-wide count per sweep step
/// ranks them; once `wanted` are found, the rest of the sweep skips it, and where no key is
/// taken (`above == 0`: every key of the row's top k ties, as with equal keys) the sweep ends
/// there. Ends with a barrier; the counts (of the tied keys, at most `wanted`) are in `counters`.
///
/// # Safety
/// As [`gather`]; `store` is valid for every taken slot and every rank below `wanted`; `above`
/// keys classify as taken.
#[inline(always)]
unsafe fn gather_in_order(
    keys: &RowKeys,
    counters: Shared<u32>,
    classify: impl Fn(u64) -> Class,
    (above, wanted): (u32, u32),
    mut store: impl FnMut(bool, u32, u64),
) {
    // SAFETY: every thread reaches the barriers (those of `reset_counters` and the last);
    // thread 0 alone writes the tied count before the last. The ranking's scan runs in every
    // thread or none (`ranked` is the same in every thread).
    unsafe {
        reset_counters(counters);
        let mut ranked = 0;
        keys.sweep_until(|groups| {
            let (taken, tied) = class_masks(groups, &classify);
            let (taken_slot, _) = select::reserve_pair(taken.count_ones(), 0, counters);
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let bit = 1u32 << (4 * G + I);
                    if taken & bit != 0 {
                        store(true, taken_slot + (taken & (bit - 1)).count_ones(), groups[G].key(I));
                    }
                });
            });
            if ranked < wanted {
                // The block visits group 0 of every thread, then group 1: one scan ranks both,
                // 16 bits each (a group of the block holds at most 4 · SELECT_THREADS keys).
                let mine = [(tied & 0xf).count_ones(), (tied >> 4).count_ones()];
                let (before, total) = select::block_exclusive_sum(mine[0] | (mine[1] << 16));
                let mut ranks = [ranked + (before & 0xffff), ranked + (total & 0xffff) + (before >> 16)];
                unrolled!(G in [0, 1] {
                    unrolled!(I in [0, 1, 2, 3] {
                        if tied & (1u32 << (4 * G + I)) != 0 {
                            if ranks[G] < wanted {
                                store(false, ranks[G], groups[G].key(I));
                            }
                            ranks[G] += 1;
                        }
                    });
                });
                ranked += (total & 0xffff) + (total >> 16);
            }
            // `ranked` and `above` are the same in every thread.
            above == 0 && ranked >= wanted
        });
        if device::thread_idx() == 0 {
            counters.set(1, ranked.min(wanted));
        }
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
// Inlined: both `pq_select` kernels call it, and an outlined copy takes its callers'
// locals by reference, in local memory.
#[inline(always)]
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
            for i in device::strided(t as usize, taken_here as usize, threads) {
                *published.add(taken_base + i) = taken.get(i);
            }
        }
        for i in device::strided(t as usize, tied_here as usize, threads) {
            *tied_published.add(tied_base + i) = ties.get(i);
        }
        if !arrived_last(state.add(2), p.split, shared.sub(2, 1)) {
            return false;
        }
        // Totals, read as atomics (every block has added its counts by now).
        if t == 0 {
            shared.set(0, device::atomic_add(state, 0));
            shared.set(1, device::atomic_add(state.add(1), 0));
        }
        device::sync_threads();
        let (taken_total, tied_total) = (shared.get(0), shared.get(1));
        if let Some(taken) = taken {
            for i in device::strided(t as usize, taken_total as usize, threads) {
                taken.set(i, device::load_relaxed_u64(published.add(i)));
            }
        }
        for i in device::strided(t as usize, tied_total as usize, threads) {
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

/// Every block of a split row calls this once, after its threads' stores to the row's shared
/// state: returns, to every thread of the block, whether it arrived last of `blocks` (counted at
/// `arrivals`); the last then sees every block's stores. `flag` is scratch.
///
/// # Safety
/// All threads of the block call it; `arrivals` is the row's, zero at the launch.
#[inline(always)]
unsafe fn arrived_last(arrivals: *mut u32, blocks: u32, flag: Shared<u32>) -> bool {
    // SAFETY: the caller's promise; the barriers order the flag's write and reads.
    unsafe {
        device::fence_acq_rel_gpu();
        device::sync_threads();
        if device::thread_idx() == 0 {
            // Release the block's stores (the barrier ordered them before this thread's fence),
            // arrive, and acquire the stores of the blocks that arrived before.
            device::fence_acq_rel_gpu();
            let last = device::atomic_add(arrivals, 1) == blocks - 1;
            device::fence_acq_rel_gpu();
            flag.set(0, last as u32);
        }
        device::sync_threads();
        let last = flag.get(0) != 0;
        if last {
            device::fence_acq_rel_gpu();
        }
        last
    }
}

/// A row's filter, and whether this block goes on with the row alone: the row is not split, or
/// its other blocks left it to this one.
struct Narrowed {
    filter: Filter,
    alone: bool,
}

/// The filter of a row with more valid keys than k: the bin of the `taken`-th key in the
/// histogram `pq_score` built (copied into `hist`), narrowed by refinement sweeps until at most
/// `tie_capacity` keys are tied. The first sweep of a split row is shared: each block sweeps its
/// part (`part`), and the last to add its digits to the row's goes on alone (`None` for the
/// others, which must return).
///
/// # Safety
/// All threads of the block call it after `pq_score` finished; `1 ≤ taken < valid`; where split,
/// every block of the row calls it, and the row's refinement state was zero at the launch.
// Inlined: both `pq_select` kernels call it, and an outlined copy takes its callers'
// locals by reference, in local memory.
#[inline(always)]
unsafe fn narrow(
    p: &SelectParams,
    row: u32,
    part: u32,
    keys: &RowKeys,
    binning: Binning,
    hist: Shared<u32>,
    taken: u32,
) -> Option<Narrowed> {
    let global = (p.histograms as *const u32).wrapping_add(row as usize * HIST_BINS as usize);
    // SAFETY: first_filter calls it in the whole block.
    let bin_bounds = |bin: u32| unsafe { block_bin_bounds(binning, bin) };
    let range = static_shared!(SELECT_TIED_RANGE: [u64; 2]);
    // SAFETY: every thread reaches the barriers; each bin has one writer per round, and each
    // threshold's last barrier ends every read of the histogram.
    unsafe {
        for bin in device::strided(device::thread_idx(), HIST_BINS, device::block_dim() as usize) {
            hist.set(bin as usize, device::load_nc_u32(global.add(bin as usize)));
        }
        device::sync_threads();
        let mut filter = select::first_filter(hist, taken, bin_bounds);
        // Tied keys that share their score rank by index: one block's sweep in index order takes
        // exactly them (`gather_in_order`), however many they are, where refining would sweep
        // the row once per digit of their indices.
        let refining = |filter: &Filter| {
            filter.tied > p.tie_capacity && filter.refinable() && !filter.ties_differ_below(score::INDEX_BITS)
        };
        let mut alone = p.split == 1;
        if !alone && refining(&filter) {
            // Every block of the row swept the whole row here before (173 µs of equal keys at
            // n = 1 M, perf-notes v27). The blocks cannot wait for each other (the emulator
            // runs fewer at once than a row has), so the last to add its part goes on alone.
            let part_range = count_digits(&keys.part(part, p.split), &filter, hist, range);
            let (least, greatest) = merge_digits(p, row, hist, part_range)?;
            filter.refine(select::threshold(hist, filter.remaining));
            filter.narrow_to(least, greatest);
            alone = true;
        }
        while refining(&filter) {
            let (least, greatest) = count_digits(keys, &filter, hist, range);
            filter.refine(select::threshold(hist, filter.remaining));
            filter.narrow_to(least, greatest);
        }
        Some(Narrowed { filter, alone })
    }
}

/// Counts the digits of `keys`' tied keys under `filter` into `hist`, and returns their range
/// (`range` is scratch): a digit that all of them share leaves the count as it was, but the
/// range then fixes every shared bit at once.
///
/// # Safety
/// All threads of the block call it, after the last read of `hist`; as [`RowKeys::sweep`].
/// Ends with a barrier.
#[inline(always)]
unsafe fn count_digits(keys: &RowKeys, filter: &Filter, hist: Shared<u32>, range: Shared<u64>) -> (u64, u64) {
    // SAFETY: every thread reaches the barriers; the bins are in bounds.
    unsafe {
        for bin in device::strided(device::thread_idx(), HIST_BINS, device::block_dim() as usize) {
            hist.set(bin as usize, 0);
        }
        device::sync_threads();
        let (mut least, mut greatest) = (u64::MAX, 0);
        keys.sweep(|groups| {
            // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    let key = groups[G].key(I);
                    if groups[G].valid(I) && filter.classify(key).tied {
                        hist.atomic_add_no_return(filter.digit(key) as usize, 1);
                        (least, greatest) = (least.min(key), greatest.max(key));
                    }
                });
            });
        });
        select::block_min_max(least, greatest, range)
    }
}

/// After each block of a split row has counted its part's tied keys' digits into `hist` and
/// found their range (`least`, `greatest`): adds both to the row's refinement state, and
/// returns, in the block that arrived last, the row's range, with the row's digit counts in
/// `hist`; `None` in the others.
///
/// # Safety
/// All threads of the block call it after the barrier that ends the counts; `p.split > 1`; the
/// row's refinement state was zero at the launch, and every block of the row calls this once.
#[inline(always)]
unsafe fn merge_digits(
    p: &SelectParams,
    row: u32,
    hist: Shared<u32>,
    (least, greatest): (u64, u64),
) -> Option<(u64, u64)> {
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let digits = (p.refine_state as *mut u32).wrapping_add(row as usize * REFINE_STATE_WORDS as usize);
    // The greatest tied key, and the complement of the least: both merge by a maximum over
    // zeroed words.
    let bounds = digits.wrapping_add(HIST_BINS as usize) as *mut u64;
    let arrivals = digits.wrapping_add(HIST_BINS as usize + 4);
    let last = static_shared!(REFINE_LAST: [u32; 1]);
    // SAFETY: the state is this row's (8-byte aligned: rows of REFINE_STATE_WORDS u32 from a
    // 16-byte aligned start); the fences around the arrival (release after every thread's adds,
    // acquire after the last arrival) make every block's counts visible to the last block,
    // which reads them with coherent loads; the barriers order the shared flag and `hist`.
    unsafe {
        for bin in device::strided(t, HIST_BINS, threads) {
            let count = hist.get(bin as usize);
            if count != 0 {
                device::atomic_add_no_return(digits.add(bin as usize), count);
            }
        }
        if t == 0 {
            device::atomic_max_u64_no_return(bounds, greatest);
            device::atomic_max_u64_no_return(bounds.add(1), !least);
        }
        if !arrived_last(arrivals, p.split, last) {
            return None;
        }
        for pair in device::strided(t, HIST_BINS / 2, threads) {
            let counts = device::load_relaxed_u64((digits as *const u64).add(pair as usize));
            hist.set(2 * pair as usize, counts as u32);
            hist.set(2 * pair as usize + 1, (counts >> 32) as u32);
        }
        let range = (!device::load_relaxed_u64(bounds.add(1)), device::load_relaxed_u64(bounds));
        device::sync_threads();
        Some(range)
    }
}

/// The smallest selection keys whose order keys fall in bin `bin` of `binning` or above, and in
/// bin `bin + 1` or above (`u64::MAX` past the last bin): warps 0 and 1 search one each, at once
/// (one after the other, they kept the rest of the block waiting at a barrier for about 5 K
/// cycles, 12 % of a hub row's selection: perf-notes v22), and every thread gets the answer.
///
/// # Safety
/// All threads of the block call it with the same arguments; the block has at least two warps.
pub unsafe fn block_bin_bounds(binning: Binning, bin: u32) -> (u64, u64) {
    let found = static_shared!(SELECT_BIN_BOUNDS: [u64; 2]);
    let warp = device::thread_idx() / device::WARP;
    // SAFETY: every thread reaches the barriers, and warps 0 and 1 each run their search
    // convergently; one lane of each writes its own result between the barriers.
    unsafe {
        if warp < 2 {
            let bin = bin + warp;
            let order = if bin >= HIST_BINS { 1 << 32 } else { binning.first_key_of(bin) };
            if device::lane() == 0 {
                found.set(warp as usize, if order >= 1 << 32 { u64::MAX } else { order << 32 });
            }
        }
        device::sync_threads();
        let bounds = (found.get(0), found.get(1));
        device::sync_threads();
        bounds
    }
}

/// Hands a row that does not fit [`top_k_in_shared`] to `pq_write_by_index` or
/// `pq_write_candidates`: its header (`lo`, `hi`, `remaining`: see `SelectParams::write_state`),
/// and its chunks' look-back words zeroed.
///
/// # Safety
/// All threads of the block call it, in the row's last block; `p.write_chunks > 0`.
#[inline(always)]
unsafe fn publish_write_state(
    p: &SelectParams,
    row: u32,
    [lo, hi, remaining]: [u64; WRITE_STATE_HEADER_WORDS as usize],
) {
    let state = row_write_state(p, row);
    // SAFETY: the row's state spans WRITE_STATE_HEADER_WORDS + write_chunks words; the chunks
    // read it after this launch.
    unsafe {
        let words = WRITE_STATE_HEADER_WORDS + p.write_chunks;
        for i in device::strided(device::thread_idx(), words, device::block_dim() as usize) {
            // A match, not an index: a dynamically indexed array would live in local memory.
            *state.add(i as usize) = match i {
                0 => lo,
                1 => hi,
                2 => remaining,
                _ => 0,
            };
        }
    }
}

/// Row `row`'s part of `p.write_state`: its header, then its chunks' look-back words.
fn row_write_state(p: &SelectParams, row: u32) -> *mut u64 {
    (p.write_state as *mut u64)
        .wrapping_add(row as usize * (WRITE_STATE_HEADER_WORDS as usize + p.write_chunks as usize))
}

/// Writes the `write_chunks_per_block` consecutive chunks of a row that this block owns
/// (`WRITE_CHUNK_KEYS` keys each; the row's blocks are consecutive): each chunk's taken
/// keys (see `SelectParams::write_state`) in index order, after those of the chunks before it,
/// to the row's outputs (index order) or its candidates (`BY_SCORE`, for `pq_sort_runs`). A
/// chained prefix of the chunks' counts places them, and ranks the tied keys: a chunk takes its
/// first ties that the chunks before it left room for. Only a block's first chunk looks back;
/// the others add their predecessor's counts, which the block knows. Rows that the selection
/// finished itself are left alone, by one read per block: where many chunks follow a row that
/// needs none (long rows by index), the plan gives each block several, so that the empty grid
/// is one wave.
///
/// # Safety
/// As `pq_write_by_index`, or `pq_write_candidates` where `BY_SCORE`.
#[inline(always)]
pub unsafe fn write_chunks<const BY_SCORE: bool>(p: &SelectParams) {
    let s = &p.shape;
    let blocks_per_row = p.write_chunks.div_ceil(p.write_chunks_per_block);
    let (row, part) = (device::block_idx().0 / blocks_per_row, device::block_idx().0 % blocks_per_row);
    let keys = RowKeys::of(p, row);
    if !may_write_in_chunks(BY_SCORE, s.k, keys.end, p.sort_capacity, p.tie_capacity) {
        return;
    }
    let state = row_write_state(p, row);
    // SAFETY: the selection wrote the state in an earlier launch.
    let header = unsafe { [*state, *state.add(1), *state.add(2)] };
    if header[2] == WRITE_STATE_ROW_WRITTEN {
        return;
    }
    let first = part * p.write_chunks_per_block;
    // Chunks past the row's valid keys have nothing to write, and no chunk of the row waits for
    // them (each waits only for those before it). Each chunk is WRITE_CHUNK_KEYS keys: `part`
    // rounds to whole sweep steps of the block.
    let end = (first + p.write_chunks_per_block).min(p.write_chunks).min(keys.end.div_ceil(WRITE_CHUNK_KEYS));
    let chunk_keys = |chunk| keys.part(chunk, p.write_chunks);
    let look_back = state.wrapping_add(WRITE_STATE_HEADER_WORDS as usize);
    // SAFETY: the caller's promise; the barriers order each chunk's reads of the staged keys
    // before the next chunk's writes.
    unsafe {
        if p.write_chunks_per_block > 1 {
            // Every chunk's counts are published before the block writes any, so that the next
            // block's look-back waits for this block's counts, not its writes (which chained a
            // row's blocks one after another: equal keys at n = 1 M took 610 µs instead of 51,
            // perf-notes v29).
            for chunk in first..end {
                let counts = count_chunk(&chunk_keys(chunk), header);
                select::publish_chunk_counts(look_back, chunk, counts);
            }
        }
        let mut before = None;
        for chunk in first..end {
            before = Some(write_chunk::<BY_SCORE>(p, row, header, look_back, chunk, chunk_keys(chunk), before));
            device::sync_threads();
        }
    }
}

/// Which of this thread's keys of a chunk's step (`groups`) are above the tied range
/// `lo..hi`, and which are tied where `ranked` (else tied keys are dropped as the keys below
/// `lo` are): bit `4 · G + I` for key `I` of group `G`.
#[inline(always)]
fn classify_chunk(groups: &[Group; LOADS_PER_STEP as usize], lo: u64, hi: u64, ranked: bool) -> (u32, u32) {
    let (mut above, mut tied) = (0u32, 0u32);
    // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
    unrolled!(G in [0, 1] {
        unrolled!(I in [0, 1, 2, 3] {
            let (key, bit) = (groups[G].key(I), 1u32 << (4 * G + I));
            if groups[G].valid(I) && key >= lo {
                if key >= hi { above |= bit } else if ranked { tied |= bit }
            }
        });
    });
    (above, tied)
}

/// A chunk's counts of keys above its row's tied range `lo..hi`, and of tied keys, as the
/// chunk's first [`write_chunk`] of a block counts them.
///
/// # Safety
/// As [`write_chunk`].
#[inline(always)]
unsafe fn count_chunk(keys: &RowKeys, [lo, hi, _]: [u64; WRITE_STATE_HEADER_WORDS as usize]) -> [u32; 2] {
    // SAFETY: the caller's promise.
    let groups = unsafe { keys.load_step(keys.begin, KEYS_PER_LOAD * device::block_dim()) };
    let (above, tied) = classify_chunk(&groups, lo, hi, lo < hi);
    // 16 bits each: a chunk holds WRITE_CHUNK_KEYS keys.
    // SAFETY: the whole block calls it.
    let (_, total) = unsafe { select::block_exclusive_sum(above.count_ones() | tied.count_ones() << 16) };
    [total & 0xffff, total >> 16]
}

/// Writes chunk `chunk` of row `row`, whose write state's header is `[lo, hi, remaining]` and
/// whose chunks' look-back words are `look_back` (see [`write_chunks`]); `known_before` is the
/// chained counts of the chunks before it where the block knows them. Returns the counts
/// through this chunk.
///
/// # Safety
/// As [`write_chunks`], for a row that goes to the chunks and a nonempty chunk; all threads of
/// the block call it, in chunk order, each of the block's chunks once.
#[inline(always)]
unsafe fn write_chunk<const BY_SCORE: bool>(
    p: &SelectParams,
    row: u32,
    [lo, hi, remaining]: [u64; WRITE_STATE_HEADER_WORDS as usize],
    look_back: *mut u64,
    chunk: u32,
    keys: RowKeys,
    known_before: Option<[u32; 2]>,
) -> [u32; 2] {
    let s = &p.shape;
    let out = OutputRows::of(p);
    let candidates = (p.candidates as *mut u64).wrapping_add(row as usize * s.k as usize);
    let stage = static_shared!(WRITE_STAGE: [u64; WRITE_CHUNK_KEYS as usize]);
    let stage_ties = static_shared!(WRITE_STAGE_TIES: [u32; WRITE_CHUNK_KEYS as usize]);
    let remaining = remaining as u32;
    // SAFETY: the chunk's keys are one sweep step, so each staged place is written once; the
    // look-back's barrier orders the stage's writes before its reads; slots stay below the
    // row's k.
    unsafe {
        // The same in every thread: only rows with ranked ties pay for their count, and only
        // chunks that may take some. Where the block knows that the chunks before this one took
        // every tie the row takes, this chunk drops its ties as it drops the keys below them
        // (equal keys at n = 1 M, k = 1024: only each row's first chunk takes any). Its
        // published tie count is then short of its own (its counts' word, from
        // `publish_chunk_counts`, has them all), which only ever meets `min(·, remaining)`,
        // already `remaining`.
        let ranked = lo < hi && known_before.is_none_or(|[_, tied_before]| tied_before < remaining);
        // The chunk is one step of a sweep.
        let groups = keys.load_step(keys.begin, KEYS_PER_LOAD * device::block_dim());
        let (above, tied) = classify_chunk(&groups, lo, hi, ranked);
        // Ranks in the chunk's order (group 0 of every thread, then group 1), one scan per
        // class for both groups, 16 bits each: a group of the block holds at most
        // 4 · WRITE_THREADS keys.
        let group_ranks = |mask: u32| {
            let mine = (mask & 0xf).count_ones() | (mask >> 4).count_ones() << 16;
            let (before, total) = select::block_exclusive_sum(mine);
            ([before & 0xffff, (total & 0xffff) + (before >> 16)], (total & 0xffff) + (total >> 16))
        };
        let (above_rank, above_here) = group_ranks(above);
        let (tied_rank, tied_here) = if ranked { group_ranks(tied) } else { ([0; 2], 0) };
        // Staged in the chunk's order, so that each warp's stores below are contiguous (a
        // thread's own keys are four consecutive ones, which spread a warp's store over 16
        // sectors), before the look-back, whose barrier orders them before the stores, and so
        // that no key waits in a register through it (which cost three blocks per SM instead of
        // four, and 9 µs of the n = 1 M write: perf-notes v27). Which ties are taken is known
        // only after it: with ranked ties, each staged key's count of tied keys before it, and
        // whether it is tied itself (bit 0), place it then.
        unrolled!(G in [0, 1] {
            unrolled!(I in [0, 1, 2, 3] {
                let (bit, group) = (1u32 << (4 * G + I), 0xfu32 << (4 * G));
                // The chunk's keys above the range, and its tied keys, before this one.
                let above_before_key = above_rank[G] + (above & group & (bit - 1)).count_ones();
                let tied_before_key = tied_rank[G] + (tied & group & (bit - 1)).count_ones();
                if (above | tied) & bit != 0 {
                    let place = (above_before_key + tied_before_key) as usize;
                    stage.set(place, groups[G].key(I));
                    if ranked {
                        stage_ties.set(place, tied_before_key << 1 | (tied & bit != 0) as u32);
                    }
                }
            });
        });
        let [above_before, tied_before] =
            select::chained_prefix(look_back, chunk, [above_here, tied_here], known_before);
        let ties_taken_before = tied_before.min(remaining);
        // The chunk takes its first `ties_wanted` tied keys.
        let ties_wanted = (remaining - ties_taken_before).min(tied_here);
        let written = above_before + ties_taken_before;
        for staged in device::strided(device::thread_idx(), above_here + tied_here, device::block_dim() as usize) {
            // A key's slot in the chunk's output: its staged place, less the tied keys before it
            // that are not taken.
            let (taken, slot) = if ranked {
                let ties = stage_ties.get(staged as usize);
                let tied_before_it = ties >> 1;
                (ties & 1 == 0 || tied_before_it < ties_wanted, staged - tied_before_it.saturating_sub(ties_wanted))
            } else {
                (true, staged)
            };
            if taken {
                let key = stage.get(staged as usize);
                if BY_SCORE {
                    *candidates.add((written + slot) as usize) = key;
                } else {
                    out.write(row, written + slot, Some(key));
                }
            }
        }
        [above_before + above_here, tied_before + tied_here]
    }
}

/// Writes each of `keys` at its own index, in a row whose valid keys are all taken.
///
/// # Safety
/// As [`RowKeys::sweep`]; the row's valid keys are at most k.
#[inline(always)]
unsafe fn write_all_in_index_order(p: &SelectParams, row: u32, keys: &RowKeys) {
    let out = OutputRows::of(p);
    // SAFETY: slots are key indices below the row's valid count ≤ k.
    unsafe {
        keys.sweep(|groups| {
            // The lists spell out 0..LOADS_PER_STEP and 0..KEYS_PER_LOAD.
            unrolled!(G in [0, 1] {
                unrolled!(I in [0, 1, 2, 3] {
                    if groups[G].valid(I) {
                        out.write(row, groups[G].first + I as u32, Some(groups[G].key(I)));
                    }
                });
            });
        });
    }
}

/// Writes `key_at(rank)` for each rank below `taken`, a thread each.
///
/// # Safety
/// As [`OutputRows::write`] for each rank; `key_at` is safe to call for each.
#[inline(always)]
unsafe fn write_ranked(out: OutputRows, row: u32, taken: u32, key_at: impl Fn(u32) -> u64) {
    for rank in device::strided(device::thread_idx(), taken, device::block_dim() as usize) {
        // SAFETY: the caller's promise.
        unsafe { out.write(row, rank, Some(key_at(rank))) };
    }
}

/// Sorts the `taken` keys in `best` descending and writes them in that order, each as the
/// selection key `key_of(key)`, then pads the row. They merge through the tie buffer where it
/// holds them (padded for conflict-free rounds where both buffers have room for the pad), and
/// sort in place otherwise.
///
/// # Safety
/// All threads of the block call it after the keys are in `best` (unordered, unique, nonzero)
/// and the tie buffer is free; `taken.next_power_of_two() ≤ sort_capacity ≤ best.len()`.
#[inline(always)]
unsafe fn write_sorted(
    out: OutputRows,
    row: u32,
    taken: u32,
    best: Shared<u64>,
    ties: Shared<u64>,
    key_of: impl Fn(u64) -> u64 + Copy,
) {
    let t = device::thread_idx();
    let threads = device::block_dim() as usize;
    let room = ties.len().min(best.len());
    // SAFETY: the barriers order the keys, the padding and the sort; ranks stay below taken.
    unsafe {
        device::sync_threads();
        if MergeSorted::<true>::slots(taken) as usize <= room {
            let sorted = select::merge_sort_descending::<true>(best, ties, taken);
            write_ranked(out, row, taken, |rank| key_of(sorted.get(rank)));
        } else if taken as usize <= room {
            let sorted = select::merge_sort_descending::<false>(best, ties, taken);
            write_ranked(out, row, taken, |rank| key_of(sorted.get(rank)));
        } else {
            let len = taken.next_power_of_two() as usize;
            for i in device::strided(taken as usize + t as usize, len, threads) {
                best.set(i, 0);
            }
            device::sync_threads();
            select::sort_descending(best, len);
            write_ranked(out, row, taken, |rank| key_of(best.get(rank as usize)));
        }
        out.pad(row, taken);
    }
}

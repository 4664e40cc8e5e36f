//! Exact top-k selection over unique 64-bit keys (larger is better), by one block per row.
//!
//! The caller brings a histogram of the row's keys over bins that are contiguous, ascending key
//! ranges, and a way to find each bin's first key. The bin of the k-th key becomes a key range;
//! while it holds more keys than the block can gather, DIGIT_BITS-bit digits of the keys in it narrow
//! it further (unique keys guarantee that this ends by the last digit). The caller then gathers
//! the tied keys, sorts them, and the k-th key becomes an exact threshold. Nothing here caps k,
//! and nothing here knows what a key means: the scoring code builds the keys and bins and feeds
//! them in.

#[cfg(pqtopk_sm90)]
pub mod cluster;
pub mod row;
pub mod runs;

use crate::device::{self, Shared};
use pqtopk_abi::{DIGIT_BITS, HIST_BINS, index_bitmap_slots};

/// Which keys of a row are taken, as far as the histograms have decided.
#[derive(Clone, Copy)]
pub struct Filter {
    /// Every key is taken (the row has no more valid keys than k).
    all: bool,
    /// Keys in `lo..hi` are tied: in the bin of the k-th key and sharing the prefix. Keys at
    /// or above `hi` are taken, keys below `lo` dropped. (Tied keys sharing their top bits
    /// form an interval of the key order, so two comparisons classify any key.)
    lo: u64,
    hi: u64,
    /// Key bits decided within the bin, and how many.
    prefix: u64,
    fixed: u32,
    /// Keys still to take from those in the bin that share the prefix.
    pub remaining: u32,
    /// Keys in the bin that share the prefix.
    pub tied: u32,
}

/// u64 words of a published [`Filter`].
#[cfg(pqtopk_sm90)]
pub const FILTER_WORDS: usize = 5;

/// Where a key stands against a [`Filter`]: taken, tied, or (neither) dropped. Two flags rather
/// than an enum, so that the sweeps turn them into mask bits without branches or tables.
#[derive(Clone, Copy)]
pub struct Class {
    pub taken: bool,
    pub tied: bool,
}

impl Class {
    /// `key` against a filter's [`Filter::top_bounds`]: the same class as [`Filter::classify`]
    /// gives, from the key's top 32 bits.
    #[inline(always)]
    pub fn by_top([lo, hi]: [u32; 2], key: u64) -> Class {
        let top = (key >> 32) as u32;
        Class { taken: top >= hi, tied: top >= lo && top < hi }
    }
}

impl Filter {
    /// The filter's `lo` and `hi` as their top 32 bits, where their low 32 bits are zero (the
    /// filter of a whole histogram bin, and of a row whose keys are all taken): a key's class
    /// then depends on its top 32 bits alone, which saves the sweeps two 64-bit comparisons per
    /// key.
    pub fn top_bounds(&self) -> Option<[u32; 2]> {
        ((self.lo | self.hi) as u32 == 0).then_some([(self.lo >> 32) as u32, (self.hi >> 32) as u32])
    }

    /// The filter of a row whose valid keys are all taken.
    pub fn take_all() -> Filter {
        Filter { all: true, lo: 0, hi: 0, prefix: 0, fixed: 0, remaining: 0, tied: 0 }
    }

    pub fn takes_all(&self) -> bool {
        self.all
    }

    /// The tied keys' range `lo..hi`: keys at or above `hi` are taken.
    pub fn tied_range(&self) -> (u64, u64) {
        (self.lo, self.hi)
    }

    /// `key` against the filter.
    #[inline(always)]
    pub fn classify(&self, key: u64) -> Class {
        Class { taken: key >= self.hi, tied: key >= self.lo && key < self.hi }
    }

    /// Given `least` and `greatest`, the smallest and the largest key that was tied before the
    /// last [`Filter::refine`]: where they share more bits than are fixed, every key still tied
    /// lies between them, so the interval shrinks to them and their shared bits are fixed. The
    /// next digit then splits the tied keys, however few bits they differ in (crowded scores,
    /// or equal ones told apart by their indices alone). Otherwise the refinement split them,
    /// and nothing changes.
    pub fn narrow_to(&mut self, least: u64, greatest: u64) {
        let shared = (least ^ greatest).leading_zeros();
        if least > greatest || shared <= self.fixed {
            return;
        }
        self.lo = self.lo.max(least);
        self.hi = self.hi.min(greatest.saturating_add(1));
        self.fixed = shared;
        self.prefix = least & !u64::MAX.checked_shr(shared).unwrap_or(0);
    }

    /// The filter as words, to publish to other blocks (see [`Filter::from_words`]).
    #[cfg(pqtopk_sm90)]
    pub fn to_words(self) -> [u64; FILTER_WORDS] {
        let flags = self.fixed as u64 | (self.all as u64) << 8 | (self.remaining as u64) << 32;
        [self.lo, self.hi, self.prefix, flags, self.tied as u64]
    }

    #[cfg(pqtopk_sm90)]
    pub fn from_words(w: [u64; FILTER_WORDS]) -> Filter {
        Filter {
            all: (w[3] >> 8) & 1 != 0,
            lo: w[0],
            hi: w[1],
            prefix: w[2],
            fixed: w[3] as u8 as u32,
            remaining: (w[3] >> 32) as u32,
            tied: w[4] as u32,
        }
    }

    /// Whether key bits are left to decide.
    pub fn refinable(&self) -> bool {
        self.fixed < 64
    }

    /// Whether every tied key shares all bits above the low `low_bits`: where the caller's keys
    /// carry their position there (larger for earlier ones), the tied keys rank by position
    /// alone, and no refinement or sort is needed to pick the best of them.
    pub fn ties_differ_below(&self, low_bits: u32) -> bool {
        self.fixed >= 64 - low_bits
    }

    /// The histogram bin of a tied key in the next refinement.
    #[inline(always)]
    pub fn digit(&self, key: u64) -> u32 {
        let width = DIGIT_BITS.min(64 - self.fixed);
        ((key << self.fixed) >> (64 - width)) as u32
    }

    /// Narrows the filter to digit `t.bin` of the next refinement.
    pub fn refine(&mut self, t: Threshold) {
        let width = DIGIT_BITS.min(64 - self.fixed);
        self.fixed += width;
        self.prefix |= (t.bin as u64) << (64 - self.fixed);
        // The keys with this prefix: prefix..prefix + 2^(64 - fixed), within the bin.
        self.lo = self.lo.max(self.prefix);
        if let Some(end) = self.prefix.checked_add(1 << (64 - self.fixed)) {
            self.hi = self.hi.min(end);
        }
        self.remaining -= t.above;
        self.tied = t.count;
    }
}

/// The smallest and the largest of every thread's `least` and `greatest`, to every thread
/// (`u64::MAX, 0` where no thread has a key). `range` is scratch.
///
/// # Safety
/// All threads of the block call it.
pub unsafe fn block_min_max(least: u64, greatest: u64, range: Shared<u64>) -> (u64, u64) {
    // SAFETY: every thread reaches the barriers; thread 0 alone resets the range before them,
    // the first also ending earlier reads; lane 0 of each warp folds in its warp's result.
    unsafe {
        device::sync_threads();
        if device::thread_idx() == 0 {
            range.set(0, u64::MAX);
            range.set(1, 0);
        }
        device::sync_threads();
        let (least, greatest) = device::warp_min_max_u64(least, greatest);
        if device::lane() == 0 {
            range.atomic_min(0, least);
            range.atomic_max(1, greatest);
        }
        device::sync_threads();
        let result = (range.get(0), range.get(1));
        device::sync_threads();
        result
    }
}

/// The bin of a histogram that holds the `wanted`-th largest key.
#[derive(Clone, Copy)]
pub struct Threshold {
    pub bin: u32,
    /// Keys in bins above it.
    pub above: u32,
    /// Keys in it.
    pub count: u32,
}

/// The filter after the first histogram `hist` of a row from which `wanted` keys are to be taken
/// (`1 ≤ wanted ≤` the histogram's total); `bin_bounds(bin)` is the pair of the smallest keys
/// that fall in bin `bin` or above and in bin `bin + 1` or above (for `HIST_BINS`: past every
/// key).
///
/// # Safety
/// As [`threshold`].
pub unsafe fn first_filter(hist: Shared<u32>, wanted: u32, bin_bounds: impl Fn(u32) -> (u64, u64)) -> Filter {
    // SAFETY: forwarded.
    let t = unsafe { threshold(hist, wanted) };
    let (lo, hi) = bin_bounds(t.bin);
    // Every key of the bin shares the leading bits that its first and last possible keys share:
    // refinement starts below them, so that each digit splits the tied keys (a bin of crowded
    // scores, or of equal scores told apart by their indices alone, shares most of its bits).
    let fixed = if hi > lo { (lo ^ (hi - 1)).leading_zeros() } else { 0 };
    Filter {
        all: false,
        lo,
        hi,
        prefix: lo & !u64::MAX.checked_shr(fixed).unwrap_or(0),
        fixed,
        remaining: wanted - t.above,
        tied: t.count,
    }
}

/// The bin of `hist` (`HIST_BINS` counts) that holds the `wanted`-th largest key, found by a
/// suffix sum over the whole block; every thread gets the answer.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last count; the block size
/// divides `HIST_BINS` and is at most 32 warps; `1 ≤ wanted ≤ Σ hist`.
pub unsafe fn threshold(hist: Shared<u32>, wanted: u32) -> Threshold {
    let warp_sums = static_shared!(THRESHOLD_WARP_SUMS: [u32; 32]);
    let found = static_shared!(THRESHOLD_FOUND: [u32; 4]);
    let t = device::thread_idx();
    let per_thread = HIST_BINS / device::block_dim();
    let first = t * per_thread;
    let mut total = 0;
    for i in 0..per_thread {
        // SAFETY: first + i < HIST_BINS; written before the caller's barrier.
        total += unsafe { hist.get((first + i) as usize) };
    }
    // Inclusive suffix sum of the thread totals (bins above ours hold the better keys): within
    // each warp by shuffles, then across the warps' sums through shared memory.
    let lane = device::lane();
    let mut suffix = total;
    let mut delta = 1;
    while delta < device::WARP {
        // SAFETY: the whole warp runs every shuffle.
        let below = unsafe { device::shfl_down(suffix, delta) };
        if lane + delta < device::WARP {
            suffix += below;
        }
        delta *= 2;
    }
    let warp = t / device::WARP;
    let warps = device::block_dim() / device::WARP;
    // SAFETY: every thread reaches the barriers; lane 0 of each warp writes its own slot, and
    // exactly one thread (the one whose bins hold the wanted-th key) writes `found`.
    unsafe {
        if lane == 0 {
            warp_sums.set(warp as usize, suffix);
        }
        device::sync_threads();
        for w in warp + 1..warps {
            suffix += warp_sums.get(w as usize);
        }
        let mut above = suffix - total;
        for i in (0..per_thread).rev() {
            let count = hist.get((first + i) as usize);
            if above < wanted && wanted <= above + count {
                found.set(0, first + i);
                found.set(1, above);
                found.set(2, count);
            }
            above += count;
        }
        device::sync_threads();
        let result = Threshold { bin: found.get(0), above: found.get(1), count: found.get(2) };
        // Nobody may overwrite `found` or the warp sums (the next call) before all have read.
        device::sync_threads();
        result
    }
}

/// The sum of `v` over this lane and the lanes below it.
///
/// # Safety
/// The whole warp calls it convergently.
#[inline(always)]
unsafe fn warp_inclusive_sum(v: u32) -> u32 {
    let lane = device::lane();
    let mut inclusive = v;
    let mut delta = 1;
    while delta < device::WARP {
        // SAFETY: the whole warp runs every shuffle (caller's promise).
        let below = unsafe { device::shfl_up(inclusive, delta) };
        if lane >= delta {
            inclusive += below;
        }
        delta *= 2;
    }
    inclusive
}

/// The exclusive prefix sum of `v` over the block's threads, and the total; every thread gets
/// its own prefix and the total.
///
/// # Safety
/// All threads of the block call it; at most 32 warps.
pub unsafe fn block_exclusive_sum(v: u32) -> (u32, u32) {
    let warp_sums = static_shared!(SCAN_WARP_SUMS: [u32; 32]);
    let lane = device::lane();
    // SAFETY: the whole block, so every warp, calls it.
    let inclusive = unsafe { warp_inclusive_sum(v) };
    let warp = device::thread_idx() / device::WARP;
    let warps = device::block_dim() / device::WARP;
    // SAFETY: every thread reaches the barriers; lane 31 of each warp writes its own slot.
    unsafe {
        if lane == device::WARP - 1 {
            warp_sums.set(warp as usize, inclusive);
        }
        device::sync_threads();
        let mut before = 0;
        let mut total = 0;
        for w in 0..warps {
            let s = warp_sums.get(w as usize);
            if w < warp {
                before += s;
            }
            total += s;
        }
        // The next call overwrites the warp sums.
        device::sync_threads();
        (before + inclusive - v, total)
    }
}

/// A chained-prefix word whose chunk has published its own counts (below the flags).
const CHUNK_COUNTED: u64 = 1 << 62;
/// A chained-prefix word whose chunk has published its inclusive prefixes (below the flags).
const CHUNK_PREFIXED: u64 = 2 << 62;
/// Bits of each of a chained-prefix word's two counts: the first count in the lowest bits, the
/// second above it, the flags above both. Counts of a row's keys fit (n < 2³¹).
const CHAINED_COUNT_BITS: u32 = 31;

/// Publishes chunk `chunk`'s own `counts` in its word of a chain (see [`chained_prefix`]),
/// before its prefix is known.
///
/// # Safety
/// As [`chained_prefix`], which may follow with the same counts; all threads of the block call
/// it, with the same arguments.
#[inline(always)]
pub unsafe fn publish_chunk_counts(words: *mut u64, chunk: u32, counts: [u32; 2]) {
    // Chunk 0's prefixes are known at once.
    if device::thread_idx() == 0 && chunk > 0 {
        // SAFETY: the caller's promise.
        unsafe { device::store_relaxed_u64(words.add(chunk as usize), CHUNK_COUNTED | pack_chained(counts)) };
    }
}

/// A chained-prefix word's two counts, below its flags.
fn pack_chained([first, second]: [u32; 2]) -> u64 {
    first as u64 | (second as u64) << CHAINED_COUNT_BITS
}

/// The sums of `counts` over the chunks of a chain before chunk `chunk`, each chunk a block's
/// call with its own two counts; every thread gets them. A decoupled look-back: the block
/// publishes its counts in `words[chunk]` at once, then warp 0 reads its predecessors' words 32
/// at a time, nearest first, and adds counts back to the nearest complete prefix; then it
/// publishes its own prefixes. A chunk waits only for predecessors that have not counted yet.
/// Where the block knows the sums (`known_before`: it wrote the chunk before), it only
/// publishes. Ends with a barrier.
///
/// # Safety
/// All threads of the block call it once per chunk, with the same arguments; `words` holds
/// `chunk + 1` words that were zero at the launch and that only the chain's blocks write, each
/// chunk's word by one block (its counts, through this or [`publish_chunk_counts`], before its
/// prefixes); every chunk below `chunk` has a block that calls this, started no later than this
/// one (blocks start in index order, as CUDA's scheduler and the emulator start them, so lower
/// chunks need lower block indices, or the same block earlier); `known_before`, where given, is
/// the sums; the sums of each count over the chain are below 2³¹.
pub unsafe fn chained_prefix(
    words: *mut u64,
    chunk: u32,
    counts: [u32; 2],
    known_before: Option<[u32; 2]>,
) -> [u32; 2] {
    let prefix = static_shared!(CHAINED_PREFIX: [u32; 2]);
    let lane = device::lane();
    let low = (1u64 << CHAINED_COUNT_BITS) - 1;
    // This chunk's word once its prefixes are known.
    let prefixed_word =
        |before: [u32; 2]| CHUNK_PREFIXED | pack_chained([before[0] + counts[0], before[1] + counts[1]]);
    // SAFETY: warp 0 runs the look-back convergently (the window loop's condition is the same in
    // every lane); lane 0 alone writes this chunk's word and the shared prefix, which the
    // barrier publishes; each word read is below `chunk`.
    unsafe {
        if let Some(before) = known_before {
            if device::thread_idx() == 0 {
                device::store_relaxed_u64(words.add(chunk as usize), prefixed_word(before));
            }
            device::sync_threads();
            return before;
        }
        publish_chunk_counts(words, chunk, counts);
        if device::thread_idx() < device::WARP {
            let mut before = [0u32; 2];
            let mut end = chunk;
            while end > 0 {
                // Lane i reads chunk end - 1 - i; lanes past the first chunk see an empty prefix.
                let word = match (end - 1).checked_sub(lane) {
                    Some(j) => loop {
                        let word = device::load_relaxed_u64(words.add(j as usize));
                        if word != 0 {
                            break word;
                        }
                    },
                    None => CHUNK_PREFIXED,
                };
                let prefixed = device::ballot(word & CHUNK_PREFIXED != 0);
                let nearest = if prefixed == 0 { device::WARP } else { prefixed.trailing_zeros() };
                let mine = if lane <= nearest { word } else { 0 };
                let mine = [(mine & low) as u32, ((mine >> CHAINED_COUNT_BITS) & low) as u32];
                before[0] += device::shfl_idx(warp_inclusive_sum(mine[0]), device::WARP - 1);
                before[1] += device::shfl_idx(warp_inclusive_sum(mine[1]), device::WARP - 1);
                if prefixed != 0 {
                    break;
                }
                end -= device::WARP;
            }
            if lane == 0 {
                device::store_relaxed_u64(words.add(chunk as usize), prefixed_word(before));
                prefix.set(0, before[0]);
                prefix.set(1, before[1]);
            }
        }
        device::sync_threads();
        [prefix.get(0), prefix.get(1)]
    }
}

/// Reserves `first` consecutive slots for this thread from the shared counter `counters[0]`
/// and `second` from `counters[1]`, one scan and one atomic per counter per warp, and returns
/// the first slot of each.
///
/// # Safety
/// The whole warp calls it convergently; `first` and `second` are below 2¹⁰ (a warp's totals
/// share one 32-bit scan, 16 bits each).
#[inline(always)]
pub unsafe fn reserve_pair(first: u32, second: u32, counters: Shared<u32>) -> (u32, u32) {
    let lane = device::lane();
    let packed = first | (second << 16);
    // SAFETY: the caller's promise.
    let inclusive = unsafe { warp_inclusive_sum(packed) };
    let before = inclusive - packed;
    // SAFETY: as above; the last lane alone touches the counters.
    unsafe {
        let (mut base_first, mut base_second) = (0, 0);
        if lane == device::WARP - 1 {
            let (total_first, total_second) = (inclusive & 0xffff, inclusive >> 16);
            if total_first != 0 {
                base_first = counters.atomic_add(0, total_first);
            }
            if total_second != 0 {
                base_second = counters.atomic_add(1, total_second);
            }
        }
        (
            device::shfl_idx(base_first, device::WARP - 1) + (before & 0xffff),
            device::shfl_idx(base_second, device::WARP - 1) + (before >> 16),
        )
    }
}

/// The most comparisons per key that [`emit_by_buckets`] spends ranking keys pairwise inside
/// their buckets before it leaves them to a sort: a bitonic sort of 4096 keys cost about 16 µs
/// on an H200 (decode, all scores equal), pairwise ranking inside buckets of about 200 keys
/// (PQ codes with a few very frequent combinations) 60 µs.
const MAX_COMPARISONS_PER_KEY: u32 = 64;

/// Orders `unordered[..count]` best first without a sort: the keys are counted into up to
/// `HIST_BINS` buckets of equal width over the range of the keys (a monotone map, fine enough
/// that buckets hold a few keys: keys with equal scores differ in their index bits), so a key's
/// place is the count of keys in higher buckets (a suffix sum) plus its rank among the keys of
/// its own bucket, which are grouped into `grouped` first. Where the buckets would cost more than
/// `MAX_COMPARISONS_PER_KEY` comparisons per key (the sum of their squared sizes: keys crowded
/// into a small part of their range), the keys are counted again into buckets of equal width
/// over `value(key)`'s range: `value` is non-decreasing in the key and spreads keys whose bits
/// are far from linear in what they rank by (the bits of floats that span many powers of two).
/// Calls `emit(place, key)` for each and returns true; or, where those buckets crowd too, emits
/// nothing and returns false. Overwrites `hist`.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last write of `unordered`;
/// `hist` holds `HIST_BINS` counts (divisible by the block size); `grouped` holds at least
/// `count` keys and is not `unordered`; keys are unique. Ends with a barrier.
#[inline(always)]
pub unsafe fn emit_by_buckets(
    hist: Shared<u32>,
    count: u32,
    unordered: Shared<u64>,
    grouped: Shared<u64>,
    value: impl Fn(u64) -> f32 + Copy,
    mut emit: impl FnMut(u32, u64),
) -> bool {
    let comparisons = static_shared!(BUCKET_COMPARISONS: [u32; 1]);
    let (t, threads) = (device::thread_idx(), device::block_dim());
    let per_thread = HIST_BINS / threads;
    // Thread t owns bins top - per_thread..top, so that ascending threads walk descending bins.
    let top = HIST_BINS - per_thread * t;
    // SAFETY: bins are in bounds; the barriers (including block_min_max's and
    // block_exclusive_sum's) order the resets, the counts, the offsets and the scatter; each
    // offset has one writer.
    unsafe {
        let mut spread = Spread::Keys;
        let bin_of = loop {
            if t == 0 {
                comparisons.set(0, 0);
            }
            let (bin_of, low, high) = count_by_range(unordered, count, hist, spread);
            let (mut mine, mut squares) = (0, 0);
            for i in 0..per_thread {
                let count = hist.get((top - 1 - i) as usize);
                mine += count;
                squares += count * count;
            }
            if squares != 0 {
                comparisons.atomic_add_no_return(0, squares);
            }
            let (mut offset, _) = block_exclusive_sum(mine);
            for i in 0..per_thread {
                let bin = top - 1 - i;
                let count = hist.get(bin as usize);
                hist.set(bin as usize, offset);
                offset += count;
            }
            device::sync_threads();
            if comparisons.get(0) <= MAX_COMPARISONS_PER_KEY * count {
                break bin_of;
            }
            if matches!(spread, Spread::Values(_)) || nearly_linear(value, low, high) {
                return false;
            }
            spread = Spread::Values(value);
            // Every thread has read the sum before thread 0 resets it.
            device::sync_threads();
        };
        for i in device::strided(t, count, threads as usize) {
            let key = unordered.get(i as usize);
            grouped.set(hist.atomic_add(bin_of(key) as usize, 1) as usize, key);
        }
        device::sync_threads();
        // Bin b now ends where its offset was advanced to, and starts where bin b + 1 ends.
        for i in device::strided(t, count, threads as usize) {
            let key = grouped.get(i as usize);
            let bin = bin_of(key);
            let start = if bin + 1 < HIST_BINS { hist.get(bin as usize + 1) } else { 0 };
            let len = hist.get(bin as usize) - start;
            emit(start + rank_among_shared(grouped.sub(start as usize, len as usize), len, key), key);
        }
        device::sync_threads();
    }
    true
}

/// Orders `keys[..count]` by `position(key)` ascending without comparing keys: each key sets
/// its position's bit in a bitmap, a block scan turns the bitmap's words into prefix counts, and
/// a key's place is its word's prefix plus the set bits below it in the word. The cost is one
/// pass over `count` keys and one over `bound / 32` words, whatever the keys' order or how
/// they crowd (ordering 2048 keys by index through the buckets of [`emit_by_buckets`] cost
/// about 9 K cycles more at decode b = 1, perf-notes v16). Calls `emit(place, key)` for each.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last write of `keys`;
/// positions are unique and below `bound`; `scratch` holds [`index_bitmap_slots`]`(bound)` slots
/// (a bitmap word and a prefix word each) and is not `keys`. Ends with a barrier.
// Inlined: an outlined copy takes `emit`'s captures by reference, in local memory.
#[inline(always)]
pub unsafe fn emit_by_index(
    keys: Shared<u64>,
    count: u32,
    bound: u32,
    scratch: Shared<u64>,
    position: impl Fn(u64) -> u32,
    mut emit: impl FnMut(u32, u64),
) {
    let (t, threads) = (device::thread_idx(), device::block_dim());
    let words = index_bitmap_slots(bound);
    // SAFETY: words and keys are in bounds (the caller's promise: 2 · words u32 fit in the
    // scratch slots); the barriers order the reset, the bits, the prefixes and the reads; unique
    // positions make the adds an `or`.
    unsafe {
        let bits: Shared<u32> = scratch.tail(0, 2 * words as usize);
        let prefixes = bits.sub(words as usize, words as usize);
        for w in device::strided(t, words, threads as usize) {
            bits.set(w as usize, 0);
        }
        device::sync_threads();
        for i in device::strided(t, count, threads as usize) {
            let at = position(keys.get(i as usize));
            bits.atomic_add_no_return((at / 32) as usize, 1 << (at % 32));
        }
        device::sync_threads();
        // Thread t counts words t·per..(t+1)·per, so that the prefixes run in thread order.
        let per = words.div_ceil(threads);
        let first = (t * per).min(words);
        let last = (first + per).min(words);
        let mut mine = 0;
        for w in first..last {
            mine += bits.get(w as usize).count_ones();
        }
        let (mut before, _) = block_exclusive_sum(mine);
        for w in first..last {
            prefixes.set(w as usize, before);
            before += bits.get(w as usize).count_ones();
        }
        device::sync_threads();
        for i in device::strided(t, count, threads as usize) {
            let key = keys.get(i as usize);
            let at = position(key);
            let below = bits.get((at / 32) as usize) & ((1u32 << (at % 32)) - 1);
            emit(prefixes.get((at / 32) as usize) + below.count_ones(), key);
        }
        device::sync_threads();
    }
}

/// Whether `value` is close enough to linear in the keys from `low` to `high` that buckets over
/// it would crowd as the keys' own do: at a quarter and at three quarters of the keys' range,
/// the value lies within an eighth of the values' range of the straight line (floats within a
/// power of two or so; not scores of both signs, or many powers of two apart).
fn nearly_linear(value: impl Fn(u64) -> f32, low: u64, high: u64) -> bool {
    let (least, greatest) = (value(low), value(high));
    let quarter = high.wrapping_sub(low) / 4;
    let off_line = |keys: u64, parts: f32| {
        (value(low.wrapping_add(keys)) - (least + (greatest - least) * parts)).abs() > (greatest - least) / 8.0
    };
    !(off_line(quarter, 0.25) || off_line(3 * quarter, 0.75))
}

/// Bucketing levels that [`best_of`] tries before it sorts the keys that are left.
const MAX_BUCKET_LEVELS: u32 = 3;

/// Hands out the best `wanted` of the unique keys `keys[..count]` through `place(slot, key)`,
/// each from one thread: slots `0..a` in no order, then `a..wanted` best first, where `a` is
/// returned. Keys too many to rank pairwise at once (`count² > 64 · block size`) are counted
/// into `HIST_BINS` buckets over their range, as in [`emit_by_buckets`]; every key above the
/// bucket of the wanted-th goes out unordered, and that bucket's keys, moved to the front of
/// `keys`, are bucketed again, until few are left; they are ranked pairwise (or, after
/// `MAX_BUCKET_LEVELS` levels, sorted). Keys crowded into a small part of the range spread over
/// the buckets of their own range, and keys that share their top bits (equal scores told apart by
/// their indices) spread over their low bits, so a level usually leaves a few keys.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last write of `keys`;
/// `1 ≤ wanted ≤ count` (or `count = 0`); `keys` holds `count.next_power_of_two()` keys;
/// `hist` holds `HIST_BINS` counts; `place` is valid for every slot below `wanted`. Ends with a
/// barrier.
pub unsafe fn best_of(
    keys: Shared<u64>,
    mut count: u32,
    mut wanted: u32,
    hist: Shared<u32>,
    mut place: impl FnMut(u32, u64),
) -> u32 {
    let counters = static_shared!(BEST_OF_COUNTERS: [u32; 2]);
    let (t, threads) = (device::thread_idx(), device::block_dim());
    let mut handed_out = 0;
    // SAFETY: every thread reaches every barrier (the loop's bounds are the block's); each
    // round of the move reads its keys before a barrier and writes only slots below the keys
    // read so far (the kept keys are at most those); bins and slots have one writer each.
    unsafe {
        let mut level = 0;
        while (count as usize).pow(2) > 64 * threads as usize && level < MAX_BUCKET_LEVELS {
            if t == 0 {
                counters.set(0, 0);
                counters.set(1, 0);
            }
            let (bin_of, _, _) = count_by_range(keys, count, hist, Spread::<fn(u64) -> f32>::Keys);
            let cut = threshold(hist, wanted);
            for round in 0..count.div_ceil(threads) {
                let i = round * threads + t;
                let key = if i < count { keys.get(i as usize) } else { 0 };
                let bin = if i < count { bin_of(key) } else { 0 };
                let (above, kept) = (i < count && bin > cut.bin, i < count && bin == cut.bin);
                let (out_slot, kept_slot) = reserve_pair(above as u32, kept as u32, counters);
                device::sync_threads();
                if above {
                    place(handed_out + out_slot, key);
                }
                if kept {
                    keys.set(kept_slot as usize, key);
                }
            }
            device::sync_threads();
            (handed_out, wanted, count) = (handed_out + cut.above, wanted - cut.above, cut.count);
            level += 1;
        }
        if (count as usize).pow(2) <= 64 * threads as usize {
            rank_each(keys, count, |key, rank| {
                if rank < wanted {
                    place(handed_out + rank, key);
                }
            });
        } else {
            let len = count.next_power_of_two();
            for i in device::strided(count + t, len, threads as usize) {
                keys.set(i as usize, 0);
            }
            device::sync_threads();
            sort_descending(keys, len as usize);
            for i in device::strided(t, wanted, threads as usize) {
                place(handed_out + i, keys.get(i as usize));
            }
        }
        device::sync_threads();
    }
    handed_out
}

/// How [`count_by_range`] buckets keys: by the keys themselves, or by a value that the caller
/// maps them to.
#[derive(Clone, Copy)]
enum Spread<V> {
    /// Buckets 2^shift key values wide from the least key.
    Keys,
    /// Buckets of equal width over `value(key)`'s range, `value` non-decreasing in the key.
    Values(V),
}

/// Counts the unique keys `keys[..count]` into the `HIST_BINS` buckets of `hist`, spread over
/// the keys' range as `spread` says, and returns the map from a key to its bucket
/// (non-decreasing) and the least and the greatest key. By keys: each bucket 2^shift key values
/// wide from the least key, with the least shift whose buckets cover the range (a shift, where a
/// division per key cost more than it saves). By values: `HIST_BINS` equal parts of `value`'s
/// range, whose ends are the values of the least and the greatest key (where that range is empty
/// or not finite, every key lands in bucket 0).
///
/// # Safety
/// All threads of the block call it with the same arguments, after a barrier that follows the
/// last write of `keys` and the last read of `hist`. Ends with a barrier.
#[inline(always)]
unsafe fn count_by_range<V: Fn(u64) -> f32 + Copy>(
    keys: Shared<u64>,
    count: u32,
    hist: Shared<u32>,
    spread: Spread<V>,
) -> (impl Fn(u64) -> u32 + Copy, u64, u64) {
    let range = static_shared!(BUCKET_RANGE: [u64; 2]);
    let (t, threads) = (device::thread_idx(), device::block_dim());
    // SAFETY: each bin has one writer before block_min_max's first barrier, which also ends
    // the caller's reads; the counts are atomics, and the last barrier ends them.
    unsafe {
        for bin in device::strided(t, HIST_BINS, threads as usize) {
            hist.set(bin as usize, 0);
        }
        let (mut least, mut greatest) = (u64::MAX, 0);
        for i in device::strided(t, count, threads as usize) {
            let key = keys.get(i as usize);
            (least, greatest) = (least.min(key), greatest.max(key));
        }
        let (low, high) = block_min_max(least, greatest, range);
        // Wrapping: without keys, `low` is above `high` (and no key is counted).
        let shift = (64 - high.wrapping_sub(low).leading_zeros()).saturating_sub(DIGIT_BITS);
        let (least_value, scale) = match spread {
            Spread::Keys => (0.0, 0.0),
            Spread::Values(value) => {
                let (least, greatest) = (value(low), value(high));
                let scale = HIST_BINS as f32 / (greatest - least);
                (least, if greatest > least && scale.is_finite() { scale } else { 0.0 })
            }
        };
        // Subtracting a constant and scaling by a non-negative one round monotonically, and the
        // conversion saturates (NaN to 0), so the map stays non-decreasing.
        let bin_of = move |key: u64| match spread {
            Spread::Keys => (key.wrapping_sub(low) >> shift) as u32,
            Spread::Values(value) => {
                device::f32_to_u32_saturating((value(key) - least_value) * scale).min(HIST_BINS - 1)
            }
        };
        for i in device::strided(t, count, threads as usize) {
            hist.atomic_add_no_return(bin_of(keys.get(i as usize)) as usize, 1);
        }
        device::sync_threads();
        (bin_of, low, high)
    }
}

/// Sorts `keys[..len]` descending in shared memory (bitonic); `len` is a power of two.
///
/// Thread `t` takes pairs `t, t + threads, …`, so with strides of at most 32 a warp's pairs
/// touch only the 64-key chunks that the warp owns in every such step: consecutive steps of
/// that kind need a warp barrier, not a block barrier. Up to 256 keys, warp 0 sorts alone.
///
/// The sort is bound by issued instructions and by the wait on each pair's loads, so positions
/// are u32 (a usize's masks and bounds take two instructions each) and a thread exchanges two
/// pairs per turn with all four keys loaded first: a step's pairs are disjoint.
///
/// # Safety
/// All threads of the block call it, after a barrier that follows the last write of `keys`;
/// `len ≤ keys.len()`; whole warps. Ends with a barrier.
pub unsafe fn sort_descending(keys: Shared<u64>, len: usize) {
    // Short lists: warp 0 alone, with warp barriers only; block barriers cost more than the
    // extra pairs per lane.
    const ONE_WARP_LEN: usize = 256;
    let one_warp = len <= ONE_WARP_LEN;
    let (first, step) =
        if one_warp { (device::lane(), device::WARP) } else { (device::thread_idx(), device::block_dim()) };
    let len = len as u32;
    let pairs = len / 2;
    if !one_warp || device::thread_idx() < device::WARP {
        let mut previous_stride = u32::MAX;
        let mut size = 2;
        while size <= len {
            let mut stride = size / 2;
            while stride > 0 {
                // SAFETY: every thread of the sorting threads reaches the barriers (uniform
                // loop bounds; one_warp is uniform).
                unsafe {
                    if !one_warp && (stride > device::WARP || previous_stride > device::WARP) {
                        device::sync_threads();
                    } else {
                        device::sync_warp();
                    }
                }
                // Strides are powers of two: masks instead of divisions.
                let low_of = |pair: u32| ((pair & !(stride - 1)) << 1) | (pair & (stride - 1));
                let exchange = |lo: u32, a: u64, b: u64| {
                    if (a < b) == (lo & size == 0) {
                        // SAFETY: lo < lo + stride < len; each pair belongs to one thread in
                        // this step, and the barrier above ordered every earlier access to it.
                        unsafe {
                            keys.set(lo as usize, b);
                            keys.set((lo + stride) as usize, a);
                        }
                    }
                };
                let mut pair = first;
                while pair + step < pairs {
                    let (lo, next_lo) = (low_of(pair), low_of(pair + step));
                    // SAFETY: as in `exchange`; the two pairs are disjoint.
                    let (a, b, next_a, next_b) = unsafe {
                        (
                            keys.get(lo as usize),
                            keys.get((lo + stride) as usize),
                            keys.get(next_lo as usize),
                            keys.get((next_lo + stride) as usize),
                        )
                    };
                    exchange(lo, a, b);
                    exchange(next_lo, next_a, next_b);
                    pair += 2 * step;
                }
                if pair < pairs {
                    let lo = low_of(pair);
                    // SAFETY: as in `exchange`.
                    let (a, b) = unsafe { (keys.get(lo as usize), keys.get((lo + stride) as usize)) };
                    exchange(lo, a, b);
                }
                previous_stride = stride;
                stride /= 2;
            }
            size *= 2;
        }
    }
    // SAFETY: every thread reaches it.
    unsafe { device::sync_threads() };
}

/// Keys a thread sorts in registers before the merge rounds.
const REGISTER_RUN: u32 = 8;

/// Outputs a thread merges per range in a merge round. A round waits on each range's chain of
/// dependent shared loads (its search, then one load per output) and on the shared-memory
/// pipe, where the searches' scattered loads are most of the wavefronts once the layout is
/// padded: longer ranges search less, shorter ones keep more warps busy. On an H200 (perf-notes
/// v21), 8 beat 4 (−4.5 µs on 32 rows of 3020 keys, −8 µs on 1024 rows of 1380) and 16 (six
/// warps of a 1024-thread block left busy).
const MERGE_ITEMS: u32 = 8;

/// Sorts `keys[..len]` descending into the buffers' merge layout (see [`MergeSorted`]) and
/// returns the buffer that holds them, `keys` or `scratch`. Threads sort runs of `REGISTER_RUN`
/// keys in registers into `scratch`, then each round merges pairs of runs into the other
/// buffer, each thread finding its outputs' split by a binary search along the merge path.
///
/// Why not [`sort_descending`]: with one block per SM a long sort is bound by issued
/// instructions, and the bitonic network issues O(len log² len) compare-exchanges over keys
/// padded to a power of two; merging issues O(len log len) over `len` keys.
///
/// # Safety
/// All threads of the block call it, whole warps, after a barrier that follows the last write
/// of `keys[..len]`; `MergeSorted::<PAD>::slots(len)` is at most `keys.len()` and
/// `scratch.len()`; `scratch` is free. Ends with a barrier.
pub unsafe fn merge_sort_descending<const PAD: bool>(
    keys: Shared<u64>,
    scratch: Shared<u64>,
    len: u32,
) -> MergeSorted<PAD> {
    // A range's or a run's slots follow its first one's (`slot(start) + i`), and every run
    // holds whole ranges.
    const {
        assert!(
            16u32.is_multiple_of(MERGE_ITEMS)
                && 16u32.is_multiple_of(REGISTER_RUN)
                && REGISTER_RUN.is_multiple_of(MERGE_ITEMS)
        )
    };
    let (t, threads, lane) = (device::thread_idx(), device::block_dim(), device::lane());
    for start in device::strided(t * REGISTER_RUN, len, (threads * REGISTER_RUN) as usize) {
        // The keys come unordered, so a run may take any keys of its warp's chunk: where the
        // chunk is whole, lane l takes keys l, l + 32, …, which a warp reads without bank
        // conflicts (8 consecutive keys per lane put 16 lanes on one bank pair).
        let chunk = start - REGISTER_RUN * lane;
        let whole_chunk = chunk + REGISTER_RUN * device::WARP <= len;
        let mut run = [0u64; REGISTER_RUN as usize];
        unrolled!(I in [0, 1, 2, 3, 4, 5, 6, 7] {
            let at = if whole_chunk { chunk + lane + device::WARP * I as u32 } else { start + I as u32 };
            if at < len {
                // SAFETY: in bounds; a whole chunk's keys are its warp's, a partial chunk's
                // runs are their threads'.
                run[I] = unsafe { keys.get(at as usize) };
            }
        });
        sort_in_registers(&mut run);
        // start is a multiple of REGISTER_RUN, so the run's slots follow start's.
        let first = MergeSorted::<PAD>::slot(start);
        unrolled!(I in [0, 1, 2, 3, 4, 5, 6, 7] {
            if start + (I as u32) < len {
                // SAFETY: below slots(len); each run's slots are its thread's.
                unsafe { scratch.set(first + I, run[I]) };
            }
        });
    }
    let (mut src, mut dst) = (scratch, keys);
    let mut width = REGISTER_RUN;
    loop {
        // SAFETY: every thread reaches it; it orders the last round's writes.
        unsafe { device::sync_threads() };
        if width >= len {
            return MergeSorted(src);
        }
        for start in device::strided(t * MERGE_ITEMS, len, (threads * MERGE_ITEMS) as usize) {
            // SAFETY: the round reads src and writes dst's slots of start..start + MERGE_ITEMS,
            // this range's alone.
            unsafe { merge_range::<PAD>(src, dst, start, width, len) };
        }
        (src, dst) = (dst, src);
        width *= 2;
    }
}

/// The keys of [`merge_sort_descending`], best first, in the merge layout: with `PAD`, one
/// spare slot after every 16 keys. A u64 in slot `s` takes bank pair `s mod 16`. A round's
/// lanes write keys `MERGE_ITEMS` apart and a register run's lanes `REGISTER_RUN` apart (8
/// each), so unpadded a half-warp's stores meet 2 bank pairs (16-way conflicts; perf-notes v20,
/// call 6, measured 8-way at 4 apart); padded, all 16. The pad costs one instruction per
/// access, where v20's XOR swizzle cost three.
#[derive(Clone, Copy)]
pub struct MergeSorted<const PAD: bool>(Shared<u64>);

impl<const PAD: bool> MergeSorted<PAD> {
    /// The slots a buffer needs for a sort of `len` keys.
    pub const fn slots(len: u32) -> u32 {
        if PAD { len + len / 16 } else { len }
    }

    #[inline(always)]
    fn slot(i: u32) -> usize {
        (if PAD { i + (i >> 4) } else { i }) as usize
    }

    /// The key at `rank`.
    ///
    /// # Safety
    /// `rank` is below the sort's `len`; after the sort's final barrier.
    #[inline(always)]
    pub unsafe fn get(self, rank: u32) -> u64 {
        // SAFETY: the caller's promise; slots below the sort's len are within its buffers.
        unsafe { self.0.get(Self::slot(rank)) }
    }
}

/// Sorts `run` descending with a bitonic network, spelled out so that the keys stay in
/// registers (LLVM kept a looped network in local memory).
#[inline(always)]
fn sort_in_registers(run: &mut [u64; REGISTER_RUN as usize]) {
    const { assert!(REGISTER_RUN == 8, "the lists below spell out 8 keys") };
    unrolled!(SIZE in [2, 4, 8] {
        unrolled!(STRIDE in [4, 2, 1] {
            unrolled!(I in [0, 1, 2, 3, 4, 5, 6, 7] {
                if exchanges_in_step(I, STRIDE, SIZE) {
                    let (a, b) = (run[I], run[I ^ STRIDE]);
                    let descending = I & SIZE == 0;
                    let (first, second) = if descending { (a.max(b), a.min(b)) } else { (a.min(b), a.max(b)) };
                    (run[I], run[I ^ STRIDE]) = (first, second);
                }
            });
        });
    });
}

/// Whether position `i` is the lower of a compare-exchange in the bitonic step of `stride`
/// within sequences of `size`.
const fn exchanges_in_step(i: usize, stride: usize, size: usize) -> bool {
    stride < size && i ^ stride > i
}

/// Writes outputs `start..start + MERGE_ITEMS` (within `len`) to `dst` in the merge layout
/// ([`MergeSorted`]): those outputs of merging the two descending runs of `width` keys that
/// share the run pair of `start`, earlier run first where keys are equal.
///
/// # Safety
/// `src` holds `len` keys in the merge layout, descending runs of `width` keys, ordered by a
/// barrier; `start` is a multiple of `MERGE_ITEMS` below `len`; `width` is a multiple of
/// `MERGE_ITEMS`; no other thread accesses the slots of `dst` this range writes.
#[inline(always)]
unsafe fn merge_range<const PAD: bool>(src: Shared<u64>, dst: Shared<u64>, start: u32, width: u32, len: u32) {
    let slot = MergeSorted::<PAD>::slot;
    let first_begin = start & !(2 * width - 1);
    let first_len = width.min(len - first_begin);
    let second_begin = first_begin + first_len;
    let second_len = (2 * width).min(len - first_begin) - first_len;
    let diagonal = start - first_begin;
    // SAFETY (all): positions stay below len.
    unsafe {
        // How many of the pair's first `diagonal` outputs come from the first run: the first
        // run's key at `mid` is among them exactly when it is at least the second run's key
        // at `diagonal - 1 - mid`.
        let (mut lo, mut hi) = (diagonal.saturating_sub(second_len), diagonal.min(first_len));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if src.get(slot(first_begin + mid)) >= src.get(slot(second_begin + diagonal - 1 - mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Each output is one dependent load, without branches: a run's next key is read (at
        // most at len - 1) whether or not the run has one, and used only where it has.
        let load = |at: u32| src.get(slot(at.min(len - 1)));
        let (first_end, second_end) = (second_begin, second_begin + second_len);
        let (mut at_first, mut at_second) = (first_begin + lo, second_begin + diagonal - lo);
        let (mut a, mut b) = (load(at_first), load(at_second));
        // start is a multiple of MERGE_ITEMS, so the range's slots follow start's.
        let first_slot = slot(start);
        for output in 0..MERGE_ITEMS.min(len - start) {
            let take_first = at_second >= second_end || (at_first < first_end && a >= b);
            dst.set(first_slot + output as usize, if take_first { a } else { b });
            let next = if take_first { at_first } else { at_second } + 1;
            let key = load(next);
            if take_first {
                (at_first, a) = (next, key);
            } else {
                (at_second, b) = (next, key);
            }
        }
    }
}

/// Calls `f(key, rank)` for each of `keys[..count]` (from one thread each), `rank` counting the
/// keys greater than `key`. Each key's comparisons are spread over a group of lanes (a power of
/// two, up to a warp), as many as the block has threads to spare: a thread comparing alone runs
/// a chain of `count` dependent shared loads, and with few keys few warps hide it.
///
/// # Safety
/// All threads of the block call it, whole warps, after a barrier that follows the last write of
/// `keys[..count]`.
#[inline(always)]
pub unsafe fn rank_each(keys: Shared<u64>, count: u32, mut f: impl FnMut(u64, u32)) {
    let (t, threads) = (device::thread_idx(), device::block_dim());
    let spare = threads / count.max(1);
    let lanes = if spare == 0 { 1 } else { (1 << spare.ilog2()).min(device::WARP) };
    let (part, groups) = (t % lanes, threads / lanes);
    let mut first = 0;
    // Every thread runs every round, so the shuffles see whole warps.
    while first < count {
        let i = first + t / lanes;
        // SAFETY: i < count and j < count index written keys.
        let key = if i < count { unsafe { keys.get(i as usize) } } else { 0 };
        let mut rank = 0;
        if i < count {
            for j in device::strided(part, count, lanes as usize) {
                rank += (unsafe { keys.get(j as usize) } > key) as u32;
            }
        }
        let mut width = lanes / 2;
        while width > 0 {
            // SAFETY: the whole warp runs every shuffle; groups are aligned within the warp.
            rank += unsafe { device::shfl_xor(rank, width) };
            width /= 2;
        }
        if i < count && part == 0 {
            f(key, rank);
        }
        first += groups;
    }
}

/// The number of `keys[..count]` greater than `key`.
///
/// # Safety
/// `keys` holds `count` keys, written before a barrier.
#[inline(always)]
pub unsafe fn rank_among_shared(keys: Shared<u64>, count: u32, key: u64) -> u32 {
    let mut rank = 0;
    for j in 0..count as usize {
        // SAFETY: j < count.
        rank += (unsafe { keys.get(j) } > key) as u32;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// `merge_sort_descending` sorts as the standard library does, padded and unpadded, for
    /// every length to 70 and around each power of two to 4096, on unique, few-valued, equal,
    /// ascending and descending keys, with as many threads as keys and with several ranges per
    /// thread.
    #[test]
    fn merge_sort_sorts_every_length() {
        let mut lens: Vec<u32> = (1..=70).collect();
        for power in 7..=12 {
            lens.extend([(1 << power) - 1, 1 << power, (1 << power) + 1]);
        }
        lens.push(3020);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in lens {
            let families: [(&str, Vec<u64>); 5] = [
                ("unique", (0..len).map(|_| random()).collect()),
                ("few values", (0..len).map(|_| random() % 5).collect()),
                ("equal", vec![42; len as usize]),
                ("ascending", (0..len as u64).collect()),
                ("descending", (0..len as u64).rev().collect()),
            ];
            for (family, keys) in families {
                let mut want = keys.clone();
                want.sort_unstable_by(|a, b| b.cmp(a));
                for threads in [32, 256] {
                    let context = format!("{family}, {len} keys, {threads} threads");
                    assert_eq!(merge_sorted::<true>(&keys, threads), want, "{context}, padded");
                    assert_eq!(merge_sorted::<false>(&keys, threads), want, "{context}, unpadded");
                }
            }
        }
    }

    fn merge_sorted<const PAD: bool>(keys: &[u64], threads: u32) -> Vec<u64> {
        let len = keys.len();
        let slots = MergeSorted::<PAD>::slots(len as u32) as usize;
        let sorted: Vec<AtomicU64> = (0..len).map(|_| AtomicU64::new(u64::MAX)).collect();
        let shared_bytes = (2 * slots * 8) as u32;
        // SAFETY: the launch's shared memory holds both buffers; every thread runs the sort.
        unsafe {
            device::emulate(1, 1, threads, shared_bytes, || {
                let buffer: Shared<u64> = device::dynamic_shared(slots);
                let scratch: Shared<u64> = buffer.tail(slots, slots);
                let t = device::thread_idx() as usize;
                for i in device::strided(t, len, threads as usize) {
                    buffer.set(i, keys[i]);
                }
                device::sync_threads();
                let result = merge_sort_descending::<PAD>(buffer, scratch, len as u32);
                for i in device::strided(t, len, threads as usize) {
                    sorted[i].store(result.get(i as u32), Ordering::Relaxed);
                }
            })
            .expect("the sort's launch");
        }
        sorted.into_iter().map(AtomicU64::into_inner).collect()
    }

    /// `Class::by_top` gives `Filter::classify`'s class wherever `Filter::top_bounds` applies,
    /// for keys at, just below and just above both bounds, and for every low half.
    #[test]
    fn top_bounds_classify_as_whole_keys() {
        let tops = [0, 1, 7, 8, 9, 1 << 31, u32::MAX - 1, u32::MAX];
        let filter = |lo: u64, hi: u64| Filter { all: false, lo, hi, prefix: 0, fixed: 0, remaining: 1, tied: 1 };
        let mut checked = 0;
        for lo in tops {
            for hi in tops.into_iter().filter(|&hi| hi >= lo) {
                let f = filter((lo as u64) << 32, (hi as u64) << 32);
                let bounds = f.top_bounds().expect("bounds without low bits");
                for top in tops {
                    for low in [0, 1, u32::MAX] {
                        let key = (top as u64) << 32 | low as u64;
                        let (whole, by_top) = (f.classify(key), Class::by_top(bounds, key));
                        assert_eq!(
                            (whole.taken, whole.tied),
                            (by_top.taken, by_top.tied),
                            "lo {lo:#x} hi {hi:#x} key {key:#x}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 36 * 8 * 3);
        let all = Filter::take_all();
        assert_eq!(all.top_bounds(), Some([0, 0]));
        assert!(Class::by_top([0, 0], 0).taken && !Class::by_top([0, 0], u64::MAX).tied);
        // Bounds with low bits (refined, or past the last bin) keep the whole-key comparisons.
        assert_eq!(filter(1 << 32, (2 << 32) | 5).top_bounds(), None);
        assert_eq!(filter(7, 1 << 32).top_bounds(), None);
        assert_eq!(filter(0, u64::MAX).top_bounds(), None);
    }
}

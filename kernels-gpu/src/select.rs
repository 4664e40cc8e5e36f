//! Exact top-k selection over unique 64-bit keys (larger is better).
//!
//! Most-significant-digit radix select: each pass histograms one digit of the keys still in the
//! running, `select_step` finds the bin that holds the k-th key and narrows the prefix. A row is
//! done once the whole bin is taken, so random data usually settles in two or three passes;
//! unique keys guarantee it by the last digit. Nothing here caps k, and nothing here knows what a
//! key means: the scoring code builds the keys and feeds them in.

use crate::device::{self, Shared};
use pqtopk_abi::{BLOCK_THREADS, DIGIT_BITS, HIST_BINS, RowState};

/// The digit of radix pass `pass`: `width` bits below the `fixed` bits already decided.
#[derive(Clone, Copy)]
pub struct Digit {
    fixed: u32,
    width: u32,
}

impl Digit {
    pub fn of_pass(pass: u32) -> Digit {
        let mut fixed = 0;
        for w in &DIGIT_BITS[..pass as usize] {
            fixed += w;
        }
        Digit { fixed, width: DIGIT_BITS[pass as usize] }
    }

    /// The bin `key` counts in, or `None` when it no longer shares the row's prefix.
    #[inline(always)]
    pub fn bin(self, key: u64, state: &RowState) -> Option<u32> {
        let shares_prefix = self.fixed == 0 || (key >> (64 - self.fixed)) == (state.prefix >> (64 - self.fixed));
        shares_prefix.then(|| ((key >> (64 - self.fixed - self.width)) as u32) & ((1 << self.width) - 1))
    }
}

/// The state a row starts with: with `valid ≤ k` every valid key is taken at once.
pub fn initial_state(valid: u32, k: u32) -> RowState {
    RowState { prefix: 0, remaining: k.min(valid), fixed_bits: 0, done: (valid <= k) as u32, collected: 0 }
}

/// Whether a finished row takes `key`.
#[inline(always)]
pub fn is_selected(key: u64, state: &RowState) -> bool {
    state.fixed_bits == 0 || (key >> (64 - state.fixed_bits)) >= (state.prefix >> (64 - state.fixed_bits))
}

/// Adds a block's shared histogram into the row's global one.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last count; `global` holds
/// `HIST_BINS` u32; `local` has `HIST_BINS` elements.
pub unsafe fn flush_histogram(local: Shared<u32>, global: *mut u32) {
    let mut bin = device::thread_idx();
    while bin < HIST_BINS {
        // SAFETY: bin < HIST_BINS.
        unsafe {
            let count = local.get(bin as usize);
            if count != 0 {
                device::atomic_add_no_return(global.add(bin as usize), count);
            }
        }
        bin += device::block_dim();
    }
}

/// Narrows a row's state `s` (as of the start of `pass`) to the bin of `bins`, the row's complete
/// histogram for `pass`, that holds the k-th key; writes the new state to `*state` and counts the
/// row in `*finished` if that settles it. Run by one whole block.
///
/// # Safety
/// All threads of the block call it; `bins` holds `HIST_BINS` counts written before the last
/// barrier; `state` and `finished` are valid, and no other block touches `*state` until the next
/// grid barrier.
pub unsafe fn select_step(bins: Shared<u32>, s: RowState, state: *mut RowState, pass: u32, finished: *mut u32) {
    const PER_THREAD: usize = (HIST_BINS / BLOCK_THREADS) as usize;
    let above = static_shared!(SELECT_WARP_SUMS: [u32; (BLOCK_THREADS / device::WARP) as usize]);
    let t = device::thread_idx() as usize;
    // SAFETY: every thread reaches it; it ends the reads of `above` by an earlier call.
    unsafe { device::sync_threads() };
    let mut counts = [0u32; PER_THREAD];
    let mut total = 0;
    for (i, c) in counts.iter_mut().enumerate() {
        // SAFETY: t·PER_THREAD + i < HIST_BINS; written before the caller's barrier.
        *c = unsafe { bins.get(t * PER_THREAD + i) };
        total += *c;
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
    let warp = t / device::WARP as usize;
    let warps = BLOCK_THREADS as usize / device::WARP as usize;
    // SAFETY: every thread reaches the barrier; lane 0 of each warp writes its own slot first.
    unsafe {
        if lane == 0 {
            above.set(warp, suffix);
        }
        device::sync_threads();
        for w in warp + 1..warps {
            suffix += above.get(w);
        }
    }
    if s.done != 0 {
        return;
    }
    let mut taken = suffix - total;
    let digit = Digit::of_pass(pass);
    for i in (0..PER_THREAD).rev() {
        let count = counts[i];
        if taken < s.remaining && s.remaining <= taken + count {
            let bin = (t * PER_THREAD + i) as u64;
            let remaining = s.remaining - taken;
            let fixed_bits = digit.fixed + digit.width;
            let next = RowState {
                prefix: s.prefix | (bin << (64 - fixed_bits)),
                remaining,
                fixed_bits,
                done: (remaining == count) as u32,
                collected: 0,
            };
            // SAFETY: exactly one thread finds the bin; the state is this block's to write.
            unsafe {
                *state = next;
                if next.done != 0 {
                    device::atomic_add(finished, 1);
                }
            }
        }
        taken += count;
    }
}

/// Sorts `keys[..len]` descending in shared memory (bitonic); `len` is a power of two.
///
/// # Safety
/// All threads of the block call it, after a barrier that follows the last write of `keys`;
/// `len ≤ keys.len()`. Ends with a barrier.
pub unsafe fn sort_descending(keys: Shared<u64>, len: usize) {
    let threads = device::block_dim() as usize;
    let mut size = 2;
    while size <= len {
        let mut stride = size / 2;
        while stride > 0 {
            let mut i = device::thread_idx() as usize;
            while i < len / 2 {
                // Strides are powers of two: masks instead of divisions.
                let lo = ((i & !(stride - 1)) << 1) | (i & (stride - 1));
                let hi = lo + stride;
                // SAFETY: lo < hi < len; each pair belongs to one thread in this step.
                unsafe {
                    let (a, b) = (keys.get(lo), keys.get(hi));
                    let descending = lo & size == 0;
                    if (a < b) == descending {
                        keys.set(lo, b);
                        keys.set(hi, a);
                    }
                }
                i += threads;
            }
            // SAFETY: every thread reaches it.
            unsafe { device::sync_threads() };
            stride /= 2;
        }
        size *= 2;
    }
}

/// The number of `keys[..count]` greater than `mine` (0 for threads with `mine == None`),
/// comparing tile by tile through shared memory: for rows too large to sort in shared memory.
///
/// # Safety
/// All threads of the block call it with the same `keys` and `count`; `keys` holds `count`
/// entries.
pub unsafe fn rank_among(keys: *const u64, count: u32, mine: Option<u64>, order_key: impl Fn(u64) -> u64) -> u32 {
    let tile = static_shared!(RANK_TILE: [u64; BLOCK_THREADS as usize]);
    let t = device::thread_idx();
    let mut rank = 0u32;
    let mut start = 0;
    while start < count {
        // SAFETY: every thread reaches both barriers; element t has the one writer t.
        unsafe {
            if start + t < count {
                tile.set(t as usize, order_key(*keys.add((start + t) as usize)));
            }
            device::sync_threads();
            if let Some(mine) = mine {
                for i in 0..(count - start).min(BLOCK_THREADS) {
                    rank += (tile.get(i as usize) > mine) as u32;
                }
            }
            device::sync_threads();
        }
        start += BLOCK_THREADS;
    }
    rank
}

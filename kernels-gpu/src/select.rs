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

/// Adds a block's shared histogram into the row's global one and clears the shared one.
///
/// # Safety
/// All threads of the block call it after a barrier that follows the last count; `global` holds
/// `HIST_BINS` u32; `local` has `HIST_BINS` elements.
pub unsafe fn flush_histogram(local: Shared<u32>, global: *mut u32) {
    let mut bin = device::thread_idx();
    while bin < HIST_BINS {
        // SAFETY: bin < HIST_BINS, and each bin has one thread.
        unsafe {
            let count = local.get(bin as usize);
            if count != 0 {
                device::atomic_add(global.add(bin as usize), count);
                local.set(bin as usize, 0);
            }
        }
        bin += device::block_dim();
    }
}

/// Reads the row's histogram for `pass`, narrows its state to the bin holding the k-th key, and
/// zeroes the histogram for the next pass. Run by one block of `BLOCK_THREADS` per row.
///
/// # Safety
/// All threads of the block call it; `hist` holds `HIST_BINS` u32 and `state` one [`RowState`],
/// neither touched by other blocks during the launch.
pub unsafe fn select_step(hist: *mut u32, state: *mut RowState, pass: u32) {
    const PER_THREAD: usize = (HIST_BINS / BLOCK_THREADS) as usize;
    let above = static_shared!(SELECT_SUFFIX: [u32; BLOCK_THREADS as usize]);
    let t = device::thread_idx() as usize;
    // SAFETY: the row's state is ours; it is written below only after the barrier that ends
    // every thread's read.
    let s = unsafe { *state };
    let mut counts = [0u32; PER_THREAD];
    let mut total = 0;
    for (i, c) in counts.iter_mut().enumerate() {
        // SAFETY: t·PER_THREAD + i < HIST_BINS.
        unsafe {
            *c = *hist.add(t * PER_THREAD + i);
            *hist.add(t * PER_THREAD + i) = 0;
        }
        total += *c;
    }
    // Inclusive suffix sum over threads: bins above ours hold the better keys.
    // SAFETY: every thread reaches every barrier; element t is written only by thread t between
    // barriers, and read by others only after one.
    unsafe {
        above.set(t, total);
        device::sync_threads();
        let mut offset = 1;
        while offset < BLOCK_THREADS as usize {
            let add = if t + offset < BLOCK_THREADS as usize { above.get(t + offset) } else { 0 };
            device::sync_threads();
            above.set(t, above.get(t) + add);
            device::sync_threads();
            offset *= 2;
        }
    }
    if s.done != 0 {
        return;
    }
    // SAFETY: written before the last barrier.
    let mut taken = unsafe { above.get(t) } - total;
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
            // SAFETY: exactly one thread finds the bin; all reads of the state happened before
            // the barriers above.
            unsafe { *state = next };
        }
        taken += count;
    }
}

/// Writes the row's `count` collected candidates, ranked, to `out_indices[0..k]` (and
/// `out_scores` unless null), then pads the slots from `count` on. Thread slot `slot` of the row
/// ranks its own candidate against all others by `order_key` (descending), tile by tile.
///
/// # Safety
/// All threads of the block call it with the same row; `keys` and `scores` hold `count` entries
/// with unique order keys; the outputs hold `k` entries.
#[allow(clippy::too_many_arguments)]
pub unsafe fn rank_and_scatter(
    keys: *const u64,
    scores: *const f32,
    count: u32,
    k: u32,
    slot: u32,
    order_key: impl Fn(u64) -> u64,
    index_of: impl Fn(u64) -> u32,
    padding: f32,
    out_indices: *mut u32,
    out_scores: *mut f32,
) {
    let tile = static_shared!(RANK_TILE: [u64; BLOCK_THREADS as usize]);
    let t = device::thread_idx();
    // SAFETY: slot < count is in bounds.
    let mine = (slot < count).then(|| unsafe { (*keys.add(slot as usize), *scores.add(slot as usize)) });
    let my_order = mine.map_or(0, |(key, _)| order_key(key));
    let mut rank = 0u32;
    let mut start = 0;
    while start < count {
        // SAFETY: every thread reaches both barriers; element t has the one writer t.
        unsafe {
            if start + t < count {
                tile.set(t as usize, order_key(*keys.add((start + t) as usize)));
            }
            device::sync_threads();
            if mine.is_some() {
                for i in 0..(count - start).min(BLOCK_THREADS) {
                    rank += (tile.get(i as usize) > my_order) as u32;
                }
            }
            device::sync_threads();
        }
        start += BLOCK_THREADS;
    }
    let (at, index, score) = match mine {
        Some((key, score)) => (rank, index_of(key), score),
        None if slot < k => (slot, u32::MAX, padding),
        None => return,
    };
    // SAFETY: at < k: ranks of unique keys are a permutation of 0..count, and count ≤ k.
    unsafe {
        *out_indices.add(at as usize) = index;
        if !out_scores.is_null() {
            *out_scores.add(at as usize) = score;
        }
    }
}

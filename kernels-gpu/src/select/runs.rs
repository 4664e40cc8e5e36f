//! Score order for rows whose top k is too large for one block's shared memory: the row's
//! candidates are sorted in runs of `RUN_KEYS` keys, then pairs of runs are merged pass by pass.
//! A merge places each key at its rank in its own run plus the count of greater keys in the
//! other run (a binary search; keys are unique), so every pass is one independent search per
//! key and the work is O(k log k), whatever the keys' distribution.

use crate::device::{self, Shared};
use crate::output::OutputRows;
use crate::score;
use crate::select;
use pqtopk_abi::{MergeParams, RUN_KEYS, SelectParams, may_write_in_chunks};

/// Keys of `row` that `pq_select` left to this path (0 where it wrote the row itself), and the
/// row's start in the `[rows, k]` candidate buffers.
fn row_candidates(p: &SelectParams, row: u32) -> (u32, usize) {
    let s = &p.shape;
    let valid = score::valid_keys(s, p.n_valid, score::batch_of_row(s, row));
    let chunked = may_write_in_chunks(true, s.k, valid, p.sort_capacity, p.tie_capacity);
    (if chunked { s.k.min(valid) } else { 0 }, row as usize * s.k as usize)
}

/// Sorts run `block % runs` of row `block / runs` (`runs = ceil(k / RUN_KEYS)`) descending in
/// place; a row of one run is written to the outputs (and padded) instead.
///
/// # Safety
/// All threads of the block call it; `keys` holds `RUN_KEYS` keys; `pq_write_candidates` has finished
/// writing the candidates.
pub unsafe fn sort_run(p: &SelectParams, keys: Shared<u64>) {
    let runs = p.shape.k.div_ceil(RUN_KEYS);
    let (row, run) = (device::block_idx().0 / runs, device::block_idx().0 % runs);
    let (taken, start) = row_candidates(p, row);
    let first = run * RUN_KEYS;
    if first >= taken {
        return;
    }
    let len = (taken - first).min(RUN_KEYS);
    let padded = len.next_power_of_two() as usize;
    let candidates = (p.candidates as *mut u64).wrapping_add(start + first as usize);
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    let single = taken <= RUN_KEYS;
    // SAFETY: the candidates `first..first + len` of the row were written by pq_write_candidates; the
    // barriers order the loads, the sort and the stores; each slot has one writer.
    unsafe {
        for i in device::strided(t, padded, threads) {
            keys.set(i, if i < len as usize { *candidates.add(i) } else { 0 });
        }
        device::sync_threads();
        select::sort_descending(keys, padded);
        let out = OutputRows::of(p);
        for i in device::strided(t, len as usize, threads) {
            if single {
                out.write(row, i as u32, Some(keys.get(i)));
            } else {
                *candidates.add(i) = keys.get(i);
            }
        }
        if single {
            out.pad(row, taken);
        }
    }
}

/// One merge pass: thread `slot` of row `block / ceil(k / block size)` places its key; on the
/// last pass it writes the outputs (and the padding slots).
///
/// # Safety
/// `p.src` holds every row's candidates sorted in runs of `p.width` (the previous launch wrote
/// them); `p.dst` has room for `[rows, k]` keys.
pub unsafe fn merge_pass(p: &MergeParams) {
    let s = &p.select.shape;
    let chunks = s.k.div_ceil(device::block_dim());
    let (row, chunk) = (device::block_idx().0 / chunks, device::block_idx().0 % chunks);
    let slot = chunk * device::block_dim() + device::thread_idx();
    let (taken, start) = row_candidates(&p.select, row);
    if taken <= RUN_KEYS {
        // The selection or pq_sort_runs wrote this row.
        return;
    }
    let out = OutputRows::of(&p.select);
    let last = p.last != 0;
    // SAFETY: slots below taken hold candidates; the other run's range lies within the row's
    // taken keys; places are a permutation of 0..taken, so each destination has one writer.
    unsafe {
        if slot >= taken {
            if last && slot < s.k {
                out.write(row, slot, None);
            }
            return;
        }
        let src = (p.src as *const u64).add(start);
        let key = *src.add(slot as usize);
        let run = slot / p.width;
        let other = (run ^ 1) * p.width;
        let other_len = taken.saturating_sub(other).min(p.width);
        // Keys of the other run greater than this one: a prefix, since runs are descending.
        let (mut lo, mut hi) = (0, other_len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if *src.add((other + mid) as usize) > key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let place = (run & !1) * p.width + (slot - run * p.width) + lo;
        if last {
            out.write(row, place, Some(key));
        } else {
            *(p.dst as *mut u64).add(start + place as usize) = key;
        }
    }
}

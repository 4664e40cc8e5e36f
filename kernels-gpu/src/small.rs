//! The one-launch path for short rows: one block per output row scores the row's keys
//! (`score::direct_keys`), sorts them in shared memory (`select::sort_descending`) and writes
//! the best k (`output`), by score or, after a second sort of the taken keys, by index.

use crate::device::{self, Shared};
use crate::output::OutputRows;
use crate::score;
use crate::select;
use pqtopk_abi::{Order, SmallParams};

/// The row of this block, whole.
///
/// # Safety
/// As `pq_topk_small`.
pub unsafe fn topk_row(p: &SmallParams) {
    let s = &p.shape;
    let row = device::block_idx().0;
    let valid = score::valid_keys(s, p.n_valid, score::batch_of_row(s, row));
    let len = s.n.next_power_of_two() as usize;
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    let out = OutputRows { k: s.k, metric: s.metric, indices: p.out_indices, scores: p.out_scores };
    let taken = s.k.min(valid);
    // SAFETY: launched with `small_shared_bytes` of dynamic shared memory, keys first; the
    // barriers (in the sorts, and below) order the keys' writes and reads; each slot has one
    // writer.
    unsafe {
        let keys: Shared<u64> = device::dynamic_shared(len);
        let staging: Shared<f32> = keys.tail(len, (score::heads_per_row(s) * s.d) as usize);
        score::direct_keys(p, row, valid, keys, staging);
        device::sync_threads();
        select::sort_descending(keys, len);
        let by_index = s.order != Order::ByScore as u32;
        if by_index && taken > 1 {
            // The taken keys with their halves swapped: the complemented index on top, so that
            // a descending sort orders them by index.
            let taken_len = taken.next_power_of_two() as usize;
            for i in device::strided(t, taken_len, threads) {
                keys.set(i, if i < taken as usize { keys.get(i).rotate_left(32) } else { 0 });
            }
            device::sync_threads();
            select::sort_descending(keys, taken_len);
            for i in device::strided(t, taken as usize, threads) {
                out.write(row, i as u32, Some(keys.get(i).rotate_left(32)));
            }
        } else {
            for i in device::strided(t, taken as usize, threads) {
                out.write(row, i as u32, Some(keys.get(i)));
            }
        }
        out.pad(row, taken);
    }
}

//! The one-launch path for short rows: one block per output row scores the row's keys
//! (`score::row_keys`), sorts them in shared memory (`select::sort_descending`) and writes
//! the best k (`output`), by score or, placed by their indices' bitmap
//! (`select::emit_by_index`), by index.

use crate::device::{self, Shared};
use crate::output::OutputRows;
use crate::score;
use crate::select;
use pqtopk_abi::{Order, SmallParams, index_bitmap_slots, small_queries_bytes, small_scores_by_table};

/// The row of this block, whole.
///
/// # Safety
/// As `pq_topk_small`.
#[inline(always)]
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
        let heads = score::heads_per_row(s);
        let staging: Shared<f32> = keys.tail(len, (heads * s.d) as usize);
        let table = small_scores_by_table(s.n, s.c)
            .then(|| staging.tail((small_queries_bytes(s.n, heads, s.d) / 4) as usize, (s.m * s.c) as usize));
        score::row_keys(p, row, valid, keys, staging, table);
        device::sync_threads();
        select::sort_descending(keys, len);
        let by_index = s.order != Order::ByScore as u32;
        if by_index && taken > 1 {
            // The bitmap takes the queries' place, free once the keys are scored: two barriers,
            // where a second sort of the taken keys took a bitonic network's (at 32 rows of 256
            // to 1536 keys it made index order 7 to 16 µs slower than score order, perf-notes
            // v25).
            let bitmap: Shared<u64> = keys.tail(len, index_bitmap_slots(valid) as usize);
            select::emit_by_index(keys, taken, valid, bitmap, score::index_of, |slot, key| {
                out.write(row, slot, Some(key))
            });
        } else {
            for i in device::strided(t, taken as usize, threads) {
                out.write(row, i as u32, Some(keys.get(i)));
            }
        }
        out.pad(row, taken);
    }
}

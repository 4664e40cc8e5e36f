//! The fused score + selection of few rows on chip (sm_90): glue between `score` (tables and
//! scoring loop, into shared memory) and `select::cluster` (the cluster's selection).

use crate::device;
use crate::output::OutputRows;
use crate::score::{self, Binning, LutEntry, Tile};
use crate::select::cluster::{TilePart, select_tile};
use crate::select::row::block_bin_bounds;
use pqtopk_abi::{CLUSTER_BLOCKS, CLUSTER_CONTROL_WORDS, ClusterParams, HIST_BINS, Order, cluster_layout};

/// The part of this block (rank `r` of cluster `c`) in row tile `c`: scores keys
/// `r·slice..(r + 1)·slice` of the tile's rows, then selects with the cluster.
///
/// # Safety
/// As `pq_topk_cluster`; `E::WIDTH == p.tiling.lut_width`.
#[inline(always)]
pub unsafe fn topk_tile<E: LutEntry>(p: &ClusterParams) {
    let s = &p.shape;
    let (cluster, rank) = (device::block_idx().0 / CLUSTER_BLOCKS, device::cluster_rank());
    let key0 = (rank * p.slice).min(s.n);
    let tile = Tile::of(s, &p.tiling, cluster, key0, (key0 + p.slice).min(s.n));
    let width = E::WIDTH as u32;
    let layout = cluster_layout(s.m, s.c, width, p.slice, p.sort_capacity, p.tie_capacity);
    // SAFETY: launched with `layout.bytes` of dynamic shared memory; each region is 16-byte
    // aligned and sized as `cluster_layout` states.
    let part = unsafe {
        TilePart {
            rows: tile.rows,
            valid: score::valid_keys(s, p.n_valid, tile.batch),
            k: s.k,
            key0,
            keys: 0,
            slice: p.slice,
            orders: device::dynamic_shared_at(layout.orders, (width * p.slice) as usize),
            hists: device::dynamic_shared_at(layout.hists, (width * HIST_BINS) as usize),
            total: device::dynamic_shared_at(layout.total, HIST_BINS as usize),
            best: device::dynamic_shared_at(layout.best, p.sort_capacity as usize),
            ties: device::dynamic_shared_at(layout.ties, p.tie_capacity as usize),
            counters: device::dynamic_shared_at(layout.counters, 2),
            control: device::dynamic_shared_at(layout.control, CLUSTER_CONTROL_WORDS as usize),
        }
    };
    let part = TilePart { keys: part.valid.min(tile.key_end).saturating_sub(key0), ..part };
    // SAFETY: as above, for the tables; all threads call the scoring steps, in order.
    unsafe {
        let luts = device::dynamic_shared_at::<E>(layout.tables, score::lut_len(s));
        score::load_tables(p.luts, tile, luts, part.hists);
        let binnings = score::tile_binnings(s, p.ranges, tile);
        score::score_keys::<E>(s, p.n_valid, p.codes, tile, luts, binnings, part.hists, |r, key, order| {
            part.orders.set(r * p.slice as usize + (key - key0) as usize, order)
        });
        device::sync_threads();
        let out = OutputRows { k: s.k, metric: s.metric, indices: p.out_indices, scores: p.out_scores };
        let bin_bounds = |r: usize, bin: u32| block_bin_bounds(Binning::from_raw(binnings.get(r)), bin);
        select_tile(&part, bin_bounds, out, tile.row0, s.order == Order::ByScore as u32);
    }
}

//! Selection of a row tile's rows by a cluster of blocks (sm_90), on chip: each block holds the
//! order keys of a slice of the rows' keys and one histogram per row in its shared memory; the
//! block that owns a row sums the row's histograms over the cluster, finds the row's filter
//! (refining it, digit by digit, with every block's counts, while too many keys tie), publishes
//! it, and receives the row's taken and tied keys from every block through distributed shared
//! memory, then orders and writes them as `pq_select` does.

use crate::device::{self, Shared};
use crate::output::OutputRows;
use crate::score;
use crate::select::row::{OutputOrder, finish_in_shared};
use crate::select::{self, FILTER_WORDS, Filter};
use pqtopk_abi::{CLUSTER_BLOCKS, CLUSTER_CONTROL_WORDS, HIST_BINS, MAX_ROWS_PER_BLOCK};

/// The control words: the owned row's filter, then each row's tied range in this block.
const RANGE_WORDS: usize = 8;
const _: () = assert!(FILTER_WORDS <= RANGE_WORDS && RANGE_WORDS + 2 * MAX_ROWS <= CLUSTER_CONTROL_WORDS as usize);
const MAX_ROWS: usize = MAX_ROWS_PER_BLOCK as usize;

/// One block's part of a row tile: its slice of keys and the shared memory of the selection.
/// Every block of the cluster has the same views (the same layout), so that a view in another
/// block is the same view mapped there.
#[derive(Clone, Copy)]
pub struct TilePart {
    /// Rows of the tile; block `r < rows` owns row `r`.
    pub rows: u32,
    /// Valid keys of the rows (they share a batch entry), and k.
    pub valid: u32,
    pub k: u32,
    /// This block's keys: `key0..key0 + keys`, their order keys at `orders[r · slice + i]`.
    pub key0: u32,
    pub keys: u32,
    pub slice: u32,
    pub orders: Shared<u32>,
    /// `HIST_BINS` counts per row of this block's keys (complete before the call).
    pub hists: Shared<u32>,
    /// The owned row's histogram over the cluster; scratch after the gather.
    pub total: Shared<u32>,
    /// The owned row's taken and tied keys, and their counts.
    pub best: Shared<u64>,
    pub ties: Shared<u64>,
    pub counters: Shared<u32>,
    /// The owned row's filter, as published.
    pub control: Shared<u64>,
}

impl TilePart {
    /// Selection key of this block's key `i` in row `r`.
    ///
    /// # Safety
    /// `r < rows`, `i < keys`; the order keys are complete.
    #[inline(always)]
    unsafe fn key(&self, r: usize, i: u32) -> u64 {
        // SAFETY: in the slice by the caller's promise.
        score::selection_key(unsafe { self.orders.get(r * self.slice as usize + i as usize) }, self.key0 + i)
    }

    /// Sums row `r`'s histograms over the cluster into `total`.
    ///
    /// # Safety
    /// All threads of the block call it, between cluster barriers that order every block's
    /// counts before it and its reads before any block's next counts.
    unsafe fn sum_histograms(&self, r: usize) {
        for bin in device::strided(device::thread_idx() as usize, HIST_BINS as usize, device::block_dim() as usize) {
            let mut count = 0;
            for block in 0..CLUSTER_BLOCKS {
                // SAFETY: every block of the cluster runs; the bin is in row r's histogram.
                count += unsafe { self.hists.in_block(block).get(r * HIST_BINS as usize + bin) };
            }
            // SAFETY: one writer per bin.
            unsafe { self.total.set(bin, count) };
        }
        // SAFETY: all threads reach it.
        unsafe { device::sync_threads() };
    }

    /// Publishes the owned row's filter (thread 0).
    ///
    /// # Safety
    /// Between the cluster barriers that order it after every read of the previous filter and
    /// before the reads of this one.
    unsafe fn publish(&self, filter: &Filter) {
        if device::thread_idx() == 0 {
            for (i, word) in filter.to_words().into_iter().enumerate() {
                // SAFETY: i < FILTER_WORDS ≤ the control words.
                unsafe { self.control.set(i, word) };
            }
        }
    }

    /// Copies every row's published filter into `filters` (`FILTER_WORDS` per row), for
    /// [`filter_of`].
    ///
    /// # Safety
    /// All threads of the block call it after the cluster barrier that follows the publishing,
    /// and after every read of the previous copy. Ends with a barrier.
    unsafe fn copy_filters(&self, filters: Shared<u64>) {
        let t = device::thread_idx() as usize;
        if t < self.rows as usize * FILTER_WORDS {
            let (r, word) = (t / FILTER_WORDS, t % FILTER_WORDS);
            // SAFETY: block r < rows ≤ CLUSTER_BLOCKS owns row r and published its filter; one
            // writer per word.
            unsafe { filters.set(t, self.control.in_block(r as u32).get(word)) };
        }
        // SAFETY: all threads reach it.
        unsafe { device::sync_threads() };
    }
}

/// Row `r`'s filter from the copy of [`TilePart::copy_filters`].
///
/// # Safety
/// After that copy.
#[inline(always)]
unsafe fn filter_of(filters: Shared<u64>, r: usize) -> Filter {
    // SAFETY: r < rows, whose words were copied.
    Filter::from_words(core::array::from_fn(|i| unsafe { filters.get(r * FILTER_WORDS + i) }))
}

/// Selects the exact top k of each row of the tile and writes them (block `r` writes row `r`,
/// output row `row0 + r`), in score order or index order. `bin_bounds(r, bin)` is the pair of the
/// smallest selection keys in bin `bin` and in bin `bin + 1` of row `r`'s histograms or above,
/// called by a whole block.
///
/// # Safety
/// Every thread of every block of the cluster calls it, once the block's order keys and
/// histograms are complete; `best` holds at least `min(k, valid).next_power_of_two()` keys and
/// `ties` a power of two of them; `rows ≤ CLUSTER_BLOCKS`.
pub unsafe fn select_tile(
    part: &TilePart,
    bin_bounds: impl Fn(usize, u32) -> (u64, u64),
    out: OutputRows,
    row0: u32,
    by_score: bool,
) {
    let rank = device::cluster_rank();
    let owner = rank < part.rows;
    let mine = rank as usize;
    let (t, threads) = (device::thread_idx(), device::block_dim());
    let taken = part.k.min(part.valid);
    let tie_capacity = part.ties.len() as u32;
    let refining = move |f: &Filter| !f.takes_all() && f.tied > tie_capacity && f.refinable();
    let filters = static_shared!(CLUSTER_FILTERS: [u64; MAX_ROWS * FILTER_WORDS]);
    let range = static_shared!(CLUSTER_TIED_RANGE: [u64; 2]);
    let bases = static_shared!(CLUSTER_GATHER_BASES: [u32; 2]);
    // SAFETY (all): every thread of every block runs the same sequence of cluster barriers (the
    // loop's condition is computed from the same published filters everywhere); between two
    // barriers, each shared location has one writer and is read by others only after the next.
    unsafe {
        if t == 0 {
            part.counters.set(0, 0);
            part.counters.set(1, 0);
        }
        // Every block's order keys and histograms are complete; the counters are zero.
        device::cluster_sync();
        let mut filter = Filter::take_all();
        if owner && part.valid > part.k {
            part.sum_histograms(mine);
            filter = select::first_filter(part.total, taken, |bin| bin_bounds(mine, bin));
        }
        if owner {
            part.publish(&filter);
        }
        device::cluster_sync();
        part.copy_filters(filters);
        let any_refining = || (0..part.rows as usize).any(|r| refining(&filter_of(filters, r)));
        while any_refining() {
            // The next digit of each refining row's tied keys, counted per block, with the tied
            // keys' range, then summed by the row's owner, which narrows the filter.
            for r in 0..part.rows as usize {
                if refining(&filter_of(filters, r)) {
                    for bin in device::strided(t, HIST_BINS, threads as usize) {
                        part.hists.set(r * HIST_BINS as usize + bin as usize, 0);
                    }
                }
            }
            device::sync_threads();
            for r in 0..part.rows as usize {
                let f = filter_of(filters, r);
                if refining(&f) {
                    let (mut least, mut greatest) = (u64::MAX, 0);
                    for i in device::strided(t, part.keys, threads as usize) {
                        let key = part.key(r, i);
                        if f.classify(key).tied {
                            part.hists.atomic_add_no_return(r * HIST_BINS as usize + f.digit(key) as usize, 1);
                            (least, greatest) = (least.min(key), greatest.max(key));
                        }
                    }
                    let (least, greatest) = select::block_min_max(least, greatest, range);
                    if t == 0 {
                        part.control.set(RANGE_WORDS + 2 * r, least);
                        part.control.set(RANGE_WORDS + 2 * r + 1, greatest);
                    }
                }
            }
            device::cluster_sync();
            let mut f = if owner { filter_of(filters, mine) } else { Filter::take_all() };
            if owner && refining(&f) {
                part.sum_histograms(mine);
                let (mut least, mut greatest) = (u64::MAX, 0);
                for block in 0..CLUSTER_BLOCKS {
                    let control = part.control.in_block(block);
                    least = least.min(control.get(RANGE_WORDS + 2 * mine));
                    greatest = greatest.max(control.get(RANGE_WORDS + 2 * mine + 1));
                }
                f.refine(select::threshold(part.total, f.remaining));
                f.narrow_to(least, greatest);
                part.publish(&f);
            }
            device::cluster_sync();
            part.copy_filters(filters);
        }
        // Every block appends its taken and tied keys of each row to the row's owner: counted,
        // then one reservation per block and class in the owner, then stored.
        for r in 0..part.rows as usize {
            let f = filter_of(filters, r);
            let owner_of_row = r as u32;
            let (best, ties, counters) = (
                part.best.in_block(owner_of_row),
                part.ties.in_block(owner_of_row),
                part.counters.in_block(owner_of_row),
            );
            let (mut taken_here, mut tied_here) = (0, 0);
            for i in device::strided(t, part.keys, threads as usize) {
                let class = f.classify(part.key(r, i));
                (taken_here, tied_here) = (taken_here + class.taken as u32, tied_here + class.tied as u32);
            }
            let (taken_before, taken_total) = select::block_exclusive_sum(taken_here);
            let (tied_before, tied_total) = select::block_exclusive_sum(tied_here);
            if t == 0 {
                bases.set(0, if taken_total > 0 { counters.atomic_add(0, taken_total) } else { 0 });
                bases.set(1, if tied_total > 0 { counters.atomic_add(1, tied_total) } else { 0 });
            }
            device::sync_threads();
            let (mut taken_slot, mut tied_slot) = (bases.get(0) + taken_before, bases.get(1) + tied_before);
            for i in device::strided(t, part.keys, threads as usize) {
                let key = part.key(r, i);
                let class = f.classify(key);
                if class.taken {
                    best.set(taken_slot as usize, key);
                    taken_slot += 1;
                } else if class.tied {
                    ties.set(tied_slot as usize, key);
                    tied_slot += 1;
                }
            }
            // The bases are read before the next row's reservation.
            device::sync_threads();
        }
        // Every key is with its owner; the other blocks are done (nothing reads their memory
        // after this barrier).
        device::cluster_sync();
        if !owner {
            return;
        }
        let remaining = filter_of(filters, mine).remaining;
        let (above, tied) = (part.counters.get(0), part.counters.get(1));
        let ties = (tied, remaining);
        let order = if by_score { OutputOrder::Score } else { OutputOrder::Index };
        finish_in_shared(out, row0 + rank, order, taken, above, ties, part.valid, part.total, part.best, part.ties);
    }
}

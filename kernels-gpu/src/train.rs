//! Training PQ codebooks by k-means, the indexer's algorithm (`pqtopk::index`) step by step:
//! [`init`] ranks the pooled keys and seeds the centroids, [`assign`] gives every valid key its
//! nearest centroid and adds the key to that centroid's sums, [`update`] applies the stop test
//! and moves the centroids to the means (re-seeding empty ones). The host launches `init`, then
//! `iterations` pairs of (`assign`, `update`); a (kv head, sub-space) that stopped skips the rest.
//!
//! Same inputs, same bits: sums of key elements and of distances are added as 64-bit fixed-point
//! integers, which are exact, so the order in which blocks add them cannot change the result.
//! Each (kv head, sub-space) scales them from its largest |element| so that no sum overflows;
//! the means are formed in f64 and rounded to f32. Non-finite key elements leave their (kv head,
//! sub-space)'s codebook unspecified (but every access stays in bounds).

use crate::device::{self, Shared};
use crate::encode::{Centroids, load};
use crate::select::{block_exclusive_sum, sort_descending, threshold};
use pqtopk_abi::{
    DIGIT_BITS, DType, ENCODE_KEYS_PER_BLOCK, HIST_BINS, TrainParams, TrainState, encode_shared_bytes, fixed_exp,
    sample_rank, train_assign_layout, train_layout, train_order_len,
};

/// The longest initialization order: `train_order_len(256)`.
const MAX_ORDER: usize = 512;

/// One (kv head, sub-space)'s regions of the workspace.
struct Part {
    state: *mut TrainState,
    centroids: *mut f32,
    sums: *mut u64,
    counts: *mut u32,
    order: *mut u32,
    assignment: *mut u8,
}

impl Part {
    fn of(p: &TrainParams, subspace: u32) -> Part {
        let pooled_capacity = p.b as u64 * p.n as u64;
        let elements = (p.c * (p.d / p.m)) as usize;
        let layout = train_layout((p.hkv * p.m) as u64, p.c as u64, (p.d / p.m) as u64, pooled_capacity);
        let s = subspace as usize;
        let region = |offset: u64| (p.workspace + offset) as *mut u8;
        Part {
            state: (region(layout.states) as *mut TrainState).wrapping_add(s),
            centroids: (region(layout.centroids) as *mut f32).wrapping_add(s * elements),
            sums: (region(layout.sums) as *mut u64).wrapping_add(s * elements),
            counts: (region(layout.counts) as *mut u32).wrapping_add(s * p.c as usize),
            order: (region(layout.order) as *mut u32).wrapping_add(s * train_order_len(p.c) as usize),
            assignment: region(layout.assignment).wrapping_add(s * pooled_capacity as usize),
        }
    }

    /// Sets element `i` of the centroids (f32) and of the codebook (its dtype).
    ///
    /// # Safety
    /// `i < c · d/m`; no other thread touches element `i` during the launch.
    unsafe fn set_centroid(&self, p: &TrainParams, subspace: u32, i: usize, value: f32) {
        let at = subspace as usize * (p.c * (p.d / p.m)) as usize + i;
        // SAFETY: the caller's promise; the codebooks hold hkv·m·c·d/m elements.
        unsafe {
            *self.centroids.add(i) = value;
            match p.codebook_dtype {
                d if d == DType::F32 as u32 => *(p.codebooks as *mut f32).add(at) = value,
                d if d == DType::F16 as u32 => *(p.codebooks as *mut u16).add(at) = device::f32_to_f16_bits(value),
                _ => *(p.codebooks as *mut u16).add(at) = device::f32_to_bf16_bits(value),
            }
        }
    }
}

/// Valid keys of batch entry `bi`.
///
/// # Safety
/// `bi < b`.
#[inline(always)]
unsafe fn valid_keys(p: &TrainParams, bi: u32) -> u32 {
    if p.n_valid == 0 {
        p.n
    } else {
        // SAFETY: n_valid, where given, holds b u32.
        unsafe { device::load_nc_u32((p.n_valid as *const u32).add(bi as usize)) }.min(p.n)
    }
}

/// Element `e` of sub-vector `j` of the key with pooled index `pooled` (`bi · n + key`).
///
/// # Safety
/// `pooled < b · n`, `kv < hkv`, `j < m`, `e < d/m`.
#[inline(always)]
unsafe fn key_element(p: &TrainParams, pooled: u32, kv: u32, j: u32, e: u32) -> f32 {
    let (bi, key) = (pooled / p.n, pooled % p.n);
    let row = (bi as usize * p.hkv as usize + kv as usize) * p.n as usize + key as usize;
    // SAFETY: inside the keys by the caller's promise.
    unsafe { load(p.key_dtype, p.keys, row * p.d as usize + (j * (p.d / p.m) + e) as usize) }
}

/// Calls `f(pooled, rank)` for each valid pooled key of this thread's share.
///
/// # Safety
/// `kv < hkv`, `j < m`.
#[inline(always)]
unsafe fn for_each_ranked(p: &TrainParams, kv: u32, j: u32, mut f: impl FnMut(u32, u64)) {
    for pooled in device::strided(device::thread_idx(), p.b * p.n, device::block_dim() as usize) {
        // SAFETY: pooled / n < b.
        if pooled % p.n < unsafe { valid_keys(p, pooled / p.n) } {
            f(pooled, sample_rank(p.seed, kv as u64, j as u64, pooled as u64));
        }
    }
}

/// The largest of the `wanted` smallest ranks of the valid keys (`1 ≤ wanted <` the valid keys),
/// found digit by digit from the top with the selection's histogram primitive. That primitive
/// looks for the largest keys, so digits go in complemented.
///
/// # Safety
/// All threads of the block call it; `hist` holds `HIST_BINS` counts that nothing else uses.
unsafe fn rank_bound(p: &TrainParams, kv: u32, j: u32, wanted: u32, hist: Shared<u32>) -> u64 {
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let (mut prefix, mut fixed, mut remaining) = (0u64, 0u32, wanted);
    loop {
        let width = DIGIT_BITS.min(64 - fixed);
        // SAFETY: every thread reaches the barriers (uniform loop); one writer per bin before the
        // first, shared atomics between them; threshold ends with a barrier.
        unsafe {
            for bin in device::strided(t, HIST_BINS, threads) {
                hist.set(bin as usize, 0);
            }
            device::sync_threads();
            for_each_ranked(p, kv, j, |_, rank| {
                if fixed == 0 || rank >> (64 - fixed) == prefix >> (64 - fixed) {
                    let digit = ((rank << fixed) >> (64 - width)) as u32;
                    hist.atomic_add_no_return((HIST_BINS - 1 - digit) as usize, 1);
                }
            });
            device::sync_threads();
            let found = threshold(hist, remaining);
            fixed += width;
            prefix |= ((HIST_BINS - 1 - found.bin) as u64) << (64 - fixed);
            remaining -= found.above;
            // Ranks are distinct, so by the last digit the bin holds exactly the keys still wanted.
            if found.count == remaining {
                return prefix | u64::MAX.checked_shr(fixed).unwrap_or(0);
            }
        }
    }
}

/// 2^e as f32, for `-126 ≤ e ≤ 127`.
fn pow2_f32(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// 2^e as f64, for `-1022 ≤ e ≤ 1023`.
fn pow2_f64(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Ranks the valid keys of one (kv head, sub-space), keeps the first `train_order_len(c)` in the
/// workspace, seeds the centroids from them, and resets the sums and the state.
///
/// # Safety
/// As `pq_train_init`.
#[inline(always)]
pub unsafe fn init(p: &TrainParams) {
    let subspace = device::block_idx().0;
    let (kv, j) = (subspace / p.m, subspace % p.m);
    let part = Part::of(p, subspace);
    let ds = p.d / p.m;
    let elements = p.c * ds;
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let mut pooled = 0;
    for bi in 0..p.b {
        // SAFETY: bi < b.
        pooled += unsafe { valid_keys(p, bi) };
    }
    let largest = static_shared!(TRAIN_LARGEST: [u32; 1]);
    let slots = static_shared!(TRAIN_SLOTS: [u32; 1]);
    let hist = static_shared!(TRAIN_HIST: [u32; HIST_BINS as usize]);
    let ranked = static_shared!(TRAIN_RANKED: [u64; MAX_ORDER]);
    let wanted = train_order_len(p.c).min(pooled);
    let len = wanted.next_power_of_two() as usize;
    // SAFETY: every thread reaches every barrier (the branches are uniform); shared elements
    // have one writer between barriers, or are updated by shared atomics; the order written to
    // global memory is read back after a barrier, by a plain (coherent) load.
    unsafe {
        if t == 0 {
            largest.set(0, 0);
            slots.set(0, 0);
        }
        for i in device::strided(t as usize, len, threads) {
            ranked.set(i, 0);
        }
        device::sync_threads();
        // The largest |element|: f32 magnitudes order as their bits.
        let mut mine = 0u32;
        for_each_ranked(p, kv, j, |key, _| {
            for e in 0..ds {
                mine = mine.max(key_element(p, key, kv, j, e).abs().to_bits());
            }
        });
        largest.atomic_max_no_return(0, mine);
        if wanted > 0 {
            let last = if wanted < pooled { rank_bound(p, kv, j, wanted, hist) } else { u64::MAX };
            // Complemented, so that the descending sort puts the smallest rank first.
            for_each_ranked(p, kv, j, |_, rank| {
                if rank <= last {
                    ranked.set(slots.atomic_add(0, 1) as usize, !rank);
                }
            });
            device::sync_threads();
            sort_descending(ranked, len);
            for_each_ranked(p, kv, j, |key, rank| {
                if rank <= last {
                    let (mut lo, mut hi) = (0, wanted as usize);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if ranked.get(mid) > !rank { lo = mid + 1 } else { hi = mid }
                    }
                    *part.order.add(lo) = key;
                }
            });
        }
        device::sync_threads();
        for i in device::strided(t, elements, threads) {
            let value = if pooled == 0 {
                0.0
            } else {
                key_element(p, *part.order.add(((i / ds) % pooled) as usize), kv, j, i % ds)
            };
            part.set_centroid(p, subspace, i as usize, value);
            *part.sums.add(i as usize) = 0;
        }
        for i in device::strided(t, p.c, threads) {
            *part.counts.add(i as usize) = 0;
        }
        if t == 0 {
            let bound = f32::from_bits(largest.get(0)) as f64;
            *part.state = TrainState {
                inertia: 0,
                previous_inertia: f64::INFINITY,
                steps: 0,
                done: (pooled == 0) as u32,
                changed: 0,
                pooled,
                sum_exp: fixed_exp(pooled, bound, 126),
                // A centroid lies in the keys' box, so no distance exceeds ds·(2·bound)².
                inertia_exp: fixed_exp(pooled, ds as f64 * 4.0 * bound * bound, 1022),
            };
        }
    }
}

/// Assigns one block's chunk of one batch entry's keys in one (kv head, sub-space) to their
/// nearest centroids, and adds them to the sums, counts and inertia; `W = register_width(d/m)`.
///
/// # Safety
/// As `pq_train_assign`.
#[inline(always)]
pub unsafe fn assign_chunks<const W: usize>(p: &TrainParams) {
    let chunks = p.n.div_ceil(p.keys_per_block);
    let block = device::block_idx().0;
    let (chunk, rest) = (block % chunks, block / chunks);
    let (j, bi_kv) = (rest % p.m, rest / p.m);
    let (bi, kv) = (bi_kv / p.hkv, bi_kv % p.hkv);
    let subspace = kv * p.m + j;
    let part = Part::of(p, subspace);
    // SAFETY: init wrote the state; nothing writes it during this launch but the atomics below,
    // which touch fields not read here.
    let state = unsafe { *part.state };
    let first_key = chunk * p.keys_per_block;
    // SAFETY: bi < b.
    let end = unsafe { valid_keys(p, bi) }.min(first_key + p.keys_per_block);
    if state.done != 0 || first_key >= end {
        // The whole block leaves before any barrier.
        return;
    }
    let ds = p.d / p.m;
    let elements = (p.c * ds) as usize;
    let layout = train_assign_layout(p.c, ds);
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let scale = pow2_f32(state.sum_exp);
    let inertia_scale = pow2_f64(state.inertia_exp);
    // SAFETY: launched with train_assign_layout(c, ds).bytes; the sums are followed by the
    // inertia (element `elements`).
    let (sums, counts, codes) = unsafe {
        (
            device::dynamic_shared_at::<u64>(0, elements + 1),
            device::dynamic_shared_at::<u32>(layout.counts, p.c as usize),
            device::dynamic_shared_at::<u32>(layout.codes, ENCODE_KEYS_PER_BLOCK as usize),
        )
    };
    let mut changed = 0;
    // SAFETY: every thread reaches every barrier and the shuffles (uniform loop, and branches on
    // W alone); shared elements have one writer between barriers, or take shared atomics; the
    // centroids are not written during this launch.
    unsafe {
        for i in device::strided(t as usize, elements + 1, threads) {
            sums.set(i, 0);
        }
        for i in device::strided(t, p.c, threads) {
            counts.set(i as usize, 0);
        }
        let staged = device::dynamic_shared_at(layout.staged, encode_shared_bytes(p.c, ds) as usize / 4);
        let centroids = Centroids::<W>::stage(staged, p.c, ds, |i| {
            f32::from_bits(device::load_nc_u32(part.centroids.add(i) as *const u32))
        });
        let mut first = first_key;
        while first < end {
            let in_chunk = (end - first).min(ENCODE_KEYS_PER_BLOCK);
            let key_element = |key: u32, e: u32| key_element(p, bi * p.n + first + key, kv, j, e);
            // The previous chunk's keys and codes are read; the zeroing and centroids written.
            device::sync_threads();
            centroids.stage_keys(in_chunk, key_element);
            device::sync_threads();
            let nearest = centroids.nearest(in_chunk, &centroids.load_key());
            if nearest.leader(in_chunk) {
                let previous = part.assignment.add((bi * p.n + first + nearest.key) as usize);
                changed += (*previous != nearest.centroid as u8) as u32;
                *previous = nearest.centroid as u8;
                codes.set(nearest.key as usize, nearest.centroid);
                counts.atomic_add_no_return(nearest.centroid as usize, 1);
                sums.atomic_add_no_return(
                    elements,
                    device::f64_to_u64_nearest(nearest.distance as f64 * inertia_scale),
                );
            }
            // The keys' elements, from their staged rows, to the sums of their centroids.
            device::sync_threads();
            for i in device::strided(t, in_chunk * ds, threads) {
                let (key, e) = (i / ds, i % ds);
                let fixed = device::f32_to_i64_nearest(centroids.key_element(key, e) * scale);
                sums.atomic_add_no_return((codes.get(key as usize) * ds + e) as usize, fixed as u64);
            }
            first += ENCODE_KEYS_PER_BLOCK;
        }
        device::sync_threads();
        for i in device::strided(t as usize, elements, threads) {
            let sum = sums.get(i);
            if sum != 0 {
                device::atomic_add_u64_no_return(part.sums.add(i), sum);
            }
        }
        for i in device::strided(t, p.c, threads) {
            let count = counts.get(i as usize);
            if count != 0 {
                device::atomic_add_no_return(part.counts.add(i as usize), count);
            }
        }
        if t == 0 {
            device::atomic_add_u64_no_return(core::ptr::addr_of_mut!((*part.state).inertia), sums.get(elements));
        }
        if changed != 0 {
            device::atomic_add_no_return(core::ptr::addr_of_mut!((*part.state).changed), changed);
        }
    }
}

/// Applies the stop test to the last assignment of one (kv head, sub-space); unless it stops,
/// moves each centroid to its keys' mean, re-seeding empty ones from the initialization order.
/// Then resets the sums for the next step.
///
/// # Safety
/// As `pq_train_update`.
#[inline(always)]
pub unsafe fn update(p: &TrainParams) {
    let subspace = device::block_idx().0;
    let (kv, j) = (subspace / p.m, subspace % p.m);
    let part = Part::of(p, subspace);
    // SAFETY: written by init, then by the last assign's atomics and update's thread 0 (after
    // the barrier below, which every thread's read precedes).
    let state = unsafe { *part.state };
    if state.done != 0 {
        return;
    }
    let ds = p.d / p.m;
    let elements = p.c * ds;
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    let inertia = state.inertia as f64 * pow2_f64(-state.inertia_exp);
    let steps = state.steps + 1;
    let stop =
        steps > 1 && (state.changed == 0 || state.previous_inertia - inertia < p.tolerance * state.previous_inertia);
    let empty_rank = static_shared!(TRAIN_EMPTY_RANK: [u32; 256]);
    // SAFETY: every thread reaches every barrier (stop is uniform); thread t < c alone writes
    // empty_rank[t]; the sums, counts and order hold c·ds, c and train_order_len(c) elements,
    // and this block alone touches this (kv head, sub-space)'s during the launch.
    unsafe {
        if !stop {
            let count = if t < p.c { *part.counts.add(t as usize) } else { 0 };
            // The e-th empty centroid (from 1, in index order) takes rank c + e - 1.
            let (before, _) = block_exclusive_sum((t < p.c && count == 0) as u32);
            if t < p.c {
                empty_rank.set(t as usize, before + 1);
            }
            device::sync_threads();
            let scale = pow2_f64(-state.sum_exp);
            for i in device::strided(t, elements, threads) {
                let centroid = i / ds;
                let count = *part.counts.add(centroid as usize);
                let value = if count == 0 {
                    let seed = *part.order.add(((p.c + empty_rank.get(centroid as usize) - 1) % state.pooled) as usize);
                    key_element(p, seed, kv, j, i % ds)
                } else {
                    ((*part.sums.add(i as usize) as i64) as f64 * scale / count as f64) as f32
                };
                part.set_centroid(p, subspace, i as usize, value);
            }
        }
        // Every read of the state, sums and counts precedes their reset.
        device::sync_threads();
        for i in device::strided(t, elements, threads) {
            *part.sums.add(i as usize) = 0;
        }
        for i in device::strided(t, p.c, threads) {
            *part.counts.add(i as usize) = 0;
        }
        if t == 0 {
            *part.state =
                TrainState { inertia: 0, previous_inertia: inertia, steps, done: stop as u32, changed: 0, ..state };
        }
    }
}

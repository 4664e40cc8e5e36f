//! Encoding keys against PQ codebooks (the indexer's contract, `pqtopk::index`): a key's code in
//! sub-space `j` is its nearest centroid there by squared L2 distance, ties to the smaller
//! centroid index. It knows nothing of scoring or selection.

use crate::device::{self, Shared};
use crate::score::{self, BF16, F16, F32};
use pqtopk_abi::{AdvanceParams, DType, ENCODE_KEYS_PER_BLOCK, EncodeParams, encode_shared_bytes};

/// One (kv head, sub-space)'s centroids and a chunk of up to `ENCODE_KEYS_PER_BLOCK` keys'
/// sub-vectors, staged in shared memory as f32 rows of `d/m + 1`: the padding spreads the rows
/// that a warp's threads read at once (eight keys', four centroids') over the banks.
#[derive(Clone, Copy)]
pub struct Staged {
    centroids: Shared<f32>,
    keys: Shared<f32>,
    stride: usize,
    c: u32,
    ds: u32,
}

/// A key's nearest centroid, as the key's threads found it.
pub struct Nearest {
    /// The key's slot in the staged chunk (`ENCODE_KEYS_PER_BLOCK` or more: no key).
    pub key: u32,
    /// Whether this thread is the first of the key's threads (the one that writes).
    pub leader: bool,
    pub centroid: u32,
    pub distance: f32,
}

impl Staged {
    /// The rows in `shared`, which holds `encode_shared_bytes(c, ds)` bytes.
    ///
    /// # Safety
    /// As stated.
    pub unsafe fn in_shared(shared: Shared<f32>, c: u32, ds: u32) -> Staged {
        let stride = (ds + 1) as usize;
        // SAFETY: c rows of centroids, then ENCODE_KEYS_PER_BLOCK rows of keys.
        let keys = unsafe { shared.tail::<f32>(c as usize * stride, ENCODE_KEYS_PER_BLOCK as usize * stride) };
        Staged { centroids: shared, keys, stride, c, ds }
    }

    /// Stages the centroids: `element(i)` is element `i` of the `[c, ds]` codebook.
    ///
    /// # Safety
    /// All threads of the block call it; no thread reads the centroids before the next barrier.
    pub unsafe fn stage_centroids(self, element: impl Fn(usize) -> f32) {
        let (t, threads) = (device::thread_idx(), device::block_dim());
        for i in (t..self.c * self.ds).step_by(threads as usize) {
            // SAFETY: inside the rows; one writer per element.
            unsafe {
                self.centroids.set((i / self.ds) as usize * self.stride + (i % self.ds) as usize, element(i as usize))
            };
        }
    }

    /// Stages `in_chunk ≤ ENCODE_KEYS_PER_BLOCK` keys: `element(key, e)` is element `e` of key
    /// `key`'s sub-vector.
    ///
    /// # Safety
    /// All threads of the block call it; no thread touches the key rows between the barrier
    /// before it and the one after it.
    pub unsafe fn stage_keys(self, in_chunk: u32, element: impl Fn(u32, u32) -> f32) {
        let (t, threads) = (device::thread_idx(), device::block_dim());
        for i in (t..in_chunk * self.ds).step_by(threads as usize) {
            let (key, e) = (i / self.ds, i % self.ds);
            // SAFETY: inside the rows; one writer per element.
            unsafe { self.keys.set(key as usize * self.stride + e as usize, element(key, e)) };
        }
    }

    /// Element `e` of staged key `key`.
    ///
    /// # Safety
    /// After the barrier that follows the keys' staging; `key < in_chunk`, `e < ds`.
    pub unsafe fn key_element(self, key: u32, e: u32) -> f32 {
        // SAFETY: the caller's promise.
        unsafe { self.keys.get(key as usize * self.stride + e as usize) }
    }

    /// The nearest centroid of each of the first `in_chunk` staged keys by squared L2 distance
    /// (in f32), ties to the smaller index. A NaN distance never wins; a key with no finite
    /// distance gets centroid 0 (distance +∞), as in the reference.
    ///
    /// # Safety
    /// All threads of the block call it convergently (`ENCODE_THREADS` of them), after the
    /// barrier that follows the staging.
    pub unsafe fn nearest(self, in_chunk: u32) -> Nearest {
        let t = device::thread_idx();
        let per_key = device::block_dim() / ENCODE_KEYS_PER_BLOCK;
        let (key, part) = (t / per_key, t % per_key);
        // Each thread scans centroids part, part + per_key, …: ascending, so a strict comparison
        // keeps the smallest index among equal distances, as does the merge below.
        let mut best = (f32::INFINITY, 0u32);
        if key < in_chunk {
            for centroid in (part..self.c).step_by(per_key as usize) {
                let mut distance = 0.0;
                for e in 0..self.ds as usize {
                    // SAFETY: inside the staged rows.
                    let diff = unsafe {
                        self.keys.get(key as usize * self.stride + e)
                            - self.centroids.get(centroid as usize * self.stride + e)
                    };
                    distance += diff * diff;
                }
                if distance < best.0 {
                    best = (distance, centroid);
                }
            }
        }
        // The per_key threads of a key are consecutive lanes of one warp.
        let mut mask = 1;
        while mask < per_key {
            // SAFETY: every lane of the warp reaches the shuffles (the caller's promise).
            let (other, other_centroid) =
                unsafe { (f32::from_bits(device::shfl_xor(best.0.to_bits(), mask)), device::shfl_xor(best.1, mask)) };
            if other < best.0 || (other == best.0 && other_centroid < best.1) {
                best = (other, other_centroid);
            }
            mask *= 2;
        }
        Nearest { key, leader: key < in_chunk && part == 0, centroid: best.1, distance: best.0 }
    }
}

/// Encodes one block's chunk of keys in one sub-space (see the `pq_encode` entry point).
///
/// # Safety
/// As `pq_encode`.
pub unsafe fn encode_block(p: &EncodeParams) {
    let ds = p.d / p.m;
    let chunks = p.keys_per_entry.div_ceil(ENCODE_KEYS_PER_BLOCK);
    let block = device::block_idx().0;
    let (chunk, rest) = (block % chunks, block / chunks);
    let (j, bi_kv) = (rest % p.m, rest / p.m);
    let (bi, kv) = (bi_kv / p.hkv, bi_kv % p.hkv);
    // SAFETY: lengths, where given, hold b u32.
    let first_position =
        if p.lengths == 0 { 0 } else { unsafe { device::load_nc_u32((p.lengths as *const u32).add(bi as usize)) } };
    if p.lengths != 0 && first_position as u64 + p.keys_per_entry as u64 > p.n as u64 {
        // The entry has no room: the whole block leaves before any barrier.
        return;
    }
    // SAFETY: launched with encode_shared_bytes(c, ds).
    let staged =
        unsafe { Staged::in_shared(device::dynamic_shared(encode_shared_bytes(p.c, ds) as usize / 4), p.c, ds) };
    let first_key = chunk * ENCODE_KEYS_PER_BLOCK;
    let in_chunk = (p.keys_per_entry - first_key).min(ENCODE_KEYS_PER_BLOCK);
    let codebook = ((kv * p.m + j) * p.c * ds) as usize;
    // Offsets in usize: a cache may hold more than 2^32 keys' elements.
    let entry_head = bi_kv as usize;
    let key_row = |key: u32| (entry_head * p.keys_per_entry as usize + (first_key + key) as usize) * p.d as usize;
    // SAFETY: every index lies inside the codebooks and keys the caller promised; the barrier
    // orders the staging before the reads; every thread reaches it and the shuffles.
    let nearest = unsafe {
        staged.stage_centroids(|i| load(p.codebook_dtype, p.codebooks, codebook + i));
        staged.stage_keys(in_chunk, |key, e| load(p.key_dtype, p.keys, key_row(key) + (j * ds + e) as usize));
        device::sync_threads();
        staged.nearest(in_chunk)
    };
    if nearest.leader {
        let position = first_position + first_key + nearest.key;
        let at = (entry_head * p.n as usize + position as usize) * p.m as usize + j as usize;
        // SAFETY: position < n (encode: keys_per_entry = n; append: checked above).
        unsafe { *(p.codes as *mut u8).add(at) = nearest.centroid as u8 };
    }
}

/// Element `i` of a buffer of `dtype`, as f32.
///
/// # Safety
/// `base` holds more than `i` elements of `dtype`, unchanged during the launch.
#[inline(always)]
pub unsafe fn load(dtype: u32, base: u64, i: usize) -> f32 {
    use score::Element;
    // SAFETY: forwarded to the caller.
    unsafe {
        match dtype {
            d if d == DType::F32 as u32 => F32::load(base, i),
            d if d == DType::F16 as u32 => F16::load(base, i),
            _ => BF16::load(base, i),
        }
    }
}

/// Advances each batch entry's length by `t` where it stays within `n` (see
/// `pq_advance_lengths`).
///
/// # Safety
/// As `pq_advance_lengths`.
pub unsafe fn advance_lengths(p: &AdvanceParams) {
    let bi = device::block_idx().0 * device::block_dim() + device::thread_idx();
    if bi < p.b {
        let length = (p.lengths as *mut u32).wrapping_add(bi as usize);
        // SAFETY: bi < b, and lengths holds b u32 that no other thread of the launch touches.
        unsafe {
            if *length as u64 + p.t as u64 <= p.n as u64 {
                *length += p.t;
            }
        }
    }
}

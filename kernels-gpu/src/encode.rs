//! Encoding keys against PQ codebooks (the indexer's contract, `pqtopk::index`): a key's code in
//! sub-space `j` is its nearest centroid there by squared L2 distance, ties to the smaller
//! centroid index. It knows nothing of scoring or selection.

use crate::device::{self, Shared};
use crate::score::{self, BF16, F16, F32};
use pqtopk_abi::{AdvanceParams, DType, ENCODE_KEYS_PER_BLOCK, EncodeParams};

/// Encodes one block's chunk of keys in one sub-space (see the `pq_encode` entry point).
///
/// # Safety
/// As `pq_encode`.
pub unsafe fn encode_block(p: &EncodeParams) {
    let ds = p.d / p.m;
    // Padded rows: the threads of a warp read eight different keys' rows (and four centroids'
    // rows) at once, which an unpadded power-of-two stride would put in one bank.
    let stride = (ds + 1) as usize;
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
    let (t, threads) = (device::thread_idx(), device::block_dim());
    // SAFETY: launched with encode_shared_bytes(c, ds): c rows of centroids, then
    // ENCODE_KEYS_PER_BLOCK rows of keys.
    let (centroids, keys) = unsafe {
        let centroids: Shared<f32> = device::dynamic_shared(p.c as usize * stride);
        (centroids, centroids.tail::<f32>(p.c as usize * stride, ENCODE_KEYS_PER_BLOCK as usize * stride))
    };
    let first_key = chunk * ENCODE_KEYS_PER_BLOCK;
    let in_chunk = (p.keys_per_entry - first_key).min(ENCODE_KEYS_PER_BLOCK);
    let codebook = ((kv * p.m + j) * p.c * ds) as usize;
    // Offsets in usize: a cache may hold more than 2^32 keys' elements.
    let entry_head = bi_kv as usize;
    let key_row = |key: u32| (entry_head * p.keys_per_entry as usize + (first_key + key) as usize) * p.d as usize;
    // SAFETY: every index lies inside the codebooks and keys the caller promised; one writer
    // per shared element, and the barrier orders the staging before the reads.
    unsafe {
        for i in (t..p.c * ds).step_by(threads as usize) {
            let element = load(p.codebook_dtype, p.codebooks, codebook + i as usize);
            centroids.set((i / ds) as usize * stride + (i % ds) as usize, element);
        }
        for i in (t..in_chunk * ds).step_by(threads as usize) {
            let (key, e) = (i / ds, i % ds);
            keys.set(
                key as usize * stride + e as usize,
                load(p.key_dtype, p.keys, key_row(key) + (j * ds + e) as usize),
            );
        }
        device::sync_threads();
    }
    let per_key = threads / ENCODE_KEYS_PER_BLOCK;
    let (key, part) = (t / per_key, t % per_key);
    // Each thread scans centroids part, part + per_key, …: ascending, so a strict comparison
    // keeps the smallest index among equal distances, as does the merge below. A NaN distance
    // never wins; a key with no finite distance gets centroid 0, as in the reference.
    let mut best = (f32::INFINITY, 0u32);
    if key < in_chunk {
        for centroid in (part..p.c).step_by(per_key as usize) {
            let mut distance = 0.0;
            for e in 0..ds as usize {
                // SAFETY: inside the staged rows.
                let diff =
                    unsafe { keys.get(key as usize * stride + e) - centroids.get(centroid as usize * stride + e) };
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
        // SAFETY: every lane of the warp reaches the shuffles (no lane returned after the barrier).
        let (other, other_centroid) =
            unsafe { (f32::from_bits(device::shfl_xor(best.0.to_bits(), mask)), device::shfl_xor(best.1, mask)) };
        if other < best.0 || (other == best.0 && other_centroid < best.1) {
            best = (other, other_centroid);
        }
        mask *= 2;
    }
    if key < in_chunk && part == 0 {
        let position = first_position + first_key + key;
        let at = (entry_head * p.n as usize + position as usize) * p.m as usize + j as usize;
        // SAFETY: position < n (encode: keys_per_entry = n; append: checked above).
        unsafe { *(p.codes as *mut u8).add(at) = best.1 as u8 };
    }
}

/// Element `i` of a buffer of `dtype`, as f32.
///
/// # Safety
/// `base` holds more than `i` elements of `dtype`, unchanged during the launch.
#[inline(always)]
unsafe fn load(dtype: u32, base: u64, i: usize) -> f32 {
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

//! Encoding keys against PQ codebooks (the indexer's contract, `pqtopk::index`): a key's code in
//! sub-space `j` is its nearest centroid there by squared L2 distance, ties to the smaller
//! centroid index. It knows nothing of scoring or selection.

use crate::device::{self, Shared};
use crate::score::{self, BF16, F16, F32};
use pqtopk_abi::{AdvanceParams, DType, ENCODE_KEYS_PER_BLOCK, EncodeParams, encode_row_floats, encode_shared_bytes};

/// A key's sub-vector in registers (the register path), zero-padded to `W` groups of four.
pub type KeyQuads<const W: usize> = [[f32; 4]; W];

/// Four f32 that move as one 16-byte shared-memory access.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Quad([f32; 4]);

/// One (kv head, sub-space)'s centroids in shared memory, searched by `ENCODE_KEYS_PER_BLOCK` keys
/// at a time, `block_dim / ENCODE_KEYS_PER_BLOCK` consecutive threads per key, each thread
/// scanning every so many centroids.
///
/// `W > 0` (sub-spaces of at most `4·W` elements, `register_width`): each thread holds its key in
/// registers and reads the centroids as rows of `W + 1` quads, every lane of a warp the same few
/// rows, so one 16-byte read serves four elements of eight keys. `W = 0` (wider sub-spaces): the
/// centroids and a chunk of keys are staged as f32 rows of `d/m + 1`, read element by element.
/// The padding of either spreads the rows that a warp reads at once over the banks. Both sum a
/// distance's terms in element order, so both give the same bits.
#[derive(Clone, Copy)]
pub struct Centroids<const W: usize> {
    shared: Shared<f32>,
    c: u32,
    ds: u32,
}

/// A key's nearest centroid, as the key's threads found it (each of them holds the result).
pub struct Nearest {
    /// The key's slot in the chunk (`ENCODE_KEYS_PER_BLOCK` or more: no key).
    pub key: u32,
    /// Which of the key's threads this is.
    pub part: u32,
    pub centroid: u32,
    pub distance: f32,
}

impl Nearest {
    /// Whether this thread is the first of a key's threads (the one that writes).
    pub fn leader(&self, in_chunk: u32) -> bool {
        self.key < in_chunk && self.part == 0
    }
}

impl<const W: usize> Centroids<W> {
    /// f32 per row.
    fn stride(ds: u32) -> usize {
        encode_row_floats(ds) as usize
    }

    /// A row's elements, the elements written (the register path's whole groups) and its stride.
    fn row(ds: u32) -> (u32, u32, usize) {
        (ds, if W == 0 { ds } else { 4 * W as u32 }, Self::stride(ds))
    }

    /// The staged keys' rows, after the centroids'.
    fn keys(self) -> Shared<f32> {
        let rows = self.c as usize * Self::stride(self.ds);
        // SAFETY: encode_shared_bytes(c, ds) holds c centroid rows and ENCODE_KEYS_PER_BLOCK key
        // rows of this stride.
        unsafe { self.shared.tail::<f32>(rows, ENCODE_KEYS_PER_BLOCK as usize * Self::stride(self.ds)) }
    }

    /// Stages the centroids into `shared` (`encode_shared_bytes(c, ds)` bytes, 16-byte aligned):
    /// `element(i)` is element `i` of the `[c, ds]` codebook.
    ///
    /// # Safety
    /// As stated; `W == register_width(ds)`; all threads of the block call it, and no thread
    /// reads the centroids before the next barrier.
    pub unsafe fn stage(shared: Shared<f32>, c: u32, ds: u32, element: impl Fn(usize) -> f32) -> Self {
        // SAFETY: forwarded.
        unsafe { stage_rows(shared, c, Self::row(ds), |centroid, e| element((centroid * ds + e) as usize)) };
        Centroids { shared, c, ds }
    }

    /// Stages a chunk of `in_chunk ≤ ENCODE_KEYS_PER_BLOCK` keys: `element(key, e)` is element
    /// `e` of key `key`'s sub-vector.
    ///
    /// # Safety
    /// All threads of the block call it; no thread touches the key rows between the barrier
    /// before it and the one after it.
    pub unsafe fn stage_keys(self, in_chunk: u32, element: impl Fn(u32, u32) -> f32) {
        // SAFETY: forwarded.
        unsafe { stage_rows(self.keys(), in_chunk, Self::row(self.ds), element) };
    }

    /// This thread's staged key in registers (`W > 0`; zero-padded).
    ///
    /// # Safety
    /// After the barrier that follows the keys' staging.
    pub unsafe fn load_key(self) -> KeyQuads<W> {
        let mut key = [[0.0; 4]; W];
        let row = Self::slot() as usize * Self::stride(self.ds) / 4;
        // SAFETY: the rows are whole 16-byte groups from a 16-byte aligned start (W > 0), inside
        // the staged keys.
        let quads = unsafe { self.keys().tail::<Quad>(0, ENCODE_KEYS_PER_BLOCK as usize * (W + 1)) };
        for (w, quad) in key.iter_mut().enumerate() {
            // SAFETY: as above.
            *quad = unsafe { quads.get(row + w) }.0;
        }
        key
    }

    /// This thread's key slot in the chunk.
    fn slot() -> u32 {
        device::thread_idx() / (device::block_dim() / ENCODE_KEYS_PER_BLOCK)
    }

    /// Element `e` of staged key `key`.
    ///
    /// # Safety
    /// After the barrier that follows the keys' staging; `key < in_chunk`, `e < ds`.
    pub unsafe fn key_element(self, key: u32, e: u32) -> f32 {
        // SAFETY: the caller's promise.
        unsafe { self.keys().get(key as usize * Self::stride(self.ds) + e as usize) }
    }

    /// The nearest of centroids `part`, `part + per_key`, … to `key` (+∞ and 0 where none is
    /// finite), `N` centroids at a time: each an independent chain of dependent adds; a centroid
    /// past the last is computed on the last row and ignored.
    ///
    /// # Safety
    /// `quads` are the staged rows.
    #[inline(always)]
    unsafe fn scan<const N: usize>(
        self,
        quads: &Shared<Quad>,
        key: &KeyQuads<W>,
        part: u32,
        per_key: u32,
    ) -> (f32, u32) {
        let mut best = (f32::INFINITY, 0u32);
        let mut first = part;
        while first < self.c {
            let mut rows = [0usize; N];
            for (chain, row) in rows.iter_mut().enumerate() {
                *row = (first + chain as u32 * per_key).min(self.c - 1) as usize * (W + 1);
            }
            let mut distances = [0.0f32; N];
            for (w, quad) in key.iter().enumerate() {
                // SAFETY: inside the staged rows, 16-byte aligned (the caller's promise).
                let centroids = rows.map(|row| unsafe { quads.get(row + w) }.0);
                for i in 0..4 {
                    for (distance, centroid) in distances.iter_mut().zip(&centroids) {
                        let diff = quad[i] - centroid[i];
                        *distance += diff * diff;
                    }
                }
            }
            // Ascending indices: a strict comparison keeps the smaller on a tie.
            for (chain, &distance) in distances.iter().enumerate() {
                let centroid = first + chain as u32 * per_key;
                if centroid < self.c && distance < best.0 {
                    best = (distance, centroid);
                }
            }
            first += N as u32 * per_key;
        }
        best
    }

    /// The nearest centroid of each of the first `in_chunk` keys (`key` in registers for
    /// `W > 0`, the staged chunk for `W = 0`) by squared L2 distance (in f32), ties to the
    /// smaller index. A NaN distance never wins; a key with no finite distance gets centroid 0
    /// (distance +∞), as in the reference.
    ///
    /// # Safety
    /// All threads of the block call it convergently, after the barrier that follows the
    /// staging.
    pub unsafe fn nearest(self, in_chunk: u32, key: &KeyQuads<W>) -> Nearest {
        let per_key = device::block_dim() / ENCODE_KEYS_PER_BLOCK;
        let (slot, part) = (Self::slot(), device::thread_idx() % per_key);
        let stride = Self::stride(self.ds);
        // Each thread scans centroids part, part + per_key, …: ascending, so a strict comparison
        // keeps the smallest index among equal distances, as does the merge below.
        let mut best = (f32::INFINITY, 0u32);
        if slot < in_chunk && W == 0 {
            let keys = self.keys();
            for centroid in device::strided(part, self.c, per_key as usize) {
                let row = centroid as usize * stride;
                let mut distance = 0.0;
                for e in 0..self.ds as usize {
                    // SAFETY: inside the staged rows.
                    let diff = unsafe { keys.get(slot as usize * stride + e) - self.shared.get(row + e) };
                    distance += diff * diff;
                }
                if distance < best.0 {
                    best = (distance, centroid);
                }
            }
        } else if slot < in_chunk {
            // SAFETY: the rows are 16-byte aligned (stride a multiple of four f32, from a 16-byte
            // aligned start) and inside the staged centroids.
            let quads = unsafe { self.shared.tail::<Quad>(0, self.c as usize * (W + 1)) };
            // Two independent chains of dependent adds hide their latency; at the widest keys
            // one, as two would leave too little room to keep the loop unrolled (the key's
            // registers would move to local memory).
            // SAFETY: the staged rows.
            best = unsafe {
                if W <= 8 {
                    self.scan::<2>(&quads, key, part, per_key)
                } else {
                    self.scan::<1>(&quads, key, part, per_key)
                }
            };
        }
        // The per_key threads of a key are consecutive lanes of one warp; every one ends with
        // the key's best.
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
        Nearest { key: slot, part, centroid: best.1, distance: best.0 }
    }
}

/// Writes `rows` rows of `width ≥ ds` elements at `stride ≥ width` f32 apart: `element(row, e)`
/// for `e < ds`, zeros after it (so that a distance's extra terms are exactly 0).
///
/// # Safety
/// `shared` holds `rows · stride` f32; all threads of the block call it, and nothing else
/// touches those rows between the barriers around it.
unsafe fn stage_rows(
    shared: Shared<f32>,
    rows: u32,
    (ds, width, stride): (u32, u32, usize),
    element: impl Fn(u32, u32) -> f32,
) {
    let (t, threads) = (device::thread_idx(), device::block_dim() as usize);
    for i in device::strided(t, rows * width, threads) {
        let (row, e) = (i / width, i % width);
        let value = if e < ds { element(row, e) } else { 0.0 };
        // SAFETY: inside the rows; one writer per element.
        unsafe { shared.set(row as usize * stride + e as usize, value) };
    }
}

/// Encodes one block's chunk of keys in one sub-space, `W = register_width(d/m)` (see the
/// `pq_encode_w*` entry points).
///
/// # Safety
/// As `pq_encode`.
#[inline(always)]
pub unsafe fn encode_chunk<const W: usize>(p: &EncodeParams) {
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
    let first_key = chunk * ENCODE_KEYS_PER_BLOCK;
    let in_chunk = (p.keys_per_entry - first_key).min(ENCODE_KEYS_PER_BLOCK);
    let codebook = ((kv * p.m + j) * p.c * ds) as usize;
    // Offsets in usize: a cache may hold more than 2^32 keys' elements.
    let entry_head = bi_kv as usize;
    let key_row = |key: u32| (entry_head * p.keys_per_entry as usize + (first_key + key) as usize) * p.d as usize;
    let key_element = |key: u32, e: u32| {
        // SAFETY: inside the keys the caller promised (key < in_chunk, e < ds).
        unsafe { load(p.key_dtype, p.keys, key_row(key) + (j * ds + e) as usize) }
    };
    // SAFETY: launched with encode_shared_bytes(c, ds); every index lies inside the codebooks
    // and keys the caller promised; the barrier orders the staging before the reads; every
    // thread reaches it and the shuffles.
    let nearest = unsafe {
        let shared = device::dynamic_shared(encode_shared_bytes(p.c, ds) as usize / 4);
        let centroids = Centroids::<W>::stage(shared, p.c, ds, |i| load(p.codebook_dtype, p.codebooks, codebook + i));
        centroids.stage_keys(in_chunk, key_element);
        device::sync_threads();
        centroids.nearest(in_chunk, &centroids.load_key())
    };
    if nearest.leader(in_chunk) {
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

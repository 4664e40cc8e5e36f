//! Scoring: product-quantized keys against queries, through per-row lookup tables, turned into
//! the 64-bit selection keys that `select` ranks. This module knows PQ and metrics; `select`
//! knows neither.

use crate::device::{self, Shared};
use pqtopk_abi::{DType, MAX_ROWS_PER_BLOCK, Metric, TopkParams};

/// Where a scoring item's rows and keys lie: output rows `row0..row0 + rows` of one (batch, kv
/// head), keys `key0..key_end`.
#[derive(Clone, Copy)]
pub struct Tile {
    /// Row tile within its (batch, kv head).
    pub tile: u32,
    pub batch: u32,
    pub kv_head: u32,
    /// First output row of the tile, global.
    pub row0: u32,
    pub rows: u32,
    /// First output row of this (batch, kv head), global.
    pub kv_row0: u32,
    pub key0: u32,
    pub key_end: u32,
}

impl Tile {
    /// Scoring item `item`, enumerated key chunk fastest, then row tile, then batch·kv head.
    pub fn of_item(p: &TopkParams, item: u32) -> Tile {
        let chunk = item % p.key_chunks;
        let tile = (item / p.key_chunks) % p.row_tiles;
        let bkv = item / (p.key_chunks * p.row_tiles);
        let kv_row0 = bkv * p.rows_per_kv;
        let first = tile * p.rows_per_block;
        let key0 = chunk * p.keys_per_block;
        Tile {
            tile,
            batch: bkv / p.hkv,
            kv_head: bkv % p.hkv,
            row0: kv_row0 + first,
            rows: p.rows_per_block.min(p.rows_per_kv - first),
            kv_row0,
            key0,
            key_end: (key0 + p.keys_per_block).min(p.n),
        }
    }

    /// Keys at or past this index are never selected.
    pub fn valid_keys(&self, p: &TopkParams) -> u32 {
        valid_keys(p, self.batch)
    }
}

pub fn valid_keys(p: &TopkParams, batch: u32) -> u32 {
    if p.n_valid == 0 {
        p.n
    } else {
        // SAFETY: the host guarantees `n_valid` holds b u32 values, unchanged during the launch.
        unsafe { device::load_nc_u32((p.n_valid as *const u32).add(batch as usize)) }.min(p.n)
    }
}

/// An element type of queries or codebooks, read as f32.
trait Element {
    /// Element `i`.
    ///
    /// # Safety
    /// `base` holds at least `i + 1` elements, unchanged during the launch.
    unsafe fn load(base: u64, i: usize) -> f32;

    /// Elements `i..i + 4`.
    ///
    /// # Safety
    /// `base` holds at least `i + 4` elements, unchanged during the launch; `i % 4 == 0` and
    /// `base` is 16-byte aligned.
    unsafe fn load4(base: u64, i: usize) -> [f32; 4];
}

struct F32;
struct F16;
struct BF16;

impl Element for F32 {
    unsafe fn load(base: u64, i: usize) -> f32 {
        // SAFETY: forwarded to the caller.
        f32::from_bits(unsafe { device::load_nc_u32((base as *const u32).add(i)) })
    }
    unsafe fn load4(base: u64, i: usize) -> [f32; 4] {
        // SAFETY: forwarded to the caller; 4 f32 at a multiple of 4 are 16-byte aligned.
        unsafe { device::load_nc_v4((base as *const u32).add(i) as *const [u32; 4]) }.map(f32::from_bits)
    }
}

/// Loads four 16-bit elements and widens them with `widen`.
///
/// # Safety
/// As [`Element::load4`].
unsafe fn load4_halves(base: u64, i: usize, widen: fn(u16) -> f32) -> [f32; 4] {
    // SAFETY: forwarded to the caller; 4 halves at a multiple of 4 are 8-byte aligned.
    let [lo, hi] = unsafe { device::load_nc_v2((base as *const u16).add(i) as *const [u32; 2]) };
    [widen(lo as u16), widen((lo >> 16) as u16), widen(hi as u16), widen((hi >> 16) as u16)]
}

impl Element for F16 {
    unsafe fn load(base: u64, i: usize) -> f32 {
        // SAFETY: forwarded to the caller.
        device::f16_to_f32(unsafe { device::load_nc_u16((base as *const u16).add(i)) })
    }
    unsafe fn load4(base: u64, i: usize) -> [f32; 4] {
        // SAFETY: forwarded to the caller.
        unsafe { load4_halves(base, i, device::f16_to_f32) }
    }
}

impl Element for BF16 {
    unsafe fn load(base: u64, i: usize) -> f32 {
        // SAFETY: forwarded to the caller.
        device::bf16_to_f32(unsafe { device::load_nc_u16((base as *const u16).add(i)) })
    }
    unsafe fn load4(base: u64, i: usize) -> [f32; 4] {
        // SAFETY: forwarded to the caller.
        unsafe { load4_halves(base, i, device::bf16_to_f32) }
    }
}

/// Shared-memory elements of one row's lookup table.
pub fn lut_len(p: &TopkParams) -> usize {
    (p.m * p.c) as usize
}

/// Fills `lut[r·m·c + j·c + code]` with sub-space `j`'s partial score of centroid `code` for the
/// tile's row `r`: `q_j · C_j[code]` or `‖q_j − C_j[code]‖²`, summed over the G query heads in
/// group mode. Each thread owns (j, code) pairs and reads each centroid once for all rows.
/// Ends with a barrier.
///
/// # Safety
/// All threads of the block call it; `lut` holds `tile.rows · lut_len(p)` elements; the tensors
/// in `p` have the shapes it states.
pub unsafe fn build_luts(p: &TopkParams, tile: &Tile, lut: Shared<f32>) {
    // SAFETY (all arms): forwarded to the caller. One monomorphized loop per dtype pair, so the
    // element loop carries no dtype dispatch.
    unsafe {
        match p.query_dtype {
            q if q == DType::F32 as u32 => build_luts_for::<F32>(p, tile, lut),
            q if q == DType::F16 as u32 => build_luts_for::<F16>(p, tile, lut),
            _ => build_luts_for::<BF16>(p, tile, lut),
        }
        device::sync_threads();
    }
}

/// # Safety
/// As [`build_luts`].
unsafe fn build_luts_for<Q: Element>(p: &TopkParams, tile: &Tile, lut: Shared<f32>) {
    // SAFETY: forwarded.
    unsafe {
        match p.codebook_dtype {
            c if c == DType::F32 as u32 => build_luts_typed::<Q, F32>(p, tile, lut),
            c if c == DType::F16 as u32 => build_luts_typed::<Q, F16>(p, tile, lut),
            _ => build_luts_typed::<Q, BF16>(p, tile, lut),
        }
    }
}

/// # Safety
/// As [`build_luts`].
#[inline(always)]
unsafe fn build_luts_typed<Q: Element, C: Element>(p: &TopkParams, tile: &Tile, lut: Shared<f32>) {
    let g = p.h / p.hkv;
    let (d, c, ds) = (p.d as usize, p.c as usize, (p.d / p.m) as usize);
    let per_row = lut_len(p);
    let l2 = p.metric == Metric::L2 as u32;
    let partial = |q: f32, c: f32| if l2 { (q - c) * (q - c) } else { q * c };
    // Query offsets of each row's first head, and the heads per row.
    let heads = if p.group != 0 { g } else { 1 };
    let mut query_row = [0usize; MAX_ROWS_PER_BLOCK as usize];
    for (r, q) in query_row.iter_mut().enumerate() {
        let local = tile.row0 - tile.kv_row0 + r as u32;
        let (head, s) =
            if p.group != 0 { (tile.kv_head * g, local) } else { (tile.kv_head * g + local / p.sq, local % p.sq) };
        *q = ((tile.batch * p.h + head) * p.sq + s) as usize * d;
    }
    let head_stride = p.sq as usize * d;
    let vector = ds % 4 == 0;
    let width = if vector { 4 } else { 1 };
    let threads = device::block_dim() as usize;
    // Each thread takes PAIRS (j, code) pairs at a time, so that their centroid loads (from L2)
    // are in flight together rather than one round trip after another.
    const PAIRS: usize = 4;
    // u32 index math: a 64-bit division is a long software routine on the GPU.
    let mut first = device::thread_idx() as usize;
    while first < per_row {
        let mut centroid = [0usize; PAIRS];
        let mut query_col = [0usize; PAIRS];
        for (k, (cen, col)) in centroid.iter_mut().zip(query_col.iter_mut()).enumerate() {
            let e = (first + k * threads).min(per_row - 1) as u32;
            let (j, code) = ((e / p.c) as usize, (e % p.c) as usize);
            *cen = ((tile.kv_head as usize * p.m as usize + j) * c + code) * ds;
            *col = j * ds;
        }
        let mut acc = [[0.0f32; MAX_ROWS_PER_BLOCK as usize]; PAIRS];
        let mut t = 0;
        while t < ds {
            let mut cv = [[0.0f32; 4]; PAIRS];
            for (k, v) in cv.iter_mut().enumerate() {
                // SAFETY: the centroid's ds elements lie inside the codebooks; vector loads only
                // when ds % 4 == 0, so offsets are multiples of 4.
                *v = unsafe {
                    if vector {
                        C::load4(p.codebooks, centroid[k] + t)
                    } else {
                        [C::load(p.codebooks, centroid[k] + t), 0.0, 0.0, 0.0]
                    }
                };
            }
            for r in 0..MAX_ROWS_PER_BLOCK as usize {
                if r >= tile.rows as usize {
                    break;
                }
                for head in 0..heads as usize {
                    for k in 0..PAIRS {
                        let q = query_row[r] + head * head_stride + query_col[k] + t;
                        // SAFETY: inside the queries tensor; d = m·ds, so q % 4 == 0 when vector.
                        let qv = unsafe {
                            if vector { Q::load4(p.queries, q) } else { [Q::load(p.queries, q), 0.0, 0.0, 0.0] }
                        };
                        for u in 0..4 {
                            if u < width {
                                acc[k][r] += partial(qv[u], cv[k][u]);
                            }
                        }
                    }
                }
            }
            t += width;
        }
        for (k, acc) in acc.iter().enumerate() {
            let e = first + k * threads;
            for (r, &a) in acc.iter().enumerate() {
                if e < per_row && r < tile.rows as usize {
                    // SAFETY: r·per_row + e < rows·per_row ≤ lut.len(); each element has one
                    // writer.
                    unsafe { lut.set(r * per_row + e, a) };
                }
            }
        }
        first += PAIRS * threads;
    }
}

/// Scores of key `key` against every row of the tile: `Σ_j lut[r][j][code_j]`, j ascending.
/// Codes are clamped below `c`, so a corrupt code reads inside the table (its score is then
/// unspecified; `pq_count_bad_codes` reports such codes). Slots past `tile.rows` are 0.
///
/// # Safety
/// `key < n`; `luts` holds `tile.rows` tables of `lut_len(p)` entries, written before the last
/// barrier; `tile` lies inside the shapes in `p`.
#[inline(always)]
pub unsafe fn score_rows(
    p: &TopkParams,
    tile: &Tile,
    key: u32,
    luts: Shared<f32>,
) -> [f32; MAX_ROWS_PER_BLOCK as usize] {
    let offset = ((tile.batch * p.hkv + tile.kv_head) as usize * p.n as usize + key as usize) * p.m as usize;
    let codes = (p.codes as *const u8).wrapping_add(offset);
    let (c, m) = (p.c as usize, p.m as usize);
    let mut acc = [0.0f32; MAX_ROWS_PER_BLOCK as usize];
    let mut add = |j: usize, code: u32| {
        let at = j * c + (code as usize).min(c - 1);
        for (r, a) in acc.iter_mut().enumerate() {
            if r < tile.rows as usize {
                // SAFETY: r < rows and at < m·c index inside the tile's tables.
                *a += unsafe { luts.get(r * m * c + at) };
            }
        }
    };
    if m % 4 == 0 {
        // Codes of a key are m bytes at a multiple of m, so 4-byte words are aligned.
        for w in 0..m / 4 {
            // SAFETY: the key's m code bytes are in bounds and read-only during the launch.
            let word = unsafe { device::load_nc_u32((codes as *const u32).add(w)) };
            for byte in 0..4 {
                add(4 * w + byte, (word >> (8 * byte)) & 0xff);
            }
        }
    } else {
        for j in 0..m {
            // SAFETY: as above.
            add(j, unsafe { device::load_nc_u8(codes.add(j)) } as u32);
        }
    }
    acc
}

/// The 64-bit key that orders candidates, larger is better: the score's order-preserving bits
/// (negated for L2, where smaller is better; NaN below every number) above the complemented key
/// index, so that ties break toward the smaller index and every key of a row is unique.
#[inline(always)]
pub fn selection_key(score: f32, index: u32, metric: u32) -> u64 {
    // `+ 0.0` turns −0 into +0: equal scores must get equal bits, so the index breaks the tie.
    let goodness = if metric == Metric::L2 as u32 { -score } else { score } + 0.0;
    let bits = goodness.to_bits();
    let ordered = if goodness.is_nan() {
        0
    } else if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    ((ordered as u64) << 32) | (!index) as u64
}

/// Key index encoded in a selection key.
#[inline(always)]
pub fn index_of(key: u64) -> u32 {
    !(key as u32)
}

/// The score encoded in a selection key (NaN for NaN scores; −0 reads back as +0).
#[inline(always)]
pub fn score_of(key: u64, metric: u32) -> f32 {
    let ordered = (key >> 32) as u32;
    let goodness = if ordered == 0 {
        f32::NAN
    } else if ordered & 0x8000_0000 != 0 {
        f32::from_bits(ordered & 0x7fff_ffff)
    } else {
        f32::from_bits(!ordered)
    };
    if metric == Metric::L2 as u32 { -goodness } else { goodness }
}

/// The score that pads rows with fewer valid keys than k: the worst possible.
pub fn padding_score(metric: u32) -> f32 {
    if metric == Metric::L2 as u32 { f32::INFINITY } else { f32::NEG_INFINITY }
}

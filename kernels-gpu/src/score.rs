//! Scoring: product-quantized keys against queries, through per-row lookup tables, turned into
//! the 64-bit selection keys that `select` ranks. This module knows PQ and metrics; `select`
//! knows neither.

use crate::device::{self, Shared};
use pqtopk_abi::{DType, Metric, TopkParams};

/// Where a block's rows and keys lie: batch·kv-head `bkv`, output rows `row0..row0 + rows`.
#[derive(Clone, Copy)]
pub struct Tile {
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
    /// The tile of the calling block: grid `(key chunks, row tiles, b·hkv)`.
    pub fn of_block(p: &TopkParams) -> Tile {
        let (chunk, tile, bkv) = device::block_idx();
        let kv_row0 = bkv * p.rows_per_kv;
        let first = tile * p.rows_per_block;
        let key0 = chunk * p.keys_per_block;
        Tile {
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

/// Element `i` of a queries or codebooks tensor, as f32.
///
/// # Safety
/// `base` must hold at least `i + 1` elements of `dtype`, unchanged during the launch.
#[inline(always)]
unsafe fn load_f32(base: u64, i: usize, dtype: u32) -> f32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        if dtype == DType::F32 as u32 {
            f32::from_bits(device::load_nc_u32((base as *const u32).add(i)))
        } else if dtype == DType::F16 as u32 {
            device::f16_to_f32(device::load_nc_u16((base as *const u16).add(i)))
        } else {
            device::bf16_to_f32(device::load_nc_u16((base as *const u16).add(i)))
        }
    }
}

/// Shared-memory elements of one row's lookup table.
pub fn lut_len(p: &TopkParams) -> usize {
    (p.m * p.c) as usize
}

/// Fills `lut[r·m·c + j·c + code]` with sub-space `j`'s partial score of centroid `code` for the
/// tile's row `r`: `q_j · C_j[code]` or `‖q_j − C_j[code]‖²`, summed over the G query heads in
/// group mode. Ends with a barrier.
///
/// # Safety
/// All threads of the block call it; `lut` holds `tile.rows · lut_len(p)` elements; the tensors
/// in `p` have the shapes it states.
pub unsafe fn build_luts(p: &TopkParams, tile: &Tile, lut: Shared<f32>) {
    let g = p.h / p.hkv;
    let ds = (p.d / p.m) as usize;
    let per_row = lut_len(p);
    let mut e = device::thread_idx() as usize;
    while e < tile.rows as usize * per_row {
        let r = (e / per_row) as u32;
        let j = (e % per_row) / p.c as usize;
        let code = e % p.c as usize;
        let centroid = ((tile.kv_head as usize * p.m as usize + j) * p.c as usize + code) * ds;
        let local = tile.row0 - tile.kv_row0 + r;
        // Query heads feeding this row and its query position s.
        let (head0, heads, s) = if p.group != 0 {
            (tile.kv_head * g, g, local)
        } else {
            (tile.kv_head * g + local / p.sq, 1, local % p.sq)
        };
        let mut acc = 0.0f32;
        for head in head0..head0 + heads {
            let q = (((tile.batch * p.h + head) * p.sq + s) as usize * p.d as usize) + j * ds;
            for t in 0..ds {
                // SAFETY: indices stay inside the shapes the host validated.
                let (qv, cv) = unsafe {
                    (load_f32(p.queries, q + t, p.query_dtype), load_f32(p.codebooks, centroid + t, p.codebook_dtype))
                };
                acc += if p.metric == Metric::L2 as u32 { (qv - cv) * (qv - cv) } else { qv * cv };
            }
        }
        // SAFETY: e < rows·per_row ≤ lut.len(); each element has one writer.
        unsafe { lut.set(e, acc) };
        e += device::block_dim() as usize;
    }
    // SAFETY: every thread of the block reaches this barrier.
    unsafe { device::sync_threads() };
}

/// Key `key`'s codes, `m` of them, clamped below `c` so that a corrupt code reads inside the
/// table (its score is then unspecified; `pq_count_bad_codes` reports such codes).
#[derive(Clone, Copy)]
pub struct Codes {
    base: *const u8,
}

impl Codes {
    /// # Safety
    /// `key < n` and `tile` lies inside the shapes in `p`.
    #[inline(always)]
    pub unsafe fn of_key(p: &TopkParams, tile: &Tile, key: u32) -> Codes {
        let offset = ((tile.batch * p.hkv + tile.kv_head) as usize * p.n as usize + key as usize) * p.m as usize;
        // SAFETY: in bounds by the caller's promise.
        Codes { base: unsafe { (p.codes as *const u8).add(offset) } }
    }

    /// Score of this key against the row whose lookup table is `lut`.
    ///
    /// # Safety
    /// `lut` holds `m·c` elements, written before the last barrier.
    #[inline(always)]
    pub unsafe fn score(self, p: &TopkParams, lut: Shared<f32>) -> f32 {
        let mut acc = 0.0f32;
        for j in 0..p.m as usize {
            // SAFETY: j < m, and the codes are read-only during the launch.
            let code = unsafe { device::load_nc_u8(self.base.add(j)) } as usize;
            // SAFETY: the clamped code keeps the index below m·c.
            acc += unsafe { lut.get(j * p.c as usize + code.min(p.c as usize - 1)) };
        }
        acc
    }
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

/// The score that pads rows with fewer valid keys than k: the worst possible.
pub fn padding_score(metric: u32) -> f32 {
    if metric == Metric::L2 as u32 { f32::INFINITY } else { f32::NEG_INFINITY }
}

//! Scoring: product-quantized keys against queries, through per-row lookup tables, turned into
//! the 64-bit selection keys that `select` ranks. This module knows PQ and metrics; `select`
//! knows neither.

use crate::device::{self, Shared};
use pqtopk_abi::{
    DType, HIST_BINS, MAX_ROWS_PER_BLOCK, Metric, RANGES_MAX_SUBSPACE_DIM, REFINE_STATE_WORDS, RowBinning,
    SPLIT_STATE_WORDS, ScoreParams, Shape, SmallParams, TablesParams, Tiling, tables_staging_floats,
};

const MAX_ROWS: usize = MAX_ROWS_PER_BLOCK as usize;
/// Table entries whose loads a lane of `pq_topk_small` issues together while it builds a row's
/// table (the `unrolled!` lists of `RowScorer` spell out 0..TABLE_BATCH). Scoring straight
/// from the codebooks takes one pair at a time: batching its pairs cost n = 1 0.8 µs and gained
/// ~3 µs only where the table now does better (perf-notes v30, call A).
const TABLE_BATCH: usize = 4;

/// Where a scoring item's rows and keys lie: output rows `row0..row0 + rows` of one (batch, kv
/// head), keys `key0..key_end`.
#[derive(Clone, Copy)]
pub struct Tile {
    /// Row tile within all tiles.
    pub index: u32,
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
    /// Row tile `tile` (enumerated tile fastest, then batch·kv head) with keys `key0..key_end`.
    pub fn of(s: &Shape, t: &Tiling, tile: u32, key0: u32, key_end: u32) -> Tile {
        let (within, bkv) = (tile % t.row_tiles, tile / t.row_tiles);
        let kv_row0 = bkv * s.rows_per_kv;
        let first = within * t.rows_per_block;
        Tile {
            index: tile,
            batch: bkv / s.hkv,
            kv_head: bkv % s.hkv,
            row0: kv_row0 + first,
            rows: t.rows_per_block.min(s.rows_per_kv - first),
            kv_row0,
            key0,
            key_end,
        }
    }

    /// Scoring item `item`, enumerated key chunk fastest, then row tile.
    pub fn of_item(p: &ScoreParams, item: u32) -> Tile {
        let key0 = (item % p.key_chunks) * p.keys_per_block;
        Tile::of(&p.shape, &p.tiling, item / p.key_chunks, key0, (key0 + p.keys_per_block).min(p.shape.n))
    }
}

/// Keys of `batch` at or past this index are never scored or selected.
pub fn valid_keys(s: &Shape, n_valid: u64, batch: u32) -> u32 {
    if n_valid == 0 {
        s.n
    } else {
        // SAFETY: the host guarantees `n_valid` holds b u32 values, unchanged during the launch.
        unsafe { device::load_nc_u32((n_valid as *const u32).add(batch as usize)) }.min(s.n)
    }
}

/// The batch of output row `row`.
pub fn batch_of_row(s: &Shape, row: u32) -> u32 {
    row / (s.rows_per_kv * s.hkv)
}

/// The offset of the query of the first head of row `local` of (batch, kv head), counting from
/// that (batch, kv head)'s first row; the heads of a group row follow `sq · d` apart.
pub fn query_offset(s: &Shape, batch: u32, kv_head: u32, local: u32) -> usize {
    let g = s.h / s.hkv;
    let (head, sq) = if s.group != 0 { (kv_head * g, local) } else { (kv_head * g + local / s.sq, local % s.sq) };
    ((batch * s.h + head) * s.sq + sq) as usize * s.d as usize
}

/// Query heads summed into each score of a row: G in group mode, else 1.
pub fn heads_per_row(s: &Shape) -> u32 {
    if s.group != 0 { s.h / s.hkv } else { 1 }
}

/// Writes the selection keys of output row `row`'s keys `0..keys.len()` into `keys`. With a
/// `table` (`m·c` f32, see `small_scores_by_table`), the block first builds the row's lookup
/// table there, as `pq_tables` does for a row tile, and each key sums its `m` entries, j
/// ascending; without, each key is scored straight from the codebooks, per sub-space summed
/// over the heads and dimensions, then over the sub-spaces (in rows shorter than the block, the
/// lanes that share a key sum their sub-spaces by a butterfly). Keys past the `valid` ones get
/// 0, below every real key. The row's queries are staged in `staging` as f32 first.
///
/// # Safety
/// All threads of the block call it; `staging` holds `heads_per_row · d` f32 and `table` (if
/// any) `m·c` f32, apart; the tensors in `p` have the shapes `SmallParams` states, with
/// codebooks 16-byte aligned; `valid ≤ n`.
#[inline(always)]
pub unsafe fn row_keys(
    p: &SmallParams,
    row: u32,
    valid: u32,
    keys: Shared<u64>,
    staging: Shared<f32>,
    table: Option<Shared<f32>>,
) {
    let s = &p.shape;
    let (bkv, local) = (row / s.rows_per_kv, row % s.rows_per_kv);
    let (batch, kv_head) = (bkv / s.hkv, bkv % s.hkv);
    let first = query_offset(s, batch, kv_head, local);
    let (d, head_stride) = (s.d as usize, (s.sq * s.d) as usize);
    let stage = |load: unsafe fn(u64, usize) -> f32| {
        for i in device::strided(device::thread_idx() as usize, staging.len(), device::block_dim() as usize) {
            // 32-bit quotient and remainder: a 64-bit division is a long software routine.
            let (head, x) = ((i as u32 / d as u32) as usize, (i as u32 % d as u32) as usize);
            // SAFETY: the row's heads lie inside the queries; one writer per element.
            unsafe { staging.set(i, load(p.queries, first + head * head_stride + x)) };
        }
    };
    match s.query_dtype {
        q if q == DType::F32 as u32 => stage(F32::load),
        q if q == DType::F16 as u32 => stage(F16::load),
        _ => stage(BF16::load),
    }
    let codes = (p.codes as *const u8).wrapping_add(bkv as usize * s.n as usize * s.m as usize);
    let l2 = s.metric == Metric::L2 as u32;
    let row = RowScorer { s: *s, codebooks: p.codebooks, codes, kv_head, valid, keys, staging };
    // SAFETY: the barrier orders the staging before its reads; the rest is forwarded. One
    // monomorphized loop per codebook type and metric.
    unsafe {
        device::sync_threads();
        match (s.codebook_dtype, l2) {
            (c, false) if c == DType::F32 as u32 => row.score::<F32, false>(table),
            (c, true) if c == DType::F32 as u32 => row.score::<F32, true>(table),
            (c, false) if c == DType::F16 as u32 => row.score::<F16, false>(table),
            (c, true) if c == DType::F16 as u32 => row.score::<F16, true>(table),
            (_, false) => row.score::<BF16, false>(table),
            (_, true) => row.score::<BF16, true>(table),
        }
    }
}

/// One row of `pq_topk_small`, its queries staged (see [`row_keys`]). The shape is a copy: a
/// reference into the kernel's parameters moves them to local memory.
struct RowScorer {
    s: Shape,
    codebooks: u64,
    /// The (batch, kv head)'s `[n, m]` codes.
    codes: *const u8,
    kv_head: u32,
    valid: u32,
    keys: Shared<u64>,
    staging: Shared<f32>,
}

impl RowScorer {
    /// # Safety
    /// As [`row_keys`], after the staging and a barrier.
    #[inline(always)]
    unsafe fn score<C: Element, const L2: bool>(&self, table: Option<Shared<f32>>) {
        // SAFETY (both): forwarded to the caller.
        unsafe {
            match table {
                Some(table) => self.by_table::<C, L2>(table),
                None => self.direct::<C, L2>(),
            }
        }
    }

    /// Partial scores of `BATCH` (at most `TABLE_BATCH`) (sub-space, centroid) pairs,
    /// `centroids[b]` being the offset of pair b's centroid inside the kv head's codebook (u32:
    /// below c·d, since the queries' heads·d f32 fit one block's shared memory); slots past
    /// `BATCH` are 0. Every pair's loads are issued together, so that the batch waits for one
    /// round trip per chunk of a centroid instead of one per pair and chunk.
    ///
    /// # Safety
    /// Every `sub_spaces[b] < m` and `centroids[b]` the start of one of its centroids, for
    /// b < BATCH.
    #[inline(always)]
    unsafe fn partial_scores<C: Element, const L2: bool, const BATCH: usize>(
        &self,
        sub_spaces: [usize; TABLE_BATCH],
        centroids: [u32; TABLE_BATCH],
    ) -> [f32; TABLE_BATCH] {
        let s = &self.s;
        let (d, ds) = (s.d as usize, (s.d / s.m) as usize);
        let book = ((self.kv_head * s.m * s.c) as usize) * ds;
        let heads = self.staging.len() / d;
        let vector = ds % 4 == 0;
        let width = if vector { 4 } else { 1 };
        let mut parts = [0.0f32; TABLE_BATCH];
        for head in 0..heads {
            let mut x = 0;
            while x < ds {
                let element = |b: usize| book + centroids[b] as usize + x;
                let mut cv = [[0.0f32; 4]; TABLE_BATCH];
                // SAFETY: the centroids' ds elements lie inside the codebooks; vector loads only
                // where ds % 4 == 0 (offsets multiples of 4, 16-byte aligned base). No branch
                // but the constant BATCH between the loads, so that all are in flight at once.
                unsafe {
                    if vector {
                        unrolled!(B in [0, 1, 2, 3] {
                            if B < BATCH {
                                cv[B] = C::load4(self.codebooks, element(B));
                            }
                        });
                    } else {
                        unrolled!(B in [0, 1, 2, 3] {
                            if B < BATCH {
                                cv[B][0] = C::load(self.codebooks, element(B));
                            }
                        });
                    }
                }
                unrolled!(B in [0, 1, 2, 3] {
                    unrolled!(U in [0, 1, 2, 3] {
                        if B < BATCH && U < width {
                            // SAFETY: the staged query holds heads·d f32.
                            let q = unsafe { self.staging.get(head * d + sub_spaces[B] * ds + x + U) };
                            let e = cv[B][U];
                            parts[B] += if L2 { (q - e) * (q - e) } else { q * e };
                        }
                    });
                });
                x += width;
            }
        }
        parts
    }

    /// Builds the row's table (`table[j·c + code]`), then scores each key from it.
    ///
    /// # Safety
    /// As [`RowScorer::score`], with `table` of `m·c` f32.
    #[inline(always)]
    unsafe fn by_table<C: Element, const L2: bool>(&self, table: Shared<f32>) {
        let s = &self.s;
        let (m, c, ds) = (s.m as usize, s.c as usize, (s.d / s.m) as usize);
        let entries = m * c;
        let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
        // Consecutive lanes take consecutive entries, whose centroids are contiguous.
        let mut first = t;
        while first < entries {
            // Entries past the table compute the last one again and are not stored.
            let entry = |b: usize| (first + b * threads).min(entries - 1);
            let (mut sub_spaces, mut centroids) = ([0usize; TABLE_BATCH], [0u32; TABLE_BATCH]);
            unrolled!(B in [0, 1, 2, 3] {
                // 32-bit quotient: a 64-bit division is a long software routine.
                sub_spaces[B] = (entry(B) as u32 / c as u32) as usize;
                centroids[B] = (entry(B) * ds) as u32;
            });
            // SAFETY: entry e is sub-space e / c's centroid e % c, at e·ds in the kv head's book.
            let parts = unsafe { self.partial_scores::<C, L2, TABLE_BATCH>(sub_spaces, centroids) };
            unrolled!(B in [0, 1, 2, 3] {
                if first + B * threads < entries {
                    // SAFETY: one writer per entry, inside the table.
                    unsafe { table.set(first + B * threads, parts[B]) };
                }
            });
            first += TABLE_BATCH * threads;
        }
        // SAFETY: every thread reaches the barrier, which orders the table's writes before
        // its reads.
        unsafe { device::sync_threads() };
        let scorer = Scorer { codes: self.codes, m, c };
        let (len, valid) = (self.keys.len(), self.valid as usize);
        let mut first = t;
        while first < len {
            let pair = [first, first + threads];
            // Keys past the valid ones score key 0 (valid or not, it is in the codes) and are
            // stored as 0.
            let scored_key = |i: usize| if i < valid { i as u32 } else { 0 };
            let scored = [scored_key(pair[0]), scored_key(pair[1])];
            // SAFETY: every scored key < n; the table was built before the barrier.
            let scores = unsafe {
                if m % 16 == 0 {
                    scorer.score::<f32, true>(table, scored)
                } else {
                    scorer.score::<f32, false>(table, scored)
                }
            };
            unrolled!(K in [0, 1] {
                let i = pair[K];
                if i < len {
                    let key = if i < valid { selection_key(order_key(scores[K][0], s.metric), i as u32) } else { 0 };
                    // SAFETY: i < keys.len(); one writer per key.
                    unsafe { self.keys.set(i, key) };
                }
            });
            first += KEYS_IN_FLIGHT * threads;
        }
    }

    /// Scores each key straight from the codebooks.
    ///
    /// # Safety
    /// As [`RowScorer::score`].
    #[inline(always)]
    unsafe fn direct<C: Element, const L2: bool>(&self) {
        let (m, c, ds) = (self.s.m as usize, self.s.c as usize, (self.s.d / self.s.m) as usize);
        let (keys, valid) = (self.keys, self.valid as usize);
        // Rows shorter than the block: `group` lanes of a warp share a key, each summing every
        // group-th sub-space, so that a key's dependent code-then-centroid loads (one DRAM round
        // trip each, after an L2 flush) run side by side instead of 2·m in a row.
        let threads = device::block_dim() as usize;
        let group = (threads / keys.len()).clamp(1, device::WARP as usize);
        let member = device::thread_idx() as usize % group;
        // Every lane of a warp makes the same number of iterations: all keys at once where the
        // row is shorter than the block, whole multiples of the block otherwise.
        for i in device::strided(device::thread_idx() as usize / group, keys.len(), threads / group) {
            let mut score = 0.0f32;
            if i < valid {
                for j in device::strided(member, m, group) {
                    // SAFETY: key i < valid ≤ n has m codes; codes ≥ c read centroid c − 1
                    // (never out of bounds), as the tables do.
                    let code = (unsafe { device::load_nc_u8(self.codes.add(i * m + j)) } as usize).min(c - 1);
                    let (mut sub_spaces, mut centroids) = ([0usize; TABLE_BATCH], [0u32; TABLE_BATCH]);
                    (sub_spaces[0], centroids[0]) = (j, ((j * c + code) * ds) as u32);
                    // SAFETY: the centroid is one of sub-space j's.
                    score += unsafe { self.partial_scores::<C, L2, 1>(sub_spaces, centroids) }[0];
                }
            }
            let mut lanes = 1;
            while lanes < group {
                // SAFETY: the whole warp runs every shuffle (see the loop's bounds); a group's
                // lanes are consecutive, so the butterfly stays inside it.
                score += f32::from_bits(unsafe { device::shfl_xor(score.to_bits(), lanes as u32) });
                lanes *= 2;
            }
            let key = if i < valid { selection_key(order_key(score, self.s.metric), i as u32) } else { 0 };
            if member == 0 {
                // SAFETY: i < keys.len(); one writer per key.
                unsafe { keys.set(i, key) };
            }
        }
    }
}

/// An element type of queries, codebooks or keys, read as f32.
pub trait Element {
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

pub struct F32;
pub struct F16;
pub struct BF16;

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

/// Entries of one row's lookup table: one per (sub-space j, centroid).
pub fn lut_len(s: &Shape) -> usize {
    (s.m * s.c) as usize
}

/// One entry of the interleaved lookup tables: the partial scores of `WIDTH` rows for the same
/// (sub-space, centroid), loaded with one shared-memory access, since a key's codes are the same
/// for every row of its kv head.
pub trait LutEntry: Copy {
    const WIDTH: usize;
    fn lane(self, i: usize) -> f32;
}

impl LutEntry for f32 {
    const WIDTH: usize = 1;
    #[inline(always)]
    fn lane(self, _: usize) -> f32 {
        self
    }
}

#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Lut2([f32; 2]);

#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct Lut4([f32; 4]);

impl LutEntry for Lut2 {
    const WIDTH: usize = 2;
    #[inline(always)]
    fn lane(self, i: usize) -> f32 {
        self.0[i]
    }
}

impl LutEntry for Lut4 {
    const WIDTH: usize = 4;
    #[inline(always)]
    fn lane(self, i: usize) -> f32 {
        self.0[i]
    }
}

/// Zeroes the histograms and the selection's split state of every row, 16 bytes per store
/// spread over the whole grid of `pq_tables` or `pq_ranges`, and returns this block's row tile
/// and sub-space.
#[inline(always)]
pub fn zero_selection_state(p: &TablesParams) -> (Tile, u32) {
    let (block, s) = (device::block_idx().0, &p.shape);
    let words = s.b * s.hkv * s.rows_per_kv * (HIST_BINS + SPLIT_STATE_WORDS) + p.refine_rows * REFINE_STATE_WORDS;
    let vectors = (words / 4) as usize;
    let first = (block * device::block_dim() + device::thread_idx()) as usize;
    for v in device::strided(first, vectors, (device::grid_dim_x() * device::block_dim()) as usize) {
        // SAFETY: v < words/4, the region's length, which is 16-byte aligned.
        unsafe { *(p.histograms as *mut [u32; 4]).add(v) = [0; 4] };
    }
    (Tile::of(s, &p.tiling, block / s.m, 0, 0), block % s.m)
}

/// Builds sub-space `j` of the tile's lookup tables in global memory, one thread per centroid (or a
/// few neighbouring lanes, where the block has more threads than centroids):
/// `luts[tile][j][code][r]` is row `r`'s partial score of centroid `code` (`q_j · C_j[code]`
/// or `‖q_j − C_j[code]‖²`, summed over the G query heads in group mode; 0 for rows past the
/// tile), and `ranges[row][j]` the smallest and largest of them. The rows' query slices are
/// staged in shared memory as f32, one head at a time.
///
/// # Safety
/// All threads of the block call it; `staging` holds `tables_staging_floats(rows, d/m)` f32; the tensors in
/// `p` have the shapes it states, with tables (`luts` nonzero); the tile holds at most
/// `MAX_ROWS_PER_BLOCK` rows; `c ≤ block size`.
#[inline(always)]
pub unsafe fn build_tables(p: &TablesParams, tile: Tile, j: u32, staging: Shared<f32>) {
    // SAFETY (all arms): forwarded to the caller. One monomorphized loop per dtype pair and
    // metric, so the element loop carries no dispatch.
    unsafe {
        match p.shape.query_dtype {
            q if q == DType::F32 as u32 => build_tables_for::<F32>(p, tile, j, staging),
            q if q == DType::F16 as u32 => build_tables_for::<F16>(p, tile, j, staging),
            _ => build_tables_for::<BF16>(p, tile, j, staging),
        }
    }
}

/// # Safety
/// As [`build_tables`].
#[inline(always)]
unsafe fn build_tables_for<Q: Element>(p: &TablesParams, tile: Tile, j: u32, staging: Shared<f32>) {
    let l2 = p.shape.metric == Metric::L2 as u32;
    // SAFETY: forwarded.
    unsafe {
        match (p.shape.codebook_dtype, l2) {
            (c, false) if c == DType::F32 as u32 => build_tables_typed::<Q, F32, false>(p, tile, j, staging),
            (c, true) if c == DType::F32 as u32 => build_tables_typed::<Q, F32, true>(p, tile, j, staging),
            (c, false) if c == DType::F16 as u32 => build_tables_typed::<Q, F16, false>(p, tile, j, staging),
            (c, true) if c == DType::F16 as u32 => build_tables_typed::<Q, F16, true>(p, tile, j, staging),
            (_, false) => build_tables_typed::<Q, BF16, false>(p, tile, j, staging),
            (_, true) => build_tables_typed::<Q, BF16, true>(p, tile, j, staging),
        }
    }
}

/// # Safety
/// As [`build_tables`].
#[inline(always)]
unsafe fn build_tables_typed<Q: Element, C: Element, const L2: bool>(
    p: &TablesParams,
    tile: Tile,
    j: u32,
    staging: Shared<f32>,
) {
    let s = &p.shape;
    let (d, c, ds) = (s.d as usize, s.c as usize, (s.d / s.m) as usize);
    let width = p.tiling.lut_width as usize;
    let rows = tile.rows as usize;
    let heads = heads_per_row(s) as usize;
    // Query offset of row r's first head, at sub-space j.
    let query_row =
        |r: usize| query_offset(s, tile.batch, tile.kv_head, tile.row0 - tile.kv_row0 + r as u32) + j as usize * ds;
    let head_stride = s.sq as usize * d;
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    let vector = ds % 4 == 0;
    let chunks = if vector { ds / 4 } else { ds };
    // Lanes per centroid: where the block has more threads than centroids, neighbouring lanes
    // share one, each summing every `split`-th chunk, and a butterfly adds their sums.
    let split = {
        let most = (threads / c).min(chunks).min(device::WARP as usize).max(1);
        1 << most.ilog2()
    };
    let (code, part) = ((t / split).min(c - 1), t % split);
    // The lane that writes its centroid's entry and counts it in the ranges.
    let owner = part == 0 && t / split < c;
    let centroid = ((tile.kv_head * s.m + j) as usize * c + code) * ds;
    let share = CentroidShare { codebooks: p.codebooks, centroid, chunks, part, split };
    // Staged rows come in whole groups of MAX_ROWS (zeros past the tile), as the plan sizes them.
    let staged = tables_staging_floats(tile.rows, ds as u32) as usize;
    const WARPS: usize = (pqtopk_abi::BLOCK_THREADS / device::WARP) as usize;
    let partial = static_shared!(TABLE_RANGE_PARTIALS: [f32; 2 * MAX_ROWS * WARPS]);
    let warp = t / device::WARP as usize;
    let mut acc = [0.0f32; MAX_ROWS];
    for head in 0..heads {
        // SAFETY: every thread reaches the barriers; the first ends the previous head's reads of
        // the staging area; each staged element has one writer, below
        // tables_staging_floats(rows, ds).
        unsafe {
            device::sync_threads();
            for i in device::strided(t, staged, threads) {
                // 32-bit quotient and remainder: a 64-bit division is a long software routine.
                let (r, x) = ((i as u32 / ds as u32) as usize, (i as u32 % ds as u32) as usize);
                let q = if r < rows { Q::load(p.queries, query_row(r) + head * head_stride + x) } else { 0.0 };
                staging.set(i, q);
            }
            device::sync_threads();
        }
        // SAFETY: the centroid lies inside the codebooks; the rows were staged before the
        // barrier above.
        unsafe {
            if vector {
                share.accumulate::<C, L2, 4>(staging, 0, ds, &mut acc)
            } else {
                share.accumulate::<C, L2, 1>(staging, 0, ds, &mut acc)
            }
        }
    }
    let mut mask = split / 2;
    while mask > 0 {
        unrolled!(R in [0, 1, 2, 3] {
            // SAFETY: `split` is the same in every lane, so the whole warp shuffles.
            acc[R] += f32::from_bits(unsafe { device::shfl_xor(acc[R].to_bits(), mask as u32) });
        });
        mask /= 2;
    }
    if owner {
        let luts = (p.luts as *mut f32).wrapping_add(tile.index as usize * width * lut_len(s));
        let entry = (j as usize * c + code) * width;
        let value = |r: usize| if r < rows { acc[r] } else { 0.0 };
        if width == MAX_ROWS {
            // SAFETY: the tile's tables hold width·m·c f32 from a 256-byte aligned start, so a
            // whole entry is one aligned 16-byte store.
            unsafe { *(luts.add(entry) as *mut [f32; MAX_ROWS]) = [value(0), value(1), value(2), value(3)] };
        } else {
            unrolled!(R in [0, 1, 2, 3] {
                if R < width {
                    // SAFETY: the tile's tables hold width·m·c f32.
                    unsafe { *luts.add(entry + R) = value(R) };
                }
            });
        }
    }
    // The range of each row's entries: warps reduce, then one thread per row combines the warps'
    // results.
    unrolled!(R in [0, 1, 2, 3] {
        if R < rows {
            let (mut lo, mut hi) = if owner { (acc[R], acc[R]) } else { (f32::INFINITY, f32::NEG_INFINITY) };
            // SAFETY: the whole warp runs the reduction; lane 0 writes its warp's slot.
            unsafe {
                let (lo_w, hi_w) = warp_min_max(lo, hi);
                (lo, hi) = (lo_w, hi_w);
                if device::lane() == 0 {
                    partial.set((warp * MAX_ROWS + R) * 2, lo);
                    partial.set((warp * MAX_ROWS + R) * 2 + 1, hi);
                }
            }
        }
    });
    // SAFETY: every thread reaches the barrier, after the partials were written.
    unsafe {
        device::sync_threads();
        if t < rows {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for w in 0..threads / device::WARP as usize {
                lo = lo.min(partial.get((w * MAX_ROWS + t) * 2));
                hi = hi.max(partial.get((w * MAX_ROWS + t) * 2 + 1));
            }
            write_range(p, s, tile.row0 as usize + t, j, (lo, hi));
        }
    }
}

/// Stores `(lo, hi)` as output row `row`'s range of sub-space `j`.
///
/// # Safety
/// `p.ranges` holds m pairs of f32 per output row; `row` is an output row.
#[inline(always)]
unsafe fn write_range(p: &TablesParams, s: &Shape, row: usize, j: u32, (lo, hi): (f32, f32)) {
    let at = (row * s.m as usize + j as usize) * 2;
    // SAFETY: the caller's promise.
    unsafe {
        *(p.ranges as *mut f32).add(at) = lo;
        *(p.ranges as *mut f32).add(at + 1) = hi;
    }
}

/// Writes sub-space `j`'s ranges of the tile's rows without tables, for the tensor-core path
/// (up to `DENSE_ROWS` rows, one head each, `d/m ≤ RANGES_MAX_SUBSPACE_DIM`, a multiple of 4):
/// `ranges[row][j]` is the smallest and largest partial score `q_j · C_j[code]` (or
/// `‖q_j − C_j[code]‖²`) over the centroids. The sub-space's codebook is staged in shared memory
/// as f32; thread `t` holds row `t % rows`'s query slice in registers and takes every
/// `slices`-th centroid from `t / rows`, keeping its own smallest and largest. So a centroid
/// costs a thread two or four broadcast shared loads and its products, and no row is reduced
/// across the warp per centroid (the table build reduces four rows at a time, with two barriers
/// each: about 4700 instructions per warp at 64 rows, v18). Then a thread per row combines the
/// slices.
///
/// # Safety
/// All threads of the block call it; the tensors in `p` have the shapes it states, queries and
/// codebooks 16-byte aligned; the tile holds at most `block size` rows; `staging` holds
/// `c · d/m` f32.
#[inline(always)]
pub unsafe fn build_ranges(p: &TablesParams, tile: Tile, j: u32, staging: Shared<f32>) {
    let l2 = p.shape.metric == Metric::L2 as u32;
    // SAFETY (all arms): forwarded. The tensor-core path has equal query and codebook types,
    // f16 or bf16.
    unsafe {
        match (p.shape.query_dtype, l2) {
            (q, false) if q == DType::F16 as u32 => build_ranges_typed::<F16, false>(p, tile, j, staging),
            (q, true) if q == DType::F16 as u32 => build_ranges_typed::<F16, true>(p, tile, j, staging),
            (_, false) => build_ranges_typed::<BF16, false>(p, tile, j, staging),
            (_, true) => build_ranges_typed::<BF16, true>(p, tile, j, staging),
        }
    }
}

/// # Safety
/// As [`build_ranges`].
#[inline(always)]
unsafe fn build_ranges_typed<E: Element, const L2: bool>(p: &TablesParams, tile: Tile, j: u32, staging: Shared<f32>) {
    const MAX_CHUNKS: usize = (RANGES_MAX_SUBSPACE_DIM / 4) as usize;
    let s = &p.shape;
    let (c, ds) = (s.c as usize, (s.d / s.m) as usize);
    let chunks = ds / 4;
    let rows = tile.rows as usize;
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    let codebook = (tile.kv_head * s.m + j) as usize * c * ds;
    // SAFETY: each staged chunk has one writer, read after the barrier; the codebook slice lies
    // inside the codebooks, 16-byte aligned.
    unsafe {
        for chunk in device::strided(t, c * chunks, threads) {
            let e = E::load4(p.codebooks, codebook + 4 * chunk);
            for (u, &x) in e.iter().enumerate() {
                staging.set(4 * chunk + u, x);
            }
        }
        device::sync_threads();
    }
    let slices = (threads / rows).min(c);
    let (r, slice) = (t % rows, t / rows);
    let partial = static_shared!(RANGE_SLICE_PARTIALS: [f32; pqtopk_abi::RANGE_SLICE_PARTIALS]);
    if slice < slices {
        let query = query_offset(s, tile.batch, tile.kv_head, tile.row0 - tile.kv_row0 + r as u32) + j as usize * ds;
        let mut q = [[0.0f32; 4]; MAX_CHUNKS];
        // The lists spell out 0..MAX_CHUNKS and 0..4, so that `q` stays in registers.
        unrolled!(X in [0, 1, 2, 3] {
            if X < chunks {
                // SAFETY: the row's slice lies inside the queries, 16-byte aligned.
                q[X] = unsafe { E::load4(p.queries, query + 4 * X) };
            }
        });
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for code in device::strided(slice, c, slices) {
            let mut acc = 0.0f32;
            unrolled!(X in [0, 1, 2, 3] {
                if X < chunks {
                    unrolled!(U in [0, 1, 2, 3] {
                        // SAFETY: staged before the barrier above; code·ds + 4X + U < c·ds.
                        let (a, b) = (q[X][U], unsafe { staging.get(code * ds + 4 * X + U) });
                        acc = if L2 { device::fma(a - b, a - b, acc) } else { device::fma(a, b, acc) };
                    });
                }
            });
            (lo, hi) = (lo.min(acc), hi.max(acc));
        }
        // SAFETY: one writer per slot, read after the barrier below.
        unsafe {
            partial.set(2 * t, lo);
            partial.set(2 * t + 1, hi);
        }
    }
    // SAFETY: every thread reaches the barrier, after the partials were written.
    unsafe {
        device::sync_threads();
        if t < rows {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for slice in 0..slices {
                lo = lo.min(partial.get(2 * (slice * rows + t)));
                hi = hi.max(partial.get(2 * (slice * rows + t) + 1));
            }
            write_range(p, s, tile.row0 as usize + t, j, (lo, hi));
        }
    }
}

/// A lane's share of one centroid (`ds` elements from `centroid` in the codebooks): chunks of
/// `LANES` elements `part`, `part + split`, … of `chunks`.
#[derive(Clone, Copy)]
struct CentroidShare {
    codebooks: u64,
    centroid: usize,
    chunks: usize,
    part: usize,
    split: usize,
}

impl CentroidShare {
    /// Adds to `acc[r]` row `r`'s partial score of this lane's chunks against the four staged
    /// rows from `staging[row0..]`. Every row is computed (staged rows past the tile are zeros),
    /// so the loop has no branch per row or element. One chunk per iteration: these kernels run
    /// one cold wave, where the executed code's size is the cost (perf-notes v17: two or four
    /// chunks' loads in flight ran slower).
    ///
    /// # Safety
    /// The centroid's elements lie inside the codebooks (16-byte aligned for `LANES == 4`);
    /// `staging` holds four rows of `ds` f32 from `row0`.
    #[inline(always)]
    unsafe fn accumulate<C: Element, const L2: bool, const LANES: usize>(
        self,
        staging: Shared<f32>,
        row0: usize,
        ds: usize,
        acc: &mut [f32; MAX_ROWS],
    ) {
        let CentroidShare { codebooks, centroid, chunks, part, split } = self;
        // A plain `while`: the loop as measured (call 4); `device::strided` compiles it to
        // different PTX, not yet run on a GPU.
        let mut chunk = part;
        while chunk < chunks {
            // SAFETY: the caller's promise; vector loads only with LANES == 4.
            let cv = unsafe {
                if LANES == 4 {
                    C::load4(codebooks, centroid + 4 * chunk)
                } else {
                    [C::load(codebooks, centroid + chunk), 0.0, 0.0, 0.0]
                }
            };
            // The lists spell out 0..MAX_ROWS and 0..4, so that `cv` and `acc` stay in registers.
            unrolled!(R in [0, 1, 2, 3] {
                unrolled!(U in [0, 1, 2, 3] {
                    if U < LANES {
                        // SAFETY: row0 + R·ds + LANES·chunk + U < row0 + 4·ds, staged.
                        let q = unsafe { staging.get(row0 + R * ds + LANES * chunk + U) };
                        let e = cv[U];
                        acc[R] = if L2 { device::fma(q - e, q - e, acc[R]) } else { device::fma(q, e, acc[R]) };
                    }
                });
            });
            chunk += split;
        }
    }
}

/// The smallest `lo` and largest `hi` of the warp, in every lane (NaN ignored where a number
/// exists).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
unsafe fn warp_min_max(mut lo: f32, mut hi: f32) -> (f32, f32) {
    let mut mask = device::WARP / 2;
    while mask > 0 {
        // SAFETY: forwarded to the caller.
        unsafe {
            lo = lo.min(f32::from_bits(device::shfl_xor(lo.to_bits(), mask)));
            hi = hi.max(f32::from_bits(device::shfl_xor(hi.to_bits(), mask)));
        }
        mask /= 2;
    }
    (lo, hi)
}

/// The `unrolled!` lists in [`Scorer::score`] and [`score_keys`] spell out 0..KEYS_IN_FLIGHT.
const KEYS_IN_FLIGHT: usize = pqtopk_abi::SCORE_KEYS_IN_FLIGHT;

/// What the scoring loop needs, copied out of the parameters so that it lives in registers.
#[derive(Clone, Copy)]
struct Scorer {
    /// Codes of the tile's (batch, kv head).
    codes: *const u8,
    m: usize,
    c: usize,
}

impl Scorer {
    /// Adds sub-space `j`'s entries for `code` to the rows' sums. Codes are clamped below `c`,
    /// so a corrupt code reads inside the table (its score is then unspecified;
    /// `pq_count_bad_codes` reports such codes).
    ///
    /// # Safety
    /// `luts` holds the tile's interleaved tables, written before the last barrier; `j < m`.
    #[inline(always)]
    unsafe fn add<E: LutEntry>(self, luts: Shared<E>, acc: &mut [f32; MAX_ROWS], j: usize, code: u32) {
        let at = j * self.c + (code as usize).min(self.c - 1);
        // SAFETY: at < m·c indexes inside the tile's table.
        let entry = unsafe { luts.get(at) };
        // The list spells out 0..MAX_ROWS.
        unrolled!(I in [0, 1, 2, 3] {
            if I < E::WIDTH {
                acc[I] += entry.lane(I);
            }
        });
    }

    /// Scores of keys `keys` against every row of the tile: `Σ_j lut[r][j][code_j]`, j
    /// ascending; slots past the tile's rows are 0. With `WIDE` (m a multiple of 16) each key's
    /// codes arrive 16 at a time in one 16-byte load.
    ///
    /// # Safety
    /// Every key `< n`; `luts` as for [`Scorer::add`].
    #[inline(always)]
    unsafe fn score<E: LutEntry, const WIDE: bool>(
        self,
        luts: Shared<E>,
        keys: [u32; KEYS_IN_FLIGHT],
    ) -> [[f32; MAX_ROWS]; KEYS_IN_FLIGHT] {
        let mut acc = [[0.0f32; MAX_ROWS]; KEYS_IN_FLIGHT];
        let code_ptr = |key: u32, j: usize| self.codes.wrapping_add(key as usize * self.m + j);
        // SAFETY (all loads): the keys' codes lie inside the codes tensor and stay unchanged;
        // a key starts at a multiple of m, so with WIDE every 16-byte group is aligned.
        unsafe {
            if WIDE {
                for j0 in (0..self.m).step_by(16) {
                    let mut words = [[0u32; 4]; KEYS_IN_FLIGHT];
                    unrolled!(K in [0, 1] {
                        words[K] = device::load_nc_v4(code_ptr(keys[K], j0) as *const [u32; 4]);
                    });
                    // Spelled out: LLVM leaves these loops rolled, which moves `words` and `acc`
                    // to local memory.
                    unrolled!(K in [0, 1] {
                        unrolled!(I in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                            self.add(luts, &mut acc[K], j0 + I, (words[K][I / 4] >> (8 * (I % 4))) & 0xff);
                        });
                    });
                }
            } else {
                for j in 0..self.m {
                    let mut codes = [0u32; KEYS_IN_FLIGHT];
                    unrolled!(K in [0, 1] {
                        codes[K] = device::load_nc_u8(code_ptr(keys[K], j)) as u32;
                    });
                    unrolled!(K in [0, 1] {
                        self.add(luts, &mut acc[K], j, codes[K]);
                    });
                }
            }
        }
        acc
    }
}

/// How good a score is, larger is better: the score, negated for L2 (where smaller is better).
#[inline(always)]
pub fn goodness(score: f32, metric: u32) -> f32 {
    // `+ 0.0` turns −0 into +0: equal scores must get equal bits, so the index breaks the tie.
    (if metric == Metric::L2 as u32 { -score } else { score }) + 0.0
}

/// The order key of a goodness: its order-preserving bits, with NaN as 0, below every number.
#[inline(always)]
pub fn order_of_goodness(goodness: f32) -> u32 {
    let bits = goodness.to_bits();
    // Negative: all bits flipped; otherwise the sign bit set. Selects, no branches.
    let flip = ((bits as i32 >> 31) as u32) | 0x8000_0000;
    if goodness.is_nan() { 0 } else { bits ^ flip }
}

/// The order key of a score, larger is better.
#[inline(always)]
pub fn order_key(score: f32, metric: u32) -> u32 {
    order_of_goodness(goodness(score, metric))
}

/// The goodness an order key encodes (NaN for 0).
#[inline(always)]
fn goodness_of(order: u32) -> f32 {
    if order == 0 {
        f32::NAN
    } else if order & 0x8000_0000 != 0 {
        f32::from_bits(order & 0x7fff_ffff)
    } else {
        f32::from_bits(!order)
    }
}

/// The goodness a selection key ranks by, NaN (order key 0) as −∞: non-decreasing in the keys
/// that scoring makes.
#[inline(always)]
pub fn goodness_value(key: u64) -> f32 {
    let order = (key >> INDEX_BITS) as u32;
    if order == 0 { f32::NEG_INFINITY } else { goodness_of(order) }
}

/// Low bits of a selection key that hold its complemented key index.
pub const INDEX_BITS: u32 = 32;

/// The 64-bit key that `select` ranks, larger is better and unique per row: the order key above
/// the complemented key index, so that ties break toward the smaller index.
#[inline(always)]
pub fn selection_key(order: u32, index: u32) -> u64 {
    ((order as u64) << INDEX_BITS) | (!index) as u64
}

/// A selection key with its halves swapped, the complemented index above the order key: unique,
/// and larger for a smaller index, so that sorting these descending orders keys by index.
#[inline(always)]
pub fn index_major(key: u64) -> u64 {
    key.rotate_right(INDEX_BITS)
}

/// A value non-decreasing in [`index_major`] keys, for `select::emit_by_buckets`: their
/// complemented index, linear in their bits, so it spreads them no better than they do.
#[inline(always)]
pub fn index_major_value(key: u64) -> f32 {
    (key >> (64 - INDEX_BITS)) as f32
}

/// The selection key of an [`index_major`] key.
#[inline(always)]
pub fn from_index_major(key: u64) -> u64 {
    key.rotate_left(INDEX_BITS)
}

/// Key index encoded in a selection key.
#[inline(always)]
pub fn index_of(key: u64) -> u32 {
    !(key as u32)
}

/// The score encoded in a selection key (NaN for NaN scores; −0 reads back as +0).
#[inline(always)]
pub fn score_of(key: u64, metric: u32) -> f32 {
    let goodness = goodness_of((key >> 32) as u32);
    if metric == Metric::L2 as u32 { -goodness } else { goodness }
}

/// The score that pads rows with fewer valid keys than k: the worst possible.
pub fn padding_score(metric: u32) -> f32 {
    if metric == Metric::L2 as u32 { f32::INFINITY } else { f32::NEG_INFINITY }
}

/// Half the width of [`Binning::first_key_of`]'s bracket, relative to the magnitudes involved.
const EDGE_MARGIN: f32 = 1.0 / (1 << 20) as f32;

/// The first histogram of a row's selection: a monotone map from order keys to `HIST_BINS`
/// bins. Where the row's lookup tables bound its scores to a finite, nonzero range, the bins
/// split that range evenly, so the bin of the k-th key holds few keys for any smooth
/// distribution; otherwise (infinities, NaN tables, one possible score) the bin is the order
/// key's top bits.
#[derive(Clone, Copy)]
pub struct Binning(RowBinning);

impl Binning {
    /// The binning of goodness values in `lo..=hi`.
    pub fn of_range(lo: f32, hi: f32) -> Binning {
        let scale = HIST_BINS as f32 / (hi - lo);
        let linear = hi > lo && (hi - lo).is_finite() && scale.is_finite();
        Binning(RowBinning { lo, scale, linear: linear as u32 })
    }

    pub fn from_raw(raw: RowBinning) -> Binning {
        Binning(raw)
    }

    pub fn raw(self) -> RowBinning {
        self.0
    }

    /// Non-decreasing in `order`: subtraction and scaling by a positive factor round
    /// monotonically, and the float-to-integer conversion saturates, so goodness values that
    /// rounding puts just outside the range land in the end bins.
    #[inline(always)]
    pub fn bin(self, order: u32) -> u32 {
        let goodness = goodness_of(order);
        if self.0.linear != 0 && goodness.is_nan() {
            // Order keys that decode to NaN: 0 (NaN scores), and codes that no score takes,
            // which the binary search in `first_key_of` may still probe.
            return if order < 0x8000_0000 { 0 } else { HIST_BINS - 1 };
        }
        self.bin_of(goodness, order)
    }

    /// [`Binning::bin`] of `order = order_of_goodness(goodness)`, without decoding it: the
    /// scoring loops' form.
    #[inline(always)]
    pub fn bin_of(self, goodness: f32, order: u32) -> u32 {
        if self.0.linear != 0 {
            // A NaN goodness converts to 0, the bin of order key 0.
            device::f32_to_u32_saturating((goodness - self.0.lo) * self.0.scale).min(HIST_BINS - 1)
        } else {
            order >> (32 - pqtopk_abi::DIGIT_BITS)
        }
    }

    /// The smallest order key whose bin is at least `bin` (2³² past the last bin). Top-bits
    /// bins: at once. Linear bins: by a 32-way search over the monotone map, one candidate per
    /// lane, inside a bracket around the inverted map's edge when the bracket checks out (1 + 2
    /// rounds where the range's ends are within a factor of ~60 of the edge), else over every
    /// key (7 rounds).
    ///
    /// # Safety
    /// The whole warp calls it convergently, with the same arguments.
    pub unsafe fn first_key_of(self, bin: u32) -> u64 {
        if self.0.linear == 0 {
            return (bin as u64) << (32 - pqtopk_abi::DIGIT_BITS);
        }
        let lane = device::lane() as u64;
        // The edge's goodness, give or take the map's roundings (a few units in the last place
        // of the larger of `lo` and the edge; the margin allows 8).
        let edge = self.0.lo + bin as f32 / self.0.scale;
        let margin = (self.0.lo.abs() + edge.abs()) * EDGE_MARGIN;
        let (below, above) = (order_of_goodness(edge - margin), order_of_goodness(edge + margin));
        let holds = match lane {
            0 => self.bin(below) < bin,
            1 => self.bin(above) >= bin,
            _ => true,
        };
        // SAFETY: the whole warp runs it.
        let bracketed = unsafe { device::ballot(holds) } & 0b11 == 0b11;
        // The answer lies in lo..=hi; hi = 2³² stands for "past every key".
        let (mut lo, mut hi) = if bracketed { (below as u64 + 1, above as u64) } else { (0u64, 1u64 << 32) };
        while lo < hi {
            let step = (hi - lo).div_ceil(device::WARP as u64);
            let (base, last) = (lo, hi - 1);
            let probe = |i: u64| (base + (i + 1) * step - 1).min(last);
            // SAFETY: the loop is warp-uniform (every lane holds the same lo and hi).
            let at_or_above = unsafe { device::ballot(self.bin(probe(lane) as u32) >= bin) };
            if at_or_above == 0 {
                lo = probe(device::WARP as u64 - 1) + 1;
            } else {
                let first = at_or_above.trailing_zeros() as u64;
                hi = probe(first);
                if first > 0 {
                    lo = probe(first - 1) + 1;
                }
            }
        }
        lo
    }
}

/// The [`row_binning`] of each of the tile's rows, in shared memory.
///
/// # Safety
/// All threads of the block call it; the ranges are complete. Ends with a barrier.
pub unsafe fn tile_binnings(s: &Shape, ranges: u64, tile: Tile) -> Shared<RowBinning> {
    let binnings = static_shared!(TILE_BINNINGS: [RowBinning; MAX_ROWS]);
    let r = device::thread_idx() as usize;
    // SAFETY: one writer per row, then the barrier; the ranges are complete.
    unsafe {
        if r < tile.rows as usize {
            binnings.set(r, row_binning(s, ranges, tile.row0 + r as u32).raw());
        }
        device::sync_threads();
    }
    binnings
}

/// The binning of output row `row`, from the range of scores its lookup tables allow:
/// `Σ_j min_code lut[j][code]` to `Σ_j max_code`, as goodness, summed over j in order so that
/// every block of the row gets a bit-identical binning.
///
/// # Safety
/// `ranges` holds `pq_tables`' m pairs of f32 per row, complete; `row` is an output row.
#[inline(always)]
pub unsafe fn row_binning(s: &Shape, ranges: u64, row: u32) -> Binning {
    // SAFETY: the caller's promise.
    let ranges = unsafe { (ranges as *const f32).add(row as usize * s.m as usize * 2) };
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for j in 0..s.m as usize {
        // SAFETY: j < m.
        unsafe {
            lo += *ranges.add(2 * j);
            hi += *ranges.add(2 * j + 1);
        }
    }
    if s.metric == Metric::L2 as u32 { Binning::of_range(-hi, -lo) } else { Binning::of_range(lo, hi) }
}

/// Copies row tile `tile`'s lookup tables (`entries` of `E`) from `pq_tables`' output into
/// `luts`, and zeroes `hists`. No barrier: the caller's next one orders them before any read.
///
/// # Safety
/// All threads of the block call it; `luts_global` holds the tables of every tile, complete;
/// `luts` holds `entries` entries.
#[inline(always)]
pub unsafe fn load_tables<E: LutEntry>(luts_global: u64, tile: Tile, luts: Shared<E>, hists: Shared<u32>) {
    let (t, threads) = (device::thread_idx() as usize, device::block_dim() as usize);
    let words = luts.len() * E::WIDTH;
    let global = (luts_global as *const u32).wrapping_add(tile.index as usize * words);
    // SAFETY: the view covers `words` u32.
    let table_words: Shared<u32> = unsafe { luts.tail(0, words) };
    // SAFETY: 16-byte vectors where the table's size allows (each tile's table starts at a
    // multiple of its size, 256-byte aligned region); each word has one writer.
    unsafe {
        // `step_by` in the scoring kernel, whose up-front counts let the compiler keep several
        // loads in flight: with its loops through `device::strided`, `pq_score` took 0.6–4 µs
        // longer (perf-notes v16).
        if words.is_multiple_of(4) {
            for v in (t..words / 4).step_by(threads) {
                let w = device::load_nc_v4(global.add(4 * v) as *const [u32; 4]);
                for (i, &word) in w.iter().enumerate() {
                    table_words.set(4 * v + i, word);
                }
            }
        } else {
            for i in (t..words).step_by(threads) {
                table_words.set(i, device::load_nc_u32(global.add(i)));
            }
        }
        for i in (t..hists.len()).step_by(threads) {
            hists.set(i, 0);
        }
    }
}

/// Scores one item: copies the tile's lookup tables into shared memory, writes the order key of
/// every valid key of the item for each row, and adds the item's per-row histogram to the rows'.
///
/// # Safety
/// All threads of the block call it; shared memory as `pq_score` documents; the buffers in `p`
/// have the shapes `ScoreParams` states, the tables are complete, and the histograms were zero
/// at the launch.
#[inline(always)]
pub unsafe fn score_item<E: LutEntry>(p: &ScoreParams, tile: Tile) {
    let s = p.shape;
    let table_entries = lut_len(&s);
    // SAFETY: launched with one table of E entries and lut_width histograms; the entries' type
    // sets the alignment.
    let (luts, hists) = unsafe {
        let luts: Shared<E> = device::dynamic_shared(table_entries);
        (luts, luts.tail::<u32>(table_entries, E::WIDTH * HIST_BINS as usize))
    };
    // SAFETY: all threads call both; the barrier in tile_binnings orders the copies and zeroes
    // before any read.
    let binnings = unsafe {
        load_tables(p.luts, tile, luts, hists);
        tile_binnings(&s, p.ranges, tile)
    };
    if tile.key0 == 0 && device::thread_idx() < tile.rows {
        let r = device::thread_idx();
        // SAFETY: one writer per row; every block of the row computes the same value.
        unsafe { *(p.binning as *mut RowBinning).add((tile.row0 + r) as usize) = binnings.get(r as usize) };
    }
    let stride = s.score_stride as usize;
    let scores_out = p.scores as *mut u32;
    // SAFETY: forwarded; the tables and binnings were written before a barrier; row < rows and
    // key < n ≤ score_stride.
    unsafe {
        score_keys::<E>(&s, p.n_valid, p.codes, tile, luts, binnings, hists, |r, key, order| {
            *scores_out.add((tile.row0 as usize + r) * stride + key as usize) = order
        });
        device::sync_threads();
    }
    let histograms = p.histograms as *mut u32;
    let mut bin = device::thread_idx() as usize;
    while bin < HIST_BINS as usize {
        for r in 0..tile.rows as usize {
            // SAFETY: after the barrier that ends the counts; the global histograms hold
            // HIST_BINS per row.
            unsafe {
                let count = hists.get(r * HIST_BINS as usize + bin);
                if count != 0 {
                    device::atomic_add_no_return(
                        histograms.add((tile.row0 as usize + r) * HIST_BINS as usize + bin),
                        count,
                    );
                }
            }
        }
        bin += device::block_dim() as usize;
    }
}

/// Scores the valid keys `tile.key0..tile.key_end` of the tile's rows through the tables in
/// `luts`: hands each order key to `store(row in tile, key, order)` and counts it into that
/// row's histogram in `hists` (`HIST_BINS` per row) by the row's binning.
///
/// # Safety
/// All threads of the block call it, after a barrier that follows the tables, the binnings and
/// the zeroed histograms; `codes` holds the `[b, hkv, n, m]` codes; `store` is valid for every
/// (row, key) of the tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn score_keys<E: LutEntry>(
    s: &Shape,
    n_valid: u64,
    codes: u64,
    tile: Tile,
    luts: Shared<E>,
    binnings: Shared<RowBinning>,
    hists: Shared<u32>,
    store: impl Fn(usize, u32, u32),
) {
    let scorer = Scorer {
        codes: (codes as *const u8)
            .wrapping_add((tile.batch * s.hkv + tile.kv_head) as usize * s.n as usize * s.m as usize),
        m: s.m as usize,
        c: s.c as usize,
    };
    // SAFETY: forwarded.
    unsafe {
        if s.m.is_multiple_of(16) {
            score_keys_with::<E, true>(s, n_valid, tile, scorer, luts, binnings, hists, store)
        } else {
            score_keys_with::<E, false>(s, n_valid, tile, scorer, luts, binnings, hists, store)
        }
    }
}

/// The scoring loop of [`score_keys`].
///
/// # Safety
/// As [`score_keys`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn score_keys_with<E: LutEntry, const WIDE: bool>(
    s: &Shape,
    n_valid: u64,
    tile: Tile,
    scorer: Scorer,
    luts: Shared<E>,
    binnings: Shared<RowBinning>,
    hists: Shared<u32>,
    store: impl Fn(usize, u32, u32),
) {
    let end = tile.key_end.min(valid_keys(s, n_valid, tile.batch));
    let rows = tile.rows as usize;
    let mut binning = [Binning::of_range(0.0, 0.0); MAX_ROWS];
    unrolled!(R in [0, 1, 2, 3] {
        if R < E::WIDTH && R < rows {
            // SAFETY: written before the last barrier.
            binning[R] = Binning::from_raw(unsafe { binnings.get(R) });
        }
    });
    let threads = device::block_dim();
    let mut first = tile.key0 + device::thread_idx();
    while first < end {
        let keys: [u32; KEYS_IN_FLIGHT] = core::array::from_fn(|i| first + i as u32 * threads);
        // Keys past the end score a valid key again (the first), and are not stored.
        // SAFETY: every key < end ≤ n; the tables were built before a barrier.
        let scores = unsafe { scorer.score::<E, WIDE>(luts, keys.map(|key| if key < end { key } else { first })) };
        // The list spells out 0..KEYS_IN_FLIGHT.
        unrolled!(K in [0, 1] {
            let key = keys[K];
            if key < end {
                unrolled!(R in [0, 1, 2, 3] {
                    if R < E::WIDTH && R < rows {
                        let goodness = goodness(scores[K][R], s.metric);
                        let order = order_of_goodness(goodness);
                        store(R, key, order);
                        // SAFETY: the bin is < HIST_BINS.
                        unsafe {
                            hists.atomic_add_no_return(R * HIST_BINS as usize + binning[R].bin_of(goodness, order) as usize, 1);
                        }
                    }
                });
            }
        });
        first += KEYS_IN_FLIGHT as u32 * threads;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// `Binning::first_key_of` returns the least order key whose bin is at least the asked one
    /// (checked against the map itself: that key's bin reaches it, the key below does not), for
    /// ranges of either sign, across zero, narrow against their magnitude, wide, and with
    /// `lo` far from the edges, where the bracket around the inverted map misses; and for the
    /// top-bits bins.
    #[test]
    fn first_key_of_is_the_least_key_of_the_bin() {
        let ranges = [
            (0.0, 1.0),
            (-1.0, 1.0),
            (-3.5, -0.25),
            (1000.0, 1000.001),
            (-100.0, 1e-3),
            (-1e-30, 1e-30),
            (-1e30, 1e30),
            (7.0, 7.0 + 1e-5),
            (f32::NEG_INFINITY, 1.0),
            (2.0, 2.0),
        ];
        let bins: Vec<u32> = [0, 1, 2, 3, 100, 511, 512, 513, 1000, HIST_BINS - 2, HIST_BINS - 1].into();
        for (lo, hi) in ranges {
            let binning = Binning::of_range(lo, hi);
            let found: Vec<AtomicU64> = bins.iter().map(|_| AtomicU64::new(u64::MAX)).collect();
            // SAFETY: one warp runs every search convergently.
            unsafe {
                device::emulate(1, 1, device::WARP, 0, || {
                    for (i, &bin) in bins.iter().enumerate() {
                        let key = binning.first_key_of(bin);
                        if device::lane() == 0 {
                            found[i].store(key, Ordering::Relaxed);
                        }
                    }
                })
                .expect("the searches' launch");
            }
            for (&bin, key) in bins.iter().zip(found) {
                let key = key.into_inner();
                let context = format!("range {lo}..={hi}, bin {bin}: key {key:#x}");
                assert!(key <= 1 << 32, "{context}");
                assert!(key == 1 << 32 || binning.bin(key as u32) >= bin, "{context} is below the bin");
                assert!(key == 0 || binning.bin(key as u32 - 1) < bin, "{context}: the key below is in the bin");
            }
        }
    }
}

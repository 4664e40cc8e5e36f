//! Scoring by tensor cores, for many rows per kv head: a block decodes a step of keys into
//! shared memory in the codebooks' own 16-bit type, multiplies its row tile's queries with them
//! by `mma`, and turns the scores into the same order keys, binnings and histograms as the
//! lookup-table path of `score`. A lookup per (row, key, sub-space) is bound by shared-memory
//! bank conflicts; here a key is decoded once for 64 rows.
//!
//! Warp `w` of a block takes rows `16·(w % 4)..` of the tile and keys `16·(w / 4)..` of each
//! step; its rows' query fragments stay in registers for the whole block.

use crate::device::{self, Shared};
use crate::score::{self, Binning};
use pqtopk_abi::{
    DENSE_KEYS, DENSE_ROWS, DENSE_THREADS, DType, DenseScoreParams, HIST_BINS, Metric, Shape, dense_key_stride,
    dense_padded_d,
};

const ROWS: usize = DENSE_ROWS as usize;
const KEYS: usize = DENSE_KEYS as usize;
const THREADS: usize = DENSE_THREADS as usize;
/// Rows of one warp: the M of `mma.m16n8k16`.
const WARP_ROWS: usize = 16;
const ROW_GROUPS: usize = ROWS / WARP_ROWS;
/// Keys of one warp per step, in `N_TILES` tiles of 8 (the N of the `mma`).
const WARP_KEYS: usize = KEYS * ROW_GROUPS * device::WARP as usize / THREADS;
const N_TILES: usize = WARP_KEYS / 8;
/// Histogram words per row: two 16-bit counts per word (a block takes at most
/// `DENSE_MAX_KEYS_PER_BLOCK` keys).
const HIST_WORDS: usize = HIST_BINS as usize / 2;

/// Four words that move as one 16-byte shared-memory access.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Words4([u32; 4]);

/// Scores one item of `pq_score_dense`.
///
/// # Safety
/// All threads of the block call it; the launch and buffers are as `DenseScoreParams`
/// documents; `pq_tables` has written the ranges and zeroed the histograms.
#[inline(always)]
pub unsafe fn score_item(p: &DenseScoreParams) {
    let bf16 = p.shape.query_dtype == DType::BF16 as u32;
    let l2 = p.shape.metric == Metric::L2 as u32;
    // SAFETY (all arms): forwarded; one monomorphized loop per operand type, head dimension and
    // metric. The metric is a constant so that inner-product scores carry none of L2's epilogue
    // (the key norms and the exact fallback for non-finite bounds) in their loop.
    unsafe {
        match (dense_padded_d(p.shape.d), bf16, l2) {
            (64, false, false) => score_typed::<false, 4, false>(p),
            (64, true, false) => score_typed::<true, 4, false>(p),
            (_, false, false) => score_typed::<false, 8, false>(p),
            (_, true, false) => score_typed::<true, 8, false>(p),
            (64, false, true) => score_typed::<false, 4, true>(p),
            (64, true, true) => score_typed::<true, 4, true>(p),
            (_, false, true) => score_typed::<false, 8, true>(p),
            (_, true, true) => score_typed::<true, 8, true>(p),
        }
    }
}

/// The shared memory of a block, as `dense_shared_bytes` lays it out.
#[derive(Clone, Copy)]
struct Smem {
    hists: Shared<u32>,
    /// Two key tiles of `KEYS · stride` words.
    tiles: Shared<u32>,
    /// Two rows of `KEYS` key norms (L2 only).
    norms: Shared<f32>,
    /// The kv head's codebook, `[m][c][d/m]` 16-bit elements in pairs.
    codebook: Shared<u32>,
}

/// Where the block's rows and keys lie, and the per-thread constants of the loop.
#[derive(Clone, Copy)]
struct Item {
    batch: u32,
    kv_head: u32,
    /// First output row of the tile (global) and its rows.
    row0: u32,
    rows: u32,
    /// First row of the tile within its (batch, kv head).
    local0: u32,
    key0: u32,
    /// One past the last key the block scores.
    end: u32,
    /// Words between two keys of a key tile.
    stride: usize,
}

/// # Safety
/// As [`score_item`]; `K_STEPS · 16 = dense_padded_d(d)`; `L2` is the shape's metric.
#[inline(always)]
unsafe fn score_typed<const BF16: bool, const K_STEPS: usize, const L2: bool>(p: &DenseScoreParams) {
    let s = &p.shape;
    let item = {
        let block = device::block_idx().0;
        let (chunk, tile) = (block % p.key_chunks, block / p.key_chunks);
        let (within, bkv) = (tile % p.row_tiles, tile / p.row_tiles);
        let local0 = within * DENSE_ROWS;
        let key0 = chunk * p.keys_per_block;
        let batch = bkv / s.hkv;
        Item {
            batch,
            kv_head: bkv % s.hkv,
            row0: bkv * s.rows_per_kv + local0,
            rows: DENSE_ROWS.min(s.rows_per_kv - local0),
            local0,
            key0,
            end: (key0 + p.keys_per_block).min(score::valid_keys(s, p.n_valid, batch)),
            stride: dense_key_stride(s.d) as usize,
        }
    };
    let (t, lane) = (device::thread_idx() as usize, device::lane() as usize);
    let warp = t / device::WARP as usize;
    let (g, quad) = (lane / 4, lane % 4);
    let (row_group, key_group) = (warp % ROW_GROUPS, warp / ROW_GROUPS);
    // SAFETY: launched with dense_shared_bytes(c, d) of dynamic shared memory, laid out so.
    let smem = unsafe {
        let hists: Shared<u32> = device::dynamic_shared(ROWS * HIST_WORDS);
        let tiles: Shared<u32> = hists.tail(ROWS * HIST_WORDS, 2 * KEYS * item.stride);
        let norms: Shared<f32> = tiles.tail(2 * KEYS * item.stride, 2 * KEYS);
        let codebook: Shared<u32> = norms.tail(2 * KEYS, (s.c * s.d / 2) as usize);
        Smem { hists, tiles, norms, codebook }
    };
    // SAFETY: every thread reaches the barrier; each word has one writer before it.
    unsafe { fill_shared(p, &item, smem) };
    // This thread's rows: r and r + 8 of its warp's row group (local to the tile).
    let my_rows = [row_group * WARP_ROWS + g, row_group * WARP_ROWS + g + 8];
    // SAFETY: the queries hold the tile's rows; rows past the tile read as zeros.
    let (a, query_norms) = unsafe { query_fragments::<K_STEPS>(p, &item, my_rows, quad) };
    let mut binnings = [Binning::of_range(0.0, 0.0); 2];
    // The list spells out both rows, so that `binnings` stays in registers.
    unrolled!(H in [0, 1] {
        let r = my_rows[H];
        if r < item.rows as usize {
            // SAFETY: the ranges are complete; the row is an output row.
            binnings[H] = unsafe { score::row_binning(s, p.ranges, item.row0 + r as u32) };
            if item.key0 == 0 && key_group == 0 && quad == 0 {
                // SAFETY: one writer per row; every block of the row computes the same value.
                unsafe { *(p.binning as *mut pqtopk_abi::RowBinning).add(item.row0 as usize + r) = binnings[H].raw() };
            }
        }
    });
    let warp_active = row_group * WARP_ROWS < item.rows as usize;
    let steps = item.end.saturating_sub(item.key0).div_ceil(DENSE_KEYS);
    let decoder = Decoder::new(p, &item, t);
    // SAFETY (loop): every thread runs every step and barrier; step i reads tile i % 2, written
    // before the barrier that ends step i − 1, and decodes into the other tile, last read before
    // that same barrier.
    unsafe {
        if steps > 0 {
            let codes = decoder.load_codes::<K_STEPS>(item.key0);
            decoder.decode::<BF16, K_STEPS>(smem, 0, codes, L2);
        }
        // Codes are loaded two steps before their decode, so that a step's decode never waits
        // on a load from DRAM (measured: −0.5 µs at chunk_sq16, −2 to −10 at chunk_sq128; the
        // steps are bound elsewhere).
        let mut ahead = if steps > 1 { decoder.load_codes::<K_STEPS>(item.key0 + DENSE_KEYS) } else { [0; 2] };
        device::sync_threads();
        for step in 0..steps {
            let base = item.key0 + step * DENSE_KEYS;
            let next = base + DENSE_KEYS;
            let tile = smem.tiles.sub((step as usize % 2) * KEYS * item.stride, KEYS * item.stride);
            let norms = smem.norms.sub((step as usize % 2) * KEYS, KEYS);
            let acc = if warp_active {
                multiply::<BF16, K_STEPS>(tile, item.stride, key_group, g, quad, &a)
            } else {
                [[0.0; 4]; N_TILES]
            };
            // Codes are loaded after this step's operands: every load in flight holds one of a
            // warp's few scoreboard slots, and loaded before the operands they made the operand
            // loads wait for them (measured: 18 % of the kernel's stalls).
            let codes = if step + 2 < steps { decoder.load_codes::<K_STEPS>(next + DENSE_KEYS) } else { [0; 2] };
            if warp_active {
                let epilogue = Epilogue { p, item, smem, query_norms, binnings, my_rows, l2: L2 };
                if next <= item.end {
                    epilogue.store::<true>(&acc, base, key_group * WARP_KEYS, quad, norms, tile);
                } else {
                    epilogue.store::<false>(&acc, base, key_group * WARP_KEYS, quad, norms, tile);
                }
            }
            if step + 1 < steps {
                decoder.decode::<BF16, K_STEPS>(smem, (step as usize + 1) % 2, ahead, L2);
            }
            ahead = codes;
            device::sync_threads();
        }
        flush_histograms(p, &item, smem.hists);
    }
}

/// Zeroes the histograms and the key tiles' padding, and copies the kv head's codebook in.
///
/// # Safety
/// All threads of the block call it. Ends with a barrier.
#[inline(always)]
unsafe fn fill_shared(p: &DenseScoreParams, item: &Item, smem: Smem) {
    let s = &p.shape;
    let t = device::thread_idx() as usize;
    // SAFETY: the views cover what the launch provided; each word has one writer; the codebook
    // region of the kv head is c·d elements from a 16-byte aligned start (d % 8 == 0).
    unsafe {
        let hists: Shared<Words4> = smem.hists.tail(0, ROWS * HIST_WORDS / 4);
        for v in (t..hists.len()).step_by(THREADS) {
            hists.set(v, Words4([0; 4]));
        }
        // Pad words of every key (head dimension past d, and the bank padding) stay zero.
        let (real, width) = ((s.d / 2) as usize, item.stride);
        for i in (t..2 * KEYS * (width - real)).step_by(THREADS) {
            let (key, word) = (i / (width - real), real + i % (width - real));
            smem.tiles.set(key * width + word, 0);
        }
        let vectors = (s.c * s.d / 8) as usize;
        let global = (p.codebooks as *const [u32; 4]).add(item.kv_head as usize * vectors);
        let codebook: Shared<Words4> = smem.codebook.tail(0, vectors);
        for v in (t..vectors).step_by(THREADS) {
            codebook.set(v, Words4(device::load_nc_v4(global.add(v))));
        }
        device::sync_threads();
    }
}

/// This thread's A fragments of its two rows for every k step (zero past d and past the
/// tile's rows), and the rows' query norms `‖q‖²` (for L2), summed over the quad.
///
/// # Safety
/// The whole warp calls it convergently; the queries tensor is as `Shape` states.
#[inline(always)]
unsafe fn query_fragments<const K_STEPS: usize>(
    p: &DenseScoreParams,
    item: &Item,
    rows: [usize; 2],
    quad: usize,
) -> ([[u32; 4]; K_STEPS], [f32; 2]) {
    let s = &p.shape;
    let widen = if s.query_dtype == DType::BF16 as u32 { device::bf16_to_f32 } else { device::f16_to_f32 };
    // Each row's query, or None past the tile.
    let start = rows.map(|r| (r < item.rows as usize).then(|| query_words(s, item, r)));
    let words = p.queries as *const u32;
    let mut a = [[0u32; 4]; K_STEPS];
    let mut norms = [0.0f32; 2];
    // The lists spell out the steps, so that `a` stays in registers.
    unrolled!(S in [0, 1, 2, 3, 4, 5, 6, 7] {
        if S < K_STEPS {
            unrolled!(F in [0, 1, 2, 3] {
                // Fragment F: row (F % 2)·8 + g, element pair 8S + 4·(F / 2) + quad.
                let pair = 8 * S + 4 * (F / 2) + quad;
                if let Some(start) = start[F % 2]
                    && 2 * pair < s.d as usize
                {
                    // SAFETY: pair < d/2 lies in the row's query.
                    let w = unsafe { device::load_nc_u32(words.add(start + pair)) };
                    a[S][F] = w;
                    let (lo, hi) = (widen(w as u16), widen((w >> 16) as u16));
                    norms[F % 2] += lo * lo + hi * hi;
                }
            });
        }
    });
    // Sums over the quad (array iterators would go through local memory).
    let mut mask = 1;
    while mask < 4 {
        unrolled!(H in [0, 1] {
            // SAFETY: the whole warp runs this.
            norms[H] += f32::from_bits(unsafe { device::shfl_xor(norms[H].to_bits(), mask) });
        });
        mask *= 2;
    }
    (a, norms)
}

/// Where the query of the tile's row `r` starts, in words (element pairs) from the queries'.
fn query_words(s: &Shape, item: &Item, r: usize) -> usize {
    let local = item.local0 + r as u32;
    let (head, sq) = (item.kv_head * (s.h / s.hkv) + local / s.sq, local % s.sq);
    ((item.batch * s.h + head) * s.sq + sq) as usize * s.d as usize / 2
}

/// 16-byte parts each thread copies per step: `KEYS` keys of `2·K_STEPS` parts (at most 2).
const fn copies_per_thread(k_steps: usize) -> usize {
    KEYS * 2 * k_steps / THREADS
}

/// Decodes steps of keys into a key tile: thread `t` copies the 16-byte part `t % parts` of
/// keys `t / parts + i · (THREADS / parts)`, `parts = padded d / 8` (a power of two, so a key's
/// parts are consecutive lanes of one warp).
#[derive(Clone, Copy)]
struct Decoder {
    codes: *const u8,
    m: usize,
    c: u32,
    /// This thread's part, its sub-space and the offset in it (elements), and whether the part
    /// lies inside d.
    part: usize,
    sub_space: usize,
    offset: usize,
    real: bool,
    /// This thread's first key in a step, and the key stride between its copies.
    first_key: usize,
    key_step: usize,
    end: u32,
    stride: usize,
    ds: usize,
}

impl Decoder {
    fn new(p: &DenseScoreParams, item: &Item, t: usize) -> Decoder {
        let s = &p.shape;
        let parts = dense_padded_d(s.d) as usize / 8;
        let ds = (s.d / s.m) as usize;
        let part = t % parts;
        Decoder {
            codes: (p.codes as *const u8)
                .wrapping_add((item.batch * s.hkv + item.kv_head) as usize * s.n as usize * s.m as usize),
            m: s.m as usize,
            c: s.c,
            part,
            sub_space: part * 8 / ds,
            offset: part * 8 % ds,
            real: part * 8 < s.d as usize,
            first_key: t / parts,
            key_step: THREADS / parts,
            end: item.end,
            stride: item.stride,
            ds,
        }
    }

    /// This thread's codes for the step of keys from `base` (keys past the end read the last
    /// key's).
    ///
    /// # Safety
    /// `base < end`; the codes tensor is as `Shape` states.
    #[inline(always)]
    unsafe fn load_codes<const K_STEPS: usize>(self, base: u32) -> [u32; 2] {
        let mut codes = [0u32; 2];
        unrolled!(I in [0, 1] {
            // Parts past d load a code too (of the last sub-space) and ignore it: a predicated
            // load would have its result merged at once, which waits for it.
            if I < copies_per_thread(K_STEPS) {
                let key = (base + (self.first_key + I * self.key_step) as u32).min(self.end - 1);
                let sub_space = self.sub_space.min(self.m - 1);
                // SAFETY: key < end ≤ n and sub_space < m.
                codes[I] = unsafe { device::load_nc_u8(self.codes.add(key as usize * self.m + sub_space)) } as u32;
            }
        });
        codes
    }

    /// Writes the step's keys into key tile `buffer`, and for L2 their norms `‖k‖²`.
    ///
    /// # Safety
    /// The whole block calls it (the norms reduce over warps' lanes); no thread reads the tile
    /// until the next barrier; the codebook is in shared memory.
    #[inline(always)]
    unsafe fn decode<const BF16: bool, const K_STEPS: usize>(
        self,
        smem: Smem,
        buffer: usize,
        codes: [u32; 2],
        l2: bool,
    ) {
        let widen = if BF16 { device::bf16_to_f32 } else { device::f16_to_f32 };
        // SAFETY: parts are 16-byte aligned in the codebook ((j·c + code)·ds + offset is a
        // multiple of 8 elements) and in the tile (stride·4 bytes is a multiple of 16); codes
        // are clamped below c.
        unsafe {
            let codebook: Shared<Words4> = smem.codebook.tail(0, smem.codebook.len() / 4);
            let tile: Shared<Words4> = smem.tiles.tail(0, smem.tiles.len() / 4);
            unrolled!(I in [0, 1] {
                if I < copies_per_thread(K_STEPS) {
                    let key = self.first_key + I * self.key_step;
                    let mut norm = 0.0f32;
                    if self.real {
                        let code = codes[I].min(self.c - 1) as usize;
                        let at = (self.sub_space * self.c as usize + code) * self.ds + self.offset;
                        let part = codebook.get(at / 8);
                        tile.set(((buffer * KEYS + key) * self.stride) / 4 + self.part, part);
                        if l2 {
                            unrolled!(W in [0, 1, 2, 3] {
                                let (lo, hi) = (widen(part.0[W] as u16), widen((part.0[W] >> 16) as u16));
                                norm += lo * lo + hi * hi;
                            });
                        }
                    }
                    if l2 {
                        // The key's parts are `parts` consecutive lanes, aligned.
                        let mut mask = 1;
                        while mask < K_STEPS * 2 {
                            norm += f32::from_bits(device::shfl_xor(norm.to_bits(), mask as u32));
                            mask *= 2;
                        }
                        if self.part == 0 {
                            smem.norms.set(buffer * KEYS + key, norm);
                        }
                    }
                }
            });
        }
    }
}

/// One warp's scores of a step: its 16 rows × `WARP_KEYS` keys, as `mma` accumulators.
///
/// # Safety
/// The whole warp calls it convergently; the tile was decoded before the last barrier.
#[inline(always)]
// `unrolled!` indexes past short arrays only in branches that its constants rule out.
#[allow(clippy::out_of_bounds_indexing)]
unsafe fn multiply<const BF16: bool, const K_STEPS: usize>(
    tile: Shared<u32>,
    stride: usize,
    key_group: usize,
    g: usize,
    quad: usize,
    a: &[[u32; 4]; K_STEPS],
) -> [[f32; 4]; N_TILES] {
    let mut acc = [[0.0f32; 4]; N_TILES];
    unrolled!(S in [0, 1, 2, 3, 4, 5, 6, 7] {
        if S < K_STEPS {
            unrolled!(N in [0, 1, 2, 3] {
                if N < N_TILES {
                    let at = (key_group * WARP_KEYS + N * 8 + g) * stride + 8 * S + quad;
                    // SAFETY: inside the tile; convergence is the caller's promise.
                    unsafe {
                        let b = [tile.get(at), tile.get(at + 4)];
                        acc[N] = device::mma_16x8x16::<BF16>(a[S], b, acc[N]);
                    }
                }
            });
        }
    });
    acc
}

/// What the epilogue of a step needs.
struct Epilogue<'a> {
    p: &'a DenseScoreParams,
    item: Item,
    smem: Smem,
    query_norms: [f32; 2],
    binnings: [Binning; 2],
    my_rows: [usize; 2],
    l2: bool,
}

impl Epilogue<'_> {
    /// Writes the order keys of this thread's scores (rows `my_rows`, keys `base + first + 8N +
    /// 2·quad + {0, 1}`) and counts them in the histograms. `FULL`: every key of the step is
    /// valid.
    ///
    /// # Safety
    /// The step's tile and norms were written before the last barrier.
    #[inline(always)]
    // `unrolled!` indexes past short arrays only in branches that its constants rule out.
    #[allow(clippy::out_of_bounds_indexing)]
    unsafe fn store<const FULL: bool>(
        &self,
        acc: &[[f32; 4]; N_TILES],
        base: u32,
        first: usize,
        quad: usize,
        norms: Shared<f32>,
        tile: Shared<u32>,
    ) {
        let s = &self.p.shape;
        unrolled!(H in [0, 1] {
            let r = self.my_rows[H];
            if r < self.item.rows as usize {
                let out = (self.p.scores as *mut u32)
                    .wrapping_add((self.item.row0 as usize + r) * s.score_stride as usize + base as usize);
                let hist = r * HIST_WORDS;
                unrolled!(N in [0, 1, 2, 3] {
                    if N < N_TILES {
                        let local_key = first + N * 8 + 2 * quad;
                        let mut goodness = [0.0f32; 2];
                        let mut orders = [0u32; 2];
                        unrolled!(E in [0, 1] {
                            let dot = acc[N][2 * H + E];
                            let score = if self.l2 {
                                // SAFETY: written before the last barrier.
                                let key_norm = unsafe { norms.get(local_key + E) };
                                let bound = self.query_norms[H] + key_norm;
                                if bound.is_finite() {
                                    bound - 2.0 * dot
                                } else {
                                    // Infinities or NaN: the expansion would turn ∞ − ∞ into NaN.
                                    // SAFETY: the row's query and the decoded key are in place.
                                    unsafe { self.exact_l2(r, tile, local_key + E) }
                                }
                            } else {
                                dot
                            };
                            let metric = if self.l2 { Metric::L2 } else { Metric::InnerProduct };
                            goodness[E] = score::goodness(score, metric as u32);
                            orders[E] = score::order_of_goodness(goodness[E]);
                        });
                        let valid = |e: u32| FULL || base + (local_key as u32) + e < self.item.end;
                        // SAFETY: the row's order keys hold score_stride ≥ n u32, 8-byte aligned
                        // at even keys (base and first are multiples of 8); the bins are below
                        // HIST_BINS.
                        unsafe {
                            if valid(1) {
                                *(out.add(local_key) as *mut u64) = orders[0] as u64 | (orders[1] as u64) << 32;
                            } else if valid(0) {
                                *out.add(local_key) = orders[0];
                            }
                            unrolled!(E in [0, 1] {
                                if valid(E as u32) {
                                    let bin = self.binnings[H].bin_of(goodness[E], orders[E]);
                                    // 1 in the word's low half for an even bin, in its high half
                                    // for an odd one: a multiply-add, where a shift by a shifted
                                    // amount took three instructions.
                                    let count = 1 + 0xffff * (bin & 1);
                                    self.smem.hists.atomic_add_no_return(hist + (bin / 2) as usize, count);
                                }
                            });
                        }
                    }
                });
            }
        });
    }

    /// `‖q − k‖²` of local row `r` and key `key` of the tile, summed element by element.
    ///
    /// # Safety
    /// The row is inside the tile; the tile holds the decoded key.
    #[inline(always)]
    unsafe fn exact_l2(&self, r: usize, tile: Shared<u32>, key: usize) -> f32 {
        let s = &self.p.shape;
        let bf16 = s.query_dtype == DType::BF16 as u32;
        let widen = if bf16 { device::bf16_to_f32 } else { device::f16_to_f32 };
        let query = (self.p.queries as *const u32).wrapping_add(query_words(s, &self.item, r));
        let mut sum = 0.0f32;
        for i in 0..(s.d / 2) as usize {
            // SAFETY: i < d/2 inside the row's query and the key's words.
            let (q, k) = unsafe { (device::load_nc_u32(query.add(i)), tile.get(key * self.item.stride + i)) };
            let (lo, hi) = (widen(q as u16) - widen(k as u16), widen((q >> 16) as u16) - widen((k >> 16) as u16));
            sum += lo * lo + hi * hi;
        }
        sum
    }
}

/// Adds the block's shared histograms to the rows' global ones.
///
/// # Safety
/// All threads of the block call it after the last step's barrier; the global histograms hold
/// `HIST_BINS` u32 per row.
#[inline(always)]
unsafe fn flush_histograms(p: &DenseScoreParams, item: &Item, hists: Shared<u32>) {
    // A word's two bins go out as one 64-bit atomic: the global bins 2i and 2i + 1 of a row are
    // one little-endian u64, and no carry crosses from the even bin into the odd one, since no
    // bin's total exceeds n < 2³². Every block flushes 64 rows at once at its end, and half the
    // atomics shortened that (measured: −5 µs at chunk_sq16, −17 at chunk_sq128); the
    // lookup-table path, whose blocks flush a few rows each, lost 0.2–3 µs the same way.
    let pairs = p.histograms as *mut u64;
    for w in (device::thread_idx() as usize..item.rows as usize * HIST_WORDS).step_by(THREADS) {
        let (r, pair) = (w / HIST_WORDS, w % HIST_WORDS);
        // SAFETY: w indexes the tile's rows' words; the global bins exist, 8-byte aligned (the
        // workspace is 16-byte aligned, its regions 256, a row's bins 4 KiB).
        unsafe {
            let counts = hists.get(w);
            if counts != 0 {
                let bins = (counts & 0xffff) as u64 | ((counts >> 16) as u64) << 32;
                device::atomic_add_u64_no_return(pairs.add((item.row0 as usize + r) * HIST_WORDS + pair), bins);
            }
        }
    }
}

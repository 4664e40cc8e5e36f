//! Planning: a problem's launch shape and workspace on a device, from the problem and the
//! device's limits alone, so that it is unit-tested on the CPU.

use crate::error::{Error, Result};
use crate::gpu::RawBuffers;
use crate::problem::Problem;
use pqtopk_abi::{
    AdvanceParams, BLOCK_THREADS, CLUSTER_BLOCKS, CLUSTER_THREADS, ClusterParams, DENSE_KEYS, DENSE_MAX_D,
    DENSE_MAX_KEYS_PER_BLOCK, DENSE_ROWS, DENSE_THREADS, DType, DenseScoreParams, EncodeParams, HIST_BINS,
    MAX_ROWS_PER_BLOCK, MergeParams, Order, RANGES_MAX_SUBSPACE_DIM, REFINE_STATE_WORDS, RUN_KEYS, RowBinning,
    SCORE_KEYS_IN_FLIGHT, SELECT_KEYS_PER_STEP, SELECT_THREADS, SELECT_THREADS_MANY_ROWS, SMALL_MAX_KEYS,
    SMALL_THREADS, SPLIT_STATE_WORDS, ScoreParams, SelectParams, Shape, SmallParams, TABLES_BLOCKS_PER_SM,
    TablesParams, Tiling, TrainParams, WRITE_BLOCKS_PER_SM, WRITE_CHUNK_KEYS, WRITE_STATE_HEADER_WORDS, WRITE_THREADS,
    cluster_layout, index_bitmap_fits, index_bitmap_slots, kernel_names, may_write_in_chunks, merge_passes,
    ranges_staging_floats, small_shared_bytes, tables_staging_floats,
};

/// Shared memory one scoring block may use for lookup tables; two such blocks fit on every SM
/// from 8.0 on.
pub(crate) const SCORE_SMEM_BUDGET: usize = 96 * 1024;
/// Fewest keys a scoring block takes: below that, copying in its lookup tables costs more than
/// scoring its keys.
const MIN_KEYS_PER_BLOCK: usize = 1024;
/// Keys of the threshold bin that a selection block gathers before it refines the bin, at least
/// (up to next_power_of_two(k) where shared memory allows).
const TIE_CAPACITY: usize = 4096;
/// Fewest rows per kv head that `pq_score_dense` (tensor cores) takes: with fewer, most of its
/// 64-row tile would be padding, and lookup tables shared by 4 rows do better.
const DENSE_MIN_ROWS: usize = 16;
/// Fewest sub-spaces for which `pq_score_dense` pays: a lookup-table score costs m/4 shared
/// loads, a tensor-core score a fixed epilogue (measured on H100: m = 16, 593 against 807 µs of
/// scoring; m = 2, 186 against 151 µs).
const DENSE_MIN_SUBSPACES: usize = 8;
/// Fewest keys a dense scoring block takes: each block copies a codebook (64 KiB at c = 256,
/// d = 128) and flushes 64 rows of histograms.
const DENSE_MIN_KEYS_PER_BLOCK: usize = 1024;
/// Longest rows that `Path::Auto` gives `pq_topk_small` in score order, by rows per SM: at most
/// one, at most four, more. One block scores and sorts each row alone, so its time grows with
/// the keys and with the rows that share an SM, where the three launches' barely moves at short
/// rows. Measured on an H200 (perf-notes v30, µs, one block against three launches): 32 rows
/// 18.5 against 33.4 at 1024 keys, 26.9 against 34.9 at 1536, 27.6 against 35.7 at 2048, 48.4
/// against 41.6 at 4096; 512 rows 35.6 against 46.7 at 512, 46.2 against 47.6 at 1024;
/// 2048 rows (blocks of `SMALL_MANY_ROWS_THREADS`) 78.6 against 124.3 at 256, 86.3 against
/// 124.0 at 512.
const SMALL_AUTO_MAX_KEYS_BY_SCORE: [usize; 3] = [2048, 1024, 512];
/// The same in index order, where the three launches' index-order output is cheaper than their
/// sort. Measured on an H200 (perf-notes v30, µs, one block against three launches): 32 rows
/// 20.3 against 23.3 at 1024 keys, 27.9 against 32.2 at 1536, 32.0 against 22.0 at 2048; 512
/// rows 38.0 against 42.9 at 512, 48.6 against 44.9 at 1024; 2048 rows (blocks of
/// `SMALL_MANY_ROWS_THREADS`) 82.0 against 115.4 at 256, 89.5 against 115.4 at 512.
const SMALL_AUTO_MAX_KEYS_BY_INDEX: [usize; 3] = [1536, 512, 512];
/// Threads of a `pq_topk_small` block where rows outnumber four per SM: at `SMALL_THREADS` two
/// blocks fit an SM (64 registers), at half as many four, and the waves of many short rows
/// halve (perf-notes v30: 2048 rows of 256 keys 125.8 → 85.5 µs), while few rows lose by it
/// (32 rows of 4096 keys 84.0 → 115.4).
const SMALL_MANY_ROWS_THREADS: u32 = SMALL_THREADS / 2;
/// Sweep steps each block of a split row's selection gathers, at least.
const MIN_STEPS_PER_PART: usize = 4;
/// Work-item counts and products of them stay below this, so kernel arithmetic fits u32.
const MAX_ITEMS: usize = (1 << 31) - 1;
/// Shared memory the driver reserves per block (sm_80 and sm_90).
const SHARED_RESERVED_PER_BLOCK: usize = 1024;
/// Smallest tie buffer of the cluster path (more ties are refined).
const MIN_CLUSTER_TIE_CAPACITY: usize = 1024;

/// What planning needs to know of a device: its SMs, and the dynamic shared memory each kernel
/// may use there (the device's opt-in limit less the kernel's static shared memory).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceLimits {
    pub multiprocessors: usize,
    /// Shared memory a block may opt in to.
    pub max_shared_bytes: usize,
    pub tables_dynamic_limit: usize,
    pub select_dynamic_limit: usize,
    pub dense_dynamic_limit: usize,
    pub small_dynamic_limit: usize,
    /// 0 where the device has no cluster kernel (before sm_90).
    pub cluster_dynamic_limit: usize,
    pub encode_dynamic_limit: usize,
    pub train_assign_dynamic_limit: usize,
}

/// Shared memory per SM of sm_90 and of sm_80.
pub(crate) const SM90_SHARED: usize = 228 * 1024;
#[cfg(test)]
pub(crate) const SM80_SHARED: usize = 164 * 1024;

impl DeviceLimits {
    /// A device with `shared_per_sm` and an H100/H200's 132 SMs, as `Gpu::new` derives its
    /// limits (less each family's largest static shared memory, as ptxas reports it: a few
    /// hundred bytes, 2 KB for `pq_ranges`' per-thread partials): for the plan's tests, and the
    /// emulator, which has no device to ask.
    pub(crate) fn modelled(shared_per_sm: usize, clusters: bool) -> DeviceLimits {
        let max_shared_bytes = shared_per_sm - SHARED_RESERVED_PER_BLOCK;
        DeviceLimits {
            multiprocessors: 132,
            max_shared_bytes,
            tables_dynamic_limit: max_shared_bytes - pqtopk_abi::RANGE_SLICE_PARTIALS * size_of::<f32>(),
            select_dynamic_limit: max_shared_bytes - 384,
            dense_dynamic_limit: max_shared_bytes,
            small_dynamic_limit: max_shared_bytes,
            cluster_dynamic_limit: if clusters { max_shared_bytes - 560 } else { 0 },
            encode_dynamic_limit: max_shared_bytes,
            train_assign_dynamic_limit: max_shared_bytes,
        }
    }
}

/// The occupancy of `pq_score` blocks on a modelled device: three by its launch bounds, fewer
/// where shared memory runs out.
pub(crate) fn modelled_occupancy(shared_per_sm: usize) -> impl Fn(usize) -> Result<usize> {
    move |bytes| Ok((shared_per_sm / (bytes + SHARED_RESERVED_PER_BLOCK)).min(3))
}

/// The plan of `problem` on `path` for a device with `limits`; `score_blocks_per_sm(bytes)` is
/// how many `pq_score` blocks with `bytes` of dynamic shared memory fit on one SM (the driver's
/// occupancy, on a real device). [`Error::Unsupported`] where the path does not apply.
pub(crate) fn plan(
    problem: &Problem,
    path: Path,
    limits: &DeviceLimits,
    score_blocks_per_sm: impl Fn(usize) -> Result<usize>,
) -> Result<Plan> {
    problem.validate()?;
    let p = problem;
    // Per row: its lookup table and its histogram.
    let lut_bytes = p.m * p.c * 4 + HIST_BINS as usize * 4;
    let budget = limits.max_shared_bytes.min(SCORE_SMEM_BUDGET);
    let rows_per_kv = if p.group { p.sq } else { p.group_size() * p.sq };
    // Rows interleaved in one table entry, which are the rows of one block: as many as share
    // a kv head, up to four.
    let mut lut_width = rows_per_kv.next_power_of_two().min(4);
    while lut_width > 1 && lut_width * lut_bytes > budget {
        lut_width /= 2;
    }
    let dense = dense_plan(limits, p, rows_per_kv);
    // Rows of a pq_tables block: those of one table entry, or, where the tensor-core path
    // needs only the ranges, as many as keep about two waves of blocks, up to a dense row
    // tile (a block per four rows and sub-space left chunk_sq128's ranges at 110 µs, bound
    // by block turnover; 64 rows per block, 78 µs).
    let rows_per_block = match dense {
        Some(_) => {
            let blocks_wanted = 2 * TABLES_BLOCKS_PER_SM as usize * limits.multiprocessors;
            (p.rows() * p.m)
                .div_ceil(blocks_wanted)
                .next_multiple_of(MAX_ROWS_PER_BLOCK as usize)
                .min(DENSE_ROWS as usize)
                .min(rows_per_kv)
        }
        None => lut_width.min(rows_per_kv).min(MAX_ROWS_PER_BLOCK as usize),
    };
    // pq_tables stages the rows' query slices where it builds tables (at least one thread per
    // centroid: c ≤ 256 holds), the sub-space's codebook for the ranges alone.
    let ds = (p.d / p.m) as u32;
    let tables_shared_bytes = 4 * if dense.is_some() {
        ranges_staging_floats(p.c as u32, ds)
    } else {
        tables_staging_floats(rows_per_block as u32, ds)
    } as usize;
    if tables_shared_bytes > limits.tables_dynamic_limit {
        return Err(Error::Unsupported(format!(
            "d/m = {} exceeds {} on this device",
            p.d / p.m,
            limits.tables_dynamic_limit / 4 / tables_staging_floats(rows_per_block as u32, 1) as usize
        )));
    }
    let row_tiles = rows_per_kv.div_ceil(rows_per_block);
    let tile_groups = row_tiles * p.b * p.hkv;
    let tables_blocks = tile_groups * p.m;
    let (score_shared_bytes, keys_per_block, key_chunks) = if dense.is_some() {
        (0, 0, 0)
    } else {
        let score_shared_bytes = rows_per_block.next_multiple_of(lut_width) * lut_bytes;
        let per_sm = score_blocks_per_sm(score_shared_bytes)?;
        let slots = per_sm.max(1) * limits.multiprocessors;
        let keys_per_block = score_keys_per_block(p.n, tile_groups, slots);
        (score_shared_bytes, keys_per_block, p.n.div_ceil(keys_per_block))
    };
    let score_blocks = key_chunks * tile_groups;
    // Score order sorts each row's top k in shared memory where it fits, beside the
    // histogram; larger rows are sorted in runs and merged.
    let select_budget = limits.select_dynamic_limit - HIST_BINS as usize * 4;
    // The tie buffer also groups the keys above the threshold bin for the bucketed output,
    // so it grows with k where shared memory allows.
    let tie_capacity = TIE_CAPACITY.max(p.k.next_power_of_two()).min(1 << (select_budget / 16).ilog2());
    let sort_capacity = p.k.next_power_of_two().min(1 << ((select_budget - tie_capacity * 8) / 8).ilog2());
    let select_shared_bytes = HIST_BINS as usize * 4 + (sort_capacity + tie_capacity) * 8;
    // Few rows: a whole SM per row. More rows than SMs: smaller blocks, several per SM, whose
    // scans, sorts and sweeps overlap.
    let select_threads = if p.rows() > limits.multiprocessors { SELECT_THREADS_MANY_ROWS } else { SELECT_THREADS };
    // Fewer rows than SMs and long rows: the idle SMs share the rows' sweeps, all of a call's
    // blocks at once. Publishing and merging the parts costs about what a few sweep steps
    // do, so each part keeps at least MIN_STEPS_PER_PART of them (a decode row of 32K keys
    // is not split; measured on H100: splitting it in 4 gained nothing, and k = 6300 lost).
    let select_split = if select_threads == SELECT_THREADS {
        let steps = p.n.div_ceil((SELECT_KEYS_PER_STEP * SELECT_THREADS) as usize);
        (limits.multiprocessors / p.rows().max(1)).min(steps / MIN_STEPS_PER_PART).max(1)
    } else {
        1
    };
    // A row whose top k does not fit in shared memory is written a block per chunk, by
    // `pq_write_by_index` in index order, and in score order by `pq_write_candidates` for the
    // run sort; so is a row too long for the index bitmap whose tied keys rank by index. A
    // ragged row of fewer keys fits wherever a full row does (its bitmap is smaller, its k the
    // same), so full rows decide.
    let by_score = p.order == Order::ByScore;
    let chunked = may_write_in_chunks(by_score, p.k as u32, p.n as u32, sort_capacity as u32, tie_capacity as u32);
    let write_chunks = if chunked { p.n.div_ceil(WRITE_CHUNK_KEYS as usize) } else { 0 };
    // Where the call's chunks outnumber a wave of blocks, each block takes several, so that a
    // grid of rows that need none is one wave of header reads (WRITE_BLOCKS_PER_SM per SM).
    let write_wave = WRITE_BLOCKS_PER_SM as usize * limits.multiprocessors;
    let write_chunks_per_block = (p.rows() * write_chunks).div_ceil(write_wave).max(1);
    let sorts_runs = by_score && chunked;
    let run_blocks = if sorts_runs { p.rows() * p.k.div_ceil(RUN_KEYS as usize) } else { 0 };
    let merge_blocks = if sorts_runs { p.rows() * p.k.div_ceil(BLOCK_THREADS as usize) } else { 0 };
    // Rows short enough for one block: the whole call is one launch.
    let heads = if p.group { p.group_size() } else { 1 } as u32;
    let small_shared = small_shared_bytes(p.n as u32, heads, p.d as u32, p.m as u32, p.c as u32);
    let small_threads = if p.rows() > 4 * limits.multiprocessors { SMALL_MANY_ROWS_THREADS } else { SMALL_THREADS };
    let small = (p.n <= SMALL_MAX_KEYS as usize && small_shared as usize <= limits.small_dynamic_limit)
        .then_some(SmallPlan { shared_bytes: small_shared as usize, threads: small_threads });
    let small_by_default = small.is_some() && p.n <= small_auto_max_keys(p, limits.multiprocessors);
    let cluster = if dense.is_none() { cluster_plan(limits, p, rows_per_kv) } else { None };
    // The cluster path is correct but not yet faster than the launches on any measured shape
    // (docs/perf-notes.md, v7): only an explicit request takes it.
    let (small, cluster) = match path {
        Path::Auto if small_by_default => (small, None),
        Path::OneBlockPerRow if small.is_some() => (small, None),
        Path::Auto | Path::Launches => (None, None),
        Path::Cluster if cluster.is_some() => (None, cluster),
        _ => return Err(Error::Unsupported(format!("path {path:?} for {p:?} on this device"))),
    };
    // The cluster path's tables are its tiles'.
    let (lut_width, rows_per_block, row_tiles, tables_blocks, tables_shared_bytes) = match cluster {
        Some(c) => {
            let row_tiles = rows_per_kv.div_ceil(c.width);
            (
                c.width,
                c.width,
                row_tiles,
                row_tiles * p.b * p.hkv * p.m,
                tables_staging_floats(c.width as u32, (p.d / p.m) as u32) as usize * 4,
            )
        }
        None => (lut_width, rows_per_block, row_tiles, tables_blocks, tables_shared_bytes),
    };
    for (what, value) in [
        ("scoring blocks", score_blocks),
        ("dense scoring blocks", dense.map_or(0, |d| d.blocks)),
        ("table blocks", tables_blocks),
        ("rows·ceil(k/256)", merge_blocks),
    ] {
        if value > MAX_ITEMS {
            return Err(Error::Unsupported(format!("{what} = {value} exceeds {MAX_ITEMS}")));
        }
    }
    Ok(Plan {
        problem: *p,
        rows_per_kv,
        rows_per_block,
        lut_width,
        row_tiles,
        keys_per_block,
        key_chunks,
        tables_blocks,
        tables_shared_bytes,
        score_blocks,
        score_shared_bytes,
        dense,
        sort_capacity,
        tie_capacity,
        select_shared_bytes,
        select_threads,
        select_split,
        run_blocks,
        merge_blocks,
        write_chunks,
        write_chunks_per_block,
        small,
        cluster,
    })
}

/// Longest rows that `Path::Auto` gives `pq_topk_small` for `p` on `multiprocessors` SMs (see
/// `SMALL_AUTO_MAX_KEYS_BY_SCORE` and `SMALL_AUTO_MAX_KEYS_BY_INDEX`).
fn small_auto_max_keys(p: &Problem, multiprocessors: usize) -> usize {
    let [few_rows, some_rows, many_rows] = match p.order {
        Order::ByScore => SMALL_AUTO_MAX_KEYS_BY_SCORE,
        _ => SMALL_AUTO_MAX_KEYS_BY_INDEX,
    };
    if p.rows() <= multiprocessors {
        few_rows
    } else if p.rows() <= 4 * multiprocessors {
        some_rows
    } else {
        many_rows
    }
}

/// The cluster path's launch shape, where it applies: sm_90, every row's top k and tied keys
/// in one block's shared memory. Rows per tile: the most (up to four, sharing the table
/// loads) that still give about one block per SM, since a tile is one cluster.
fn cluster_plan(limits: &DeviceLimits, p: &Problem, rows_per_kv: usize) -> Option<ClusterPlan> {
    if limits.cluster_dynamic_limit == 0 {
        return None;
    }
    let slice = p.n.div_ceil(CLUSTER_BLOCKS as usize);
    let sort_capacity = p.k.next_power_of_two();
    let widest = rows_per_kv.next_power_of_two().min(MAX_ROWS_PER_BLOCK as usize);
    let clusters = |width: usize| rows_per_kv.div_ceil(width) * p.b * p.hkv;
    let enough = |width: usize| 10 * clusters(width) * CLUSTER_BLOCKS as usize >= 9 * limits.multiprocessors;
    let width = [4, 2, 1].into_iter().filter(|&w| w <= widest).find(|&w| enough(w)).unwrap_or(1);
    // The tie buffer also groups the bucketed output: as large as k where it fits. Two blocks
    // per SM where they fit (every cluster at once on an H200: one block per SM left 15 of
    // decode's 16 clusters in the first wave).
    let bytes = |width: usize, tie_capacity: usize| {
        cluster_layout(p.m as u32, p.c as u32, width as u32, slice as u32, sort_capacity as u32, tie_capacity as u32)
            .bytes as usize
    };
    let two_per_sm = (limits.max_shared_bytes + SHARED_RESERVED_PER_BLOCK) / 2 - SHARED_RESERVED_PER_BLOCK;
    let two_per_sm = two_per_sm.saturating_sub(limits.max_shared_bytes - limits.cluster_dynamic_limit);
    let tie_capacities = [TIE_CAPACITY.max(sort_capacity), sort_capacity, TIE_CAPACITY, MIN_CLUSTER_TIE_CAPACITY];
    let candidates = || [width, 1].into_iter().flat_map(|w| tie_capacities.into_iter().map(move |t| (w, t)));
    // Index order places the output by the row's index bitmap, in the tie buffer.
    let least_ties = match p.order {
        Order::ByScore => MIN_CLUSTER_TIE_CAPACITY,
        _ => MIN_CLUSTER_TIE_CAPACITY.max(index_bitmap_slots(p.n as u32) as usize),
    };
    let fitting = |limit: usize| candidates().find(|&(w, t)| t >= least_ties && bytes(w, t) <= limit);
    fitting(two_per_sm).or_else(|| fitting(limits.cluster_dynamic_limit)).map(|(width, tie_capacity)| {
        let shared_bytes = bytes(width, tie_capacity);
        ClusterPlan { width, slice, sort_capacity, tie_capacity, shared_bytes, clusters: clusters(width) }
    })
}

/// Keys per `pq_score` block for rows of `n` keys in `tile_groups` row tiles on `slots`
/// resident blocks: a multiple of the keys a block's threads take per step, at least
/// `MIN_KEYS_PER_BLOCK`, chosen so that the call's waves of blocks times each block's keys is
/// least (among equals the fewest blocks: each copies its tile's tables once). Filling the
/// device once, `⌈slots / tile_groups⌉` chunks per tile, can leave a last, partial wave as long
/// as a full one: decode b = 16 has 128 tiles on 264 slots, and 3 chunks of 10 752 keys take two
/// waves where 2 chunks of 16 384 take one: its scoring took 143.6 µs, and 108.3 in whole waves
/// (perf-notes v25).
fn score_keys_per_block(n: usize, tile_groups: usize, slots: usize) -> usize {
    let keys_for = |chunks: usize| {
        n.div_ceil(chunks).max(MIN_KEYS_PER_BLOCK).next_multiple_of(SCORE_KEYS_IN_FLIGHT * BLOCK_THREADS as usize)
    };
    let cost = |keys: usize| (tile_groups * n.div_ceil(keys)).div_ceil(slots) * keys;
    // Beyond twice the filling count every extra chunk only adds waves.
    let most = 2 * slots.div_ceil(tile_groups.max(1)).max(1);
    (1..=most).map(keys_for).fold(keys_for(1), |best, keys| if cost(keys) < cost(best) { keys } else { best })
}

/// The tensor-core scoring's launch shape, where it applies: f16 or bf16 queries and
/// codebooks of one type, no group mode, at least `DENSE_MIN_ROWS` rows per kv head and
/// `DENSE_MIN_SUBSPACES` sub-spaces, d and d/m multiples of 8, d ≤ `DENSE_MAX_D`, and its
/// shared memory within the device's.
fn dense_plan(limits: &DeviceLimits, p: &Problem, rows_per_kv: usize) -> Option<DensePlan> {
    let applies = p.query_dtype == p.codebook_dtype
        && p.query_dtype != DType::F32
        && !p.group
        && rows_per_kv >= DENSE_MIN_ROWS
        && p.m >= DENSE_MIN_SUBSPACES
        && p.d.is_multiple_of(8)
        && (p.d / p.m).is_multiple_of(8)
        && p.d / p.m <= RANGES_MAX_SUBSPACE_DIM as usize
        && p.d <= DENSE_MAX_D as usize;
    let shared_bytes = pqtopk_abi::dense_shared_bytes(p.c as u32, p.d as u32) as usize;
    if !applies || shared_bytes > limits.dense_dynamic_limit {
        return None;
    }
    // One block per SM at a time, one wave where the tiles are fewer than SMs: each block
    // ends by adding 64 rows of histograms to global memory, so fewer, longer blocks.
    let row_tiles = rows_per_kv.div_ceil(DENSE_ROWS as usize);
    let tile_groups = row_tiles * p.b * p.hkv;
    let chunks_wanted = (limits.multiprocessors / tile_groups).max(1);
    let keys_per_block =
        p.n.div_ceil(chunks_wanted)
            .max(DENSE_MIN_KEYS_PER_BLOCK)
            .next_multiple_of(DENSE_KEYS as usize)
            .min(DENSE_MAX_KEYS_PER_BLOCK as usize);
    let key_chunks = p.n.div_ceil(keys_per_block);
    Some(DensePlan { row_tiles, keys_per_block, key_chunks, blocks: key_chunks * tile_groups, shared_bytes })
}

/// A validated problem with its launch shape on one device.
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) problem: Problem,
    pub(crate) rows_per_kv: usize,
    pub(crate) rows_per_block: usize,
    pub(crate) lut_width: usize,
    pub(crate) row_tiles: usize,
    pub(crate) keys_per_block: usize,
    pub(crate) key_chunks: usize,
    pub(crate) tables_blocks: usize,
    pub(crate) tables_shared_bytes: usize,
    pub(crate) score_blocks: usize,
    pub(crate) score_shared_bytes: usize,
    /// Scoring by tensor cores instead of `pq_score`, where it applies.
    pub(crate) dense: Option<DensePlan>,
    pub(crate) sort_capacity: usize,
    pub(crate) tie_capacity: usize,
    pub(crate) select_shared_bytes: usize,
    pub(crate) select_threads: u32,
    pub(crate) select_split: usize,
    /// Score order with k above `sort_capacity`: `pq_sort_runs` blocks, and `pq_merge_runs`
    /// blocks per pass (0 otherwise).
    pub(crate) run_blocks: usize,
    pub(crate) merge_blocks: usize,
    /// A top k that may not fit in shared memory: `pq_write_by_index` (index order) or
    /// `pq_write_candidates` (score order) chunks per row (0 otherwise), and how many of them
    /// one block writes.
    pub(crate) write_chunks: usize,
    pub(crate) write_chunks_per_block: usize,
    /// Rows of at most `SMALL_MAX_KEYS` keys: `pq_topk_small`'s launch, which then does the
    /// whole call.
    pub(crate) small: Option<SmallPlan>,
    /// Few rows on sm_90: `pq_topk_cluster` after `pq_tables`.
    pub(crate) cluster: Option<ClusterPlan>,
}

/// Which kernels a call runs, for `Gpu::plan_with_path`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// What [`Gpu::plan`] picks.
    Auto,
    /// `pq_topk_small` (rows of at most `SMALL_MAX_KEYS` keys).
    OneBlockPerRow,
    /// `pq_tables`, then `pq_topk_cluster` (sm_90).
    Cluster,
    /// `pq_tables`, `pq_score` or `pq_score_dense`, `pq_select` (and the run sorts).
    Launches,
}

/// The launch shape of `pq_topk_small`: one block per row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SmallPlan {
    /// Dynamic shared memory, `small_shared_bytes`.
    pub(crate) shared_bytes: usize,
    pub(crate) threads: u32,
}

/// The launch shape of `pq_topk_cluster`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClusterPlan {
    /// Rows per tile, interleaved in the tables.
    pub(crate) width: usize,
    pub(crate) slice: usize,
    pub(crate) sort_capacity: usize,
    pub(crate) tie_capacity: usize,
    pub(crate) shared_bytes: usize,
    pub(crate) clusters: usize,
}

/// The launch shape of `pq_score_dense`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DensePlan {
    pub(crate) row_tiles: usize,
    pub(crate) keys_per_block: usize,
    pub(crate) key_chunks: usize,
    pub(crate) blocks: usize,
    pub(crate) shared_bytes: usize,
}

pub(crate) struct WorkspaceLayout {
    pub(crate) n_valid: usize,
    pub(crate) luts: usize,
    pub(crate) ranges: usize,
    pub(crate) binning: usize,
    pub(crate) histograms: usize,
    /// Right after the histograms, in the region `pq_tables` zeroes.
    pub(crate) split_state: usize,
    /// Each split row's shared refinement state, after the split state (zeroed with it).
    pub(crate) refine_state: usize,
    pub(crate) scores: usize,
    pub(crate) candidates: usize,
    /// The second buffer of the merge passes.
    pub(crate) merged: usize,
    pub(crate) split_keys: usize,
    /// Each row's header and look-back words for `pq_write_by_index` or `pq_write_candidates`.
    pub(crate) write_state: usize,
    pub(crate) total: usize,
}

impl Plan {
    /// The plan of `problem` on `path` for the kernels' host build, which the tests run on CPU
    /// threads (`pqtopk-kernels-emulated`): an sm_90 device's shared memory and SMs.
    #[doc(hidden)]
    pub fn emulated(problem: &Problem, path: Path) -> Result<Plan> {
        plan(problem, path, &DeviceLimits::modelled(SM90_SHARED, true), modelled_occupancy(SM90_SHARED))
    }

    /// The problem this plan launches.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// Bytes of workspace a call needs: the valid lengths, the lookup tables (m·c·4 bytes per row,
    /// rounded up to the rows that share a table entry), and per row its sub-space ranges,
    /// binning, histogram and selection state (4 KiB + 16 bytes, zeroed by each call's first
    /// kernel), one u32 order key per key, room for k candidates (score order with k too large to
    /// sort in shared memory), and, when fewer rows than SMs share the selection's sweeps, room
    /// for each row's gathered keys and its shared refinement's state (4 KiB + 32 bytes, zeroed
    /// too), and where rows go to the chunks, each row's header and chunk words. Its contents need no initialization; a workspace must not
    /// be shared by calls that may run concurrently.
    pub fn workspace_bytes(&self) -> usize {
        self.workspace_layout().total
    }

    /// Rows with shared refinement state: all of them where the selection is split.
    fn refine_rows(&self) -> usize {
        if self.select_split > 1 && self.small.is_none() && self.cluster.is_none() { self.problem.rows() } else { 0 }
    }

    /// u32 between the starts of two rows' order keys: rows start 16-byte aligned.
    pub(crate) fn score_stride(&self) -> usize {
        self.problem.n.next_multiple_of(4)
    }

    pub(crate) fn workspace_layout(&self) -> WorkspaceLayout {
        let p = &self.problem;
        let rows = p.rows();
        let mut end = 0;
        let mut region = |bytes: usize| {
            let start = end;
            end = (start + bytes).next_multiple_of(256);
            start
        };
        let n_valid = region(p.b * 4);
        // The one-launch path of short rows needs nothing but the valid lengths.
        let unless_small = |bytes: usize| if self.small.is_some() { 0 } else { bytes };
        let lut_bytes =
            if self.dense.is_some() { 0 } else { self.row_tiles * p.b * p.hkv * self.lut_width * p.m * p.c * 4 };
        let luts = region(unless_small(lut_bytes));
        let ranges = region(unless_small(rows * p.m * 8));
        // The cluster path keeps scores and selection on chip: tables, ranges and histograms only.
        let launches_only = |bytes: usize| if self.cluster.is_some() { 0 } else { unless_small(bytes) };
        let binning = region(launches_only(rows * std::mem::size_of::<RowBinning>()));
        let refine_rows = self.refine_rows();
        let histograms = region(unless_small(
            rows * (HIST_BINS + SPLIT_STATE_WORDS) as usize * 4 + refine_rows * REFINE_STATE_WORDS as usize * 4,
        ));
        let split_state = histograms + rows * HIST_BINS as usize * 4;
        let refine_state = split_state + rows * SPLIT_STATE_WORDS as usize * 4;
        let scores = region(launches_only(rows * self.score_stride() * 4));
        let candidate_bytes = if self.run_blocks > 0 { p.out_len() * 8 } else { 0 };
        let candidates = region(launches_only(candidate_bytes));
        let merged = region(launches_only(if merge_passes(p.k as u32) > 0 { candidate_bytes } else { 0 }));
        let split_keys = region(launches_only(if self.select_split > 1 {
            rows * (self.sort_capacity + self.tie_capacity) * 8
        } else {
            0
        }));
        let write_state = region(launches_only(if self.write_chunks > 0 {
            rows * (WRITE_STATE_HEADER_WORDS as usize + self.write_chunks) * 8
        } else {
            0
        }));
        WorkspaceLayout {
            n_valid,
            luts,
            ranges,
            binning,
            histograms,
            split_state,
            refine_state,
            scores,
            candidates,
            merged,
            split_keys,
            write_state,
            total: end,
        }
    }
}

/// One kernel launch of a call: the kernel with its parameters, and its grid.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub kernel: Kernel,
    pub blocks: u32,
    pub threads: u32,
    pub shared_bytes: u32,
}

/// A kernel of the top-k or the indexer, with its parameters.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    TopkSmall(SmallParams),
    Tables(TablesParams),
    /// `pq_ranges`: `pq_tables` without tables, for the tensor-core path.
    Ranges(TablesParams),
    TopkCluster(ClusterParams),
    ScoreDense(DenseScoreParams),
    Score(ScoreParams),
    Select(SelectParams),
    /// `pq_select_by_index`: `pq_select` for index order and unordered results.
    SelectByIndex(SelectParams),
    /// `pq_select_long_by_index`: `pq_select_by_index` for rows too long for its index bitmap.
    SelectLongByIndex(SelectParams),
    /// `pq_write_by_index`: the index-order output of rows whose top k does not fit in shared
    /// memory.
    WriteByIndex(SelectParams),
    /// `pq_write_candidates`: the score-order candidates of rows whose top k does not fit in
    /// shared memory, for `pq_sort_runs`.
    WriteCandidates(SelectParams),
    SortRuns(SelectParams),
    MergeRuns(MergeParams),
    /// `pq_encode_w*`, the register width's kernel (`register_width_index`).
    Encode {
        width_index: usize,
        params: EncodeParams,
    },
    AdvanceLengths(AdvanceParams),
    TrainInit(TrainParams),
    /// `pq_train_assign_w*`, the register width's kernel (`register_width_index`).
    TrainAssign {
        width_index: usize,
        params: TrainParams,
    },
    TrainUpdate(TrainParams),
}

impl Kernel {
    /// The kernel's name in the module.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::TopkSmall(_) => kernel_names::TOPK_SMALL,
            Kernel::Tables(_) => kernel_names::TABLES,
            Kernel::Ranges(_) => kernel_names::RANGES,
            Kernel::TopkCluster(_) => kernel_names::TOPK_CLUSTER,
            Kernel::ScoreDense(_) => kernel_names::SCORE_DENSE,
            Kernel::Score(_) => kernel_names::SCORE,
            Kernel::Select(_) => kernel_names::SELECT,
            Kernel::SelectByIndex(_) => kernel_names::SELECT_BY_INDEX,
            Kernel::SelectLongByIndex(_) => kernel_names::SELECT_LONG_BY_INDEX,
            Kernel::WriteByIndex(_) => kernel_names::WRITE_BY_INDEX,
            Kernel::WriteCandidates(_) => kernel_names::WRITE_CANDIDATES,
            Kernel::SortRuns(_) => kernel_names::SORT_RUNS,
            Kernel::MergeRuns(_) => kernel_names::MERGE_RUNS,
            Kernel::Encode { width_index, .. } => kernel_names::ENCODE[*width_index],
            Kernel::AdvanceLengths(_) => kernel_names::ADVANCE_LENGTHS,
            Kernel::TrainInit(_) => kernel_names::TRAIN_INIT,
            Kernel::TrainAssign { width_index, .. } => kernel_names::TRAIN_ASSIGN[*width_index],
            Kernel::TrainUpdate(_) => kernel_names::TRAIN_UPDATE,
        }
    }

    /// Blocks per thread-block cluster: `CLUSTER_BLOCKS` for `pq_topk_cluster`, whose cluster
    /// shape its PTX fixes; 1 for every other kernel.
    pub fn cluster_blocks(&self) -> u32 {
        if matches!(self, Kernel::TopkCluster(_)) { CLUSTER_BLOCKS } else { 1 }
    }
}

impl Plan {
    /// The launches of one call on `buffers`, in stream order, each handed to `launch`; stops
    /// at the first error. The GPU launches them through the driver; the tests also run them
    /// through the kernels' host build (`pqtopk-kernels-emulated`).
    #[doc(hidden)]
    pub fn launches(&self, buffers: &RawBuffers, mut launch: impl FnMut(Launch) -> Result<()>) -> Result<()> {
        let p = &self.problem;
        let layout = self.workspace_layout();
        let at = |offset: usize| buffers.workspace + offset as u64;
        let shape = Shape {
            b: p.b as u32,
            h: p.h as u32,
            hkv: p.hkv as u32,
            sq: p.sq as u32,
            d: p.d as u32,
            m: p.m as u32,
            c: p.c as u32,
            n: p.n as u32,
            k: p.k as u32,
            rows_per_kv: self.rows_per_kv as u32,
            score_stride: self.score_stride() as u32,
            query_dtype: p.query_dtype as u32,
            codebook_dtype: p.codebook_dtype as u32,
            metric: p.metric as u32,
            order: p.order as u32,
            group: p.group as u32,
        };
        if let Some(SmallPlan { shared_bytes, threads }) = self.small {
            let small = SmallParams {
                shape,
                queries: buffers.queries,
                codebooks: buffers.codebooks,
                codes: buffers.codes,
                n_valid: buffers.n_valid,
                out_indices: buffers.indices,
                out_scores: buffers.scores,
            };
            // One block per row with the plan's shared memory.
            return launch(Launch {
                kernel: Kernel::TopkSmall(small),
                blocks: p.rows() as u32,
                threads,
                shared_bytes: shared_bytes as u32,
            });
        }
        let tiling = Tiling {
            rows_per_block: self.rows_per_block as u32,
            lut_width: self.lut_width as u32,
            row_tiles: self.row_tiles as u32,
        };
        let tables = TablesParams {
            shape,
            tiling,
            queries: buffers.queries,
            codebooks: buffers.codebooks,
            luts: if self.dense.is_some() { 0 } else { at(layout.luts) },
            ranges: at(layout.ranges),
            histograms: at(layout.histograms),
            refine_rows: self.refine_rows() as u32,
        };
        let score = ScoreParams {
            shape,
            tiling,
            codes: buffers.codes,
            n_valid: buffers.n_valid,
            luts: tables.luts,
            ranges: tables.ranges,
            scores: at(layout.scores),
            binning: at(layout.binning),
            histograms: tables.histograms,
            keys_per_block: self.keys_per_block as u32,
            key_chunks: self.key_chunks as u32,
        };
        let select = SelectParams {
            shape,
            n_valid: buffers.n_valid,
            scores: score.scores,
            binning: score.binning,
            histograms: score.histograms,
            out_indices: buffers.indices,
            out_scores: buffers.scores,
            candidates: at(layout.candidates),
            sort_capacity: self.sort_capacity as u32,
            tie_capacity: self.tie_capacity as u32,
            split: self.select_split as u32,
            split_state: at(layout.split_state),
            refine_state: at(layout.refine_state),
            split_keys: at(layout.split_keys),
            write_chunks: self.write_chunks as u32,
            write_chunks_per_block: self.write_chunks_per_block as u32,
            write_state: at(layout.write_state),
        };
        launch(Launch {
            kernel: if self.dense.is_some() { Kernel::Ranges(tables) } else { Kernel::Tables(tables) },
            blocks: self.tables_blocks as u32,
            threads: BLOCK_THREADS,
            shared_bytes: self.tables_shared_bytes as u32,
        })?;
        if let Some(cluster) = self.cluster {
            let params = ClusterParams {
                shape,
                tiling,
                codes: buffers.codes,
                n_valid: buffers.n_valid,
                luts: tables.luts,
                ranges: tables.ranges,
                out_indices: buffers.indices,
                out_scores: buffers.scores,
                slice: cluster.slice as u32,
                sort_capacity: cluster.sort_capacity as u32,
                tie_capacity: cluster.tie_capacity as u32,
            };
            return launch(Launch {
                kernel: Kernel::TopkCluster(params),
                blocks: (cluster.clusters * CLUSTER_BLOCKS as usize) as u32,
                threads: CLUSTER_THREADS,
                shared_bytes: cluster.shared_bytes as u32,
            });
        }
        match self.dense {
            Some(dense) => launch(Launch {
                kernel: Kernel::ScoreDense(DenseScoreParams {
                    shape,
                    queries: buffers.queries,
                    codebooks: buffers.codebooks,
                    codes: buffers.codes,
                    n_valid: buffers.n_valid,
                    ranges: score.ranges,
                    scores: score.scores,
                    binning: score.binning,
                    histograms: score.histograms,
                    row_tiles: dense.row_tiles as u32,
                    keys_per_block: dense.keys_per_block as u32,
                    key_chunks: dense.key_chunks as u32,
                }),
                blocks: dense.blocks as u32,
                threads: DENSE_THREADS,
                shared_bytes: dense.shared_bytes as u32,
            })?,
            None => launch(Launch {
                kernel: Kernel::Score(score),
                blocks: self.score_blocks as u32,
                threads: BLOCK_THREADS,
                shared_bytes: self.score_shared_bytes as u32,
            })?,
        }
        let select_kernel = if p.order == Order::ByScore {
            Kernel::Select(select)
        } else if index_bitmap_fits(p.n as u32, self.tie_capacity as u32) {
            Kernel::SelectByIndex(select)
        } else {
            Kernel::SelectLongByIndex(select)
        };
        launch(Launch {
            kernel: select_kernel,
            blocks: (p.rows() * self.select_split) as u32,
            threads: self.select_threads,
            shared_bytes: self.select_shared_bytes as u32,
        })?;
        if self.write_chunks > 0 {
            launch(Launch {
                kernel: if p.order == Order::ByScore {
                    Kernel::WriteCandidates(select)
                } else {
                    Kernel::WriteByIndex(select)
                },
                blocks: (p.rows() * self.write_chunks.div_ceil(self.write_chunks_per_block)) as u32,
                threads: WRITE_THREADS,
                shared_bytes: 0,
            })?;
        }
        if self.run_blocks > 0 {
            launch(Launch {
                kernel: Kernel::SortRuns(select),
                blocks: self.run_blocks as u32,
                threads: SELECT_THREADS,
                shared_bytes: RUN_KEYS * 8,
            })?;
            let passes = merge_passes(shape.k);
            let (mut src, mut dst) = (select.candidates, at(layout.merged));
            for pass in 0..passes {
                let merge =
                    MergeParams { select, width: RUN_KEYS << pass, last: (pass + 1 == passes) as u32, src, dst };
                launch(Launch {
                    kernel: Kernel::MergeRuns(merge),
                    blocks: self.merge_blocks as u32,
                    threads: BLOCK_THREADS,
                    shared_bytes: 0,
                })?;
                (src, dst) = (dst, src);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{DType, Metric};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Everything a plan launches fits the device, and its workspace regions are ordered and
    /// aligned.
    fn check(plan: &Plan, l: &DeviceLimits) {
        let p = plan.problem();
        let ctx = format!("{p:?}");
        if let Some(SmallPlan { shared_bytes, threads }) = plan.small {
            assert!(p.n <= SMALL_MAX_KEYS as usize && shared_bytes <= l.small_dynamic_limit, "{ctx}");
            assert!(threads <= SMALL_THREADS && threads % 32 == 0, "{ctx}");
            assert!(plan.cluster.is_none(), "{ctx}");
        } else {
            assert!(plan.tables_shared_bytes <= l.tables_dynamic_limit, "{ctx}");
            assert!(plan.score_shared_bytes <= SCORE_SMEM_BUDGET, "{ctx}");
            assert!(plan.select_shared_bytes <= l.select_dynamic_limit, "{ctx}");
            assert!(plan.sort_capacity.is_power_of_two() && plan.tie_capacity.is_power_of_two(), "{ctx}");
            for blocks in [plan.tables_blocks, plan.score_blocks, plan.run_blocks, plan.merge_blocks] {
                assert!(blocks <= MAX_ITEMS, "{ctx}");
            }
            let sorts_runs = p.order == Order::ByScore && p.k.next_power_of_two() > plan.sort_capacity;
            assert_eq!(plan.run_blocks > 0, sorts_runs, "{ctx}");
            if let Some(d) = plan.dense {
                assert!(
                    d.shared_bytes <= l.dense_dynamic_limit && d.keys_per_block <= DENSE_MAX_KEYS_PER_BLOCK as usize
                );
            } else {
                assert!(plan.score_blocks >= 1 && plan.keys_per_block * plan.key_chunks >= p.n, "{ctx}");
            }
            if let Some(c) = plan.cluster {
                assert!(c.shared_bytes <= l.cluster_dynamic_limit && c.sort_capacity >= p.k, "{ctx}");
                assert!(c.slice * CLUSTER_BLOCKS as usize >= p.n && c.width == plan.lut_width, "{ctx}");
            }
        }
        let w = plan.workspace_layout();
        let starts =
            [w.n_valid, w.luts, w.ranges, w.binning, w.histograms, w.scores, w.candidates, w.merged, w.split_keys];
        assert!(starts.windows(2).all(|s| s[0] <= s[1]) && starts.iter().all(|s| s % 256 == 0), "{ctx}");
        assert!(w.split_keys <= w.total && plan.workspace_bytes() == w.total, "{ctx}");
    }

    #[test]
    fn auto_takes_one_launch_for_short_rows_and_never_the_cluster_path() {
        let l = DeviceLimits::modelled(SM90_SHARED, true);
        let decode = Problem::new(1, 32, 8, 1, 128, 16, 256, 31872, 2048);
        let short = Problem { n: 1024, k: 100, ..decode };
        let auto = |p: &Problem| plan(p, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        assert!(auto(&short).small.is_some() && auto(&short).workspace_bytes() == 256);
        // Longer rows, or more rows per SM, are faster in three launches, and in index order
        // from fewer keys; the one block still takes them where asked.
        assert!(auto(&Problem { n: 2048, ..short }).small.is_some());
        assert!(auto(&Problem { n: 2049, ..short }).small.is_none());
        let by_index = Problem { n: 1536, ..short.with_order(Order::ByIndex) };
        assert!(auto(&by_index).small.is_some() && auto(&Problem { n: 1537, ..by_index }).small.is_none());
        let more_by_index = Problem { b: 16, n: 512, ..by_index };
        assert!(auto(&more_by_index).small.is_some() && auto(&Problem { n: 513, ..more_by_index }).small.is_none());
        let more_rows = Problem { b: 16, ..short };
        assert!(auto(&more_rows).small.is_some() && auto(&Problem { n: 1025, ..more_rows }).small.is_none());
        let many_rows = Problem { b: 64, n: 513, ..short };
        assert!(auto(&many_rows).small.is_none() && auto(&Problem { n: 512, ..many_rows }).small.is_some());
        // Many rows take blocks of half the threads, four to an SM.
        let threads = |p: &Problem| auto(p).small.unwrap().threads;
        assert_eq!(
            (threads(&more_rows), threads(&Problem { n: 512, ..many_rows })),
            (SMALL_THREADS, SMALL_MANY_ROWS_THREADS)
        );
        for p in [Problem { n: 4096, ..short }, Problem { n: 4096, ..many_rows }] {
            assert!(plan(&p, Path::OneBlockPerRow, &l, modelled_occupancy(SM90_SHARED)).unwrap().small.is_some());
        }
        assert!(
            plan(&Problem { n: 4097, ..short }, Path::OneBlockPerRow, &l, modelled_occupancy(SM90_SHARED)).is_err()
        );
        assert!(auto(&decode).small.is_none() && auto(&decode).cluster.is_none());
        let cluster = plan(&decode, Path::Cluster, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        assert_eq!((cluster.lut_width, cluster.cluster.unwrap().clusters), (2, 16));
        assert!(plan(&decode, Path::OneBlockPerRow, &l, modelled_occupancy(SM90_SHARED)).is_err());
        // No cluster kernel before sm_90.
        let sm80 = DeviceLimits::modelled(SM80_SHARED, false);
        assert!(matches!(
            plan(&decode, Path::Cluster, &sm80, modelled_occupancy(SM80_SHARED)),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn raw_buffers_are_checked_before_any_launch() {
        use crate::gpu::{CheckedBuffers, RawSlice};
        let l = DeviceLimits::modelled(SM90_SHARED, true);
        let p = Problem::new(1, 4, 2, 1, 64, 8, 16, 5000, 10);
        let plan = plan(&p, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        let at = |address: u64, len: usize| RawSlice { address, len };
        let ok = CheckedBuffers {
            queries: at(0x1000, p.queries_len()),
            query_dtype: DType::F16,
            codebooks: at(0x2000, p.codebooks_len()),
            codebook_dtype: DType::F16,
            codes: at(0x3000, p.codes_len()),
            n_valid: None,
            indices: at(0x4000, p.out_len()),
            scores: None,
            workspace: at(0x5000, plan.workspace_bytes()),
        };
        let raw = ok.check(&plan).unwrap();
        assert_eq!((raw.queries, raw.n_valid, raw.scores, raw.workspace), (0x1000, 0, 0, 0x5000));
        let name = |b: CheckedBuffers| match b.check(&plan) {
            Err(
                Error::BufferLength { name, .. }
                | Error::InvalidArgument { name, .. }
                | Error::DTypeMismatch { name, .. },
            ) => name,
            other => panic!("expected a typed error, got {other:?}"),
        };
        assert_eq!(name(CheckedBuffers { query_dtype: DType::F32, ..ok }), "queries");
        assert_eq!(name(CheckedBuffers { codebooks: at(0x2000, p.codebooks_len() + 1), ..ok }), "codebooks");
        assert_eq!(name(CheckedBuffers { codes: at(0x3002, p.codes_len()), ..ok }), "codes");
        assert_eq!(name(CheckedBuffers { n_valid: Some(at(0x6000, 2)), ..ok }), "n_valid");
        assert_eq!(name(CheckedBuffers { indices: at(0, p.out_len()), ..ok }), "indices");
        assert_eq!(name(CheckedBuffers { scores: Some(at(0x7000, p.out_len() - 1)), ..ok }), "scores");
        assert_eq!(name(CheckedBuffers { workspace: at(0x5008, plan.workspace_bytes()), ..ok }), "workspace");
        // Longer outputs and workspace are fine.
        assert!(CheckedBuffers { indices: at(0x4000, p.out_len() + 5), ..ok }.check(&plan).is_ok());
    }

    #[test]
    fn each_path_launches_its_kernels_in_order_into_the_workspace() {
        let l = DeviceLimits::modelled(SM90_SHARED, true);
        let decode = Problem::new(1, 32, 8, 1, 128, 16, 256, 31872, 2048);
        let buffers = RawBuffers { workspace: 0x10_0000, indices: 0x2000, ..RawBuffers::default() };
        let launched = |p: &Problem, path: Path| {
            let plan = plan(p, path, &l, modelled_occupancy(SM90_SHARED)).unwrap();
            let mut kernels = Vec::new();
            plan.launches(&buffers, |launch| {
                // Every workspace address the kernels get lies in the plan's workspace.
                let workspace = buffers.workspace..buffers.workspace + plan.workspace_bytes() as u64;
                if let Kernel::Select(s)
                | Kernel::SelectByIndex(s)
                | Kernel::SelectLongByIndex(s)
                | Kernel::SortRuns(s)
                | Kernel::WriteByIndex(s)
                | Kernel::WriteCandidates(s) = launch.kernel
                {
                    for address in [s.scores, s.binning, s.histograms, s.split_state] {
                        assert!(workspace.contains(&address), "{:?}", launch.kernel);
                    }
                }
                if let Kernel::WriteByIndex(s) | Kernel::WriteCandidates(s) = launch.kernel {
                    let state_bytes = (p.rows() * (WRITE_STATE_HEADER_WORDS + s.write_chunks) as usize * 8) as u64;
                    for address in [s.write_state, s.write_state + state_bytes - 1] {
                        assert!(workspace.contains(&address), "{:?}", launch.kernel);
                    }
                }
                assert!(launch.blocks > 0 && launch.threads > 0);
                kernels.push(launch.kernel.name());
                Ok(())
            })
            .unwrap();
            kernels.join(" ")
        };
        assert_eq!(launched(&Problem { n: 1024, k: 256, ..decode }, Path::Auto), "pq_topk_small");
        // Few rows still take three launches (issue #10 asks for two at most).
        assert_eq!(launched(&decode, Path::Auto), "pq_tables pq_score pq_select");
        assert_eq!(launched(&decode, Path::Cluster), "pq_tables pq_topk_cluster");
        let prefill = Problem::new(1, 32, 8, 64, 128, 16, 256, 31872, 2048);
        assert_eq!(launched(&prefill, Path::Auto), "pq_ranges pq_score_dense pq_select");
        let large_k = Problem::new(1, 4, 1, 1, 128, 16, 256, 100_003, 99_999);
        let merges = merge_passes(99_999) as usize;
        let expected =
            ["pq_tables pq_score pq_select pq_write_candidates pq_sort_runs", &" pq_merge_runs".repeat(merges)]
                .concat();
        assert_eq!(launched(&large_k, Path::Auto), expected);
        let large_k_by_index = large_k.with_order(Order::ByIndex);
        assert_eq!(launched(&large_k_by_index, Path::Auto), "pq_tables pq_score pq_select_by_index pq_write_by_index");
        // Rows too long for the index bitmap: their own selection kernel, and the chunks for
        // rows whose ties rank by index.
        let long_by_index = Problem { n: 1_000_003, k: 1024, ..large_k_by_index };
        assert_eq!(
            launched(&long_by_index, Path::Auto),
            "pq_tables pq_score pq_select_long_by_index pq_write_by_index"
        );
        // A failed launch stops the sequence.
        let plan = plan(&decode, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        let mut count = 0;
        let failed = plan.launches(&buffers, |_| {
            count += 1;
            Err(Error::Unsupported("stop".into()))
        });
        assert!(failed.is_err() && count == 1);
    }

    #[test]
    fn score_chunks_end_in_whole_waves() {
        let n: usize = 31_872;
        let waves =
            |tiles: usize, slots: usize| (tiles * n.div_ceil(score_keys_per_block(n, tiles, slots))).div_ceil(slots);
        // Decode b = 1 on 264 slots: 32 chunks of 1024 keys, one wave, as before.
        assert_eq!(score_keys_per_block(n, 8, 264), 1024);
        // Decode b = 16: one wave of 2 chunks, not two waves of 3.
        assert_eq!(score_keys_per_block(n, 128, 264), 16_384);
        // 32 one-row tiles (no GQA): one wave of 8 chunks, where 9 left 24 blocks for a second.
        assert_eq!((score_keys_per_block(n, 32, 264), waves(32, 264)), (4096, 1));
        // More tiles than slots: whole rows.
        assert_eq!(score_keys_per_block(n, 512, 264), n.next_multiple_of(512));
        for (n, tiles, slots) in [(1usize, 1, 1), (5000, 3, 264), (131_072, 100, 396), (n, 256, 396), (n, 1000, 132)] {
            let keys = score_keys_per_block(n, tiles, slots);
            let filling = n.div_ceil(slots.div_ceil(tiles)).max(MIN_KEYS_PER_BLOCK).next_multiple_of(512);
            let cost = |keys: usize| (tiles * n.div_ceil(keys)).div_ceil(slots) * keys;
            assert!(keys.is_multiple_of(512) && keys >= MIN_KEYS_PER_BLOCK, "{n} keys, {tiles} tiles, {slots} slots");
            assert!(cost(keys) <= cost(filling), "{n} keys, {tiles} tiles, {slots} slots");
        }
    }

    #[test]
    fn large_k_writes_in_chunks_then_sorts_runs_in_score_order() {
        let l = DeviceLimits::modelled(SM90_SHARED, true);
        let p = Problem::new(1, 4, 1, 1, 128, 16, 256, 100_003, 99_999);
        let by_score = plan(&p, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        assert_eq!(by_score.run_blocks, 4 * 99_999usize.div_ceil(RUN_KEYS as usize));
        assert!(by_score.workspace_layout().merged > by_score.workspace_layout().candidates);
        let by_index = plan(&p.with_order(Order::ByIndex), Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        let chunks = 100_003usize.div_ceil(WRITE_CHUNK_KEYS as usize);
        assert_eq!((by_index.run_blocks, by_index.write_chunks), (0, chunks));
        assert_eq!(by_score.write_chunks, chunks);
        // A top k that fits in shared memory: neither.
        let fits = plan(&Problem { k: 2048, ..p }, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap();
        assert_eq!((fits.run_blocks, fits.write_chunks), (0, 0));
    }

    #[test]
    fn index_order_may_write_in_chunks_where_the_bitmap_does_not_fit() {
        let l = DeviceLimits::modelled(SM90_SHARED, true);
        let by_index = |n, k| {
            let p = Problem::new(1, 32, 8, 1, 128, 16, 256, n, k).with_order(Order::ByIndex);
            plan(&p, Path::Auto, &l, modelled_occupancy(SM90_SHARED)).unwrap()
        };
        // A bitmap of 131 072 keys fits the tie buffer (4096 slots); one more key does not, and
        // a row whose ties rank by index then goes to the chunks (others sort by index).
        assert_eq!(by_index(131_072, 2048).write_chunks, 0);
        let past = by_index(131_073, 2048);
        assert_eq!(past.write_chunks, 131_073usize.div_ceil(WRITE_CHUNK_KEYS as usize));
        // Every key taken: the selection copies them itself.
        assert_eq!(by_index(131_073, 131_073).write_chunks, 0);
        // 32 rows of 65 chunks outnumber a wave of 4 blocks on each of 132 SMs (528): four
        // chunks per block.
        assert_eq!((past.write_chunks, past.write_chunks_per_block), (65, 4));
    }

    #[test]
    fn every_plan_of_random_problems_fits_the_device() {
        let mut rng = StdRng::seed_from_u64(0x5EED);
        for (shared, clusters) in [(SM90_SHARED, true), (SM80_SHARED, false)] {
            let l = DeviceLimits::modelled(shared, clusters);
            for _ in 0..3000 {
                let hkv = rng.random_range(1..9);
                let m = [1, 2, 4, 8, 16, 32][rng.random_range(0..6)];
                let d = m * rng.random_range(1..=256 / m);
                let n = [1, 7, 4096, 4097, 31872, 131_072, 300_000][rng.random_range(0..7)];
                let dtype = [DType::F32, DType::F16, DType::BF16][rng.random_range(0..3)];
                let p = Problem::new(
                    rng.random_range(1..65),
                    hkv * rng.random_range(1..9),
                    hkv,
                    rng.random_range(1..130),
                    d,
                    m,
                    rng.random_range(1..=256),
                    n,
                    rng.random_range(1..=n),
                )
                .with_metric(if rng.random() { Metric::L2 } else { Metric::InnerProduct })
                .with_order([Order::ByScore, Order::ByIndex, Order::Unordered][rng.random_range(0..3)])
                .with_group(rng.random_bool(0.2))
                .with_dtypes(dtype, dtype);
                for path in [Path::Auto, Path::OneBlockPerRow, Path::Cluster, Path::Launches] {
                    match plan(&p, path, &l, modelled_occupancy(shared)) {
                        Ok(planned) => check(&planned, &l),
                        Err(Error::Unsupported(_)) => {}
                        Err(e) => panic!("{p:?} {path:?}: {e}"),
                    }
                }
            }
        }
    }
}

//! The kernel ABI of pqtopk, shared by the host crate and the GPU kernels.
//!
//! Every kernel takes exactly one parameter, passed by value (PTX `.param` byval aggregate):
//! the `#[repr(C)]` struct below that belongs to it. Device addresses are `u64`; a null address
//! means "absent" where a field says so. Changing a struct here changes both sides at once.
#![no_std]
#![warn(missing_docs)]

/// Threads per block of the scoring kernel and the smoke kernels.
pub const BLOCK_THREADS: u32 = 256;
/// Threads per block of the selection kernel: one block per output row, as many threads as a
/// block may have.
pub const SELECT_THREADS: u32 = 1024;
/// Keys each `pq_select` thread takes per step of a sweep over a row (two 16-byte loads).
pub const SELECT_KEYS_PER_STEP: u32 = 8;
/// Threads per block of `pq_write_by_index` and `pq_write_candidates`, each block one chunk of
/// `SELECT_KEYS_PER_STEP · WRITE_THREADS` keys of a row.
pub const WRITE_THREADS: u32 = 256;
/// Keys of a row that one `pq_write_by_index` or `pq_write_candidates` block writes.
pub const WRITE_CHUNK_KEYS: u32 = SELECT_KEYS_PER_STEP * WRITE_THREADS;
/// `pq_write_by_index` and `pq_write_candidates` blocks that fit on one SM at once (their launch
/// bounds): many in flight overlap their look-back waits. The plan gives each block several
/// chunks where a call's chunks outnumber one wave of them (see
/// [`SelectParams::write_chunks_per_block`]).
pub const WRITE_BLOCKS_PER_SM: u32 = 4;
/// u64 per row of [`SelectParams::write_state`] before its look-back words: the tied range's
/// `lo` and `hi`, and how many of its keys are taken (see there).
pub const WRITE_STATE_HEADER_WORDS: u32 = 3;
/// The `remaining` word of a row's [`SelectParams::write_state`] header where the selection
/// wrote the row itself: its chunks leave it alone.
pub const WRITE_STATE_ROW_WRITTEN: u64 = u64::MAX;
/// Keys each `pq_score` thread scores at once, their code loads in flight together; the plan
/// sizes the scoring blocks' key chunks in steps of this many keys per thread.
pub const SCORE_KEYS_IN_FLIGHT: usize = 2;
/// Threads of a `pq_select` block when there are more rows than SMs. Any multiple of 32 that
/// divides `HIST_BINS`, up to `SELECT_THREADS`, is valid.
pub const SELECT_THREADS_MANY_ROWS: u32 = 256;

/// `pq_tables` blocks that fit on one SM at once (its launch bounds).
pub const TABLES_BLOCKS_PER_SM: u32 = 4;

/// f32 in `pq_ranges`' static shared memory: each thread's smallest and largest partial score.
/// It is the largest static array of the tables family, which the host's modelled limits leave
/// out of the dynamic shared memory.
pub const RANGE_SLICE_PARTIALS: usize = 2 * BLOCK_THREADS as usize;

/// Launch bounds that Rust cannot state in the kernel source: `(kernel, threads per block, blocks
/// that must fit on one SM at once)`. `cargo xtask build-ptx` writes them into the PTX as
/// `.maxntid` and `.minnctapersm`, which bound each kernel's registers.
pub const LAUNCH_BOUNDS: [(&str, u32, u32); 13] = [
    // Many short table blocks: four per SM at once.
    (kernel_names::TABLES, BLOCK_THREADS, TABLES_BLOCKS_PER_SM),
    (kernel_names::RANGES, BLOCK_THREADS, TABLES_BLOCKS_PER_SM),
    // Registers for three scoring blocks per SM: more loads in flight per thread lost more to
    // the tail of each wave than it won (measured at two).
    (kernel_names::SCORE, BLOCK_THREADS, 3),
    // One block per SM (its shared memory fills the SM), so up to 128 registers per thread.
    (kernel_names::SCORE_DENSE, DENSE_THREADS, 1),
    (kernel_names::SELECT, SELECT_THREADS, 1),
    (kernel_names::SELECT_BY_INDEX, SELECT_THREADS, 1),
    (kernel_names::SELECT_LONG_BY_INDEX, SELECT_THREADS, 1),
    (kernel_names::SORT_RUNS, SELECT_THREADS, 1),
    (kernel_names::WRITE_BY_INDEX, WRITE_THREADS, WRITE_BLOCKS_PER_SM),
    (kernel_names::WRITE_CANDIDATES, WRITE_THREADS, WRITE_BLOCKS_PER_SM),
    // One binary search per thread: many blocks in flight hide the loads' latency.
    (kernel_names::MERGE_RUNS, BLOCK_THREADS, 4),
    (kernel_names::TOPK_SMALL, SMALL_THREADS, 2),
    (kernel_names::TOPK_CLUSTER, CLUSTER_THREADS, 2),
];

/// Kernels launched in clusters of [`CLUSTER_BLOCKS`], which exist only in the sm_90 PTX:
/// `cargo xtask build-ptx` writes their `.reqnctapercluster` and leaves them out of sm_80's.
pub const CLUSTER_KERNELS: [&str; 1] = [kernel_names::TOPK_CLUSTER];

/// Kernel names, as the host looks them up in the module.
pub mod kernel_names {
    /// Builds the lookup tables and zeroes the histograms ([`TablesParams`](crate::TablesParams)).
    pub const TABLES: &str = "pq_tables";
    /// Only the lookup tables' ranges, for the tensor-core path, and zeroes the histograms
    /// ([`TablesParams`](crate::TablesParams), `luts` unused).
    pub const RANGES: &str = "pq_ranges";
    /// Scores through the lookup tables ([`ScoreParams`](crate::ScoreParams)).
    pub const SCORE: &str = "pq_score";
    /// Scores by tensor cores ([`DenseScoreParams`](crate::DenseScoreParams)).
    pub const SCORE_DENSE: &str = "pq_score_dense";
    /// Selects each row's top k best first ([`SelectParams`](crate::SelectParams)).
    pub const SELECT: &str = "pq_select";
    /// `pq_select` for index order (and unordered results): a kernel of its own, without the
    /// score order's code.
    pub const SELECT_BY_INDEX: &str = "pq_select_by_index";
    /// `pq_select_by_index` for rows too long for the index bitmap (see
    /// [`index_bitmap_fits`](crate::index_bitmap_fits)): a kernel of its own, so that the
    /// shorter rows' kernel holds no code for them.
    pub const SELECT_LONG_BY_INDEX: &str = "pq_select_long_by_index";
    /// Writes in index order the top k of the rows whose `pq_select_by_index` (or
    /// `pq_select_long_by_index`) published what they take ([`SelectParams::write_chunks`](crate::SelectParams)).
    pub const WRITE_BY_INDEX: &str = "pq_write_by_index";
    /// Writes the candidates of the rows whose `pq_select` published what they take, for
    /// `pq_sort_runs` ([`SelectParams::write_chunks`](crate::SelectParams)).
    pub const WRITE_CANDIDATES: &str = "pq_write_candidates";
    /// Sorts large top-k candidates in runs of [`RUN_KEYS`](crate::RUN_KEYS).
    pub const SORT_RUNS: &str = "pq_sort_runs";
    /// Merges pairs of sorted runs ([`MergeParams`](crate::MergeParams)).
    pub const MERGE_RUNS: &str = "pq_merge_runs";
    /// The whole call in one launch for short rows ([`SmallParams`](crate::SmallParams)).
    pub const TOPK_SMALL: &str = "pq_topk_small";
    /// Score and selection on chip, in clusters (sm_90; [`ClusterParams`](crate::ClusterParams)).
    pub const TOPK_CLUSTER: &str = "pq_topk_cluster";
    /// Counts codes ≥ c ([`CodeCheckParams`](crate::CodeCheckParams)).
    pub const COUNT_BAD_CODES: &str = "pq_count_bad_codes";
    /// Encodes keys, or appends a decode step's keys ([`EncodeParams`](crate::EncodeParams)):
    /// one kernel per register width, indexed by
    /// [`register_width_index`](crate::register_width_index).
    pub const ENCODE: [&str; crate::REGISTER_WIDTH_KERNELS] =
        ["pq_encode_w0", "pq_encode_w1", "pq_encode_w2", "pq_encode_w4", "pq_encode_w8", "pq_encode_w16"];
    /// Advances the lengths after an append ([`AdvanceParams`](crate::AdvanceParams)).
    pub const ADVANCE_LENGTHS: &str = "pq_advance_lengths";
    /// Training's sampled initialization ([`TrainParams`](crate::TrainParams)).
    pub const TRAIN_INIT: &str = "pq_train_init";
    /// Training's assignment step: nearest centroids, sums, counts and inertia; one kernel per
    /// register width, as [`ENCODE`].
    pub const TRAIN_ASSIGN: [&str; crate::REGISTER_WIDTH_KERNELS] = [
        "pq_train_assign_w0",
        "pq_train_assign_w1",
        "pq_train_assign_w2",
        "pq_train_assign_w4",
        "pq_train_assign_w8",
        "pq_train_assign_w16",
    ];
    /// Training's update step: the stop test, then the means and re-seeded empty centroids.
    pub const TRAIN_UPDATE: &str = "pq_train_update";
}

/// Keys one `pq_encode` block encodes in one sub-space.
pub const ENCODE_KEYS_PER_BLOCK: u32 = 64;
/// Threads of a `pq_encode` block: `ENCODE_THREADS / ENCODE_KEYS_PER_BLOCK` per key, each
/// scanning every so many centroids.
pub const ENCODE_THREADS: u32 = 256;

/// Sub-spaces of at most this many elements are encoded (and trained) from registers: each
/// thread holds its key's sub-vector, zero-padded to [`register_width`] groups of four, and reads
/// the centroids as 16-byte rows. Wider ones go through shared memory element by element.
pub const REGISTER_MAX_SUBSPACE_DIM: u32 = 64;

/// Groups of four elements that hold a sub-vector of `subspace_dim` elements in registers (a
/// power of two, so that few variants are compiled), or 0 above [`REGISTER_MAX_SUBSPACE_DIM`].
pub const fn register_width(subspace_dim: u32) -> u32 {
    if subspace_dim > REGISTER_MAX_SUBSPACE_DIM { 0 } else { subspace_dim.div_ceil(4).next_power_of_two() }
}

/// f32 per row of a centroid or key staged by `pq_encode` (and training): `d/m + 1` for wide
/// sub-spaces, `4 · (register_width + 1)` for the register path (whole 16-byte groups). The extra
/// element or group spreads the rows that a warp reads at once over the banks.
pub const fn encode_row_floats(subspace_dim: u32) -> u32 {
    match register_width(subspace_dim) {
        0 => subspace_dim + 1,
        width => 4 * (width + 1),
    }
}

/// Kernels per register-width family: one for each width 0, 1, 2, 4, 8, 16.
pub const REGISTER_WIDTH_KERNELS: usize = 6;

/// The index of `register_width(subspace_dim)` among the compiled widths 0, 1, 2, 4, 8, 16 (the
/// kernels of [`kernel_names::ENCODE`] and [`kernel_names::TRAIN_ASSIGN`]).
pub const fn register_width_index(subspace_dim: u32) -> usize {
    match register_width(subspace_dim) {
        0 => 0,
        width => width.trailing_zeros() as usize + 1,
    }
}

/// Dynamic shared memory of a `pq_encode` block: the centroids of one (kv head, sub-space) and
/// the block's keys' sub-vectors, as f32 rows of [`encode_row_floats`].
pub const fn encode_shared_bytes(c: u32, subspace_dim: u32) -> u32 {
    (c + ENCODE_KEYS_PER_BLOCK) * encode_row_floats(subspace_dim) * 4
}

/// Launch parameters of `pq_encode`: one block of `ENCODE_THREADS` per (chunk of
/// `ENCODE_KEYS_PER_BLOCK` keys, batch entry and kv head, sub-space), chunk fastest, with
/// [`encode_shared_bytes`] of dynamic shared memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EncodeParams {
    /// `[b, hkv, keys_per_entry, d]` of `key_dtype`.
    pub keys: u64,
    /// `[hkv, m, c, d/m]` of `codebook_dtype`.
    pub codebooks: u64,
    /// `[b, hkv, n, m]` u8: key `i` of entry `bi` is written at position `i` (encode) or
    /// `lengths[bi] + i` (append).
    pub codes: u64,
    /// Null to encode; `[b]` u32 to append at each entry's length. An entry whose length leaves
    /// no room for `keys_per_entry` more keys is not written.
    pub lengths: u64,
    /// Batch entries.
    pub b: u32,
    /// Key-value heads.
    pub hkv: u32,
    /// The codes' keys per (batch entry, kv head).
    pub n: u32,
    /// Keys per (batch entry, kv head) in `keys`: `n` to encode, `t` to append.
    pub keys_per_entry: u32,
    /// Head dimension.
    pub d: u32,
    /// Sub-spaces.
    pub m: u32,
    /// Centroids per sub-space, 1..=256.
    pub c: u32,
    /// [`DType`] of the keys.
    pub key_dtype: u32,
    /// [`DType`] of the codebooks.
    pub codebook_dtype: u32,
}

/// Launch parameters of `pq_advance_lengths`: `lengths[bi] += t` where that stays ≤ n, one
/// thread per batch entry (blocks of `BLOCK_THREADS`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdvanceParams {
    /// `[b]` u32.
    pub lengths: u64,
    /// Batch entries.
    pub b: u32,
    /// Keys appended.
    pub t: u32,
    /// Capacity.
    pub n: u32,
}

/// The rank of a pooled key in training's sampled initialization (`pqtopk::index`): SplitMix64's
/// finalizer of the seed, kv head, sub-space and pooled index. For one (seed, kv head, sub-space)
/// it is `mix(a ^ pooled)` with `mix` a bijection of u64, so distinct keys never tie.
pub const fn sample_rank(seed: u64, kv_head: u64, subspace: u64, pooled: u64) -> u64 {
    const fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed ^ mix(kv_head)) ^ subspace) ^ pooled)
}

/// The exponent `e` for which `count` values of magnitude at most `bound`, each scaled by `2^e`
/// and rounded to an integer, sum to less than 2^62 in magnitude, clamped to `-limit..=limit`
/// (0 where `bound` is 0 or NaN): training's fixed-point scale for sums of key elements and of
/// distances ([`TrainState`]). Clamping down only shrinks the sums; clamping up happens only for
/// bounds past 2^(61 − limit), which finite f32 keys reach only in a squared distance.
pub fn fixed_exp(count: u32, bound: f64, limit: i32) -> i32 {
    if bound.is_nan() || bound <= 0.0 {
        return 0;
    }
    // bound < 2^(exponent + 1), count ≤ 2^count_bits.
    let exponent = ((bound.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let count_bits = (32 - count.max(1).wrapping_sub(1).leading_zeros()) as i32;
    (62 - count_bits - (exponent + 1)).clamp(-limit, limit)
}

/// Threads of every training block: four per key of an `ENCODE_KEYS_PER_BLOCK` chunk, as
/// `pq_encode`'s.
pub const TRAIN_THREADS: u32 = ENCODE_THREADS;

/// Keys per (kv head, sub-space) whose initialization ranks training keeps: the first `c`
/// become the centroids, the next `c` re-seed empty ones.
pub const fn train_order_len(c: u32) -> u32 {
    2 * c
}

/// The state of one (kv head, sub-space) of a training, in its workspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrainState {
    /// The inertia of the last step's assignment, as a fixed-point sum (`inertia_exp`).
    pub inertia: u64,
    /// The inertia of the step before, or +∞.
    pub previous_inertia: f64,
    /// Assignment steps taken.
    pub steps: u32,
    /// Nonzero once training of this (kv head, sub-space) stopped.
    pub done: u32,
    /// Keys whose centroid changed in the last step.
    pub changed: u32,
    /// Valid keys pooled over the batch.
    pub pooled: u32,
    /// Sums of key elements are exact in fixed point: `round(x · 2^sum_exp)` as i64.
    pub sum_exp: i32,
    /// Distances likewise, `round(distance · 2^inertia_exp)` as u64.
    pub inertia_exp: i32,
}

/// Byte offsets of the regions of a training workspace, each 16-byte aligned: a [`TrainState`]
/// per (kv head, sub-space), then per (kv head, sub-space) its centroids (`c · d/m` f32), their
/// fixed-point sums (`c · d/m` i64) and counts (`c` u32), the initialization order
/// ([`train_order_len`] pooled indices, u32), and each pooled key's last centroid (`b · n` u8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainLayout {
    /// `[hkv · m]` [`TrainState`].
    pub states: u64,
    /// `[hkv · m, c, d/m]` f32.
    pub centroids: u64,
    /// `[hkv · m, c, d/m]` i64.
    pub sums: u64,
    /// `[hkv · m, c]` u32.
    pub counts: u64,
    /// `[hkv · m, train_order_len(c)]` u32.
    pub order: u64,
    /// `[hkv · m, b · n]` u8.
    pub assignment: u64,
    /// Bytes in all.
    pub bytes: u64,
}

/// The [`TrainLayout`] of a training of `subspaces = hkv · m` (kv head, sub-space) pairs with
/// `c` centroids of `subspace_dim` elements over `pooled_capacity = b · n` keys.
pub const fn train_layout(subspaces: u64, c: u64, subspace_dim: u64, pooled_capacity: u64) -> TrainLayout {
    const fn after(start: u64, bytes: u64) -> u64 {
        (start + bytes).next_multiple_of(16)
    }
    let elements = subspaces * c * subspace_dim;
    let states = 0;
    let centroids = after(states, subspaces * core::mem::size_of::<TrainState>() as u64);
    let sums = after(centroids, elements * 4);
    let counts = after(sums, elements * 8);
    let order = after(counts, subspaces * c * 4);
    let assignment = after(order, subspaces * train_order_len(c as u32) as u64 * 4);
    TrainLayout {
        states,
        centroids,
        sums,
        counts,
        order,
        assignment,
        bytes: after(assignment, subspaces * pooled_capacity),
    }
}

/// The dynamic shared memory of a `pq_train_assign` block, 16-byte aligned regions: the block's
/// fixed-point sums (`c · d/m` i64) and inertia (u64), then [`encode_shared_bytes`] (the
/// centroids and a chunk of keys, as `pq_encode` stages them), the counts (`c` u32) and the
/// chunk's codes (`ENCODE_KEYS_PER_BLOCK` u32).
pub const fn train_assign_layout(c: u32, subspace_dim: u32) -> TrainAssignLayout {
    let staged = (c * subspace_dim * 8 + 8).next_multiple_of(16);
    let counts = staged + encode_shared_bytes(c, subspace_dim).next_multiple_of(16);
    let codes = counts + (c * 4).next_multiple_of(16);
    TrainAssignLayout { staged, counts, codes, bytes: codes + ENCODE_KEYS_PER_BLOCK * 4 }
}

/// Byte offsets in a `pq_train_assign` block's dynamic shared memory (the sums start at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainAssignLayout {
    /// The staged centroids and keys.
    pub staged: u32,
    /// The counts.
    pub counts: u32,
    /// The chunk's codes.
    pub codes: u32,
    /// Bytes in all.
    pub bytes: u32,
}

/// Launch parameters of the three training kernels. `pq_train_init` and `pq_train_update`: one
/// block of `TRAIN_THREADS` per (kv head, sub-space), sub-space fastest. `pq_train_assign`: one
/// block of `TRAIN_THREADS` per (chunk of `keys_per_block` keys, batch entry and kv head,
/// sub-space), chunk fastest, with [`train_assign_layout`]`.bytes` of dynamic shared memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrainParams {
    /// `[b, hkv, n, d]` of `key_dtype`.
    pub keys: u64,
    /// Null (every key valid) or `[b]` u32: entry `bi`'s first `min(n_valid[bi], n)` keys.
    pub n_valid: u64,
    /// `[hkv, m, c, d/m]` of `codebook_dtype`, written by init and every update.
    pub codebooks: u64,
    /// [`TrainLayout`] bytes, 16-byte aligned.
    pub workspace: u64,
    /// The initialization's seed.
    pub seed: u64,
    /// Relative inertia decrease below which training stops.
    pub tolerance: f64,
    /// Batch entries.
    pub b: u32,
    /// Key-value heads.
    pub hkv: u32,
    /// Keys per (batch entry, kv head).
    pub n: u32,
    /// Head dimension.
    pub d: u32,
    /// Sub-spaces.
    pub m: u32,
    /// Centroids per sub-space, 1..=256.
    pub c: u32,
    /// [`DType`] of the keys.
    pub key_dtype: u32,
    /// [`DType`] of the codebooks.
    pub codebook_dtype: u32,
    /// Keys of one entry that a `pq_train_assign` block assigns, a multiple of
    /// `ENCODE_KEYS_PER_BLOCK`.
    pub keys_per_block: u32,
}

/// Keys of a run that `pq_sort_runs` sorts in shared memory (64 KiB). In score order with k
/// above the selection's sort capacity, a row's candidates are sorted in runs of this many, then
/// pairs of runs are merged by `pq_merge_runs`, one pass per doubling.
pub const RUN_KEYS: u32 = 8192;

/// Passes of `pq_merge_runs` that order up to `k` candidates sorted in runs of `RUN_KEYS`.
pub const fn merge_passes(k: u32) -> u32 {
    let runs = k.div_ceil(RUN_KEYS);
    if runs <= 1 { 0 } else { 32 - (runs - 1).leading_zeros() }
}

/// Longest rows `pq_topk_small` takes: a row's keys sort in one block's shared memory, and the
/// whole call is that one launch.
pub const SMALL_MAX_KEYS: u32 = 4096;
/// Threads of a `pq_topk_small` block.
pub const SMALL_THREADS: u32 = 512;

/// Whether `pq_topk_small` scores a row of `n` keys through the row's lookup table (`m·c`
/// entries, each a centroid's partial score, built in shared memory) rather than straight from
/// the codebooks: from `c/2` keys on, the table's `m·c` coalesced centroid loads cost no more
/// than the keys' `n·m` gathered ones, and each key then costs `m` shared loads.
pub const fn small_scores_by_table(n: u32, c: u32) -> bool {
    2 * n >= c
}

/// Bytes of a `pq_topk_small` block's region after its keys: its queries as f32 (`heads · d`:
/// the G heads of a group row, else 1), where, once the keys are scored, index order keeps the
/// taken keys' index bitmap (`index_bitmap_slots(n)` u64).
pub const fn small_queries_bytes(n: u32, heads: u32, d: u32) -> u32 {
    let queries = heads * d * 4;
    let bitmap = index_bitmap_slots(n) * 8;
    if queries > bitmap { queries } else { bitmap }
}

/// Dynamic shared memory of a `pq_topk_small` block: the row's selection keys (`n` rounded up to
/// a power of two, 8 bytes each), then `small_queries_bytes`, then, where
/// `small_scores_by_table`, the row's lookup table (`m·c` f32).
pub const fn small_shared_bytes(n: u32, heads: u32, d: u32, m: u32, c: u32) -> u32 {
    let table = if small_scores_by_table(n, c) { m * c * 4 } else { 0 };
    n.next_power_of_two() * 8 + small_queries_bytes(n, heads, d) + table
}

/// Bins of a selection histogram. The first one, built while scoring, spreads the range of
/// scores that the row's lookup tables allow linearly over them; refinements take DIGIT_BITS-bit digits
/// of the 64-bit selection keys.
pub const HIST_BINS: u32 = 1 << 10;
/// u64 slots of a selection's tie buffer that index-order output needs for a row of `keys`
/// keys: its index bitmap and the bitmap's prefix counts, a u32 word of each per 32 keys
/// (`pq_select` places keys by them once the ties are decided, where the buffer is free).
pub const fn index_bitmap_slots(keys: u32) -> u32 {
    keys.div_ceil(32)
}
/// Whether a selection block holds a row's top k of `taken` keys in shared memory
/// (`sort_capacity` slots): then it gathers them in one sweep and writes them itself (in index
/// order, unless its tied keys rank by index and [`index_bitmap_fits`] does not hold). Otherwise
/// score order sorts them in runs, and index order publishes what the row takes for
/// `pq_write_by_index`.
pub const fn top_k_in_shared(taken: u32, sort_capacity: u32) -> bool {
    taken.next_power_of_two() <= sort_capacity
}
/// Whether the index bitmap of a row of `valid` keys fits in the tie buffer (`tie_capacity`
/// slots): then index order places the taken keys by it, and a row whose tied keys rank by
/// index takes them in one block's sweep in index order. Otherwise (`pq_select_long_by_index`)
/// the taken keys are ordered by buckets over their indices, and the ranked ties go to the
/// chunks of `pq_write_by_index` (one block's sweep of such a row took ~350 µs at n = 1 M:
/// perf-notes v26).
pub const fn index_bitmap_fits(valid: u32, tie_capacity: u32) -> bool {
    index_bitmap_slots(valid) <= tie_capacity
}
/// Whether a row of `valid` keys may go to the chunks after the selection (`pq_write_by_index`,
/// or in score order `pq_write_candidates` and the run sort): its top k does not fit
/// [`top_k_in_shared`], or in index order its bitmap does not fit [`index_bitmap_fits`] and the
/// row is no copy (more valid keys than k). Index-order rows that the selection finishes itself
/// mark their state [`WRITE_STATE_ROW_WRITTEN`]. Shared by the plan (for full rows: a ragged
/// row fits wherever a full one does), the chunk kernels and the run sort. Inlined across
/// crates into the kernels.
#[inline(always)]
pub fn may_write_in_chunks(by_score: bool, k: u32, valid: u32, sort_capacity: u32, tie_capacity: u32) -> bool {
    let copied = !by_score && valid <= k;
    let never_chunked =
        top_k_in_shared(k.min(valid), sort_capacity) && (by_score || index_bitmap_fits(valid, tie_capacity));
    !(copied || never_chunked)
}
/// Bits of a refinement digit; `HIST_BINS == 1 << DIGIT_BITS`.
pub const DIGIT_BITS: u32 = 10;
/// Most output rows one scoring block covers: one entry of its interleaved lookup tables holds
/// them all, and their partial sums live in registers.
pub const MAX_ROWS_PER_BLOCK: u32 = 4;

/// f32 elements of `pq_tables`' staging area for a tile of `rows` rows: their query slices
/// (`subspace_dim` each), in whole groups of `MAX_ROWS_PER_BLOCK` rows (the rows past the tile
/// are zeros, so that the build runs every group's rows without a branch per row).
pub const fn tables_staging_floats(rows: u32, subspace_dim: u32) -> u32 {
    rows.next_multiple_of(MAX_ROWS_PER_BLOCK) * subspace_dim
}

/// Element type of queries or codebooks.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE half.
    F16 = 1,
    /// bfloat16.
    BF16 = 2,
}

/// How a query and a decoded key are scored.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `Σ q·k̂`, larger is better.
    InnerProduct = 0,
    /// `‖q − k̂‖²`, smaller is better.
    L2 = 1,
}

/// Order of the k results of a row.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Best first; ties toward the smaller key index.
    ByScore = 0,
    /// Key index ascending, ready for a sparse-attention gather.
    ByIndex = 1,
    /// Whatever order is cheapest, still deterministic. Today that is index order.
    Unordered = 2,
}

/// The problem's shape and options, common to every kernel of a call.
///
/// Shapes: queries `[b, h, sq, d]`, codebooks `[hkv, m, c, d/m]`, codes `[b, hkv, n, m]` u8.
/// Output rows are `[b, h_out, sq]` with `h_out = h`, or `hkv` in group mode; the rows that
/// share kv head `kvh` of batch `bi` are the `rows_per_kv` consecutive rows from
/// `(bi·hkv + kvh)·rows_per_kv`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Batch entries.
    pub b: u32,
    /// Query heads; a multiple of `hkv`.
    pub h: u32,
    /// Key-value heads; query head `i` uses kv head `i / (h/hkv)`.
    pub hkv: u32,
    /// Queries per head.
    pub sq: u32,
    /// Head dimension; a multiple of `m`.
    pub d: u32,
    /// Sub-spaces per key.
    pub m: u32,
    /// Centroids per sub-space, 1..=256.
    pub c: u32,
    /// Keys per (batch, kv head).
    pub n: u32,
    /// Results per output row, 1..=n.
    pub k: u32,
    /// Output rows per (batch, kv head): `G·sq`, or `sq` in group mode.
    pub rows_per_kv: u32,
    /// u32 elements between the starts of two rows' scores (`n` rounded up to a multiple of 4,
    /// so that every row starts 16-byte aligned).
    pub score_stride: u32,
    /// [`DType`] of the queries.
    pub query_dtype: u32,
    /// [`DType`] of the codebooks.
    pub codebook_dtype: u32,
    /// [`Metric`].
    pub metric: u32,
    /// [`Order`].
    pub order: u32,
    /// Nonzero: one selection per (batch, kv head, s) on scores summed over the G query heads.
    pub group: u32,
}

/// How the output rows are tiled: each tile is `rows_per_block` rows of one (batch, kv head),
/// whose lookup tables interleave `lut_width` rows per entry; `row_tiles` tiles per (batch, kv
/// head), `row_tiles · b·hkv` in all. Tiles hold at most `MAX_ROWS_PER_BLOCK` rows where tables
/// are written; `pq_tables` without tables (ranges only) takes up to `DENSE_ROWS`, in group mode
/// never more than `MAX_ROWS_PER_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Tiling {
    /// Output rows per tile.
    pub rows_per_block: u32,
    /// Rows interleaved per lookup-table entry: 1, 2 or 4.
    pub lut_width: u32,
    /// Tiles per (batch, kv head): `ceil(rows_per_kv / rows_per_block)`.
    pub row_tiles: u32,
}

/// Rows of a `pq_score_dense` row tile: four warps' `mma` tiles of 16 rows.
pub const DENSE_ROWS: u32 = 64;
/// Largest `d/m` of the tensor-core path, whose `pq_tables` writes only the ranges, with a row's
/// query slice in registers.
pub const RANGES_MAX_SUBSPACE_DIM: u32 = 16;

/// f32 of `pq_tables`' dynamic shared memory where it writes only the ranges (the tensor-core
/// path): one sub-space's codebook, `c` centroids of `subspace_dim`.
pub const fn ranges_staging_floats(c: u32, subspace_dim: u32) -> u32 {
    c * subspace_dim
}
/// Keys a `pq_score_dense` block decodes and scores per step.
pub const DENSE_KEYS: u32 = 64;
/// Threads of a `pq_score_dense` block: sixteen warps, each 16 rows × 16 keys of a step.
pub const DENSE_THREADS: u32 = 512;
/// Largest head dimension `pq_score_dense` takes: its query fragments live in registers (32
/// of them at 128; at 256 the 128 registers a thread may have spilled).
pub const DENSE_MAX_D: u32 = 128;
/// Keys one `pq_score_dense` block may take: its shared histograms count in 16 bits.
pub const DENSE_MAX_KEYS_PER_BLOCK: u32 = 32768;

/// The head dimension `pq_score_dense` computes with: `d` zero-padded to 64 or 128.
pub const fn dense_padded_d(d: u32) -> u32 {
    if d <= 64 { 64 } else { 128 }
}

/// u32 words between two keys of a `pq_score_dense` key tile: the padded head dimension as f16
/// pairs, plus 4 words so that the 8 keys of an `mma` operand fall in distinct banks.
pub const fn dense_key_stride(d: u32) -> u32 {
    dense_padded_d(d) / 2 + 4
}

/// Dynamic shared memory of a `pq_score_dense` block, in this order: the row tile's
/// histograms (`DENSE_ROWS · HIST_BINS` 16-bit counts), two key tiles
/// (`DENSE_KEYS · dense_key_stride(d)` u32 each), two rows of key norms (`DENSE_KEYS` f32 each)
/// and the kv head's codebook (`c · d` elements of 16 bits).
pub const fn dense_shared_bytes(c: u32, d: u32) -> u32 {
    DENSE_ROWS * HIST_BINS * 2 + 2 * DENSE_KEYS * dense_key_stride(d) * 4 + 2 * DENSE_KEYS * 4 + c * d * 2
}

/// Launch parameters of `pq_tables`: the lookup tables of every row tile, one block per (tile,
/// sub-space), each thread one centroid.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TablesParams {
    /// The problem.
    pub shape: Shape,
    /// The row tiles whose tables are built.
    pub tiling: Tiling,
    /// Queries `[b, h, sq, d]` of `query_dtype`.
    pub queries: u64,
    /// Codebooks `[hkv, m, c, d/m]` of `codebook_dtype`.
    pub codebooks: u64,
    /// `[tiles, m, c, lut_width]` f32: entry `(j, code)` of each row of the tile; 0 when only
    /// the ranges are wanted (`pq_score_dense` scores without tables).
    pub luts: u64,
    /// `[rows, m]` pairs of f32: the smallest and largest entry of each row's sub-space.
    pub ranges: u64,
    /// `[rows, HIST_BINS]` u32 histograms for `pq_score`, followed by `[rows, SPLIT_STATE_WORDS]`
    /// u32 split-selection state for `pq_select`, then `[refine_rows, REFINE_STATE_WORDS]` u32
    /// of its shared refinement: all zeroed here.
    pub histograms: u64,
    /// Rows with refinement state: every row where the selection is split, else 0.
    pub refine_rows: u32,
}

/// u32 per row of `pq_select`'s split state: keys above the threshold bin published so far,
/// tied keys published so far, blocks of the row that have arrived, and padding (16 bytes).
pub const SPLIT_STATE_WORDS: u32 = 4;
/// u32 per row of `pq_select`'s shared refinement state, where a row's selection is split: the
/// digit counts of its first refinement round (`HIST_BINS`), then two u64, the greatest tied
/// key and the complement of the least, then the blocks of the row that have added theirs, and
/// padding (to 16 bytes).
pub const REFINE_STATE_WORDS: u32 = HIST_BINS + 8;

/// Launch parameters of `pq_score`: every valid key of every row is scored once, through the
/// tables of `pq_tables` copied into shared memory, into the row's order keys (see
/// `kernels-gpu/src/score.rs`) and histogram.
///
/// Work is split into items of one row tile × `keys_per_block` keys:
/// `key_chunks · row_tiles · b·hkv` of them, one per block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScoreParams {
    /// The problem.
    pub shape: Shape,
    /// The row tiles, as `pq_tables` built them.
    pub tiling: Tiling,
    /// Codes `[b, hkv, n, m]` u8.
    pub codes: u64,
    /// `[b]` u32 valid lengths, or 0 for "all n keys valid".
    pub n_valid: u64,
    /// As in [`TablesParams`], complete.
    pub luts: u64,
    /// As in [`TablesParams`], complete: each row's binning is built from them.
    pub ranges: u64,
    /// `[rows, score_stride]` u32 order keys, written for the valid keys.
    pub scores: u64,
    /// `[rows]` [`RowBinning`], written by the blocks of key chunk 0.
    pub binning: u64,
    /// `[rows, HIST_BINS]` u32, zeroed by `pq_tables`: each row's keys counted per bin of its
    /// binning.
    pub histograms: u64,
    /// Keys per item (the last chunk may hold fewer).
    pub keys_per_block: u32,
    /// Key chunks per row tile: `ceil(n / keys_per_block)`.
    pub key_chunks: u32,
}

/// Launch parameters of `pq_score_dense`, the tensor-core scoring of many rows per kv head
/// (f16 or bf16 queries and codebooks of the same type, no group mode, `d ≤ DENSE_MAX_D`, `d`
/// and `d/m` multiples of 8): it writes the same order keys, binnings and histograms as
/// `pq_score`, from the ranges of `pq_tables` (run without tables).
///
/// Work is split into items of one tile of `DENSE_ROWS` rows × `keys_per_block` keys (a
/// multiple of `DENSE_KEYS`, at most `DENSE_MAX_KEYS_PER_BLOCK`):
/// `key_chunks · row_tiles · b·hkv` of them, one per block, key chunk fastest.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DenseScoreParams {
    /// The problem.
    pub shape: Shape,
    /// As in [`TablesParams`].
    pub queries: u64,
    /// As in [`TablesParams`].
    pub codebooks: u64,
    /// As in [`ScoreParams`].
    pub codes: u64,
    /// As in [`ScoreParams`].
    pub n_valid: u64,
    /// As in [`TablesParams`], complete.
    pub ranges: u64,
    /// As in [`ScoreParams`].
    pub scores: u64,
    /// As in [`ScoreParams`], written by the blocks of key chunk 0.
    pub binning: u64,
    /// As in [`ScoreParams`].
    pub histograms: u64,
    /// Row tiles per (batch, kv head): `ceil(rows_per_kv / DENSE_ROWS)`.
    pub row_tiles: u32,
    /// Keys per item (the last chunk may hold fewer).
    pub keys_per_block: u32,
    /// Key chunks per row tile: `ceil(n / keys_per_block)`.
    pub key_chunks: u32,
}

/// How a row's order keys map to histogram bins: `lo` and `scale` spread the range of scores
/// that the row's lookup tables allow over the bins linearly where `linear != 0`; otherwise the
/// bin is the order key's top bits (see `kernels-gpu/src/score.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowBinning {
    /// Lowest goodness (the score, negated for L2) the row's tables allow: the start of bin 0.
    pub lo: f32,
    /// Bins per unit of goodness: `HIST_BINS / (hi − lo)`.
    pub scale: f32,
    /// Nonzero where the range is finite and nonempty, so `lo` and `scale` apply.
    pub linear: u32,
}

/// Launch parameters of `pq_select`: one block (`SELECT_THREADS`, or `SELECT_THREADS_MANY_ROWS`
/// for more rows than SMs) per output row selects the
/// row's exact top k from its order keys and writes the outputs (or, where the row goes to the
/// chunks (see [`may_write_in_chunks`]), what the row takes ([`SelectParams::write_state`]), for
/// `pq_write_by_index` in index order, and in score order for `pq_write_candidates`, whose
/// candidates `pq_sort_runs` sorts).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SelectParams {
    /// The problem.
    pub shape: Shape,
    /// As in [`ScoreParams`].
    pub n_valid: u64,
    /// As in [`ScoreParams`], complete.
    pub scores: u64,
    /// As in [`ScoreParams`], complete.
    pub binning: u64,
    /// As in [`ScoreParams`], complete.
    pub histograms: u64,
    /// `[rows, k]` u32.
    pub out_indices: u64,
    /// `[rows, k]` f32, or 0 when scores are not wanted.
    pub out_scores: u64,
    /// `[rows, k]` u64 selection keys, used only when k > `sort_capacity` in score order: the
    /// row's candidates, unordered, from `pq_write_candidates` for `pq_sort_runs`.
    pub candidates: u64,
    /// Most selection keys the block sorts in shared memory (a power of two).
    pub sort_capacity: u32,
    /// Most keys of the threshold bin the block gathers; more are narrowed by refinement sweeps.
    pub tie_capacity: u32,
    /// Blocks per row (rows are `block / split`). Above 1, the row's blocks gather a slice of its
    /// keys each and publish them to `split_keys`; the last to arrive finishes the row.
    pub split: u32,
    /// `[rows, SPLIT_STATE_WORDS]` u32, zero at the launch (see `TablesParams::histograms`).
    pub split_state: u64,
    /// `[rows, REFINE_STATE_WORDS]` u32, zero at the launch. Used only when `split > 1`: the
    /// first refinement round of a row sweeps a part per block, and the last block to add its
    /// part's digits and range goes on with the row alone.
    pub refine_state: u64,
    /// `[rows, sort_capacity + tie_capacity]` u64: the row's published keys above the threshold
    /// bin, then its tied keys. Used only when `split > 1`.
    pub split_keys: u64,
    /// Chunks of `WRITE_CHUNK_KEYS` keys per row (`ceil(n / WRITE_CHUNK_KEYS)`) for
    /// `pq_write_by_index` (index order) or `pq_write_candidates` (score order), nonzero
    /// wherever a row [`may_write_in_chunks`], and 0 otherwise.
    pub write_chunks: u32,
    /// Consecutive chunks of a row that one `pq_write_by_index` or `pq_write_candidates` block
    /// writes (at least 1): the grid is `rows · ceil(write_chunks / write_chunks_per_block)`.
    /// Above 1 where the call's chunks outnumber a wave of blocks ([`WRITE_BLOCKS_PER_SM`] per
    /// SM), so that a grid whose rows the selection wrote itself (long rows by index), and
    /// whose blocks only read a header, runs in one wave (3900 blocks of a chunk each took
    /// 9.2 µs at n = 1 M, 8 rows: perf-notes v28).
    pub write_chunks_per_block: u32,
    /// Where `write_chunks > 0`: per row, [`WRITE_STATE_HEADER_WORDS`] u64 `lo`, `hi`,
    /// `remaining`, then `write_chunks` u64 look-back words of the chunks. The row takes every
    /// selection key at or above `hi`, and of its tied keys, those in `lo..hi`, the first
    /// `remaining` in index order (tied keys that share their score rank by index). Where
    /// `lo == hi`, `hi` is the row's threshold: its keys are unique, so it takes exactly those at
    /// or above it. The last block of a row that does not fit in shared memory writes both, the
    /// words zeroed; rows that fit are finished by the selection and left alone (in index
    /// order, those that [`may_write_in_chunks`] are marked [`WRITE_STATE_ROW_WRITTEN`]).
    pub write_state: u64,
}

/// Launch parameters of `pq_merge_runs`: one pass that merges each pair of sorted runs of
/// `width` candidates (see [`RUN_KEYS`]) from `src` into runs of `2·width` in `dst`, or, on the
/// last pass, into the outputs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MergeParams {
    /// The selection's parameters: shape, valid lengths and outputs.
    pub select: SelectParams,
    /// Candidates per sorted run of `src`: `RUN_KEYS · 2^pass`.
    pub width: u32,
    /// Nonzero on the last pass.
    pub last: u32,
    /// `[rows, k]` u64 selection keys, sorted in runs of `width`.
    pub src: u64,
    /// `[rows, k]` u64; unused on the last pass.
    pub dst: u64,
}

/// Launch parameters of `pq_topk_small`, the whole call in one launch for rows of at most
/// `SMALL_MAX_KEYS` keys: one block per output row scores its keys straight from the codebooks,
/// sorts them in shared memory and writes the outputs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SmallParams {
    /// The problem.
    pub shape: Shape,
    /// As in [`TablesParams`].
    pub queries: u64,
    /// As in [`TablesParams`].
    pub codebooks: u64,
    /// As in [`ScoreParams`].
    pub codes: u64,
    /// As in [`ScoreParams`].
    pub n_valid: u64,
    /// As in [`SelectParams`].
    pub out_indices: u64,
    /// As in [`SelectParams`].
    pub out_scores: u64,
}

/// Blocks of a `pq_topk_cluster` cluster (the portable cluster size): they share one row tile,
/// each scores a slice of its keys into its own shared memory, and they select the rows' top k
/// through distributed shared memory.
pub const CLUSTER_BLOCKS: u32 = 8;
/// Threads of a `pq_topk_cluster` block.
pub const CLUSTER_THREADS: u32 = 512;
/// u64 words of a `pq_topk_cluster` block's published selection state (its row's filter, and
/// each row's range of tied keys in the block).
pub const CLUSTER_CONTROL_WORDS: u32 = 16;

/// Launch parameters of `pq_topk_cluster`, the score and selection of few rows on chip (sm_90):
/// one cluster of `CLUSTER_BLOCKS` per row tile (`row_tiles · b·hkv` clusters, tiles as
/// `pq_tables` built them), block `r` of a cluster scoring keys `r·slice..(r + 1)·slice` of the
/// tile's rows through the tables and owning row `r` of the tile (`r < rows_per_block`), whose
/// top k the cluster gathers into its shared memory and which it writes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClusterParams {
    /// The problem.
    pub shape: Shape,
    /// The row tiles, as `pq_tables` built them.
    pub tiling: Tiling,
    /// As in [`ScoreParams`].
    pub codes: u64,
    /// As in [`ScoreParams`].
    pub n_valid: u64,
    /// As in [`TablesParams`], complete.
    pub luts: u64,
    /// As in [`TablesParams`], complete.
    pub ranges: u64,
    /// As in [`SelectParams`].
    pub out_indices: u64,
    /// As in [`SelectParams`].
    pub out_scores: u64,
    /// Keys each block scores: `ceil(n / CLUSTER_BLOCKS)`.
    pub slice: u32,
    /// Taken keys a block holds (a power of two, at least `k.next_power_of_two()`).
    pub sort_capacity: u32,
    /// Tied keys a block holds (a power of two); more tied keys are narrowed by refinement.
    pub tie_capacity: u32,
}

/// Byte offsets of the regions of a `pq_topk_cluster` block's dynamic shared memory, each
/// 16-byte aligned: the tile's lookup tables (`m·c` entries of `lut_width` f32), the order keys
/// of the block's slice (`lut_width · slice` u32, row-major), one histogram per row
/// (`lut_width · HIST_BINS` u32), the owned row's cluster-wide histogram (`HIST_BINS` u32), its
/// taken and tied keys (`sort_capacity` and `tie_capacity` u64), its published state
/// (`CLUSTER_CONTROL_WORDS` u64) and two slot counters (u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterLayout {
    /// The tile's lookup tables.
    pub tables: u32,
    /// The order keys of the block's slice.
    pub orders: u32,
    /// The block's histogram of each row.
    pub hists: u32,
    /// The owned row's histogram over the cluster.
    pub total: u32,
    /// The owned row's taken keys.
    pub best: u32,
    /// The owned row's tied keys.
    pub ties: u32,
    /// The owned row's published state.
    pub control: u32,
    /// The two slot counters.
    pub counters: u32,
    /// Bytes in all.
    pub bytes: u32,
}

/// The [`ClusterLayout`] of a problem's `pq_topk_cluster` blocks.
pub const fn cluster_layout(
    m: u32,
    c: u32,
    lut_width: u32,
    slice: u32,
    sort_capacity: u32,
    tie_capacity: u32,
) -> ClusterLayout {
    const fn after(start: u32, bytes: u32) -> u32 {
        (start + bytes).next_multiple_of(16)
    }
    let tables = 0;
    let orders = after(tables, m * c * lut_width * 4);
    let hists = after(orders, lut_width * slice * 4);
    let total = after(hists, lut_width * HIST_BINS * 4);
    let best = after(total, HIST_BINS * 4);
    let ties = after(best, sort_capacity * 8);
    let control = after(ties, tie_capacity * 8);
    let counters = after(control, CLUSTER_CONTROL_WORDS * 8);
    ClusterLayout { tables, orders, hists, total, best, ties, control, counters, bytes: after(counters, 8) }
}

/// Launch parameters of the smoke kernels that prove the device layer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SmokeParams {
    /// `n` u32 inputs.
    pub input: u64,
    /// The kernel's u32 outputs (each smoke kernel documents their layout).
    pub output: u64,
    /// Input elements.
    pub n: u32,
    /// Histogram bins (`smoke_atomics` only).
    pub bins: u32,
}

/// Launch parameters of `pq_count_bad_codes`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CodeCheckParams {
    /// `len` u8 codes.
    pub codes: u64,
    /// One u32, incremented per code ≥ `c`.
    pub bad_count: u64,
    /// Codes to check.
    pub len: u64,
    /// Centroids per sub-space: codes at or above it are bad.
    pub c: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_sums_never_overflow_and_keep_their_precision() {
        // A deterministic spread of counts (1 to 2^32 − 1) and bounds (2^-60 to 2^60).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            state = sample_rank(state, 1, 2, 3);
            let count = ((state >> 32) as u32 >> (state % 32)).max(1);
            let bound = f64::from_bits(state >> 12 | 0x3FF0_0000_0000_0000) * 2f64.powi((state % 121) as i32 - 60);
            let e = fixed_exp(count, bound, 1022);
            let scaled = bound * 2f64.powi(e);
            // Every rounded term is at most scaled + 1/2: the sum stays below 2^63.
            assert!(count as f64 * (scaled + 0.5) < 2f64.powi(63), "{count} {bound} {e}");
            // And the scale is within a factor 8 of the largest that fits 2^62.
            assert!(count as f64 * scaled >= 2f64.powi(59), "{count} {bound} {e}");
        }
    }

    #[test]
    fn every_subspace_dim_names_its_width_kernels() {
        for ds in 1..=512 {
            let index = register_width_index(ds);
            assert!(index < REGISTER_WIDTH_KERNELS, "{ds}");
            for name in [kernel_names::ENCODE[index], kernel_names::TRAIN_ASSIGN[index]] {
                let width = name.rsplit_once("_w").and_then(|(_, w)| w.parse::<u32>().ok());
                assert_eq!(width, Some(register_width(ds)), "{ds}: {name}");
            }
        }
    }

    #[test]
    fn fixed_point_scale_of_nothing_is_one_and_clamps() {
        assert_eq!(fixed_exp(10, 0.0, 126), 0);
        assert_eq!(fixed_exp(10, f64::NAN, 126), 0);
        assert_eq!(fixed_exp(1, 1e-300, 126), 126);
        assert_eq!(fixed_exp(u32::MAX, 1e300, 126), -126);
        // One value below 1: 2^61 · 1.5 < 2^62.
        assert_eq!(fixed_exp(1, 1.5, 126), 61);
    }
}

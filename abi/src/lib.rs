//! The kernel ABI of pqtopk, shared by the host crate and the GPU kernels.
//!
//! Every kernel takes exactly one parameter, passed by value (PTX `.param` byval aggregate):
//! the `#[repr(C)]` struct below that belongs to it. Device addresses are `u64`; a null address
//! means "absent" where a field says so. Changing a struct here changes both sides at once.
#![no_std]

/// Threads per block of every pqtopk kernel.
pub const BLOCK_THREADS: u32 = 256;

/// Radix digits of the 64-bit selection keys, most significant first (11 + 11 + 10 + 11 + 11 + 10).
pub const DIGIT_BITS: [u32; 6] = [11, 11, 10, 11, 11, 10];
const _: () = assert!(DIGIT_BITS.len() < 8, "SyncWords::finished holds init + one word per pass");
/// Bins of one digit histogram (the widest digit).
pub const HIST_BINS: u32 = 1 << 11;
/// Most output rows one scoring item covers (their partial sums live in registers).
pub const MAX_ROWS_PER_BLOCK: u32 = 8;

/// Element type of queries or codebooks.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32 = 0,
    F16 = 1,
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

/// Per-row selection state in the workspace, advanced by the radix passes.
///
/// The selection is over 64-bit keys, unique per row (see `kernels-gpu/src/score.rs`): a key is
/// selected once its top `fixed_bits` bits are ≥ those of `prefix` and `done != 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowState {
    pub prefix: u64,
    /// Keys still to take from those that share `prefix`'s top `fixed_bits` bits.
    pub remaining: u32,
    pub fixed_bits: u32,
    pub done: u32,
    /// Candidates appended by the collect phase; min(k, valid keys) once it is over.
    pub collected: u32,
}

/// Words at the start of the workspace (256-byte aligned) that the host zeroes before every
/// launch (`cuMemsetD32Async`): the counters of finished rows, then the grid barrier.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncWords {
    /// `[0]`: rows finished by initialization (k ≥ valid keys); `[1 + p]`: rows finished by radix
    /// pass `p`; the last word is padding, so that the counters load as two 16-byte vectors.
    pub finished: [u32; 8],
    pub barrier_count: u32,
    pub barrier_generation: u32,
}

/// Launch parameters of `pq_topk`, the fused score + top-k (one cooperative launch).
///
/// Shapes: queries `[b, h, sq, d]`, codebooks `[hkv, m, c, d/m]`, codes `[b, hkv, n, m]` u8.
/// Output rows are `[b, h_out, sq]` with `h_out = h`, or `hkv` in group mode; the rows that
/// share kv head `kvh` of batch `bi` are the `rows_per_kv` consecutive rows from
/// `(bi·hkv + kvh)·rows_per_kv`. Scoring work is split into items of `rows_per_block` rows ×
/// `keys_per_block` keys: `key_chunks · row_tiles · b·hkv` of them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TopkParams {
    pub queries: u64,
    pub codebooks: u64,
    pub codes: u64,
    /// `[b]` u32 valid lengths, or 0 for "all n keys valid".
    pub n_valid: u64,
    /// `[rows, k]` u32.
    pub out_indices: u64,
    /// `[rows, k]` f32, or 0 when scores are not wanted.
    pub out_scores: u64,
    /// [`SyncWords`], zeroed by the host before the launch.
    pub sync: u64,
    /// `[rows]` [`RowState`].
    pub row_state: u64,
    /// `[rows, HIST_BINS]` u32.
    pub histograms: u64,
    /// `[row_tiles · b · hkv]` u32: scoring items of a tile finished in the current pass.
    pub tickets: u64,
    /// `[rows, k]` u64 selection keys of the collected candidates.
    pub cand_keys: u64,
    /// 0, or `[TRACE_POINTS]` u32, zeroed: each point gets the latest `%globaltimer` (low 32 bits,
    /// ns) at which a block reached it, for profiling the phases.
    pub trace: u64,
    pub b: u32,
    pub h: u32,
    pub hkv: u32,
    pub sq: u32,
    pub d: u32,
    pub m: u32,
    pub c: u32,
    pub n: u32,
    pub k: u32,
    /// Output rows per (batch, kv head): `G·sq`, or `sq` in group mode.
    pub rows_per_kv: u32,
    /// Output rows one scoring item covers (their lookup tables live in shared memory).
    pub rows_per_block: u32,
    pub row_tiles: u32,
    pub keys_per_block: u32,
    pub key_chunks: u32,
    /// Most candidates a block sorts in shared memory; larger rows are ranked from global memory.
    pub sort_capacity: u32,
    /// [`DType`] of queries and codebooks.
    pub query_dtype: u32,
    pub codebook_dtype: u32,
    /// [`Metric`].
    pub metric: u32,
    /// [`Order`].
    pub order: u32,
    /// Nonzero: one selection per (batch, kv head, s) on scores summed over the G query heads.
    pub group: u32,
}

/// Trace points of `pq_topk`: 0 kernel entry, 1 rows reset, 2 + p radix pass p done,
/// 8 collect done, 9 finalize done.
pub const TRACE_POINTS: usize = 10;

/// Launch parameters of the smoke kernels that prove the device layer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SmokeParams {
    pub input: u64,
    pub output: u64,
    pub n: u32,
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
    pub len: u64,
    pub c: u32,
}

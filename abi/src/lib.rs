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
/// Bins of one digit histogram (the widest digit).
pub const HIST_BINS: u32 = 1 << 11;

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

/// Per-row selection state in the workspace, advanced by `radix_select_step`.
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
    /// Candidates appended by `pq_collect`; equals min(k, valid keys) when it is done.
    pub collected: u32,
}

/// Launch parameters of every fused-top-k kernel (`pq_*`).
///
/// Shapes: queries `[b, h, sq, d]`, codebooks `[hkv, m, c, d/m]`, codes `[b, hkv, n, m]` u8.
/// Output rows are `[b, h_out, sq]` with `h_out = h`, or `hkv` in group mode; the rows that
/// share kv head `kvh` of batch `bi` are the `rows_per_kv` consecutive rows from
/// `(bi·hkv + kvh)·rows_per_kv`.
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
    /// `[rows]` [`RowState`].
    pub row_state: u64,
    /// `[rows, HIST_BINS]` u32; all zero between passes.
    pub histograms: u64,
    /// `[rows, k]` u64 selection keys of the collected candidates.
    pub cand_keys: u64,
    /// `[rows, k]` f32 scores of the collected candidates.
    pub cand_scores: u64,
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
    /// Output rows one scoring block handles (its lookup tables live in shared memory).
    pub rows_per_block: u32,
    /// Keys one scoring block handles.
    pub keys_per_block: u32,
    /// [`DType`] of queries and codebooks.
    pub query_dtype: u32,
    pub codebook_dtype: u32,
    /// [`Metric`].
    pub metric: u32,
    /// [`Order`].
    pub order: u32,
    /// Nonzero: one selection per (batch, kv head, s) on scores summed over the G query heads.
    pub group: u32,
    /// Radix pass, `0..DIGIT_BITS.len()`, for `pq_histogram` and `radix_select_step`.
    pub pass: u32,
}

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

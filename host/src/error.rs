//! The crate's one error type.

/// Everything pqtopk can fail with. Bad input is reported before any launch.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No CUDA driver, or a driver without a usable device (the reason the driver gave).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// The device is older than the PTX pqtopk ships (sm_80).
    #[error("device {ordinal} has compute capability {major}.{minor}; pqtopk needs 8.0 or newer")]
    UnsupportedDevice {
        /// The device's ordinal.
        ordinal: u32,
        /// Its compute capability.
        major: i32,
        /// Its compute capability's minor number.
        minor: i32,
    },
    /// A shape argument is out of its domain.
    #[error("invalid {name}: expected {expected}, got {actual}")]
    InvalidArgument {
        /// The argument (a `Problem` field, or the tensor whose size is out of range).
        name: &'static str,
        /// What the contract allows.
        expected: String,
        /// What was given.
        actual: String,
    },
    /// A buffer's length does not match the shape (inputs must match exactly, outputs and the
    /// workspace must be at least as long).
    #[error("buffer `{name}` has {actual} elements; expected {expected}")]
    BufferLength {
        /// The buffer.
        name: &'static str,
        /// The elements the problem needs.
        expected: String,
        /// The elements it has.
        actual: usize,
    },
    /// A buffer's element type differs from the one the problem was planned for.
    #[error("`{name}` holds {actual:?}, but the problem was planned for {expected:?}")]
    DTypeMismatch {
        /// The buffer.
        name: &'static str,
        /// The problem's element type for it.
        expected: crate::DType,
        /// The buffer's.
        actual: crate::DType,
    },
    /// Codes at or past `c` (found by the checking paths).
    #[error("{count} codes are >= c = {c}{}", first.map(|at| format!("; the first is at {at}")).unwrap_or_default())]
    CodeOutOfRange {
        /// How many codes are out of range.
        count: u64,
        /// Centroids per sub-space.
        c: u32,
        /// Where the first one is, where the check knows (the CPU's does, the GPU's counts).
        first: Option<CodePosition>,
    },
    /// The shape is valid but beyond what this version can launch (grid or shared-memory limits).
    #[error("unsupported shape: {0}")]
    Unsupported(String),
    /// A CUDA driver call failed.
    #[cfg(feature = "cuda")]
    #[error("CUDA error: {0}")]
    Cuda(#[from] cust::error::CudaError),
    /// An append would write past a batch entry's capacity `n`.
    #[error("batch entry {batch} holds {length} of {n} keys: no room for {t} more")]
    CacheFull {
        /// The batch entry.
        batch: usize,
        /// Its keys so far.
        length: usize,
        /// The keys to append.
        t: usize,
        /// The capacity.
        n: usize,
    },
    /// The host cannot allocate what the CPU reference needs (`bytes`) for this problem.
    #[error("the CPU reference needs {bytes} bytes of host memory for {what}, which could not be allocated")]
    HostMemory {
        /// What the memory was for.
        what: &'static str,
        /// How much it was.
        bytes: usize,
    },
    /// A candle call (an allocation, a storage access) failed.
    #[cfg(feature = "candle")]
    #[error("candle: {0}")]
    Candle(String),
    /// A driver call made directly (not through cust) failed with this `CUresult`.
    #[error("{call} failed with CUresult {code}")]
    Driver {
        /// The driver entry point.
        call: &'static str,
        /// Its `CUresult`.
        code: u32,
    },
}

/// pqtopk's results: [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Err(InvalidArgument)` unless `ok`.
pub(crate) fn ensure(
    ok: bool,
    name: &'static str,
    expected: impl FnOnce() -> String,
    actual: impl ToString,
) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::InvalidArgument { name, expected: expected(), actual: actual.to_string() }) }
}

/// `Err(DTypeMismatch)` unless the buffer's element type is the expected one.
pub(crate) fn check_dtype(name: &'static str, expected: crate::DType, actual: crate::DType) -> Result<()> {
    if expected == actual { Ok(()) } else { Err(Error::DTypeMismatch { name, expected, actual }) }
}

/// `Err(BufferLength)` unless `actual == expected` (`exact`) or `actual >= expected`.
pub(crate) fn check_len(name: &'static str, expected: usize, actual: usize, exact: bool) -> Result<()> {
    let ok = if exact { actual == expected } else { actual >= expected };
    if ok {
        Ok(())
    } else {
        let expected = if exact { expected.to_string() } else { format!("at least {expected}") };
        Err(Error::BufferLength { name, expected, actual })
    }
}

/// Valid lengths: `b` of them, each ≤ n.
pub(crate) fn check_valid_lengths(b: usize, n: usize, n_valid: &[u32]) -> Result<()> {
    check_len("n_valid", b, n_valid.len(), true)?;
    let worst = n_valid.iter().copied().max().unwrap_or(0);
    ensure(worst as usize <= n, "n_valid", || format!("every value <= n ({n})"), worst)
}

/// Where a code lies in `[b, hkv, n, m]` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodePosition {
    /// Batch entry.
    pub batch: usize,
    /// Kv head.
    pub kv_head: usize,
    /// Key.
    pub key: usize,
    /// Sub-space.
    pub subspace: usize,
}

impl std::fmt::Display for CodePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch {}, kv head {}, key {}, sub-space {}", self.batch, self.kv_head, self.key, self.subspace)
    }
}

//! The crate's one error type.

/// Everything pqtopk can fail with. Bad input is reported before any launch.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No CUDA driver, or a driver without a usable device (the reason the driver gave).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    #[error("device {ordinal} has compute capability {major}.{minor}; pqtopk needs 8.0 or newer")]
    UnsupportedDevice { ordinal: u32, major: i32, minor: i32 },
    /// A shape argument is out of its domain.
    #[error("invalid {name}: expected {expected}, got {actual}")]
    InvalidArgument { name: &'static str, expected: String, actual: String },
    /// A buffer's length does not match the shape (inputs must match exactly, outputs and the
    /// workspace must be at least as long).
    #[error("buffer `{name}` has {actual} elements; expected {expected}")]
    BufferLength { name: &'static str, expected: String, actual: usize },
    /// A buffer's element type differs from the one the problem was planned for.
    #[error("`{name}` holds {actual:?}, but the problem was planned for {expected:?}")]
    DTypeMismatch { name: &'static str, expected: crate::DType, actual: crate::DType },
    /// Codes at or past `c` (found by the checking path).
    #[error("{count} codes are >= c = {c}")]
    CodeOutOfRange { count: u64, c: u32 },
    /// The shape is valid but beyond what this version can launch (grid or shared-memory limits).
    #[error("unsupported shape: {0}")]
    Unsupported(String),
    /// A CUDA driver call failed.
    #[cfg(feature = "cuda")]
    #[error("CUDA error: {0}")]
    Cuda(#[from] cust::error::CudaError),
    /// The host cannot allocate what the CPU reference needs (`bytes`) for this problem.
    #[error("the CPU reference needs {bytes} bytes of host memory for {what}, which could not be allocated")]
    HostMemory { what: &'static str, bytes: usize },
    /// A driver call made directly (not through cust) failed with this `CUresult`.
    #[error("{call} failed with CUresult {code}")]
    Driver { call: &'static str, code: u32 },
}

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

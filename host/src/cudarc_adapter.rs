//! Calls on cudarc's buffers and streams (the `cudarc` feature): safe, no copies, on the
//! caller's stream, with half 2's f16 and bf16 as cudarc and candle use them. Every buffer goes
//! through [`Gpu::topk_raw_checked`]'s checks; the stream must belong to this device's primary
//! context, which is cudarc's.

use crate::DType;
use crate::error::{Result, ensure};
use crate::gpu::{CheckedBuffers, Gpu, Plan, RawSlice};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};

mod sealed {
    pub trait Sealed {}
}

/// The element types of cudarc buffers pqtopk reads: f32, and half 2's f16 and bf16.
pub trait CudarcElement: sealed::Sealed + DeviceRepr {
    /// The [`DType`] a problem names this type by.
    const DTYPE: DType;
}

macro_rules! cudarc_element {
    ($t:ty, $dtype:ident) => {
        impl sealed::Sealed for $t {}
        impl CudarcElement for $t {
            const DTYPE: DType = DType::$dtype;
        }
    };
}

cudarc_element!(f32, F32);
cudarc_element!(half2::f16, F16);
cudarc_element!(half2::bf16, BF16);

/// The inputs of [`Gpu::topk_cudarc`], cudarc buffers shaped as [`crate::Problem`] documents.
pub struct CudarcInputs<'a, Q: CudarcElement, C: CudarcElement> {
    /// `[b, h, sq, d]`.
    pub queries: &'a CudaSlice<Q>,
    /// `[hkv, m, c, d/m]`.
    pub codebooks: &'a CudaSlice<C>,
    /// `[b, hkv, n, m]`.
    pub codes: &'a CudaSlice<u8>,
    /// `[b]` valid lengths, or all `n` keys valid.
    pub n_valid: Option<&'a CudaSlice<u32>>,
}

/// The outputs of [`Gpu::topk_cudarc`] and its workspace.
pub struct CudarcOutputs<'a> {
    /// At least `[rows, k]` key indices.
    pub indices: &'a mut CudaSlice<u32>,
    /// At least `[rows, k]` scores, where wanted.
    pub scores: Option<&'a mut CudaSlice<f32>>,
    /// At least `Plan::workspace_bytes` bytes.
    pub workspace: &'a mut CudaSlice<u8>,
}

impl Gpu {
    /// The fused score + top-k on cudarc buffers, asynchronous on `stream` (which must be of this
    /// device: [`crate::Error::InvalidArgument`] otherwise); every buffer is checked as in
    /// [`Gpu::topk_into`]. cudarc's event tracking orders the launches after earlier writes of
    /// the inputs and before later uses of the outputs.
    pub fn topk_cudarc<Q: CudarcElement, C: CudarcElement>(
        &self,
        plan: &Plan,
        stream: &CudaStream,
        inputs: &CudarcInputs<'_, Q, C>,
        outputs: &mut CudarcOutputs<'_>,
    ) -> Result<()> {
        let ordinal = stream.context().ordinal();
        ensure(
            ordinal == self.ordinal() as usize,
            "stream",
            || format!("a stream of device {}", self.ordinal()),
            ordinal,
        )?;
        // The guards record the launches on the buffers' events when they drop, after them.
        let (queries, _queries) = inputs.queries.device_ptr(stream);
        let (codebooks, _codebooks) = inputs.codebooks.device_ptr(stream);
        let (codes, _codes) = inputs.codes.device_ptr(stream);
        let n_valid = inputs.n_valid.map(|s| (s.device_ptr(stream), s.len()));
        let (indices_len, workspace_len) = (outputs.indices.len(), outputs.workspace.len());
        let (indices, _indices) = outputs.indices.device_ptr_mut(stream);
        let scores = outputs.scores.as_deref_mut().map(|s| {
            let len = s.len();
            (s.device_ptr_mut(stream), len)
        });
        let (workspace, _workspace) = outputs.workspace.device_ptr_mut(stream);
        let buffers = CheckedBuffers {
            queries: RawSlice { address: queries, len: inputs.queries.len() },
            query_dtype: Q::DTYPE,
            codebooks: RawSlice { address: codebooks, len: inputs.codebooks.len() },
            codebook_dtype: C::DTYPE,
            codes: RawSlice { address: codes, len: inputs.codes.len() },
            n_valid: n_valid.as_ref().map(|((address, _), len)| RawSlice { address: *address, len: *len }),
            indices: RawSlice { address: indices, len: indices_len },
            scores: scores.as_ref().map(|((address, _), len)| RawSlice { address: *address, len: *len }),
            workspace: RawSlice { address: workspace, len: workspace_len },
        };
        // SAFETY: the stream is of this device (checked), and cudarc streams belong to the
        // device's primary context, as the Gpu's context is; the slices are live cudarc
        // allocations of that context, borrowed (the outputs mutably) for the call, and the
        // guards order other work on them around the launches; the lengths are theirs.
        unsafe { self.topk_raw_checked(plan, stream.cu_stream() as cust::sys::CUstream, &buffers) }
    }
}

//! Calls on candle tensors (the `candle` feature): safe, no copies of the inputs, on the stream
//! of the tensors' candle device. Each tensor is checked for its device, element type, shape
//! and contiguity here, and its memory (offset views included) for length and alignment by
//! [`Gpu::topk_raw_checked`], the checks every entry point shares.

use crate::DType;
use crate::error::{Error, Result, check_dtype, ensure};
use crate::gpu::{CheckedBuffers, Gpu, Plan, RawSlice};
use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{DeviceLocation, Storage, Tensor};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, SyncOnDrop};

/// The inputs of [`Gpu::topk_candle`]: tensors on one CUDA device, shaped as
/// [`crate::Problem`] documents, contiguous (an offset view is fine where it stays 16-byte
/// aligned).
pub struct CandleInputs<'a> {
    /// `[b, h, sq, d]`, f32, f16 or bf16 (the problem's `query_dtype`).
    pub queries: &'a Tensor,
    /// `[hkv, m, c, d/m]`, the problem's `codebook_dtype`.
    pub codebooks: &'a Tensor,
    /// `[b, hkv, n, m]`, u8.
    pub codes: &'a Tensor,
    /// `[b]` valid lengths, u32, or all `n` keys valid.
    pub n_valid: Option<&'a Tensor>,
}

/// The results of [`Gpu::topk_candle`], on the inputs' device.
#[derive(Debug)]
pub struct CandleOutputs {
    /// `[b, h, sq, k]` (`[b, hkv, sq, k]` in group mode) key indices, u32.
    pub indices: Tensor,
    /// The same shape of f32 scores, where asked for.
    pub scores: Option<Tensor>,
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Error {
        Error::Candle(e.to_string())
    }
}

impl Gpu {
    /// The fused score + top-k on candle tensors, asynchronous on the stream of their candle
    /// device, like any candle op. The outputs and the workspace are allocated on that stream
    /// (candle allocates the results of its own ops the same way); the inputs are read in
    /// place. Every tensor is checked before the launch: [`Error::InvalidArgument`] for another
    /// device, a shape other than the problem's or a non-contiguous layout,
    /// [`Error::DTypeMismatch`] for an element type, and [`Gpu::topk_raw_checked`]'s checks for
    /// the memory itself.
    ///
    /// The tensors must be on this `Gpu`'s device, through a candle `CudaDevice` of the device's
    /// primary context (candle's `Device::new_cuda` is).
    pub fn topk_candle(&self, plan: &Plan, inputs: &CandleInputs<'_>, with_scores: bool) -> Result<CandleOutputs> {
        let p = plan.problem();
        let device = cuda_device(self, "queries", inputs.queries)?;
        let expected: [(&'static str, &Tensor, Element, &[usize]); 3] = [
            ("queries", inputs.queries, Element::Float(p.query_dtype), &[p.b, p.h, p.sq, p.d]),
            ("codebooks", inputs.codebooks, Element::Float(p.codebook_dtype), &[p.hkv, p.m, p.c, p.d / p.m]),
            ("codes", inputs.codes, Element::Exactly(candle_core::DType::U8), &[p.b, p.hkv, p.n, p.m]),
        ];
        for (name, tensor, element, dims) in expected {
            check_tensor(&device, name, tensor, element, dims)?;
        }
        if let Some(n_valid) = inputs.n_valid {
            check_tensor(&device, "n_valid", n_valid, Element::Exactly(candle_core::DType::U32), &[p.b])?;
        }
        let stream = device.cuda_stream();
        // SAFETY: every element of both outputs is written by the launches below before the
        // tensors are returned (rows with fewer valid keys than k are padded); the workspace
        // needs no initial value.
        let (indices, scores, workspace) = unsafe {
            (
                device.alloc::<u32>(p.out_len())?,
                if with_scores { Some(device.alloc::<f32>(p.out_len())?) } else { None },
                device.alloc::<u8>(plan.workspace_bytes())?,
            )
        };
        {
            let storages = [inputs.queries, inputs.codebooks, inputs.codes].map(Tensor::storage_and_layout);
            let n_valid_storage = inputs.n_valid.map(Tensor::storage_and_layout);
            // The guards live until the launches are queued.
            let (queries, _queries) = tensor_slice(&storages[0], &stream)?;
            let (codebooks, _codebooks) = tensor_slice(&storages[1], &stream)?;
            let (codes, _codes) = tensor_slice(&storages[2], &stream)?;
            let n_valid = n_valid_storage.as_ref().map(|storage| tensor_slice(storage, &stream)).transpose()?;
            let (n_valid, _n_valid) = n_valid.unzip();
            let (indices_ptr, _indices) = indices.device_ptr(&stream);
            let scores_ptr = scores.as_ref().map(|s| s.device_ptr(&stream));
            let (workspace_ptr, _workspace) = workspace.device_ptr(&stream);
            let buffers = CheckedBuffers {
                queries,
                query_dtype: p.query_dtype,
                codebooks,
                codebook_dtype: p.codebook_dtype,
                codes,
                n_valid,
                indices: RawSlice { address: indices_ptr, len: indices.len() },
                scores: scores_ptr.as_ref().map(|(address, _)| RawSlice { address: *address, len: p.out_len() }),
                workspace: RawSlice { address: workspace_ptr, len: workspace.len() },
            };
            // SAFETY: the stream is the candle device's, of this Gpu's device (checked) and of
            // its primary context; the inputs are live allocations of that context, held by the
            // storage read guards for the call, and cudarc's guards order the launches after
            // earlier writes on them and before later writes; the outputs and the workspace are
            // this call's own allocations on the same stream; the lengths are the tensors'.
            unsafe { self.topk_raw_checked(plan, stream.cu_stream() as cust::sys::CUstream, &buffers)? };
        }
        let shape = (p.b, p.out_heads(), p.sq, p.k);
        // The workspace is freed on the stream, after the launches (cudarc frees asynchronously).
        drop(workspace);
        Ok(CandleOutputs {
            indices: wrap(indices, &device, shape),
            scores: scores.map(|scores| wrap(scores, &device, shape)),
        })
    }
}

/// The candle CUDA device of `tensor`, which must be this Gpu's device.
fn cuda_device(gpu: &Gpu, name: &'static str, tensor: &Tensor) -> Result<CudaDevice> {
    let on_gpu = tensor.device().location() == DeviceLocation::Cuda { gpu_id: gpu.ordinal() as usize };
    ensure(
        on_gpu,
        name,
        || format!("a tensor on cuda:{}", gpu.ordinal()),
        format!("{:?}", tensor.device().location()),
    )?;
    Ok(tensor.device().as_cuda_device()?.clone())
}

/// The element type a tensor must have.
#[derive(Clone, Copy)]
enum Element {
    /// A problem's float type ([`Error::DTypeMismatch`] for another float type).
    Float(DType),
    /// This candle type (codes, lengths).
    Exactly(candle_core::DType),
}

/// A candle tensor of `slice`, shaped `shape` (contiguous), on `device`.
fn wrap<T: candle_core::cuda_backend::CudaDType>(
    slice: CudaSlice<T>,
    device: &CudaDevice,
    shape: (usize, usize, usize, usize),
) -> Tensor {
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, device.clone()));
    Tensor::from_storage(storage, shape, BackpropOp::none(), false)
}

/// Checks that `tensor` is on `device` (the same candle device, so the same stream), of
/// `element` type, shaped `dims`, and contiguous.
fn check_tensor(
    device: &CudaDevice,
    name: &'static str,
    tensor: &Tensor,
    element: Element,
    dims: &[usize],
) -> Result<()> {
    let same = matches!(tensor.device(), candle_core::Device::Cuda(d) if d.same_device(device));
    ensure(
        same,
        name,
        || "a tensor on the queries' candle device".into(),
        format!("{:?}", tensor.device().location()),
    )?;
    let float = |dtype| match dtype {
        candle_core::DType::F32 => Some(DType::F32),
        candle_core::DType::F16 => Some(DType::F16),
        candle_core::DType::BF16 => Some(DType::BF16),
        _ => None,
    };
    match (element, float(tensor.dtype())) {
        (Element::Float(expected), Some(actual)) => check_dtype(name, expected, actual)?,
        (Element::Float(expected), None) => {
            ensure(false, name, || format!("{expected:?} elements"), format!("{:?}", tensor.dtype()))?
        }
        (Element::Exactly(expected), _) => ensure(
            tensor.dtype() == expected,
            name,
            || format!("{expected:?} elements"),
            format!("{:?}", tensor.dtype()),
        )?,
    }
    ensure(tensor.dims() == dims, name, || format!("shape {dims:?}"), format!("{:?}", tensor.dims()))?;
    let layout = tensor.layout();
    ensure(
        layout.contiguous_offsets().is_some(),
        name,
        || "a contiguous tensor".into(),
        format!("strides {:?}", layout.stride()),
    )
}

/// A checked tensor's elements as a raw slice (its layout's offsets into its CUDA storage), with
/// cudarc's guard that orders the launch after earlier work on the storage.
fn tensor_slice<'a>(
    (storage, layout): &'a (candle_core::StorageRef<'_>, &candle_core::Layout),
    stream: &'a CudaStream,
) -> Result<(RawSlice, SyncOnDrop<'a>)> {
    let Storage::Cuda(storage) = &**storage else {
        return Err(Error::Candle("a tensor left its CUDA device during the call".into()));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(Error::Candle("a tensor stopped being contiguous during the call".into()));
    };
    fn at<'a, T: candle_core::cuda_backend::CudaDType + cudarc::driver::DeviceRepr + 'a>(
        storage: &'a CudaStorage,
        stream: &'a CudaStream,
        start: usize,
        end: usize,
    ) -> Result<(RawSlice, SyncOnDrop<'a>)> {
        let slice = storage.as_cuda_slice::<T>()?;
        let (base, guard) = slice.device_ptr(stream);
        let address = base + (start * size_of::<T>()) as u64;
        Ok((RawSlice { address, len: end - start }, guard))
    }
    match storage.dtype() {
        candle_core::DType::F32 => at::<f32>(storage, stream, start, end),
        candle_core::DType::F16 => at::<half2::f16>(storage, stream, start, end),
        candle_core::DType::BF16 => at::<half2::bf16>(storage, stream, start, end),
        candle_core::DType::U8 => at::<u8>(storage, stream, start, end),
        candle_core::DType::U32 => at::<u32>(storage, stream, start, end),
        other => Err(Error::Candle(format!("unexpected element type {other:?}"))),
    }
}

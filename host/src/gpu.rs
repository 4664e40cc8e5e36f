//! The GPU: one [`Gpu`] per device holds its context and the loaded kernels; a [`Plan`] fixes one
//! problem's launch shape and workspace; `topk*` launch it asynchronously on a stream.

use crate::dtype::Element;
use crate::error::{Error, Result, check_dtype, check_len, ensure};
use crate::plan::{self, DeviceLimits, SCORE_SMEM_BUDGET};
pub use crate::plan::{Kernel, Launch, Path, Plan};
use crate::problem::Problem;
use crate::raw;
use cust::context::{Context, CurrentContext};
use cust::device::{Device, DeviceAttribute};
use cust::error::CudaError;
use cust::memory::{AsyncCopyDestination, CopyDestination, DeviceBuffer, DeviceSlice};
use cust::module::Module;
use cust::stream::Stream;
use cust::sys::{CUfunction, CUstream};
use pqtopk_abi::{BLOCK_THREADS, CodeCheckParams, REGISTER_WIDTH_KERNELS, RUN_KEYS, kernel_names};

/// PTX for each supported architecture, built by `cargo xtask build-ptx` and committed.
const PTX_SM80: &str = include_str!("../ptx/pqtopk_sm80.ptx");
const PTX_SM90: &str = include_str!("../ptx/pqtopk_sm90.ptx");

/// One CUDA device with pqtopk's kernels loaded. Create one per device and share it; it makes its
/// context current on the calling thread in every call.
pub struct Gpu {
    pub(crate) kernels: Kernels,
    // Holds the kernels' code. Field order is drop order: the module must unload while its
    // context still lives.
    _module: Module,
    context: Context,
    ordinal: u32,
    compute_capability: (i32, i32),
    pub(crate) limits: DeviceLimits,
}

/// The module's kernels, looked up once.
pub(crate) struct Kernels {
    tables: CUfunction,
    ranges: CUfunction,
    score: CUfunction,
    score_dense: CUfunction,
    select: CUfunction,
    select_by_index: CUfunction,
    select_long_by_index: CUfunction,
    sort_runs: CUfunction,
    merge_runs: CUfunction,
    write_by_index: CUfunction,
    write_candidates: CUfunction,
    topk_small: CUfunction,
    /// sm_90 only.
    topk_cluster: Option<CUfunction>,
    count_bad_codes: CUfunction,
    /// By register width (`pqtopk_abi::register_width_index`).
    pub(crate) encode: [CUfunction; REGISTER_WIDTH_KERNELS],
    pub(crate) advance_lengths: CUfunction,
    pub(crate) train_init: CUfunction,
    /// By register width, as `encode`.
    pub(crate) train_assign: [CUfunction; REGISTER_WIDTH_KERNELS],
    pub(crate) train_update: CUfunction,
}

// SAFETY: a Gpu holds driver handles (context, module, functions) that are never mutated after creation;
// the driver API is thread-safe, and every method makes the context current on the calling
// thread before it uses them. Per-call state lives in the caller's buffers and streams.
unsafe impl Send for Gpu {}
// SAFETY: as above; `&self` methods touch no shared mutable state of the Gpu.
unsafe impl Sync for Gpu {}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal)
            .field("compute_capability", &self.compute_capability)
            .finish()
    }
}

/// Maps "no driver / no device" to [`Error::NoDevice`], anything else to [`Error::Cuda`].
fn device_error(e: CudaError) -> Error {
    match e {
        // cust quotes the driver's message; the error adds its own context.
        CudaError::NoDevice | CudaError::InvalidDevice => Error::NoDevice(e.to_string().trim_matches('"').to_string()),
        e => Error::Cuda(e),
    }
}

impl Gpu {
    /// Devices visible to the driver; [`Error::NoDevice`] where there is no driver or device.
    pub fn device_count() -> Result<u32> {
        cust::init(cust::CudaFlags::empty()).map_err(device_error)?;
        let count = Device::num_devices().map_err(device_error)?;
        if count == 0 { Err(Error::NoDevice("the driver reports 0 devices".into())) } else { Ok(count) }
    }

    /// Opens device `ordinal` (its primary context) and loads the PTX for its architecture once.
    pub fn new(ordinal: u32) -> Result<Gpu> {
        let count = Self::device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice(format!("device {ordinal} requested, {count} present")));
        }
        let device = Device::get_device(ordinal)?;
        let major = device.get_attribute(DeviceAttribute::ComputeCapabilityMajor)?;
        let minor = device.get_attribute(DeviceAttribute::ComputeCapabilityMinor)?;
        let ptx = match (major, minor) {
            (9, _) => PTX_SM90,
            (8.., _) => PTX_SM80,
            _ => return Err(Error::UnsupportedDevice { ordinal, major, minor }),
        };
        let context = Context::new(device)?;
        CurrentContext::set_current(&context)?;
        let module = Module::from_ptx(ptx, &[])?;
        use cust::sys::CUdevice_attribute as Attribute;
        // SAFETY: querying attributes of a valid device.
        let max_shared_bytes = unsafe {
            raw::device_attribute(device.as_raw(), Attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?
        };
        // SAFETY: as above.
        let multiprocessors =
            unsafe { raw::device_attribute(device.as_raw(), Attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? };
        let function = |name: &str| module.get_function(name).map(|f| f.to_raw());
        let by_width = |names: [&str; REGISTER_WIDTH_KERNELS]| -> Result<[CUfunction; REGISTER_WIDTH_KERNELS]> {
            let mut functions = [std::ptr::null_mut(); REGISTER_WIDTH_KERNELS];
            for (function_slot, name) in functions.iter_mut().zip(names) {
                *function_slot = function(name)?;
            }
            Ok(functions)
        };
        let kernels = Kernels {
            tables: function(kernel_names::TABLES)?,
            ranges: function(kernel_names::RANGES)?,
            score: function(kernel_names::SCORE)?,
            score_dense: function(kernel_names::SCORE_DENSE)?,
            select: function(kernel_names::SELECT)?,
            select_by_index: function(kernel_names::SELECT_BY_INDEX)?,
            select_long_by_index: function(kernel_names::SELECT_LONG_BY_INDEX)?,
            sort_runs: function(kernel_names::SORT_RUNS)?,
            merge_runs: function(kernel_names::MERGE_RUNS)?,
            write_by_index: function(kernel_names::WRITE_BY_INDEX)?,
            write_candidates: function(kernel_names::WRITE_CANDIDATES)?,
            topk_small: function(kernel_names::TOPK_SMALL)?,
            topk_cluster: if major >= 9 { Some(function(kernel_names::TOPK_CLUSTER)?) } else { None },
            count_bad_codes: function(kernel_names::COUNT_BAD_CODES)?,
            encode: by_width(kernel_names::ENCODE)?,
            advance_lengths: function(kernel_names::ADVANCE_LENGTHS)?,
            train_init: function(kernel_names::TRAIN_INIT)?,
            train_assign: by_width(kernel_names::TRAIN_ASSIGN)?,
            train_update: function(kernel_names::TRAIN_UPDATE)?,
        };
        // SAFETY: valid functions of the module; the values are within the device's limit less
        // what each kernel declares statically.
        let [
            tables_dynamic_limit,
            select_dynamic_limit,
            dense_dynamic_limit,
            small_dynamic_limit,
            sort_runs_limit,
            encode_dynamic_limit,
            train_assign_dynamic_limit,
        ] = unsafe {
            raw::set_max_dynamic_shared(kernels.score, max_shared_bytes.min(SCORE_SMEM_BUDGET))?;
            let mut limits = [usize::MAX; 7];
            // Each width's kernel shares its family's limit (the smallest of them).
            let kernels_with_limits = [
                &[kernels.tables, kernels.ranges][..],
                &[kernels.select, kernels.select_by_index, kernels.select_long_by_index],
                &[kernels.score_dense],
                &[kernels.topk_small],
                &[kernels.sort_runs],
                &kernels.encode,
                &kernels.train_assign,
            ];
            for (limit, family) in limits.iter_mut().zip(kernels_with_limits) {
                for &kernel in family {
                    *limit = (*limit).min(max_shared_bytes - raw::static_shared_bytes(kernel)?);
                }
                for &kernel in family {
                    raw::set_max_dynamic_shared(kernel, *limit)?;
                }
            }
            limits
        };
        let cluster_dynamic_limit = match kernels.topk_cluster {
            // SAFETY: as above.
            Some(kernel) => unsafe {
                let limit = max_shared_bytes - raw::static_shared_bytes(kernel)?;
                raw::set_max_dynamic_shared(kernel, limit)?;
                limit
            },
            None => 0,
        };
        if sort_runs_limit < RUN_KEYS as usize * 8 {
            return Err(Error::Unsupported(format!(
                "{} bytes of shared memory per block; pqtopk needs {}",
                max_shared_bytes,
                RUN_KEYS as usize * 8
            )));
        }
        let limits = DeviceLimits {
            multiprocessors,
            max_shared_bytes,
            tables_dynamic_limit,
            select_dynamic_limit,
            dense_dynamic_limit,
            small_dynamic_limit,
            cluster_dynamic_limit,
            encode_dynamic_limit,
            train_assign_dynamic_limit,
        };
        Ok(Gpu { kernels, _module: module, context, ordinal, compute_capability: (major, minor), limits })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The device's name, as the driver reports it.
    pub fn name(&self) -> Result<String> {
        Ok(Device::get_device(self.ordinal)?.name()?)
    }

    /// Makes this device's context current on the calling thread (every call does it too); do it
    /// before allocating buffers or streams for this device on a new thread.
    pub fn make_current(&self) -> Result<()> {
        Ok(CurrentContext::set_current(&self.context)?)
    }

    /// Validates `problem` and fixes its launch shape on this device (see [`Gpu::topk_into`] for
    /// an example).
    pub fn plan(&self, problem: &Problem) -> Result<Plan> {
        self.plan_with_path(problem, Path::Auto)
    }

    /// [`Gpu::plan`] on a given path, for tests and benchmarks that compare the paths;
    /// [`Error::Unsupported`] where the path does not apply to the problem on this device.
    #[doc(hidden)]
    pub fn plan_with_path(&self, problem: &Problem, path: Path) -> Result<Plan> {
        plan::plan(problem, path, &self.limits, |shared_bytes| {
            self.make_current()?;
            // SAFETY: a kernel of this module, whose context was just made current.
            Ok(unsafe { raw::max_active_blocks(self.kernels.score, BLOCK_THREADS, shared_bytes)? } as usize)
        })
    }

    /// The fused score + top-k, written to caller-owned buffers; asynchronous on `stream`,
    /// allocation-free.
    ///
    /// # Example
    /// ```no_run
    /// use pqtopk::cust::memory::DeviceBuffer;
    /// use pqtopk::cust::stream::{Stream, StreamFlags};
    /// use pqtopk::half::f16;
    /// use pqtopk::{Gpu, Inputs, Outputs, Problem};
    ///
    /// let gpu = Gpu::new(0)?;
    /// let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    /// let problem = Problem::new(1, 32, 8, 1, 128, 16, 256, 31872, 2048);
    /// let plan = gpu.plan(&problem)?; // validates, and sizes the workspace
    /// let queries = DeviceBuffer::from_slice(&vec![f16::from_f32(0.5); problem.queries_len()])?;
    /// let codebooks = DeviceBuffer::from_slice(&vec![f16::from_f32(0.25); problem.codebooks_len()])?;
    /// let codes = DeviceBuffer::from_slice(&vec![3u8; problem.codes_len()])?;
    /// let mut indices = DeviceBuffer::<u32>::zeroed(problem.out_len())?;
    /// let mut workspace = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes())?;
    /// let inputs = Inputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };
    /// // Every step of a decode loop: the same plan and buffers, no allocation.
    /// gpu.topk_into(&plan, &stream, &inputs, &mut Outputs { indices: &mut indices, scores: None }, &mut workspace)?;
    /// stream.synchronize()?;
    /// # Ok::<(), pqtopk::Error>(())
    /// ```
    pub fn topk_into<Q: Element, C: Element>(
        &self,
        plan: &Plan,
        stream: &Stream,
        inputs: &Inputs<'_, Q, C>,
        outputs: &mut Outputs<'_>,
        workspace: &mut DeviceSlice<u8>,
    ) -> Result<()> {
        self.topk_into_observed(plan, stream, inputs, outputs, workspace, |_| Ok(()))
    }

    /// [`Gpu::topk_into`], calling `after(kernel)` once each launch of the call is queued on
    /// `stream` (with the kernel's name): a benchmark records an event there to time each
    /// kernel of a call.
    #[doc(hidden)]
    pub fn topk_into_observed<Q: Element, C: Element>(
        &self,
        plan: &Plan,
        stream: &Stream,
        inputs: &Inputs<'_, Q, C>,
        outputs: &mut Outputs<'_>,
        workspace: &mut DeviceSlice<u8>,
        after: impl FnMut(&'static str) -> Result<()>,
    ) -> Result<()> {
        let p = &plan.problem;
        let raw = |address: u64, len: usize| RawSlice { address, len };
        let slice = |s: &DeviceSlice<u8>| raw(s.as_device_ptr().as_raw(), s.len());
        let workspace_slice = slice(workspace);
        // Valid lengths on the host are checked here and copied into the workspace (once the
        // workspace itself has passed the checks).
        let host_n_valid = match inputs.n_valid {
            Some(ValidLengths::Host(n_valid)) => {
                crate::reference::validate_n_valid(p, n_valid)?;
                Some(n_valid)
            }
            _ => None,
        };
        let n_valid_address = workspace_slice.address + plan.workspace_layout().n_valid as u64;
        let checked = CheckedBuffers {
            queries: raw(inputs.queries.as_device_ptr().as_raw(), inputs.queries.len()),
            query_dtype: Q::DTYPE,
            codebooks: raw(inputs.codebooks.as_device_ptr().as_raw(), inputs.codebooks.len()),
            codebook_dtype: C::DTYPE,
            codes: slice(inputs.codes),
            n_valid: match inputs.n_valid {
                Some(ValidLengths::Host(_)) => Some(raw(n_valid_address, p.b)),
                Some(ValidLengths::Device(n_valid)) => Some(raw(n_valid.as_device_ptr().as_raw(), n_valid.len())),
                None => None,
            },
            indices: raw(outputs.indices.as_device_ptr().as_raw(), outputs.indices.len()),
            scores: outputs.scores.as_deref().map(|s| raw(s.as_device_ptr().as_raw(), s.len())),
            workspace: workspace_slice,
        };
        let buffers = checked.check(plan)?;
        self.make_current()?;
        if let Some(n_valid) = host_n_valid {
            // SAFETY: the workspace was checked to hold the n_valid region; the driver stages
            // pageable host memory before returning, so `n_valid` may be dropped after.
            unsafe {
                let mut region =
                    DeviceSlice::from_raw_parts_mut(cust::memory::DevicePointer::from_raw(n_valid_address), p.b);
                region.async_copy_from(n_valid, stream)?;
            }
        }
        // SAFETY: every buffer was checked against the plan's shape above, and `stream` is a live
        // stream of the current context, which is current.
        unsafe { self.launch(plan, stream.as_inner(), &buffers, after) }
    }

    /// The fused score + top-k with freshly allocated outputs and workspace (stream-ordered
    /// allocations are not available in cust 0.3, so this allocates synchronously; use
    /// [`Gpu::topk_into`] on hot paths).
    pub fn topk<Q: Element, C: Element>(
        &self,
        problem: &Problem,
        stream: &Stream,
        inputs: &Inputs<'_, Q, C>,
        with_scores: bool,
    ) -> Result<TopkBuffers> {
        let plan = self.plan(problem)?;
        self.make_current()?;
        let mut indices = DeviceBuffer::<u32>::zeroed(problem.out_len())?;
        let mut scores = if with_scores { Some(DeviceBuffer::<f32>::zeroed(problem.out_len())?) } else { None };
        let mut workspace = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes())?;
        let mut outputs = Outputs { indices: &mut indices, scores: scores.as_deref_mut() };
        self.topk_into(&plan, stream, inputs, &mut outputs, &mut workspace)?;
        Ok(TopkBuffers { indices, scores, workspace })
    }

    /// The fused score + top-k on raw device addresses, for stacks built on other CUDA wrappers
    /// (cudarc, candle). Launches asynchronously on `stream` and returns.
    ///
    /// # Safety
    /// - `stream` is a live stream (or null, the legacy default stream) of this device's primary
    ///   context, which is the one cudarc and candle use by default.
    /// - `buffers.queries` holds `plan.problem().queries_len()` elements of the problem's
    ///   `query_dtype`, `codebooks` `codebooks_len()` of `codebook_dtype`, `codes`
    ///   `codes_len()` bytes, and `n_valid` is 0 or holds `b` u32; these stay unchanged until the
    ///   launches finish.
    /// - `indices` holds `out_len()` u32 and `scores` is 0 or holds `out_len()` f32;
    ///   `workspace` holds `plan.workspace_bytes()` bytes, 256-byte aligned (as every CUDA
    ///   allocation is). No other work reads or writes these until the launches finish, and the
    ///   workspace is not shared with a concurrent call.
    /// - `queries`, `codebooks`, `codes` and `workspace` are 16-byte aligned: the kernels read
    ///   and write them in 16-byte vectors (every CUDA allocation is so aligned; an offset view
    ///   into one, as a framework's tensor view may be, need not be).
    /// - All addresses are device memory of this context (or mapped into it).
    ///
    /// [`Gpu::topk_raw_checked`] checks everything here but the memory itself.
    pub unsafe fn topk_raw(&self, plan: &Plan, stream: CUstream, buffers: &RawBuffers) -> Result<()> {
        self.make_current()?;
        // SAFETY: forwarded to the caller.
        unsafe { self.launch(plan, stream, buffers, |_| Ok(())) }
    }

    /// [`Gpu::topk_raw`] with every buffer given as an address and a length, checked as
    /// [`Gpu::topk_into`] checks (element types, lengths, null addresses, 16-byte alignment)
    /// before any launch. The entry for stacks built on other CUDA wrappers (the `cudarc`
    /// adapter calls it).
    ///
    /// # Safety
    /// - `stream` is a live stream (or null, the legacy default stream) of this device's primary
    ///   context.
    /// - Each [`RawSlice`] is device memory of that context (or mapped into it) holding at least
    ///   `len` elements of its buffer's type; the inputs stay unchanged, and no other work reads
    ///   or writes the outputs and the workspace, until the launches finish; the workspace is not
    ///   shared with a concurrent call.
    pub unsafe fn topk_raw_checked(&self, plan: &Plan, stream: CUstream, buffers: &CheckedBuffers) -> Result<()> {
        let raw = buffers.check(plan)?;
        self.make_current()?;
        // SAFETY: the buffers were checked against the plan; the rest is the caller's promise.
        unsafe { self.launch(plan, stream, &raw, |_| Ok(())) }
    }

    /// The launches of one call, with the context already current; `after(kernel)` once each
    /// is queued.
    ///
    /// # Safety
    /// As [`Gpu::topk_raw`].
    unsafe fn launch(
        &self,
        plan: &Plan,
        stream: CUstream,
        buffers: &RawBuffers,
        mut after: impl FnMut(&'static str) -> Result<()>,
    ) -> Result<()> {
        plan.launches(buffers, |launch| {
            let kernel = launch.kernel.name();
            // SAFETY: the workspace regions are the caller's (see topk_raw); the launches are
            // the plan's.
            unsafe { self.launch_one(stream, launch)? };
            after(kernel)
        })
    }

    /// One launch of a plan, an encode or a training, with the context already current.
    ///
    /// # Safety
    /// Every address in the parameters is valid for what the kernel does with it, on this
    /// context, until the launch finishes; the grid, block size and shared memory are the
    /// plan's (or `encode_launches`'), which follow each kernel's documented requirements.
    pub(crate) unsafe fn launch_one(&self, stream: CUstream, launch: Launch) -> Result<()> {
        let k = &self.kernels;
        let Launch { kernel, blocks, threads, shared_bytes } = launch;
        // SAFETY: forwarded to the caller.
        unsafe {
            match kernel {
                Kernel::TopkSmall(p) => raw::launch(k.topk_small, blocks, threads, shared_bytes, stream, &p),
                Kernel::Tables(p) => raw::launch(k.tables, blocks, threads, shared_bytes, stream, &p),
                Kernel::Ranges(p) => raw::launch(k.ranges, blocks, threads, shared_bytes, stream, &p),
                Kernel::TopkCluster(p) => {
                    let cluster = k.topk_cluster.ok_or_else(|| Error::Unsupported("the cluster path".into()))?;
                    raw::launch(cluster, blocks, threads, shared_bytes, stream, &p)
                }
                Kernel::ScoreDense(p) => raw::launch(k.score_dense, blocks, threads, shared_bytes, stream, &p),
                Kernel::Score(p) => raw::launch(k.score, blocks, threads, shared_bytes, stream, &p),
                Kernel::Select(p) => raw::launch(k.select, blocks, threads, shared_bytes, stream, &p),
                Kernel::SelectByIndex(p) => raw::launch(k.select_by_index, blocks, threads, shared_bytes, stream, &p),
                Kernel::SelectLongByIndex(p) => {
                    raw::launch(k.select_long_by_index, blocks, threads, shared_bytes, stream, &p)
                }
                Kernel::SortRuns(p) => raw::launch(k.sort_runs, blocks, threads, shared_bytes, stream, &p),
                Kernel::MergeRuns(p) => raw::launch(k.merge_runs, blocks, threads, shared_bytes, stream, &p),
                Kernel::WriteByIndex(p) => raw::launch(k.write_by_index, blocks, threads, shared_bytes, stream, &p),
                Kernel::WriteCandidates(p) => {
                    raw::launch(k.write_candidates, blocks, threads, shared_bytes, stream, &p)
                }
                Kernel::Encode { width_index, params } => {
                    raw::launch(k.encode[width_index], blocks, threads, shared_bytes, stream, &params)
                }
                Kernel::AdvanceLengths(p) => raw::launch(k.advance_lengths, blocks, threads, shared_bytes, stream, &p),
                Kernel::TrainInit(p) => raw::launch(k.train_init, blocks, threads, shared_bytes, stream, &p),
                Kernel::TrainAssign { width_index, params } => {
                    raw::launch(k.train_assign[width_index], blocks, threads, shared_bytes, stream, &params)
                }
                Kernel::TrainUpdate(p) => raw::launch(k.train_update, blocks, threads, shared_bytes, stream, &p),
            }
        }
    }

    /// The checking path for codes: counts codes ≥ `c` and returns [`Error::CodeOutOfRange`] if
    /// there are any. The fused kernels never read out of bounds on such codes, but score them
    /// arbitrarily. This call synchronizes `stream`.
    pub fn check_codes(&self, stream: &Stream, codes: &DeviceSlice<u8>, c: usize) -> Result<()> {
        self.make_current()?;
        let counter = DeviceBuffer::<u32>::zeroed(1)?;
        let params = CodeCheckParams {
            codes: codes.as_device_ptr().as_raw(),
            bad_count: counter.as_device_ptr().as_raw(),
            len: codes.len() as u64,
            c: c.min(256) as u32,
        };
        let blocks = codes.len().div_ceil(BLOCK_THREADS as usize * 16).clamp(1, 4096) as u32;
        // SAFETY: the counter and codes are live device buffers of this context.
        unsafe { raw::launch(self.kernels.count_bad_codes, blocks, BLOCK_THREADS, 0, stream.as_inner(), &params)? };
        stream.synchronize()?;
        let mut count = [0u32];
        counter.copy_to(&mut count[..])?;
        if count[0] == 0 {
            Ok(())
        } else {
            Err(Error::CodeOutOfRange { count: count[0] as u64, c: c as u32, first: None })
        }
    }
}

/// A device buffer by address and length in elements, for [`Gpu::topk_raw_checked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSlice {
    /// Its device address.
    pub address: u64,
    /// Its length in elements.
    pub len: usize,
}

/// The buffers of one call by address and length, with the element types of the inputs: what
/// [`Gpu::topk_raw_checked`] validates as [`Gpu::topk_into`] does.
#[derive(Clone, Copy, Debug)]
pub struct CheckedBuffers {
    /// `[b, h, sq, d]` of `query_dtype`, 16-byte aligned.
    pub queries: RawSlice,
    /// The queries' element type.
    pub query_dtype: crate::DType,
    /// `[hkv, m, c, d/m]` of `codebook_dtype`, 16-byte aligned.
    pub codebooks: RawSlice,
    /// The codebooks' element type.
    pub codebook_dtype: crate::DType,
    /// `[b, hkv, n, m]` u8, 16-byte aligned.
    pub codes: RawSlice,
    /// `[b]` u32 valid lengths on the device (a value above n counts as n), or all n.
    pub n_valid: Option<RawSlice>,
    /// At least `[rows, k]` u32.
    pub indices: RawSlice,
    /// At least `[rows, k]` f32, where wanted.
    pub scores: Option<RawSlice>,
    /// At least `Plan::workspace_bytes` bytes, 16-byte aligned.
    pub workspace: RawSlice,
}

impl CheckedBuffers {
    /// Every element type, length, address and alignment against `plan`, before any launch;
    /// the addresses to launch with.
    pub(crate) fn check(&self, plan: &Plan) -> Result<RawBuffers> {
        let p = plan.problem();
        check_dtype("queries", p.query_dtype, self.query_dtype)?;
        check_dtype("codebooks", p.codebook_dtype, self.codebook_dtype)?;
        let exact = [
            ("queries", self.queries, p.queries_len()),
            ("codebooks", self.codebooks, p.codebooks_len()),
            ("codes", self.codes, p.codes_len()),
        ];
        let n_valid = self.n_valid.map(|s| ("n_valid", s, p.b));
        for (name, slice, expected) in exact.into_iter().chain(n_valid) {
            slice.check(name, expected, true)?;
        }
        let scores = self.scores.map(|s| ("scores", s, p.out_len()));
        let at_least = [("indices", self.indices, p.out_len()), ("workspace", self.workspace, plan.workspace_bytes())];
        for (name, slice, expected) in at_least.into_iter().chain(scores) {
            slice.check(name, expected, false)?;
        }
        // The kernels read inputs and write the workspace in 16-byte vectors: every CUDA
        // allocation starts so aligned, a sub-slice need not.
        for (name, slice) in [
            ("queries", self.queries),
            ("codebooks", self.codebooks),
            ("codes", self.codes),
            ("workspace", self.workspace),
        ] {
            let address = slice.address;
            ensure(
                address.is_multiple_of(16),
                name,
                || "a 16-byte aligned device address".into(),
                format!("{address:#x}"),
            )?;
        }
        Ok(RawBuffers {
            queries: self.queries.address,
            codebooks: self.codebooks.address,
            codes: self.codes.address,
            n_valid: self.n_valid.map_or(0, |s| s.address),
            indices: self.indices.address,
            scores: self.scores.map_or(0, |s| s.address),
            workspace: self.workspace.address,
        })
    }
}

impl RawSlice {
    /// `len == expected` (`exact`) or `len >= expected`, at a non-null address.
    fn check(self, name: &'static str, expected: usize, exact: bool) -> Result<()> {
        ensure(self.address != 0, name, || "a device address".into(), "null")?;
        check_len(name, expected, self.len, exact)
    }
}

/// The device inputs of one call.
pub struct Inputs<'a, Q: Element, C: Element> {
    /// `[b, h, sq, d]`, 16-byte aligned.
    pub queries: &'a DeviceSlice<Q>,
    /// `[hkv, m, c, d/m]`, 16-byte aligned.
    pub codebooks: &'a DeviceSlice<C>,
    /// `[b, hkv, n, m]`, 16-byte aligned.
    pub codes: &'a DeviceSlice<u8>,
    /// Valid keys per batch entry, or all `n`.
    pub n_valid: Option<ValidLengths<'a>>,
}

/// Valid lengths `[b]`: keys at or past `n_valid[bi]` are never selected.
#[derive(Clone, Copy)]
pub enum ValidLengths<'a> {
    /// Checked on the host (each ≤ n, else [`Error::InvalidArgument`]) and copied into the
    /// workspace with an asynchronous copy on the call's stream.
    Host(&'a [u32]),
    /// Already on the device, so not checked by the host: a value above n counts as n.
    Device(&'a DeviceSlice<u32>),
}

/// The device outputs of one call: `[rows, k]` each.
pub struct Outputs<'a> {
    /// Key indices, `u32::MAX` for padding.
    pub indices: &'a mut DeviceSlice<u32>,
    /// Their scores (the worst score for padding), where wanted.
    pub scores: Option<&'a mut DeviceSlice<f32>>,
}

/// Outputs of [`Gpu::topk`]; the workspace is returned so that its memory outlives the
/// asynchronous launches.
pub struct TopkBuffers {
    /// `[rows, k]` key indices.
    pub indices: DeviceBuffer<u32>,
    /// `[rows, k]` scores, where asked for.
    pub scores: Option<DeviceBuffer<f32>>,
    /// The call's workspace; free it only after the stream has finished the call.
    pub workspace: DeviceBuffer<u8>,
}

/// Raw device addresses for [`Gpu::topk_raw`]; 0 means absent for `n_valid` and `scores`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBuffers {
    /// Queries `[b, h, sq, d]`, 16-byte aligned.
    pub queries: u64,
    /// Codebooks `[hkv, m, c, d/m]`, 16-byte aligned.
    pub codebooks: u64,
    /// Codes `[b, hkv, n, m]`, 16-byte aligned.
    pub codes: u64,
    /// `[b]` u32 valid lengths, or 0.
    pub n_valid: u64,
    /// `[rows, k]` u32 indices.
    pub indices: u64,
    /// `[rows, k]` f32 scores, or 0.
    pub scores: u64,
    /// `Plan::workspace_bytes` bytes, 256-byte aligned.
    pub workspace: u64,
}

//! The indexer's training on the GPU (`pq_train_init`, `pq_train_assign`, `pq_train_update`),
//! checked as the top-k is: every argument before any launch, launches asynchronous on the
//! caller's stream, no allocation, capturable in a CUDA graph.

use crate::dtype::Element;
use crate::error::{Error, Result, check_dtype, check_len, ensure};
use crate::gpu::{Gpu, RawSlice};
use crate::index::{IndexShape, TrainOptions};
use crate::plan::{DeviceLimits, Kernel, Launch, SM90_SHARED};
use crate::raw::address;
use cust::memory::DeviceSlice;
use cust::stream::Stream;
use pqtopk_abi::{
    ENCODE_KEYS_PER_BLOCK, TRAIN_THREADS, TrainParams, register_width_index, train_assign_layout, train_layout,
};

/// `pq_train_assign` blocks per SM that the chunking aims for: enough to fill the device with
/// few kv heads and sub-spaces, few enough that each block's flush of its sums to global memory
/// (one atomic per centroid element) stays small against its keys.
const ASSIGN_BLOCKS_PER_SM: usize = 4;

/// Bytes of workspace that [`Gpu::train_into`] needs for `shape`.
pub fn train_workspace_len(shape: &IndexShape) -> Result<usize> {
    shape.validate()?;
    let layout = train_layout(
        (shape.hkv * shape.m) as u64,
        shape.c as u64,
        (shape.d / shape.m) as u64,
        shape.b as u64 * shape.n as u64,
    );
    usize::try_from(layout.bytes).map_err(|_| Error::Unsupported(format!("{} bytes of workspace", layout.bytes)))
}

impl Gpu {
    /// Trains `codebooks` `[hkv, m, c, d/m]` on `keys` `[b, hkv, n, d]` by the algorithm of
    /// [`crate::index`] (the same as [`crate::reference::train`], which runs it in f64), all on
    /// `stream`: `2 + 2 · iterations` launches with no host round trip, whose early stop is
    /// decided on the device.
    ///
    /// `n_valid` (`[b]` u32, on the device) limits entry `bi` to its first `n_valid[bi]` keys;
    /// the host cannot check them, so a kv head with fewer valid keys than `c` seeds centroid
    /// `i` from its key of rank `i mod valid` (duplicates), and one with none gets zero
    /// codebooks. `workspace` holds at least [`train_workspace_len`] bytes; it carries no state
    /// between calls. The same inputs and seed give the same codebooks, bit for bit.
    #[allow(clippy::too_many_arguments)]
    pub fn train_into<K: Element, C: Element>(
        &self,
        shape: &IndexShape,
        options: &TrainOptions,
        stream: &Stream,
        keys: &DeviceSlice<K>,
        n_valid: Option<&DeviceSlice<u32>>,
        codebooks: &mut DeviceSlice<C>,
        workspace: &mut DeviceSlice<u8>,
    ) -> Result<()> {
        let buffers = TrainAddresses {
            keys: RawSlice { address: address(keys), len: keys.len() },
            n_valid: n_valid.map(|v| RawSlice { address: address(v), len: v.len() }),
            codebooks: RawSlice { address: address(codebooks), len: codebooks.len() },
            workspace: RawSlice { address: address(workspace), len: workspace.len() },
        };
        self.make_current()?;
        let stream = stream.as_inner();
        // SAFETY: the buffers are live allocations of this context, checked before the first
        // launch; the launches run in order on one stream, each reading what the one before
        // wrote.
        train_launches::<K, C>(&self.limits, shape, options, buffers, |launch| unsafe {
            self.launch_one(stream, launch)
        })
    }
}

/// The addresses and lengths of a training's buffers (elements of `K`, `u32`, `C` and bytes).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct TrainAddresses {
    pub keys: RawSlice,
    pub n_valid: Option<RawSlice>,
    pub codebooks: RawSlice,
    pub workspace: RawSlice,
}

/// Checks a training for a device with `limits`, then hands its launches to `launch` in stream
/// order: `pq_train_init`, then `pq_train_assign` and `pq_train_update` per iteration.
pub(crate) fn train_launches<K: Element, C: Element>(
    limits: &DeviceLimits,
    shape: &IndexShape,
    options: &TrainOptions,
    buffers: TrainAddresses,
    mut launch: impl FnMut(Launch) -> Result<()>,
) -> Result<()> {
    let plan = check_train::<K, C>(
        limits.train_assign_dynamic_limit,
        limits.multiprocessors,
        shape,
        options,
        TrainBuffers {
            keys: buffers.keys.len,
            n_valid: buffers.n_valid.map(|v| v.len),
            codebooks: buffers.codebooks.len,
            workspace: buffers.workspace.len,
            workspace_address: buffers.workspace.address,
        },
    )?;
    let params = TrainParams {
        keys: buffers.keys.address,
        n_valid: buffers.n_valid.map_or(0, |v| v.address),
        codebooks: buffers.codebooks.address,
        workspace: buffers.workspace.address,
        seed: options.seed,
        tolerance: options.tolerance,
        b: shape.b as u32,
        hkv: shape.hkv as u32,
        n: shape.n as u32,
        d: shape.d as u32,
        m: shape.m as u32,
        c: shape.c as u32,
        key_dtype: shape.key_dtype as u32,
        codebook_dtype: shape.codebook_dtype as u32,
        keys_per_block: plan.keys_per_block,
    };
    let per_subspace = |kernel| Launch { kernel, blocks: plan.subspaces, threads: TRAIN_THREADS, shared_bytes: 0 };
    launch(per_subspace(Kernel::TrainInit(params)))?;
    for _ in 0..options.iterations {
        launch(Launch {
            kernel: Kernel::TrainAssign { width_index: register_width_index((shape.d / shape.m) as u32), params },
            blocks: plan.assign_blocks,
            threads: TRAIN_THREADS,
            shared_bytes: plan.assign_shared,
        })?;
        launch(per_subspace(Kernel::TrainUpdate(params)))?;
    }
    Ok(())
}

/// [`train_launches`] for the kernels' host build, which the tests run on CPU threads: an sm_90
/// device's limits.
#[doc(hidden)]
pub fn emulated_train_launches<K: Element, C: Element>(
    shape: &IndexShape,
    options: &TrainOptions,
    buffers: TrainAddresses,
    launch: impl FnMut(Launch) -> Result<()>,
) -> Result<()> {
    train_launches::<K, C>(&DeviceLimits::modelled(SM90_SHARED, true), shape, options, buffers, launch)
}

/// The lengths (and the workspace's address) of a training's buffers.
struct TrainBuffers {
    keys: usize,
    n_valid: Option<usize>,
    codebooks: usize,
    workspace: usize,
    workspace_address: u64,
}

/// The launch shape of a training.
#[derive(Debug, PartialEq, Eq)]
struct TrainLaunch {
    /// Blocks of `pq_train_init` and `pq_train_update`: `hkv · m`.
    subspaces: u32,
    keys_per_block: u32,
    assign_blocks: u32,
    assign_shared: u32,
}

/// Checks a training before any launch, for a device with `multiprocessors` SMs whose
/// `pq_train_assign` may have `shared_limit` bytes of dynamic shared memory, and plans its
/// launches.
fn check_train<K: Element, C: Element>(
    shared_limit: usize,
    multiprocessors: usize,
    shape: &IndexShape,
    options: &TrainOptions,
    buffers: TrainBuffers,
) -> Result<TrainLaunch> {
    shape.validate()?;
    options.validate()?;
    check_dtype("keys", shape.key_dtype, K::DTYPE)?;
    check_dtype("codebooks", shape.codebook_dtype, C::DTYPE)?;
    check_len("keys", shape.keys_len(), buffers.keys, true)?;
    check_len("codebooks", shape.codebooks_len(), buffers.codebooks, true)?;
    if let Some(n_valid) = buffers.n_valid {
        check_len("n_valid", shape.b, n_valid, true)?;
    }
    check_len("workspace", train_workspace_len(shape)?, buffers.workspace, false)?;
    ensure(
        buffers.workspace_address.is_multiple_of(16),
        "workspace",
        || "16-byte aligned".into(),
        buffers.workspace_address,
    )?;
    let pooled_capacity = shape.b as u64 * shape.n as u64;
    if pooled_capacity > u32::MAX as u64 {
        return Err(Error::Unsupported(format!(
            "training on {pooled_capacity} keys per kv head (b · n); at most {}",
            u32::MAX
        )));
    }
    ensure(
        shape.c as u64 <= pooled_capacity,
        "c",
        || format!("at most the keys of a kv head (b · n = {pooled_capacity})"),
        shape.c,
    )?;
    let ds = shape.d / shape.m;
    let assign_shared = train_assign_layout(shape.c as u32, ds as u32).bytes;
    if assign_shared as usize > shared_limit {
        return Err(Error::Unsupported(format!(
            "training sub-spaces of {ds} elements with {} centroids needs {assign_shared} bytes of shared memory; the device allows {shared_limit}",
            shape.c,
        )));
    }
    let entries = shape.b * shape.hkv * shape.m;
    let keys_per_block = train_keys_per_block(shape.n, entries, multiprocessors);
    let assign_blocks = shape.n.div_ceil(keys_per_block) as u128 * entries as u128;
    if assign_blocks > i32::MAX as u128 {
        return Err(Error::Unsupported(format!(
            "{assign_blocks} training blocks; at most {} launch at once",
            i32::MAX
        )));
    }
    Ok(TrainLaunch {
        subspaces: (shape.hkv * shape.m) as u32,
        keys_per_block: keys_per_block as u32,
        assign_blocks: assign_blocks as u32,
        assign_shared,
    })
}

/// Keys of one (batch entry, kv head, sub-space) per `pq_train_assign` block: the entries'
/// `n` keys split into enough chunks for `ASSIGN_BLOCKS_PER_SM` blocks per SM, in whole
/// `ENCODE_KEYS_PER_BLOCK` steps.
fn train_keys_per_block(n: usize, entries: usize, multiprocessors: usize) -> usize {
    let step = ENCODE_KEYS_PER_BLOCK as usize;
    let chunks = (ASSIGN_BLOCKS_PER_SM * multiprocessors).div_ceil(entries).clamp(1, n.div_ceil(step));
    n.div_ceil(chunks).next_multiple_of(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use half::bf16;

    const SM80: usize = 163 * 1024;

    fn buffers(shape: &IndexShape) -> TrainBuffers {
        TrainBuffers {
            keys: shape.keys_len(),
            n_valid: None,
            codebooks: shape.codebooks_len(),
            workspace: train_workspace_len(shape).unwrap(),
            workspace_address: 1 << 20,
        }
    }

    fn check(shape: &IndexShape, options: &TrainOptions, buffers: TrainBuffers) -> Result<TrainLaunch> {
        check_train::<f32, f32>(SM80, 132, shape, options, buffers)
    }

    #[test]
    fn training_arguments_are_checked_before_any_launch() {
        let shape = IndexShape::new(2, 8, 4096, 128, 16, 256);
        let options = TrainOptions::default();
        check(&shape, &options, buffers(&shape)).unwrap();
        let cases: [(&str, TrainBuffers); 5] = [
            ("keys", TrainBuffers { keys: shape.keys_len() - 1, ..buffers(&shape) }),
            ("codebooks", TrainBuffers { codebooks: shape.codebooks_len() + 1, ..buffers(&shape) }),
            ("n_valid", TrainBuffers { n_valid: Some(3), ..buffers(&shape) }),
            ("workspace", TrainBuffers { workspace: train_workspace_len(&shape).unwrap() - 1, ..buffers(&shape) }),
            ("workspace", TrainBuffers { workspace_address: (1 << 20) + 8, ..buffers(&shape) }),
        ];
        for (name, bad) in cases {
            let error = check(&shape, &options, bad).unwrap_err();
            let named = match &error {
                Error::BufferLength { name, .. } | Error::InvalidArgument { name, .. } => *name,
                _ => "",
            };
            assert_eq!(named, name, "{error:?}");
        }
        // A workspace larger than needed is fine.
        check(&shape, &options, TrainBuffers { workspace: 1 << 30, ..buffers(&shape) }).unwrap();
        for bad_options in [TrainOptions { iterations: 0, ..options }, TrainOptions { tolerance: f64::NAN, ..options }]
        {
            assert!(matches!(check(&shape, &bad_options, buffers(&shape)), Err(Error::InvalidArgument { .. })));
        }
        let bf16_keys = shape.with_dtypes(DType::BF16, DType::F32);
        let mismatch = check(&bf16_keys, &options, buffers(&bf16_keys));
        assert!(matches!(mismatch, Err(Error::DTypeMismatch { name: "keys", .. })), "{mismatch:?}");
        check_train::<bf16, f32>(SM80, 132, &bf16_keys, &options, buffers(&bf16_keys)).unwrap();
        // More centroids than keys, m not dividing d, c > 256.
        let few_keys = IndexShape { b: 1, n: 100, ..shape };
        let cases = [
            (few_keys, buffers(&few_keys)),
            (IndexShape { m: 5, ..shape }, buffers(&shape)),
            (IndexShape { c: 300, ..shape }, buffers(&shape)),
        ];
        for (bad, bad_buffers) in cases {
            let error = check(&bad, &options, bad_buffers).unwrap_err();
            assert!(matches!(error, Error::InvalidArgument { .. }), "{bad:?}: {error:?}");
        }
    }

    #[test]
    fn training_shared_memory_and_pooled_keys_are_bounded() {
        // 256 centroids of 64 elements: 128 KiB of fixed-point sums plus 85 KiB staged.
        let wide = IndexShape::new(1, 1, 4096, 128, 2, 256);
        let sm80 = check(&wide, &TrainOptions::default(), buffers(&wide));
        assert!(matches!(sm80, Err(Error::Unsupported(_))), "{sm80:?}");
        check_train::<f32, f32>(227 * 1024, 132, &wide, &TrainOptions::default(), buffers(&wide)).unwrap();
        // PQCache's shapes fit sm_80.
        for (d, m, c) in [(128, 2, 64), (128, 16, 256), (128, 4, 256), (64, 8, 16), (128, 8, 256)] {
            let shape = IndexShape::new(1, 8, 32768, d, m, c);
            check(&shape, &TrainOptions::default(), buffers(&shape)).unwrap();
        }
        let huge = IndexShape::new(3, 1, 1 << 31, 8, 1, 16);
        let error = check(&huge, &TrainOptions::default(), buffers(&huge));
        assert!(matches!(error, Err(Error::Unsupported(_))), "{error:?}");
    }

    #[test]
    fn assignment_chunks_fill_the_device_in_whole_steps() {
        // One entry: as many chunks as the device wants, but never below 64 keys.
        assert_eq!(train_keys_per_block(32768, 16, 132), 1024);
        assert_eq!(train_keys_per_block(100, 1, 132), 64);
        // Many entries: one chunk each.
        assert_eq!(train_keys_per_block(5000, 1024, 132), 5056);
        for (n, entries) in [(1, 1), (63, 7), (32768, 128), (100003, 3), (4096, 528)] {
            let per_block = train_keys_per_block(n, entries, 132);
            assert_eq!(per_block % 64, 0);
            assert!(per_block >= 64 && per_block < n + 64, "{n} {entries}: {per_block}");
        }
    }
}

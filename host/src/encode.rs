//! The indexer's encode and append on the GPU (`pq_encode`, `pq_advance_lengths`), checked as
//! the top-k is: every argument before any launch, launches asynchronous on the caller's stream,
//! no allocation, capturable in a CUDA graph.

use crate::dtype::Element;
use crate::error::{Error, Result, check_dtype, check_len, ensure};
use crate::gpu::Gpu;
use crate::index::IndexShape;
use crate::raw;
use cust::memory::DeviceSlice;
use cust::stream::Stream;
use pqtopk_abi::{
    AdvanceParams, BLOCK_THREADS, ENCODE_KEYS_PER_BLOCK, ENCODE_THREADS, EncodeParams, encode_shared_bytes,
};

/// Where [`Gpu::append_into`] finds and advances each batch entry's length.
pub enum AppendLengths<'a> {
    /// On the device only, as a decode loop captured in a CUDA graph keeps them: the host cannot
    /// check them, so an entry without room for `t` more keys is left as it is (no codes
    /// written, its length unchanged), which the caller sees in the lengths.
    Device(&'a mut DeviceSlice<u32>),
    /// On the device, with their current values also on the host: an entry without room is
    /// [`Error::CacheFull`] before any launch, and `host` is advanced as the device's are.
    Mirrored {
        /// The lengths the kernels read and advance.
        device: &'a mut DeviceSlice<u32>,
        /// Their current values.
        host: &'a mut [u32],
    },
}

impl Gpu {
    /// The codes `[b, hkv, n, m]` of every key of `keys` `[b, hkv, n, d]` against `codebooks`
    /// `[hkv, m, c, d/m]`, written to `codes`: nearest centroid per sub-space by squared L2
    /// distance (in f32), ties to the smaller index, as [`crate::reference::encode`] computes in
    /// f64. Asynchronous on `stream`.
    pub fn encode_into<K: Element, C: Element>(
        &self,
        shape: &IndexShape,
        stream: &Stream,
        keys: &DeviceSlice<K>,
        codebooks: &DeviceSlice<C>,
        codes: &mut DeviceSlice<u8>,
    ) -> Result<()> {
        check_encode::<K, C>(self, shape, shape.n, keys.len(), codebooks.len(), codes.len())?;
        let params = encode_params(shape, shape.n, keys, codebooks, codes, 0);
        self.make_current()?;
        // SAFETY: the buffers are live allocations of this context with the lengths checked
        // above; the kernel's grid and shared memory are computed from the same shape.
        unsafe { self.launch_encode(shape, &params, stream) }
    }

    /// Encodes `t ≥ 1` new keys per batch entry, `new_keys` `[b, hkv, t, d]` (`t` follows from
    /// its length), into `codes` at each entry's current length, then advances the lengths by
    /// `t`, all on `stream` with no host round trip (two launches), so that a decode loop of
    /// append + top-k can be captured in one CUDA graph. See [`AppendLengths`] for an entry
    /// without room.
    pub fn append_into<K: Element, C: Element>(
        &self,
        shape: &IndexShape,
        stream: &Stream,
        new_keys: &DeviceSlice<K>,
        codebooks: &DeviceSlice<C>,
        codes: &mut DeviceSlice<u8>,
        lengths: AppendLengths<'_>,
    ) -> Result<()> {
        shape.validate()?;
        let per_key = shape.b * shape.hkv * shape.d;
        let t = new_keys.len() / per_key;
        ensure(
            t >= 1 && new_keys.len() == t * per_key,
            "new_keys",
            || format!("t·{per_key} elements ([b, hkv, t, d] with t ≥ 1)"),
            new_keys.len(),
        )?;
        ensure(t <= shape.n, "t", || format!("at most n ({})", shape.n), t)?;
        check_encode::<K, C>(self, shape, t, new_keys.len(), codebooks.len(), codes.len())?;
        let (device, host) = match lengths {
            AppendLengths::Device(device) => (device, None),
            AppendLengths::Mirrored { device, host } => (device, Some(host)),
        };
        check_len("lengths", shape.b, device.len(), true)?;
        if let Some(host) = &host {
            check_len("host lengths", shape.b, host.len(), true)?;
            if let Some((batch, &length)) = host.iter().enumerate().find(|&(_, &l)| l as usize + t > shape.n) {
                return Err(Error::CacheFull { batch, length: length as usize, t, n: shape.n });
            }
        }
        let params = encode_params(shape, t, new_keys, codebooks, codes, address(device));
        let advance = AdvanceParams { lengths: address(device), b: shape.b as u32, t: t as u32, n: shape.n as u32 };
        self.make_current()?;
        // SAFETY: as in encode_into; the lengths hold b u32, read by the first launch and
        // advanced by the second, after it on the same stream.
        unsafe {
            self.launch_encode(shape, &params, stream)?;
            let blocks = shape.b.div_ceil(BLOCK_THREADS as usize) as u32;
            raw::launch(self.kernels.advance_lengths, blocks, BLOCK_THREADS, 0, stream.as_inner(), &advance)?;
        }
        if let Some(host) = host {
            host.iter_mut().for_each(|length| *length += t as u32);
        }
        Ok(())
    }

    /// Launches `pq_encode` for `params`.
    ///
    /// # Safety
    /// `params` passed [`check_encode`] for `shape`, its buffers are live allocations of this
    /// context, and this context is current.
    unsafe fn launch_encode(&self, shape: &IndexShape, params: &EncodeParams, stream: &Stream) -> Result<()> {
        let chunks = (params.keys_per_entry as usize).div_ceil(ENCODE_KEYS_PER_BLOCK as usize);
        let blocks = chunks * shape.b * shape.hkv * shape.m;
        let shared = encode_shared_bytes(shape.c as u32, (shape.d / shape.m) as u32);
        // SAFETY: forwarded to the caller; the grid fits (checked), the shared memory is the
        // kernel's documented size, within the limit set at load (checked).
        unsafe { raw::launch(self.kernels.encode, blocks as u32, ENCODE_THREADS, shared, stream.as_inner(), params) }
    }
}

/// The kernel parameters of an encode (`lengths` null) or append.
fn encode_params<K: Element, C: Element>(
    shape: &IndexShape,
    keys_per_entry: usize,
    keys: &DeviceSlice<K>,
    codebooks: &DeviceSlice<C>,
    codes: &DeviceSlice<u8>,
    lengths: u64,
) -> EncodeParams {
    EncodeParams {
        keys: address(keys),
        codebooks: address(codebooks),
        codes: address(codes),
        lengths,
        b: shape.b as u32,
        hkv: shape.hkv as u32,
        n: shape.n as u32,
        keys_per_entry: keys_per_entry as u32,
        d: shape.d as u32,
        m: shape.m as u32,
        c: shape.c as u32,
        key_dtype: shape.key_dtype as u32,
        codebook_dtype: shape.codebook_dtype as u32,
    }
}

/// Checks an encode or append of `keys_per_entry` keys per (batch entry, kv head) before any
/// launch: the shape, the element types, the buffers' lengths, and the launch's limits.
fn check_encode<K: Element, C: Element>(
    gpu: &Gpu,
    shape: &IndexShape,
    keys_per_entry: usize,
    keys: usize,
    codebooks: usize,
    codes: usize,
) -> Result<()> {
    shape.validate()?;
    check_dtype("keys", shape.key_dtype, K::DTYPE)?;
    check_dtype("codebooks", shape.codebook_dtype, C::DTYPE)?;
    check_len("keys", shape.b * shape.hkv * keys_per_entry * shape.d, keys, true)?;
    check_len("codebooks", shape.codebooks_len(), codebooks, true)?;
    check_len("codes", shape.codes_len(), codes, true)?;
    let blocks =
        keys_per_entry.div_ceil(ENCODE_KEYS_PER_BLOCK as usize) as u128 * (shape.b * shape.hkv * shape.m) as u128;
    if blocks > i32::MAX as u128 {
        return Err(Error::Unsupported(format!("{blocks} encode blocks; at most {} launch at once", i32::MAX)));
    }
    let shared = encode_shared_bytes(shape.c as u32, (shape.d / shape.m) as u32) as usize;
    if shared > gpu.limits.encode_dynamic_limit {
        return Err(Error::Unsupported(format!(
            "encoding sub-spaces of {} elements with {} centroids needs {shared} bytes of shared memory; the device allows {}",
            shape.d / shape.m,
            shape.c,
            gpu.limits.encode_dynamic_limit
        )));
    }
    Ok(())
}

/// The device address of a buffer.
fn address<T: cust::memory::DeviceCopy>(buffer: &DeviceSlice<T>) -> u64 {
    buffer.as_device_ptr().as_raw()
}

//! The indexer's encode and append on the GPU (`pq_encode`, `pq_advance_lengths`), checked as
//! the top-k is: every argument before any launch, launches asynchronous on the caller's stream,
//! no allocation, capturable in a CUDA graph.

use crate::dtype::Element;
use crate::error::{Error, Result, check_dtype, check_len, ensure};
use crate::gpu::Gpu;
use crate::index::{IndexShape, check_room};
use crate::plan::{Kernel, Launch};
use crate::raw::address;
use cust::memory::DeviceSlice;
use cust::stream::Stream;
use pqtopk_abi::{
    AdvanceParams, BLOCK_THREADS, ENCODE_KEYS_PER_BLOCK, ENCODE_THREADS, EncodeParams, encode_shared_bytes,
    register_width_index,
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
        check_encode::<K, C>(
            self.limits.encode_dynamic_limit,
            shape,
            shape.n,
            keys.len(),
            codebooks.len(),
            codes.len(),
        )?;
        let params = encode_params(shape, shape.n, [address(keys), address(codebooks), address(codes), 0]);
        self.make_current()?;
        // SAFETY: the buffers are live allocations of this context with the lengths checked
        // above; the kernel's grid and shared memory are computed from the same shape.
        encode_launches(shape, params, None, |launch| unsafe { self.launch_one(stream.as_inner(), launch) })
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
        let t = appended_keys(shape, new_keys.len())?;
        check_encode::<K, C>(self.limits.encode_dynamic_limit, shape, t, new_keys.len(), codebooks.len(), codes.len())?;
        let (device, host) = match lengths {
            AppendLengths::Device(device) => (device, None),
            AppendLengths::Mirrored { device, host } => (device, Some(host)),
        };
        check_len("lengths", shape.b, device.len(), true)?;
        if let Some(host) = &host {
            check_len("host lengths", shape.b, host.len(), true)?;
            check_room(shape.n, t, host)?;
        }
        let params = encode_params(shape, t, [address(new_keys), address(codebooks), address(codes), address(device)]);
        self.make_current()?;
        // SAFETY: as in encode_into; the lengths hold b u32, read by the first launch and
        // advanced by the second, after it on the same stream.
        encode_launches(shape, params, Some(t), |launch| unsafe { self.launch_one(stream.as_inner(), launch) })?;
        if let Some(host) = host {
            host.iter_mut().for_each(|length| *length += t as u32);
        }
        Ok(())
    }
}

/// The kernel parameters of an encode or append of `keys_per_entry` keys per (batch entry, kv
/// head), from the addresses of the keys, codebooks, codes and lengths (0 for an encode).
#[doc(hidden)]
pub fn encode_params(
    shape: &IndexShape,
    keys_per_entry: usize,
    [keys, codebooks, codes, lengths]: [u64; 4],
) -> EncodeParams {
    EncodeParams {
        keys,
        codebooks,
        codes,
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

/// The launches of an encode (`appended` None) or of an append of `t` keys per entry, whose
/// second launch advances the lengths at `params.lengths`; each handed to `launch`. The GPU
/// launches them through the driver, the tests through the kernels' host build.
#[doc(hidden)]
pub fn encode_launches(
    shape: &IndexShape,
    params: EncodeParams,
    appended: Option<usize>,
    mut launch: impl FnMut(Launch) -> Result<()>,
) -> Result<()> {
    let ds = (shape.d / shape.m) as u32;
    let chunks = (params.keys_per_entry as usize).div_ceil(ENCODE_KEYS_PER_BLOCK as usize);
    launch(Launch {
        kernel: Kernel::Encode { width_index: register_width_index(ds), params },
        blocks: (chunks * shape.b * shape.hkv * shape.m) as u32,
        threads: ENCODE_THREADS,
        shared_bytes: encode_shared_bytes(shape.c as u32, ds),
    })?;
    if let Some(t) = appended {
        let advance = AdvanceParams { lengths: params.lengths, b: shape.b as u32, t: t as u32, n: shape.n as u32 };
        launch(Launch {
            kernel: Kernel::AdvanceLengths(advance),
            blocks: shape.b.div_ceil(BLOCK_THREADS as usize) as u32,
            threads: BLOCK_THREADS,
            shared_bytes: 0,
        })?;
    }
    Ok(())
}

/// The keys per (batch entry, kv head) of an append's `new_keys` (`[b, hkv, t, d]`): `t`, with
/// `1 ≤ t ≤ n`.
fn appended_keys(shape: &IndexShape, new_keys: usize) -> Result<usize> {
    shape.validate()?;
    let per_key = shape.b * shape.hkv * shape.d;
    let t = new_keys / per_key;
    ensure(
        t >= 1 && new_keys == t * per_key,
        "new_keys",
        || format!("t·{per_key} elements ([b, hkv, t, d] with t ≥ 1)"),
        new_keys,
    )?;
    ensure(t <= shape.n, "t", || format!("at most n ({})", shape.n), t)?;
    Ok(t)
}

/// Checks an encode or append of `keys_per_entry` keys per (batch entry, kv head) before any
/// launch, for a device whose `pq_encode` may have `shared_limit` bytes of dynamic shared
/// memory: the shape, the element types, the buffers' lengths, and the launch's limits.
fn check_encode<K: Element, C: Element>(
    shared_limit: usize,
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
    if shared > shared_limit {
        return Err(Error::Unsupported(format!(
            "encoding sub-spaces of {} elements with {} centroids needs {shared} bytes of shared memory; the device allows {shared_limit}",
            shape.d / shape.m,
            shape.c,
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use half::f16;

    /// sm_90's opt-in shared memory per block, and sm_80's.
    const SM90: usize = 227 * 1024;
    const SM80: usize = 163 * 1024;

    #[test]
    fn encode_arguments_are_checked_before_any_launch() {
        let shape = IndexShape::new(2, 8, 1000, 128, 16, 256);
        let (keys, codebooks, codes) = (shape.keys_len(), shape.codebooks_len(), shape.codes_len());
        let check = |shape: &IndexShape, keys, codebooks, codes| {
            check_encode::<f32, f32>(SM80, shape, shape.n, keys, codebooks, codes)
        };
        check(&shape, keys, codebooks, codes).unwrap();
        assert!(matches!(check(&shape, keys - 1, codebooks, codes), Err(Error::BufferLength { name: "keys", .. })));
        assert!(matches!(
            check(&shape, keys, codebooks + 1, codes),
            Err(Error::BufferLength { name: "codebooks", .. })
        ));
        assert!(matches!(check(&shape, keys, codebooks, codes - 1), Err(Error::BufferLength { name: "codes", .. })));
        let f16_keys = shape.with_dtypes(DType::F16, DType::F32);
        assert!(matches!(check(&f16_keys, keys, codebooks, codes), Err(Error::DTypeMismatch { name: "keys", .. })));
        check_encode::<f16, f32>(SM80, &f16_keys, shape.n, keys, codebooks, codes).unwrap();
        for bad in [IndexShape { m: 3, ..shape }, IndexShape { c: 257, ..shape }, IndexShape { b: 0, ..shape }] {
            assert!(matches!(check(&bad, keys, codebooks, codes), Err(Error::InvalidArgument { .. })), "{bad:?}");
        }
    }

    #[test]
    fn encode_shared_memory_fits_or_is_unsupported() {
        // One sub-space of 160 elements and 256 centroids: (256 + 64)·161·4 = 206 080 bytes,
        // which sm_90 holds and sm_80 does not.
        let wide = IndexShape::new(1, 1, 64, 160, 1, 256);
        let args = (wide.keys_len(), wide.codebooks_len(), wide.codes_len());
        check_encode::<f32, f32>(SM90, &wide, wide.n, args.0, args.1, args.2).unwrap();
        let sm80 = check_encode::<f32, f32>(SM80, &wide, wide.n, args.0, args.1, args.2);
        assert!(matches!(sm80, Err(Error::Unsupported(_))), "{sm80:?}");
        // Every shape PQCache uses fits both.
        for (d, m, c) in [(128, 16, 256), (128, 2, 64), (128, 4, 256), (64, 8, 16), (256, 32, 256)] {
            let shape = IndexShape::new(1, 1, 64, d, m, c);
            let args = (shape.keys_len(), shape.codebooks_len(), shape.codes_len());
            check_encode::<f32, f32>(SM80, &shape, shape.n, args.0, args.1, args.2).unwrap();
        }
    }

    #[test]
    fn appended_keys_follow_from_the_new_keys_length() {
        let shape = IndexShape::new(2, 4, 100, 64, 8, 16);
        let per_key = 2 * 4 * 64;
        assert_eq!(appended_keys(&shape, per_key).unwrap(), 1);
        assert_eq!(appended_keys(&shape, 7 * per_key).unwrap(), 7);
        assert_eq!(appended_keys(&shape, 100 * per_key).unwrap(), 100);
        for bad in [0, per_key - 1, per_key + 1, 101 * per_key] {
            assert!(matches!(appended_keys(&shape, bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }
}

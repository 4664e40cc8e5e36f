//! The PQCache indexer's contract: training codebooks on keys, encoding keys, appending a decode
//! step's keys to the codes. [`crate::reference`] implements it on the CPU in f64; the GPU
//! kernels follow the same algorithm step by step.
//!
//! The algorithm, fixed so that every implementation computes the same function:
//! - **Keys.** `[b, hkv, n, d]`; batch entry `bi` has `n_valid[bi]` valid keys (all `n` when no
//!   lengths are given). Training pools the valid keys of every batch entry, per kv head; the key
//!   at `(bi, key)` has the pooled index `bi · n + key`.
//! - **Sub-spaces.** Each key splits into `m` sub-vectors of `d/m` elements; each (kv head,
//!   sub-space) is clustered on its own into `c` centroids.
//! - **Initialization: sampled keys.** Pooled keys are ranked by
//!   [`sample_rank`]`(seed, kv head, sub-space, pooled index)`, ascending (ranks never tie);
//!   centroid `i` starts as the sub-vector of the key of rank `i`.
//! - **Iteration.** Every valid key goes to its nearest centroid by squared L2 distance, ties to
//!   the smaller centroid index; each centroid becomes the mean of its keys. A centroid that no
//!   key chose is re-seeded with the sub-vector of the key of rank `c + e` (modulo the valid
//!   keys), `e` counting the empty centroids of that iteration in index order.
//! - **Stop.** After `iterations` iterations, or earlier once an iteration changes no key's
//!   centroid, or lowers the inertia (the sum of the keys' squared distances to their centroids,
//!   measured at assignment) by less than `tolerance` times its previous value.
//! - **Encode.** A key's code in sub-space `j` is its nearest centroid there, ties to the smaller
//!   index.

use crate::error::{Error, Result, ensure};
use crate::problem::{check_tensor_size, product};
pub use pqtopk_abi::DType;

/// The shape of an indexer call: keys `[b, hkv, n, d]`, codebooks `[hkv, m, c, d/m]`, codes
/// `[b, hkv, n, m]` u8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndexShape {
    /// Batch entries.
    pub b: usize,
    /// Key-value heads.
    pub hkv: usize,
    /// Keys per (batch, kv head): the cache's capacity.
    pub n: usize,
    /// Head dimension.
    pub d: usize,
    /// Sub-spaces per key.
    pub m: usize,
    /// Centroids per sub-space, 1..=256.
    pub c: usize,
    /// Element type of the keys.
    pub key_dtype: DType,
    /// Element type of the codebooks.
    pub codebook_dtype: DType,
}

/// How [`crate::reference::train`] (and its GPU counterpart) trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Iterations at most, at least 1.
    pub iterations: usize,
    /// Seed of the sampled initialization: the same seed gives the same codebooks.
    pub seed: u64,
    /// Relative decrease of the inertia below which training stops early (0: never early,
    /// except when no key changes centroid).
    pub tolerance: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { iterations: 10, seed: 0, tolerance: 1e-4 }
    }
}

impl IndexShape {
    /// A shape with f32 keys and codebooks.
    pub fn new(b: usize, hkv: usize, n: usize, d: usize, m: usize, c: usize) -> IndexShape {
        IndexShape { b, hkv, n, d, m, c, key_dtype: DType::F32, codebook_dtype: DType::F32 }
    }

    /// This shape with these element types.
    pub fn with_dtypes(self, key_dtype: DType, codebook_dtype: DType) -> IndexShape {
        IndexShape { key_dtype, codebook_dtype, ..self }
    }

    /// Elements of the keys: `b · hkv · n · d` (saturating).
    pub fn keys_len(&self) -> usize {
        product(&[self.b, self.hkv, self.n, self.d])
    }

    /// Elements of the codebooks: `hkv · c · d` (saturating).
    pub fn codebooks_len(&self) -> usize {
        product(&[self.hkv, self.c, self.d])
    }

    /// Bytes of the codes: `b · hkv · n · m` (saturating).
    pub fn codes_len(&self) -> usize {
        product(&[self.b, self.hkv, self.n, self.m])
    }

    /// Checks every argument; the error names it, the expected and the actual value.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        for (name, v) in [("b", s.b), ("hkv", s.hkv), ("n", s.n), ("d", s.d), ("m", s.m)] {
            ensure(v >= 1, name, || ">= 1".into(), v)?;
        }
        ensure((1..=256).contains(&s.c), "c", || "1..=256".into(), s.c)?;
        ensure(s.d.is_multiple_of(s.m), "d", || format!("a multiple of m ({})", s.m), s.d)?;
        ensure(s.n <= u32::MAX as usize, "n", || format!("at most {}", u32::MAX), s.n)?;
        for (name, dims) in [
            ("keys", &[s.b, s.hkv, s.n, s.d][..]),
            ("codebooks", &[s.hkv, s.c, s.d]),
            ("codes", &[s.b, s.hkv, s.n, s.m]),
        ] {
            check_tensor_size(name, dims)?;
        }
        Ok(())
    }
}

impl TrainOptions {
    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        ensure(self.iterations >= 1, "iterations", || ">= 1".into(), self.iterations)?;
        ensure(
            self.tolerance.is_finite() && self.tolerance >= 0.0,
            "tolerance",
            || "finite and >= 0".into(),
            self.tolerance,
        )
    }
}

/// The rank key of a pooled key in the sampled initialization: SplitMix64 of the seed, kv head,
/// sub-space and pooled index, as the GPU computes it per key ([`pqtopk_abi::sample_rank`]).
/// Distinct pooled keys of one (kv head, sub-space) never share a rank.
pub fn sample_rank(seed: u64, kv_head: usize, subspace: usize, pooled: usize) -> u64 {
    pqtopk_abi::sample_rank(seed, kv_head as u64, subspace as u64, pooled as u64)
}

/// `Err(CacheFull)` for the first batch entry whose length leaves no room for `t` more keys of
/// its `n`.
pub(crate) fn check_room(n: usize, t: usize, lengths: &[u32]) -> Result<()> {
    match lengths.iter().enumerate().find(|&(_, &length)| length as usize + t > n) {
        Some((batch, &length)) => Err(Error::CacheFull { batch, length: length as usize, t, n }),
        None => Ok(()),
    }
}

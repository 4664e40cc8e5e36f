//! The CPU implementation of pqtopk's contract, in f64: the oracle of the tests and the demo's
//! fallback on machines without a GPU. Simple on purpose: every score is computed directly from
//! the decoded key, and every row is sorted.

use crate::dtype::Element;
use crate::error::{CodePosition, Error, Result, check_dtype, check_len, check_valid_lengths, ensure};
use crate::index::{IndexShape, TrainOptions, check_room, sample_rank};
use crate::problem::{Metric, Order, Problem};
use std::cmp::Ordering;

/// `[rows, k]` results of [`topk`].
#[derive(Clone, Debug, PartialEq)]
pub struct TopkResult {
    /// Key indices, `u32::MAX` for padding.
    pub indices: Vec<u32>,
    /// Their scores in f64, the worst score for padding.
    pub scores: Vec<f64>,
}

/// Host inputs, shaped as [`Problem`] documents.
#[derive(Clone, Copy)]
pub struct HostInputs<'a, Q, C> {
    /// `[b, h, sq, d]`.
    pub queries: &'a [Q],
    /// `[hkv, m, c, d/m]`.
    pub codebooks: &'a [C],
    /// `[b, hkv, n, m]`.
    pub codes: &'a [u8],
    /// `[b]` valid lengths, or all `n` keys valid.
    pub n_valid: Option<&'a [u32]>,
}

/// Checks the inputs against the problem: shape, dtypes, lengths, valid lengths ≤ n, codes < c.
pub fn validate<Q: Element, C: Element>(problem: &Problem, inputs: &HostInputs<'_, Q, C>) -> Result<()> {
    problem.validate()?;
    check_dtype("queries", problem.query_dtype, Q::DTYPE)?;
    check_dtype("codebooks", problem.codebook_dtype, C::DTYPE)?;
    check_len("queries", problem.queries_len(), inputs.queries.len(), true)?;
    check_len("codebooks", problem.codebooks_len(), inputs.codebooks.len(), true)?;
    check_len("codes", problem.codes_len(), inputs.codes.len(), true)?;
    if let Some(n_valid) = inputs.n_valid {
        validate_n_valid(problem, n_valid)?;
    }
    let bad = inputs.codes.iter().filter(|&&code| code as usize >= problem.c).count();
    if bad != 0 {
        let at = inputs.codes.iter().position(|&code| code as usize >= problem.c).unwrap_or(0);
        let (p, key_at) = (problem, at / problem.m);
        let first = CodePosition {
            batch: key_at / p.n / p.hkv,
            kv_head: key_at / p.n % p.hkv,
            key: key_at % p.n,
            subspace: at % p.m,
        };
        return Err(Error::CodeOutOfRange { count: bad as u64, c: problem.c as u32, first: Some(first) });
    }
    Ok(())
}

/// Checks valid lengths: `b` of them, each ≤ n.
pub fn validate_n_valid(problem: &Problem, n_valid: &[u32]) -> Result<()> {
    check_valid_lengths(problem.b, problem.n, n_valid)
}

/// Scores `[rows, n]` in f64, one row per output row (summed over the group in group mode).
/// [`Error::HostMemory`] where the host cannot hold them.
pub fn scores<Q: Element, C: Element>(problem: &Problem, inputs: &HostInputs<'_, Q, C>) -> Result<Vec<f64>> {
    validate(problem, inputs)?;
    let p = problem;
    let mut out = allocate("the scores of every row", p.rows() * p.n)?;
    for row in 0..p.rows() {
        row_scores(p, inputs, row, &mut out);
    }
    Ok(out)
}

/// An empty vector with room for `len` elements, or [`Error::HostMemory`] where they exceed the
/// host's physical memory or the allocator refuses them. The first check matters where the
/// kernel overcommits memory: there a reservation larger than the machine succeeds and the
/// process is killed when the reference fills it.
fn allocate<T>(what: &'static str, len: usize) -> Result<Vec<T>> {
    let bytes = len.saturating_mul(size_of::<T>());
    let refused = || Error::HostMemory { what, bytes };
    if physical_memory_bytes().is_some_and(|total| bytes as u64 > total) {
        return Err(refused());
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| refused())?;
    Ok(v)
}

/// The host's physical memory (`MemTotal` in `/proc/meminfo`), where the platform says.
fn physical_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?;
    kib.trim().parse::<u64>().ok()?.checked_mul(1024)
}

/// Appends the n scores of output row `row` to `out`.
fn row_scores<Q: Element, C: Element>(p: &Problem, inputs: &HostInputs<'_, Q, C>, row: usize, out: &mut Vec<f64>) {
    let (g, ds) = (p.group_size(), p.d / p.m);
    let (s, head, b, kv) = row_position(p, row);
    let heads = if p.group { head * g..head * g + g } else { head..head + 1 };
    let row_codes = row_codes(p, inputs.codes, row);
    for key in 0..p.n {
        let codes = &row_codes[key * p.m..][..p.m];
        let mut total = 0.0;
        for qh in heads.clone() {
            let q = &inputs.queries[((b * p.h + qh) * p.sq + s) * p.d..][..p.d];
            for (j, &code) in codes.iter().enumerate() {
                let centroid = &inputs.codebooks[((kv * p.m + j) * p.c + code as usize) * ds..][..ds];
                for (qv, cv) in q[j * ds..][..ds].iter().zip(centroid) {
                    let (qv, cv) = (qv.to_f64(), cv.to_f64());
                    total += match p.metric {
                        Metric::InnerProduct => qv * cv,
                        Metric::L2 => (qv - cv) * (qv - cv),
                    };
                }
            }
        }
        out.push(total);
    }
}

/// The codes `[n, m]` that output row `row` of `p` scores (its batch's and kv head's part of
/// `codes`, laid out `[b, hkv, n, m]`).
pub fn row_codes<'a>(p: &Problem, codes: &'a [u8], row: usize) -> &'a [u8] {
    let (_, _, b, kv) = row_position(p, row);
    &codes[(b * p.hkv + kv) * p.n * p.m..][..p.n * p.m]
}

/// Output row `row`'s query position, output head (a kv head in group mode), batch, and the kv
/// head whose keys it scores.
fn row_position(p: &Problem, row: usize) -> (usize, usize, usize, usize) {
    let (s, head, b) = (row % p.sq, row / p.sq % p.out_heads(), row / p.sq / p.out_heads());
    (s, head, b, if p.group { head } else { head / p.group_size() })
}

/// Orders two (score, index) candidates: better first. Larger inner product or smaller L2 is
/// better; NaN comes after every number; ties go to the smaller index.
pub fn better_first(metric: Metric, a: (f64, u32), b: (f64, u32)) -> Ordering {
    let goodness = |s: f64| if metric == Metric::L2 { -s } else { s };
    match (a.0.is_nan(), b.0.is_nan()) {
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => a.1.cmp(&b.1),
        (false, false) => goodness(b.0).partial_cmp(&goodness(a.0)).unwrap().then(a.1.cmp(&b.1)),
    }
}

/// The worst score, which pads rows with fewer than k valid keys.
pub fn padding_score(metric: Metric) -> f64 {
    match metric {
        Metric::InnerProduct => f64::NEG_INFINITY,
        Metric::L2 => f64::INFINITY,
    }
}

/// The exact top-k of every row, by the contract of [`Problem`]. Memory: the outputs and one
/// row's scores ([`Error::HostMemory`] where the host cannot hold them).
///
/// # Example
/// ```
/// use pqtopk::reference::{self, HostInputs};
/// use pqtopk::{DType, Order, Problem};
///
/// // One query [1, 1] against 4 keys of one sub-space with 3 centroids [0, 0], [1, 1], [2, 0].
/// let p = Problem::new(1, 1, 1, 1, 2, 1, 3, 4, 2).with_dtypes(DType::F32, DType::F32);
/// let inputs = HostInputs {
///     queries: &[1.0f32, 1.0],
///     codebooks: &[0.0f32, 0.0, 1.0, 1.0, 2.0, 0.0],
///     codes: &[0, 1, 2, 1],
///     n_valid: None,
/// };
/// let top = reference::topk(&p, &inputs)?;
/// // Keys 1, 2 and 3 all score 2: ties go to the smaller index.
/// assert_eq!(top.indices, [1, 2]);
/// assert_eq!(top.scores, [2.0, 2.0]);
/// let by_index = reference::topk(&p.with_order(Order::ByIndex), &inputs)?;
/// assert_eq!(by_index.indices, [1, 2]);
/// # Ok::<(), pqtopk::Error>(())
/// ```
pub fn topk<Q: Element, C: Element>(problem: &Problem, inputs: &HostInputs<'_, Q, C>) -> Result<TopkResult> {
    validate(problem, inputs)?;
    let p = problem;
    let rows_per_batch = p.out_heads() * p.sq;
    let mut result =
        TopkResult { indices: allocate("the indices", p.out_len())?, scores: allocate("the scores", p.out_len())? };
    let mut row_buffer = allocate("one row's scores", p.n)?;
    let mut ranked: Vec<(f64, u32)> = allocate("one row's ranking", p.n)?;
    for row in 0..p.rows() {
        row_buffer.clear();
        row_scores(p, inputs, row, &mut row_buffer);
        let valid = inputs.n_valid.map_or(p.n, |v| v[row / rows_per_batch] as usize);
        ranked.clear();
        ranked.extend(row_buffer[..valid].iter().enumerate().map(|(i, &s)| (s, i as u32)));
        ranked.sort_by(|&a, &b| better_first(p.metric, a, b));
        ranked.truncate(p.k);
        if p.order != Order::ByScore {
            ranked.sort_by_key(|&(_, i)| i);
        }
        ranked.resize(p.k, (padding_score(p.metric), u32::MAX));
        result.indices.extend(ranked.iter().map(|&(_, i)| i));
        result.scores.extend(ranked.iter().map(|&(s, _)| s));
    }
    Ok(result)
}

/// Codebooks trained by [`train`], with what the training did.
#[derive(Clone, Debug, PartialEq)]
pub struct Training<C> {
    /// `[hkv, m, c, d/m]`.
    pub codebooks: Vec<C>,
    /// Assignment steps per (kv head, sub-space), `[hkv, m]`: at most the options' iterations.
    pub iterations: Vec<usize>,
    /// The objective of the returned codebooks: every valid key's squared distance to its
    /// nearest centroid, summed over the sub-spaces and kv heads.
    pub inertia: f64,
}

/// Trains codebooks on `keys` `[b, hkv, n, d]` (the first `n_valid[bi]` keys of each batch entry
/// valid) by the algorithm of [`crate::index`], in f64.
pub fn train<K: Element, C: Element>(
    shape: &IndexShape,
    keys: &[K],
    n_valid: Option<&[u32]>,
    options: &TrainOptions,
) -> Result<Training<C>> {
    let s = validate_index(shape, keys.len(), n_valid)?;
    options.validate()?;
    check_element_dtypes::<K, C>(s)?;
    let valid = |bi: usize| n_valid.map_or(s.n, |v| v[bi] as usize);
    let pooled: Vec<usize> = (0..s.b).flat_map(|bi| (0..valid(bi)).map(move |key| bi * s.n + key)).collect();
    ensure(s.c <= pooled.len(), "c", || format!("at most the valid keys of a kv head ({})", pooled.len()), s.c)?;
    let ds = s.d / s.m;
    let mut codebooks = allocate::<C>("the codebooks", s.codebooks_len())?;
    let mut iterations = Vec::with_capacity(s.hkv * s.m);
    for kv in 0..s.hkv {
        for j in 0..s.m {
            let view = KeyView { keys, s, per_entry: s.n };
            let sub = |pooled: usize| view.sub(pooled / s.n, kv, pooled % s.n, j);
            let mut order = pooled.clone();
            order.sort_by_key(|&i| (sample_rank(options.seed, kv, j, i), i));
            let mut centroids: Vec<Vec<f64>> = order[..s.c].iter().map(|&i| sub(i)).collect();
            let mut assignment = vec![usize::MAX; pooled.len()];
            let mut previous = f64::INFINITY;
            let mut steps = 0;
            while steps < options.iterations {
                steps += 1;
                let mut changed = false;
                let mut inertia = 0.0;
                for (slot, &i) in pooled.iter().enumerate() {
                    let (nearest, distance) = nearest(&centroids, &sub(i));
                    changed |= assignment[slot] != nearest;
                    assignment[slot] = nearest;
                    inertia += distance;
                }
                if steps > 1 && (!changed || previous - inertia < options.tolerance * previous) {
                    break;
                }
                previous = inertia;
                let mut sums = vec![vec![0.0; ds]; s.c];
                let mut counts = vec![0usize; s.c];
                for (slot, &i) in pooled.iter().enumerate() {
                    counts[assignment[slot]] += 1;
                    for (total, x) in sums[assignment[slot]].iter_mut().zip(sub(i)) {
                        *total += x;
                    }
                }
                let mut empty = 0;
                for (centroid, (sum, count)) in centroids.iter_mut().zip(sums.into_iter().zip(counts)) {
                    *centroid = if count == 0 {
                        empty += 1;
                        sub(order[(s.c + empty - 1) % pooled.len()])
                    } else {
                        sum.into_iter().map(|x| x / count as f64).collect()
                    };
                }
            }
            iterations.push(steps);
            // (kv, j) in order: the codebooks' layout.
            codebooks.extend(centroids.iter().flatten().map(|&x| C::from_f32(x as f32)));
        }
    }
    let inertia = objective(s, keys, n_valid, &codebooks)?;
    Ok(Training { codebooks, iterations, inertia })
}

/// Every valid key's squared distance to its nearest centroid of `codebooks`, summed: the
/// objective that [`train`] lowers.
pub fn objective<K: Element, C: Element>(
    shape: &IndexShape,
    keys: &[K],
    n_valid: Option<&[u32]>,
    codebooks: &[C],
) -> Result<f64> {
    let s = validate_index(shape, keys.len(), n_valid)?;
    check_codebooks(s, codebooks)?;
    let view = KeyView { keys, s, per_entry: s.n };
    let mut total = 0.0;
    for bi in 0..s.b {
        for kv in 0..s.hkv {
            for key in 0..n_valid.map_or(s.n, |v| v[bi] as usize) {
                for j in 0..s.m {
                    total += nearest(&centroids_of(s, codebooks, kv, j), &view.sub(bi, kv, key, j)).1;
                }
            }
        }
    }
    Ok(total)
}

/// Codes `[b, hkv, n, m]` of every key of `keys` `[b, hkv, n, d]`: its nearest centroid per
/// sub-space by squared L2 distance, ties to the smaller index.
pub fn encode<K: Element, C: Element>(shape: &IndexShape, keys: &[K], codebooks: &[C]) -> Result<Vec<u8>> {
    let s = validate_index(shape, keys.len(), None)?;
    check_codebooks(s, codebooks)?;
    check_element_dtypes::<K, C>(s)?;
    let view = KeyView { keys, s, per_entry: s.n };
    let mut codes = allocate("the codes", s.codes_len())?;
    for bi in 0..s.b {
        for kv in 0..s.hkv {
            for key in 0..s.n {
                for j in 0..s.m {
                    codes.push(nearest(&centroids_of(s, codebooks, kv, j), &view.sub(bi, kv, key, j)).0 as u8);
                }
            }
        }
    }
    Ok(codes)
}

/// Encodes `t` new keys per batch entry, `new_keys` `[b, hkv, t, d]`, into `codes`
/// `[b, hkv, n, m]` at each entry's current length `lengths[bi]`, and advances the lengths.
/// [`Error::CacheFull`] (and nothing written) where an entry has no room for `t` more keys.
pub fn append<K: Element, C: Element>(
    shape: &IndexShape,
    new_keys: &[K],
    t: usize,
    codebooks: &[C],
    codes: &mut [u8],
    lengths: &mut [u32],
) -> Result<()> {
    shape.validate()?;
    let s = shape;
    ensure(t >= 1, "t", || ">= 1".into(), t)?;
    check_codebooks(s, codebooks)?;
    check_element_dtypes::<K, C>(s)?;
    check_len("new_keys", s.b * s.hkv * t * s.d, new_keys.len(), true)?;
    check_len("codes", s.codes_len(), codes.len(), true)?;
    check_len("lengths", s.b, lengths.len(), true)?;
    check_room(s.n, t, lengths)?;
    let view = KeyView { keys: new_keys, s, per_entry: t };
    for (bi, length) in lengths.iter_mut().enumerate() {
        for kv in 0..s.hkv {
            for key in 0..t {
                for j in 0..s.m {
                    let code = nearest(&centroids_of(s, codebooks, kv, j), &view.sub(bi, kv, key, j)).0;
                    codes[((bi * s.hkv + kv) * s.n + *length as usize + key) * s.m + j] = code as u8;
                }
            }
        }
        *length += t as u32;
    }
    Ok(())
}

/// Keys `[b, hkv, per_entry, d]` read as f64 sub-vectors.
struct KeyView<'a, K> {
    keys: &'a [K],
    s: &'a IndexShape,
    per_entry: usize,
}

impl<K: Element> KeyView<'_, K> {
    /// Sub-space `j` of key `key` of (batch entry `bi`, kv head `kv`).
    fn sub(&self, bi: usize, kv: usize, key: usize, j: usize) -> Vec<f64> {
        let ds = self.s.d / self.s.m;
        let start = ((bi * self.s.hkv + kv) * self.per_entry + key) * self.s.d + j * ds;
        self.keys[start..start + ds].iter().map(|x| x.to_f64()).collect()
    }
}

/// The centroids of (kv head `kv`, sub-space `j`) as f64.
fn centroids_of<C: Element>(s: &IndexShape, codebooks: &[C], kv: usize, j: usize) -> Vec<Vec<f64>> {
    let ds = s.d / s.m;
    codebooks[(kv * s.m + j) * s.c * ds..][..s.c * ds]
        .chunks(ds)
        .map(|c| c.iter().map(|x| x.to_f64()).collect())
        .collect()
}

/// The nearest of `centroids` to `x` by squared L2 distance (ties to the smaller index), and
/// that distance.
fn nearest(centroids: &[Vec<f64>], x: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, centroid) in centroids.iter().enumerate() {
        let distance: f64 = centroid.iter().zip(x).map(|(c, x)| (c - x) * (c - x)).sum();
        if distance < best.1 {
            best = (i, distance);
        }
    }
    best
}

/// Validates an indexer shape, the keys' length (`b · hkv · n · d`) and the valid lengths.
fn validate_index<'a>(shape: &'a IndexShape, keys: usize, n_valid: Option<&[u32]>) -> Result<&'a IndexShape> {
    shape.validate()?;
    check_len("keys", shape.keys_len(), keys, true)?;
    if let Some(n_valid) = n_valid {
        check_valid_lengths(shape.b, shape.n, n_valid)?;
    }
    Ok(shape)
}

fn check_codebooks<C>(s: &IndexShape, codebooks: &[C]) -> Result<()> {
    check_len("codebooks", s.codebooks_len(), codebooks.len(), true)
}

fn check_element_dtypes<K: Element, C: Element>(s: &IndexShape) -> Result<()> {
    check_dtype("keys", s.key_dtype, K::DTYPE)?;
    check_dtype("codebooks", s.codebook_dtype, C::DTYPE)
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_reports_its_physical_memory() {
        assert!(super::physical_memory_bytes().is_some_and(|bytes| bytes >= 1 << 26));
    }
}

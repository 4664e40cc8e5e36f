//! The CPU implementation of pqtopk's contract, in f64: the oracle of the tests and the demo's
//! fallback on machines without a GPU. Simple on purpose: every score is computed directly from
//! the decoded key, and every row is sorted.

use crate::dtype::Element;
use crate::error::{Error, Result, ensure};
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
    for (name, expected, actual) in
        [("queries", problem.query_dtype, Q::DTYPE), ("codebooks", problem.codebook_dtype, C::DTYPE)]
    {
        if expected != actual {
            return Err(Error::DTypeMismatch { name, expected, actual });
        }
    }
    let lengths = [
        ("queries", problem.queries_len(), inputs.queries.len()),
        ("codebooks", problem.codebooks_len(), inputs.codebooks.len()),
        ("codes", problem.codes_len(), inputs.codes.len()),
    ];
    for (name, expected, actual) in lengths {
        if expected != actual {
            return Err(Error::BufferLength { name, expected: expected.to_string(), actual });
        }
    }
    if let Some(n_valid) = inputs.n_valid {
        validate_n_valid(problem, n_valid)?;
    }
    let bad = inputs.codes.iter().filter(|&&code| code as usize >= problem.c).count();
    if bad != 0 {
        return Err(Error::CodeOutOfRange { count: bad as u64, c: problem.c as u32 });
    }
    Ok(())
}

/// Checks valid lengths: `b` of them, each ≤ n.
pub fn validate_n_valid(problem: &Problem, n_valid: &[u32]) -> Result<()> {
    if n_valid.len() != problem.b {
        return Err(Error::BufferLength { name: "n_valid", expected: problem.b.to_string(), actual: n_valid.len() });
    }
    let worst = n_valid.iter().copied().max().unwrap_or(0);
    ensure(worst as usize <= problem.n, "n_valid", || format!("every value <= n ({})", problem.n), worst)
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

/// An empty vector with room for `len` elements, or [`Error::HostMemory`].
fn allocate<T>(what: &'static str, len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::HostMemory { what, bytes: len.saturating_mul(size_of::<T>()) })?;
    Ok(v)
}

/// Appends the n scores of output row `row` to `out`.
fn row_scores<Q: Element, C: Element>(p: &Problem, inputs: &HostInputs<'_, Q, C>, row: usize, out: &mut Vec<f64>) {
    let (g, ds) = (p.group_size(), p.d / p.m);
    let (s, head, b) = (row % p.sq, row / p.sq % p.out_heads(), row / p.sq / p.out_heads());
    let (kv, heads) = if p.group { (head, head * g..head * g + g) } else { (head / g, head..head + 1) };
    for key in 0..p.n {
        let codes = &inputs.codes[((b * p.hkv + kv) * p.n + key) * p.m..][..p.m];
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

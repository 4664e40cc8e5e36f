//! Shared by the test binaries: random inputs and the tie-aware comparison with the reference.
#![allow(dead_code)]

pub mod dist;

use dist::Family;
use pqtopk::half::{bf16, f16};
use pqtopk::reference::{self, HostInputs, TopkResult};
use pqtopk::{DType, Element, IndexShape, Metric, Order, Problem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fresh seed per run (printed, and settable through PQTOPK_SEED to replay a failure).
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("PQTOPK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: PQTOPK_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// How the inputs are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Data {
    /// Uniform in [-1, 1).
    Random,
    /// Few distinct codes (duplicate keys): many exact ties.
    Ties,
    /// Random, with NaN and ±inf planted in a query and in codebook entries.
    Special,
    /// A family of `dist` other than uniform (`Random` is `Family::Uniform`).
    Llm,
    Narrow,
    Equal,
    Sorted,
}

impl Data {
    /// Every synthetic data family of `dist`, uniform first.
    pub const FAMILIES: [Data; 5] = [Data::Random, Data::Llm, Data::Narrow, Data::Equal, Data::Sorted];

    /// The `dist` family the inputs are drawn from (before `Ties` and `Special` edit them).
    pub fn family(self) -> Family {
        match self {
            Data::Random | Data::Ties | Data::Special => Family::Uniform,
            Data::Llm => Family::Llm,
            Data::Narrow => Family::Narrow,
            Data::Equal => Family::Equal,
            Data::Sorted => Family::Sorted,
        }
    }
}

pub struct HostData<Q, C> {
    pub queries: Vec<Q>,
    pub codebooks: Vec<C>,
    pub codes: Vec<u8>,
    pub n_valid: Option<Vec<u32>>,
}

impl<Q: Element, C: Element> HostData<Q, C> {
    pub fn inputs(&self) -> HostInputs<'_, Q, C> {
        HostInputs {
            queries: &self.queries,
            codebooks: &self.codebooks,
            codes: &self.codes,
            n_valid: self.n_valid.as_deref(),
        }
    }
}

pub fn draw<Q: Element, C: Element>(rng: &mut StdRng, p: &Problem, data: Data, ragged: bool) -> HostData<Q, C> {
    let dist::Generated { mut queries, mut codebooks, mut codes } = dist::generate::<Q, C, _>(rng, p, data.family());
    if data == Data::Ties {
        let distinct = p.c.min(3);
        codes.iter_mut().for_each(|code| *code = rng.random_range(0..distinct) as u8);
    }
    if data == Data::Special {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        // One query row entirely NaN-scored, and a few poisoned centroid entries.
        queries[rng.random_range(0..p.queries_len())] = Q::from_f32(f32::NAN);
        for s in specials {
            let at = rng.random_range(0..p.codebooks_len());
            codebooks[at] = C::from_f32(s);
        }
        let at = rng.random_range(0..p.queries_len());
        queries[at] = Q::from_f32(f32::INFINITY);
    }
    let n_valid = ragged.then(|| {
        (0..p.b)
            .map(|bi| match bi % 4 {
                0 => p.n as u32,
                1 => rng.random_range(0..=p.n as u32),
                2 => (p.k as u32).saturating_sub(1).min(p.n as u32),
                _ => rng.random_range(0..=p.k.min(p.n) as u32),
            })
            .collect()
    });
    HostData { queries, codebooks, codes, n_valid }
}

pub const POISON_INDEX: u32 = 0xDEAD_BEEF;
pub const POISON_SCORE_BITS: u32 = 0x7FBA_DBAD;

/// Checks a device result against the f64 reference, tie-aware:
/// - every slot written (no poison), real results first, padding after;
/// - no duplicate index, each index valid;
/// - the returned set differs from the reference only among keys whose reference score is within
///   `tol` of the k-th best;
/// - scores match the reference score of their index within `tol`;
/// - the order is the requested one.
///
/// Returns the number of rows checked.
pub fn check<Q: Element, C: Element>(
    p: &Problem,
    data: &HostData<Q, C>,
    indices: &[u32],
    scores: Option<&[f32]>,
) -> usize {
    let inputs = data.inputs();
    let all = reference::scores(p, &inputs).expect("reference scores");
    let expected: TopkResult = reference::topk(&p.with_order(Order::ByScore), &inputs).expect("reference topk");
    let rows_per_batch = p.out_heads() * p.sq;
    for row in 0..p.rows() {
        let ctx = || format!("{p:?} row {row}");
        let row_scores = &all[row * p.n..][..p.n];
        let valid = data.n_valid.as_ref().map_or(p.n, |v| v[row / rows_per_batch] as usize);
        let taken = p.k.min(valid);
        let got = &indices[row * p.k..][..p.k];
        let got_scores = scores.map(|s| &s[row * p.k..][..p.k]);
        let want = &expected.indices[row * p.k..][..taken];
        let finite_max = row_scores.iter().filter(|s| s.is_finite()).fold(0.0f64, |m, s| m.max(s.abs()));
        let tol = 2e-5 * (1.0 + finite_max);
        let close = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan()) || approx::abs_diff_eq!(a, b, epsilon = tol);
        assert!(!got.contains(&POISON_INDEX), "{}: unwritten index slot", ctx());
        for (slot, &i) in got.iter().enumerate() {
            if slot < taken {
                assert!((i as usize) < valid, "{}: slot {slot} holds index {i}, valid keys {valid}", ctx());
            } else {
                assert_eq!(i, u32::MAX, "{}: padding slot {slot}", ctx());
            }
        }
        let mut seen: Vec<u32> = got[..taken].to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), taken, "{}: duplicate indices", ctx());
        if taken > 0 {
            let kth = expected.scores[row * p.k + taken - 1];
            let mut want_sorted = want.to_vec();
            want_sorted.sort_unstable();
            // Keys in one set and not the other must tie with the k-th best.
            let only_in = |a: &[u32], b: &[u32], what: &str| {
                for &i in a.iter().filter(|i| b.binary_search(i).is_err()) {
                    let score = row_scores[i as usize];
                    assert!(close(score, kth), "{}: index {i} (score {score}) {what} (k-th {kth})", ctx());
                }
            };
            only_in(&seen, &want_sorted, "returned but not in the top-k");
            only_in(&want_sorted, &seen, "in the top-k but missed");
        }
        if let Some(got_scores) = got_scores {
            for (slot, (&i, &s)) in got.iter().zip(got_scores).enumerate() {
                assert_ne!(s.to_bits(), POISON_SCORE_BITS, "{}: unwritten score slot {slot}", ctx());
                let want = if slot < taken { row_scores[i as usize] } else { reference::padding_score(p.metric) };
                assert!(close(s as f64, want), "{}: slot {slot} index {i} score {s}, reference {want}", ctx());
            }
        }
        match p.order {
            Order::ByScore => {
                if let Some(got_scores) = got_scores {
                    for w in 0..taken.saturating_sub(1) {
                        let (a, b) = ((got_scores[w] as f64, got[w]), (got_scores[w + 1] as f64, got[w + 1]));
                        assert!(
                            reference::better_first(p.metric, a, b).is_lt(),
                            "{}: slots {w},{} out of score order: {a:?} {b:?}",
                            ctx(),
                            w + 1
                        );
                    }
                }
            }
            Order::ByIndex | Order::Unordered => {
                assert!(got[..taken].windows(2).all(|w| w[0] < w[1]), "{}: not in index order", ctx());
            }
        }
    }
    p.rows()
}

/// An implementation of the kernels that the sweeps check: the GPU, or the emulated kernels.
pub trait Runs {
    /// Runs `p` on `data` on every kernel path that applies to it; returns each path's name
    /// and its outputs (indices, scores).
    fn run<Q: Element, C: Element>(
        &mut self,
        rng: &mut StdRng,
        p: &Problem,
        data: &HostData<Q, C>,
    ) -> Vec<(String, Vec<u32>, Vec<f32>)>;
}

/// One checked case with fresh inputs, on every path `runs` takes; returns the rows checked.
pub fn check_case(runs: &mut impl Runs, rng: &mut StdRng, p: &Problem, data: Data, ragged: bool) -> usize {
    fn typed<Q: Element, C: Element>(
        runs: &mut impl Runs,
        rng: &mut StdRng,
        p: &Problem,
        data: Data,
        ragged: bool,
    ) -> usize {
        let host: HostData<Q, C> = draw(rng, p, data, ragged);
        let mut rows = 0;
        for (path, indices, scores) in runs.run(rng, p, &host) {
            let checked =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(p, &host, &indices, Some(&scores))));
            match checked {
                Ok(checked) => rows += checked,
                Err(panic) => {
                    eprintln!("failed on path {path} ({data:?}, ragged {ragged})");
                    std::panic::resume_unwind(panic);
                }
            }
        }
        rows
    }
    fn queries<Q: Element>(runs: &mut impl Runs, rng: &mut StdRng, p: &Problem, data: Data, ragged: bool) -> usize {
        match p.codebook_dtype {
            DType::F32 => typed::<Q, f32>(runs, rng, p, data, ragged),
            DType::F16 => typed::<Q, f16>(runs, rng, p, data, ragged),
            DType::BF16 => typed::<Q, bf16>(runs, rng, p, data, ragged),
        }
    }
    match p.query_dtype {
        DType::F32 => queries::<f32>(runs, rng, p, data, ragged),
        DType::F16 => queries::<f16>(runs, rng, p, data, ragged),
        DType::BF16 => queries::<bf16>(runs, rng, p, data, ragged),
    }
}

pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
pub const METRICS: [Metric; 2] = [Metric::InnerProduct, Metric::L2];
pub const ORDERS: [Order; 3] = [Order::ByScore, Order::ByIndex, Order::Unordered];

/// Keys around `centers` well-separated points per (kv head, sub-space), with small noise.
pub fn clustered_keys(rng: &mut StdRng, s: &IndexShape, centers: usize) -> Vec<f32> {
    let ds = s.d / s.m;
    let points: Vec<Vec<f32>> =
        (0..s.hkv * s.m * centers).map(|_| (0..ds).map(|_| rng.random_range(-10.0..10.0)).collect()).collect();
    let mut keys = Vec::with_capacity(s.keys_len());
    for _ in 0..s.b {
        for kv in 0..s.hkv {
            for _ in 0..s.n {
                for j in 0..s.m {
                    let p = &points[(kv * s.m + j) * centers + rng.random_range(0..centers)];
                    keys.extend(p.iter().map(|x| x + rng.random_range(-0.01..0.01)));
                }
            }
        }
    }
    keys
}

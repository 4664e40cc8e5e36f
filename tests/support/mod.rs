//! Shared by the test binaries: random inputs and the tie-aware comparison with the reference.
#![allow(dead_code)]

pub mod dist;

use dist::Family;
use pqtopk::half::{bf16, f16};
use pqtopk::reference::{self, HostInputs, TopkResult};
use pqtopk::{DType, Element, IndexShape, Metric, Order, Problem, TrainOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

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
    /// Equal, but for a few keys in the last quarter of each row with random codes: some of them
    /// score above the equal keys, and a sweep in index order meets them only after it has seen
    /// more than enough tied keys.
    LateOutliers,
    /// Sorted, with the first key of each row a copy of its last (the best key of the kv head's
    /// first query row): index order's taken keys are then one far key and a contiguous run,
    /// which crowd buckets over their indices.
    SortedFirstBest,
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
            Data::Equal | Data::LateOutliers => Family::Equal,
            Data::Sorted | Data::SortedFirstBest => Family::Sorted,
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
    if data == Data::LateOutliers {
        // 32 per (batch, kv head): with each one above the equal keys about half the time, some
        // are, whatever the draw.
        // The last quarter, or the last key of rows shorter than four.
        let late = (p.n - p.n / 4).min(p.n - 1);
        for head in codes.chunks_mut(p.n * p.m) {
            for _ in 0..32 {
                let key = rng.random_range(late..p.n);
                head[key * p.m..][..p.m].iter_mut().for_each(|code| *code = rng.random_range(0..p.c) as u8);
            }
        }
    }
    if data == Data::SortedFirstBest {
        for head in codes.chunks_mut(p.n * p.m) {
            head.copy_within((p.n - 1) * p.m.., 0);
        }
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
            check_exact_ties_by_index(p, &data.codes, row, valid, &seen, &ctx);
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

/// Keys with the same codes score the same bits on every kernel path (NaN included), so they
/// tie exactly, and ties go to the smaller index: where a row takes some of them, it takes
/// the first. `taken` is the row's sorted indices. (The tolerance above lets near ties differ
/// from the f64 reference; this check has no tolerance.)
fn check_exact_ties_by_index(
    p: &Problem,
    codes: &[u8],
    row: usize,
    valid: usize,
    taken: &[u32],
    ctx: &impl Fn() -> String,
) {
    let codes = reference::row_codes(p, codes, row);
    // Per code vector, the first of its keys that the row leaves.
    let mut first_left: HashMap<&[u8], usize> = HashMap::new();
    let mut taken = taken.iter().peekable();
    for key in 0..valid {
        let same = &codes[key * p.m..][..p.m];
        if taken.next_if(|&&i| i as usize == key).is_some() {
            if let Some(&left) = first_left.get(same) {
                panic!("{}: index {key} taken but index {left}, of the same codes, left", ctx());
            }
        } else {
            first_left.entry(same).or_insert(key);
        }
    }
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

/// Checks GPU codes against the f64 reference's, tie-aware: a code may differ only where its
/// centroid's distance to the key ties the reference's within f32 rounding.
pub fn check_codes<K: Element, C: Element>(
    s: &IndexShape,
    keys: &[K],
    codebooks: &[C],
    per_entry: usize,
    got: &[u8],
    want: &[u8],
    at: impl Fn(usize, usize, usize) -> usize,
) {
    let ds = s.d / s.m;
    let distance = |bi: usize, kv: usize, key: usize, j: usize, code: u8| -> f64 {
        let x = &keys[((bi * s.hkv + kv) * per_entry + key) * s.d + j * ds..][..ds];
        let centroid = &codebooks[((kv * s.m + j) * s.c + code as usize) * ds..][..ds];
        x.iter().zip(centroid).map(|(x, c)| (x.to_f64() - c.to_f64()).powi(2)).sum()
    };
    let mut differing = 0;
    for bi in 0..s.b {
        for kv in 0..s.hkv {
            for key in 0..per_entry {
                for j in 0..s.m {
                    let (g, w) = (got[at(bi, kv, key) * s.m + j], want[at(bi, kv, key) * s.m + j]);
                    if g != w {
                        assert!((g as usize) < s.c, "code {g} out of range at ({bi}, {kv}, {key}, {j})");
                        let (dg, dw) = (distance(bi, kv, key, j, g), distance(bi, kv, key, j, w));
                        assert!(
                            (dg - dw).abs() <= 1e-4 * (1.0 + dw),
                            "({bi}, {kv}, {key}, {j}): code {g} at {dg}, reference {w} at {dw}"
                        );
                        differing += 1;
                    }
                }
            }
        }
    }
    eprintln!("codes: {differing} of {} differ from the reference, each on a distance tie", got.len());
}

/// The encode tests' shapes, with the keys each append adds per entry: d/m from 4 to 96, every
/// register width (groups of four, zero-padded) and the shared-memory path above 64, each key
/// and codebook dtype.
pub fn encode_shapes() -> Vec<(IndexShape, usize)> {
    let shapes = [
        (1, 2, 300, 64, 16, 256),
        (2, 3, 129, 48, 4, 7),
        (1, 1, 64, 64, 1, 1),
        (2, 2, 1000, 128, 2, 64),
        (1, 2, 200, 96, 1, 32),
        (1, 1, 150, 40, 8, 20),
    ];
    let shape = |(i, (b, hkv, n, d, m, c))| {
        (IndexShape::new(b, hkv, n, d, m, c).with_dtypes(DTYPES[i % 3], DTYPES[(i + 1) % 3]), 1 + i % 3)
    };
    shapes.into_iter().enumerate().map(shape).collect()
}

/// One case of the training tests: the shape and dtypes, the keys (as f32, converted to the key
/// dtype), ragged valid lengths, and the options.
pub struct TrainCase {
    pub shape: IndexShape,
    pub family: &'static str,
    pub keys: Vec<f32>,
    pub n_valid: Option<Vec<u32>>,
    pub options: TrainOptions,
}

/// The training tests' cases: d/m of 1 to 80 (every register width, zero-padded groups of four,
/// and the shared-memory path above 64), clustered keys, keys from few values (distance ties and
/// empty clusters), all keys equal; dtype pairs, ragged lengths, iterations, seeds and
/// tolerances varied across them.
pub fn train_cases(rng: &mut StdRng) -> Vec<TrainCase> {
    let shapes = [
        (1, 2, 2000, 64, 2, 64),
        (2, 3, 700, 48, 4, 16),
        (1, 1, 300, 16, 16, 256),
        (2, 2, 1500, 128, 16, 256),
        (3, 1, 100, 8, 1, 1),
        (1, 1, 500, 80, 1, 16),
        (1, 2, 400, 48, 16, 16),
    ];
    let mut cases = Vec::new();
    for (i, &(b, hkv, n, d, m, c)) in shapes.iter().enumerate() {
        for family in ["clusters", "few values", "equal"] {
            let at = cases.len() + 1;
            let shape = IndexShape::new(b, hkv, n, d, m, c).with_dtypes(DTYPES[(i + at - 1) % 3], DTYPES[(i + at) % 3]);
            // Ragged: entry bi keeps n - bi·n/3 keys, never fewer than c pooled.
            let n_valid = (at % 2 == 0).then(|| (0..b).map(|bi| (n - bi * n / 3) as u32).collect());
            let options = TrainOptions {
                iterations: 1 + (at * 3) % 12,
                seed: rng.random(),
                tolerance: [0.0, 1e-3, 0.05][at % 3],
            };
            let keys: Vec<f32> = match family {
                "clusters" => clustered_keys(rng, &shape, c.div_ceil(2)),
                "few values" => (0..shape.keys_len()).map(|_| rng.random_range(-2..=2) as f32 / 2.0).collect(),
                _ => {
                    let key: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
                    key.iter().copied().cycle().take(shape.keys_len()).collect()
                }
            };
            cases.push(TrainCase { shape, family, keys, n_valid, options });
        }
    }
    cases
}

/// An implementation of training that the training tests check: the GPU, or the emulated
/// kernels.
pub trait Trains {
    /// Trains fresh codebooks (poisoned before) on `keys` as `case` says, and returns them.
    fn train<K: Element, C: Element>(&mut self, case: &TrainCase, keys: &[K]) -> Vec<C>;
}

/// Trains `case` twice through `trains` and checks the codebooks against `reference::train`:
/// all finite, their objective within 1% of the reference's, the rerun bit-identical.
pub fn check_train_case(trains: &mut impl Trains, case: &TrainCase) {
    fn typed<K: Element, C: Element>(trains: &mut impl Trains, case: &TrainCase) {
        let (shape, n_valid) = (&case.shape, case.n_valid.as_deref());
        let keys: Vec<K> = case.keys.iter().map(|&x| K::from_f32(x)).collect();
        let energy: f64 = case.keys.iter().map(|&x| (x as f64).powi(2)).sum();
        let want = reference::train::<K, C>(shape, &keys, n_valid, &case.options).unwrap();
        let got: Vec<C> = trains.train(case, &keys);
        let what = format!("{shape:?} {} {:?} n_valid {n_valid:?}", case.family, case.options);
        assert!(got.iter().all(|x| x.to_f64().is_finite()), "{what}: non-finite codebook elements");
        let objective = reference::objective(shape, &keys, n_valid, &got).unwrap();
        assert!(
            objective <= want.inertia * 1.01 + energy * 1e-9,
            "{what}: objective {objective}, reference {}",
            want.inertia
        );
        let bits = |v: &[C]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&trains.train::<K, C>(case, &keys)), bits(&got), "{what}: a rerun changed the codebooks");
    }
    match (case.shape.key_dtype, case.shape.codebook_dtype) {
        (DType::F32, DType::F32) => typed::<f32, f32>(trains, case),
        (DType::F32, DType::F16) => typed::<f32, f16>(trains, case),
        (DType::F32, DType::BF16) => typed::<f32, bf16>(trains, case),
        (DType::F16, DType::F32) => typed::<f16, f32>(trains, case),
        (DType::F16, DType::F16) => typed::<f16, f16>(trains, case),
        (DType::F16, DType::BF16) => typed::<f16, bf16>(trains, case),
        (DType::BF16, DType::F32) => typed::<bf16, f32>(trains, case),
        (DType::BF16, DType::F16) => typed::<bf16, f16>(trains, case),
        (DType::BF16, DType::BF16) => typed::<bf16, bf16>(trains, case),
    }
}

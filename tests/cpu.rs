//! CPU tests: the reference against brute force, validation of every bad-input class, and
//! property tests of the reference.

mod support;

#[cfg(feature = "cuda")]
use pqtopk::Gpu;
use pqtopk::reference::{self, HostInputs};
use pqtopk::{DType, Error, Metric, Order, Problem};
use proptest::prelude::*;
use rand::SeedableRng;
use support::{Data, HostData};

/// Scores by decoding each key to a full vector first: independent of the reference's
/// sub-space loop.
fn brute_force_scores(p: &Problem, data: &HostData<f32, f32>) -> Vec<f64> {
    let (g, ds) = (p.group_size(), p.d / p.m);
    let mut out = vec![];
    for b in 0..p.b {
        for head in 0..p.out_heads() {
            let kv = if p.group { head } else { head / g };
            let heads: Vec<usize> = if p.group { (head * g..head * g + g).collect() } else { vec![head] };
            for s in 0..p.sq {
                for key in 0..p.n {
                    let decoded: Vec<f64> = (0..p.d)
                        .map(|t| {
                            let j = t / ds;
                            let code = data.codes[((b * p.hkv + kv) * p.n + key) * p.m + j] as usize;
                            data.codebooks[((kv * p.m + j) * p.c + code) * ds + t % ds] as f64
                        })
                        .collect();
                    let total: f64 = heads
                        .iter()
                        .map(|&qh| {
                            let q = &data.queries[((b * p.h + qh) * p.sq + s) * p.d..][..p.d];
                            match p.metric {
                                Metric::InnerProduct => {
                                    q.iter().zip(&decoded).map(|(&a, &b)| a as f64 * b).sum::<f64>()
                                }
                                Metric::L2 => {
                                    q.iter().zip(&decoded).map(|(&a, &b)| (a as f64 - b).powi(2)).sum::<f64>()
                                }
                            }
                        })
                        .sum();
                    out.push(total);
                }
            }
        }
    }
    out
}

/// For every row: the result holds min(k, valid) distinct valid keys, and no key left out is
/// strictly better than one taken (better = the contract's order, ties to the smaller index).
fn assert_optimal(p: &Problem, data: &HostData<f32, f32>) {
    let brute = brute_force_scores(p, data);
    let got = reference::topk(p, &data.inputs()).unwrap();
    let reference_scores = reference::scores(p, &data.inputs()).unwrap();
    for (a, b) in brute.iter().zip(&reference_scores) {
        assert!(a == b || (a - b).abs() <= 1e-9 * (1.0 + a.abs()) || (a.is_nan() && b.is_nan()), "score {a} vs {b}");
    }
    let rows_per_batch = p.out_heads() * p.sq;
    for row in 0..p.rows() {
        let valid = data.n_valid.as_ref().map_or(p.n, |v| v[row / rows_per_batch] as usize);
        let idx = &got.indices[row * p.k..][..p.k];
        let taken: Vec<u32> = idx.iter().copied().filter(|&i| i != u32::MAX).collect();
        assert_eq!(taken.len(), p.k.min(valid));
        let worst_taken = taken
            .iter()
            .map(|&i| (brute[row * p.n + i as usize], i))
            .max_by(|&a, &b| reference::better_first(p.metric, a, b))
            .unwrap_or((0.0, 0));
        for key in 0..valid as u32 {
            if !taken.contains(&key) {
                let left_out = (brute[row * p.n + key as usize], key);
                assert!(
                    reference::better_first(p.metric, worst_taken, left_out).is_lt(),
                    "row {row}: {left_out:?} beats {worst_taken:?}"
                );
            }
        }
        if p.order != Order::ByScore {
            assert!(taken.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn reference_matches_brute_force() {
    let mut rng = support::rng("reference_matches_brute_force");
    for (i, data_kind) in [Data::Random, Data::Ties, Data::Special].into_iter().enumerate() {
        for metric in [Metric::InnerProduct, Metric::L2] {
            for group in [false, true] {
                let p = Problem::new(3, 4, 2, 2, 16, 4, 8, 60, 9 + i)
                    .with_dtypes(DType::F32, DType::F32)
                    .with_metric(metric)
                    .with_group(group)
                    .with_order(support::ORDERS[i]);
                let data: HostData<f32, f32> = support::draw(&mut rng, &p, data_kind, true);
                assert_optimal(&p, &data);
            }
        }
    }
}

#[test]
fn data_families_produce_what_they_claim() {
    use support::dist::{self, Family};
    let mut rng = support::rng("data_families_produce_what_they_claim");
    for metric in [Metric::InnerProduct, Metric::L2] {
        // b = 2, h = 4, hkv = 2, sq = 2, d = 64, m = 4, c = 64, n = 3000
        let p = Problem::new(2, 4, 2, 2, 64, 4, 64, 3000, 10).with_dtypes(DType::F32, DType::F32).with_metric(metric);
        let (g, ds) = (p.h / p.hkv, p.d / p.m);
        let draw =
            |rng: &mut rand::rngs::StdRng, data: Data| -> HostData<f32, f32> { support::draw(rng, &p, data, false) };
        let scores = |data: &HostData<f32, f32>| reference::scores(&p, &data.inputs()).unwrap();
        let heads = || (0..p.b).flat_map(|b| (0..p.hkv).map(move |kv| (b, kv)));
        let key_codes = |data: &HostData<f32, f32>, b: usize, kv: usize, key: usize| -> Vec<u8> {
            data.codes[((b * p.hkv + kv) * p.n + key) * p.m..][..p.m].to_vec()
        };
        let centroid_norm = |data: &HostData<f32, f32>, kv: usize, j: usize, c: usize| -> f64 {
            data.codebooks[((kv * p.m + j) * p.c + c) * ds..][..ds].iter().map(|&x| (x as f64).powi(2)).sum::<f64>()
        };

        // Same seed, same inputs (the bench relies on it); codes always below c.
        let seed: u64 = rand::random();
        for family in Family::ALL {
            let a = dist::generate::<f32, f32, _>(&mut rand::rngs::StdRng::seed_from_u64(seed), &p, family);
            let b = dist::generate::<f32, f32, _>(&mut rand::rngs::StdRng::seed_from_u64(seed), &p, family);
            assert_eq!(a.codes, b.codes, "{family:?}");
            assert_eq!(a.queries, b.queries, "{family:?}");
            assert_eq!(a.codebooks, b.codebooks, "{family:?}");
            assert!(a.codes.iter().all(|&c| (c as usize) < p.c), "{family:?}: code out of range");
            assert_eq!(Family::parse(family.name()), Some(family));
        }

        // uniform: entries in [-1, 1), every code used.
        let data = draw(&mut rng, Data::Random);
        assert!(data.queries.iter().chain(&data.codebooks).all(|x| (-1.0..1.0).contains(x)));
        assert!((0..p.c as u8).all(|c| data.codes.contains(&c)));

        // equal: all reference scores of a row are exactly equal.
        let data = draw(&mut rng, Data::Equal);
        for (row, s) in scores(&data).chunks(p.n).enumerate() {
            assert!(s.iter().all(|&x| x == s[0]), "equal, {metric:?}: row {row} has distinct scores");
        }

        // sorted: the first query row of each kv head scores its keys in ascending order.
        let data = draw(&mut rng, Data::Sorted);
        let all = scores(&data);
        for (b, kv) in heads() {
            let row = (b * p.h + kv * g) * p.sq;
            let s = &all[row * p.n..][..p.n];
            for (key, w) in s.windows(2).enumerate() {
                assert!(
                    w[0] <= w[1] + 1e-9 * (1.0 + w[1].abs()),
                    "sorted, {metric:?}: ({b}, {kv}) keys {key}..: {w:?}"
                );
            }
            assert!(s[0] < s[p.n - 1], "sorted, {metric:?}: ({b}, {kv}) scores all equal");
        }

        // narrow: per (kv head, sub-space) one centroid of far larger norm, used by at most a few
        // keys (1 in 10000 expected), so the keys' scores fill a small part of the table range.
        let data = draw(&mut rng, Data::Narrow);
        let all = scores(&data);
        let (mut outlier_keys, mut spans, mut table_ranges) = (0, 0.0, 0.0);
        for (b, kv) in heads() {
            let outliers: Vec<usize> = (0..p.m)
                .map(|j| {
                    let mut norms: Vec<(f64, usize)> = (0..p.c).map(|c| (centroid_norm(&data, kv, j, c), c)).collect();
                    norms.sort_by(|a, b| b.0.total_cmp(&a.0));
                    assert!(norms[0].0 > 100.0 * norms[1].0, "narrow: no outlier centroid in ({kv}, {j})");
                    norms[0].1
                })
                .collect();
            let uses_outlier =
                |key: usize| key_codes(&data, b, kv, key).iter().zip(&outliers).any(|(&c, &o)| c as usize == o);
            outlier_keys += (0..p.n).filter(|&key| uses_outlier(key)).count();
            // The table range of the head's first row vs the range its ordinary keys span.
            let row = (b * p.h + kv * g) * p.sq;
            let q = &data.queries[row * p.d..][..p.d];
            let table_range: f64 = (0..p.m)
                .map(|j| {
                    let partial = |c: usize| -> f64 {
                        let e = &data.codebooks[((kv * p.m + j) * p.c + c) * ds..][..ds];
                        q[j * ds..][..ds]
                            .iter()
                            .zip(e)
                            .map(|(&a, &x)| match metric {
                                Metric::InnerProduct => a as f64 * x as f64,
                                Metric::L2 => (a as f64 - x as f64).powi(2),
                            })
                            .sum()
                    };
                    let (lo, hi) =
                        (0..p.c).map(partial).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                    hi - lo
                })
                .sum();
            let ordinary: Vec<f64> =
                (0..p.n).filter(|&key| !uses_outlier(key)).map(|key| all[row * p.n + key]).collect();
            let span =
                ordinary.iter().fold(f64::MIN, |m, &x| m.max(x)) - ordinary.iter().fold(f64::MAX, |m, &x| m.min(x));
            spans += span;
            table_ranges += table_range;
        }
        assert!(spans < 0.3 * table_ranges, "narrow, {metric:?}: keys span {spans} of table ranges {table_ranges}");
        assert!(outlier_keys <= 10, "narrow: {outlier_keys} of {} keys use an outlier centroid", p.b * p.hkv * p.n);

        // llm: outlier channels in queries and codebooks, and a popular centroid per sub-space.
        let data = draw(&mut rng, Data::Llm);
        let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(max_abs(&data.queries) > 5.0 && max_abs(&data.codebooks) > 5.0, "llm: no outlier channel");
        let big_channels = (0..p.d).filter(|&t| data.queries.chunks(p.d).any(|q| q[t].abs() > 1.0)).count();
        assert!((1..=dist::LLM_OUTLIER_CHANNELS).contains(&big_channels), "llm: {big_channels} outlier channels");
        for (b, kv) in heads() {
            for j in 0..p.m {
                let mut counts = vec![0usize; p.c];
                for key in 0..p.n {
                    counts[key_codes(&data, b, kv, key)[j] as usize] += 1;
                }
                let top = *counts.iter().max().unwrap();
                assert!(top > p.n / 10, "llm: ({b}, {kv}, {j}): the most used centroid has only {top} of {} keys", p.n);
            }
        }
    }
}

#[test]
fn padding_and_nan_semantics() {
    // One key per score class, hand-made: IP scores [1, NaN, 3, -inf, 3].
    let p = Problem::new(1, 1, 1, 1, 1, 1, 5, 5, 5).with_dtypes(DType::F32, DType::F32);
    let data = HostData {
        queries: vec![1.0f32],
        codebooks: vec![1.0f32, f32::NAN, 3.0, f32::NEG_INFINITY, 3.0],
        codes: vec![0, 1, 2, 3, 4],
        n_valid: Some(vec![4]),
    };
    let got = reference::topk(&p, &data.inputs()).unwrap();
    assert_eq!(got.indices, vec![2, 0, 3, 1, u32::MAX]);
    assert_eq!(got.scores[..3], [3.0, 1.0, f64::NEG_INFINITY]);
    assert!(got.scores[3].is_nan());
    assert_eq!(got.scores[4], f64::NEG_INFINITY);
    let l2 = reference::topk(&p.with_metric(Metric::L2), &HostInputs { n_valid: None, ..data.inputs() }).unwrap();
    // L2 distances [0, NaN, 4, inf, 4]: ties at 4 go to the smaller index.
    assert_eq!(l2.indices, vec![0, 2, 4, 3, 1]);
}

fn invalid(p: Problem, name: &str) {
    match p.validate() {
        Err(Error::InvalidArgument { name: got, .. }) => assert_eq!(got, name, "{p:?}"),
        other => panic!("{p:?}: expected an error naming {name}, got {other:?}"),
    }
}

#[test]
fn every_bad_shape_is_a_typed_error() {
    let p = Problem::new(2, 8, 2, 1, 64, 8, 16, 100, 10);
    p.validate().unwrap();
    invalid(Problem { k: 0, ..p }, "k");
    invalid(Problem { k: 101, ..p }, "k");
    invalid(Problem { d: 60, m: 8, ..p }, "d");
    invalid(Problem { c: 0, ..p }, "c");
    invalid(Problem { c: 257, ..p }, "c");
    invalid(Problem { h: 7, ..p }, "h");
    invalid(Problem { n: 0, ..p }, "n");
    invalid(Problem { n: pqtopk::MAX_KEYS + 1, k: 1, ..p }, "n");
    for zero in ["b", "h", "hkv", "sq", "d", "m"] {
        let mut q = p;
        *match zero {
            "b" => &mut q.b,
            "h" => &mut q.h,
            "hkv" => &mut q.hkv,
            "sq" => &mut q.sq,
            "d" => &mut q.d,
            _ => &mut q.m,
        } = 0;
        invalid(q, zero);
    }
    let message = Problem { k: 0, ..p }.validate().unwrap_err().to_string();
    assert!(message.contains('k') && message.contains("1..=n (100)") && message.contains('0'), "{message}");
}

#[test]
fn bad_host_inputs_are_typed_errors() {
    let p = Problem::new(2, 4, 2, 1, 16, 4, 8, 50, 5).with_dtypes(DType::F32, DType::F32);
    let mut rng = support::rng("bad_host_inputs");
    let data: HostData<f32, f32> = support::draw(&mut rng, &p, Data::Random, false);
    let ok = data.inputs();
    reference::validate(&p, &ok).unwrap();
    let short = &data.queries[1..];
    assert!(matches!(
        reference::topk(&p, &HostInputs { queries: short, ..ok }),
        Err(Error::BufferLength { name: "queries", .. })
    ));
    assert!(matches!(
        reference::topk(&p, &HostInputs { codebooks: &data.codebooks[1..], ..ok }),
        Err(Error::BufferLength { name: "codebooks", .. })
    ));
    assert!(matches!(
        reference::topk(&p, &HostInputs { codes: &data.codes[1..], ..ok }),
        Err(Error::BufferLength { name: "codes", .. })
    ));
    assert!(matches!(
        reference::topk(&p, &HostInputs { n_valid: Some(&[50, 51]), ..ok }),
        Err(Error::InvalidArgument { name: "n_valid", .. })
    ));
    assert!(matches!(
        reference::topk(&p, &HostInputs { n_valid: Some(&[50]), ..ok }),
        Err(Error::BufferLength { name: "n_valid", .. })
    ));
    let mut bad_codes = data.codes.clone();
    bad_codes[7] = 8;
    bad_codes[9] = 255;
    assert_eq!(
        reference::topk(&p, &HostInputs { codes: &bad_codes, ..ok }),
        Err(Error::CodeOutOfRange {
            count: 2,
            c: 8,
            first: Some(pqtopk::CodePosition { batch: 0, kv_head: 0, key: 1, subspace: 3 })
        })
    );
    let message = reference::topk(&p, &HostInputs { codes: &bad_codes, ..ok }).unwrap_err().to_string();
    assert!(
        message.contains("2 codes are >= c = 8; the first is at batch 0, kv head 0, key 1, sub-space 3"),
        "{message}"
    );
    let f16_problem = p.with_dtypes(DType::F16, DType::F32);
    assert!(matches!(reference::topk(&f16_problem, &ok), Err(Error::DTypeMismatch { name: "queries", .. })));
}

#[test]
fn messages_name_the_real_cause() {
    let p = Problem::new(1, 3, 1usize << 59, 1, 64, 8, 16, 100, 10);
    let message = p.validate().unwrap_err().to_string();
    assert!(message.contains("hkv") && message.contains("at most h (3)"), "{message}");
    // hkv·c·d overflows: the codebooks are named, and no accessor panics on the way.
    let huge = Problem::new(1, 1, 1, 1, 1 << 59, 1, 256, 1, 1);
    assert!(matches!(huge.validate(), Err(Error::InvalidArgument { name: "codebooks", .. })), "{:?}", huge.validate());
    assert_eq!(huge.codebooks_len(), usize::MAX);
}

#[test]
fn the_reference_never_aborts_on_memory() {
    // 2^20 rows of 2^20 keys: 8 TiB of scores, which the host cannot hold; small inputs. Where
    // the kernel overcommits (the H200 machine), reserving them succeeds: this failed there.
    let p = Problem::new(1, 1 << 20, 1, 1, 1, 1, 1, 1 << 20, 1).with_dtypes(DType::F32, DType::F32);
    p.validate().unwrap();
    let (queries, codebooks, codes) =
        (vec![1.0f32; p.queries_len()], vec![1.0f32; p.codebooks_len()], vec![0u8; p.codes_len()]);
    let inputs = HostInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };
    assert!(matches!(reference::scores(&p, &inputs), Err(Error::HostMemory { .. })));
}

/// Values that break arithmetic: zero, one, powers of two around every width, the largest.
fn extreme(rng: &mut impl rand::Rng) -> usize {
    match rng.random_range(0..6) {
        0 => 0,
        1 => 1,
        2 => 1usize << rng.random_range(0..64),
        3 => usize::MAX >> rng.random_range(0..64),
        4 => rng.random_range(0..300),
        _ => rng.random::<u64>() as usize,
    }
}

/// Random and extreme problems and buffer lengths through validation, the accessors and the
/// reference: every call returns, never panics. `PQTOPK_FUZZ_CASES` sets the count (default
/// 20 000; the README's release run uses 1 000 000).
#[test]
fn no_problem_or_buffer_panics() {
    use rand::Rng;
    let cases: usize = std::env::var("PQTOPK_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut rng = support::rng("no_problem_or_buffer_panics");
    let (mut valid, mut ran) = (0, 0);
    for _ in 0..cases {
        // Half near the valid domain (each argument off it one time in ten), half extreme.
        let p = if rng.random_bool(0.5) {
            let (hkv, m) = (rng.random_range(1..4), rng.random_range(1..5));
            let (h, d, n) = (hkv * rng.random_range(1..4), m * rng.random_range(1..5), rng.random_range(1..40));
            let (b, sq, c, k) =
                (rng.random_range(1..3), rng.random_range(1..3), rng.random_range(1..20), rng.random_range(1..=n));
            let mut near = |valid: usize| if rng.random_bool(0.9) { valid } else { extreme(&mut rng) };
            Problem {
                b: near(b),
                h: near(h),
                hkv: near(hkv),
                sq: near(sq),
                d: near(d),
                m: near(m),
                c: near(c),
                n: near(n),
                k: near(k),
                ..Problem::new(1, 1, 1, 1, 1, 1, 1, 1, 1)
            }
        } else {
            let mut dim = || extreme(&mut rng);
            Problem {
                b: dim(),
                h: dim(),
                hkv: dim(),
                sq: dim(),
                d: dim(),
                m: dim(),
                c: dim(),
                n: dim(),
                k: dim(),
                ..Problem::new(1, 1, 1, 1, 1, 1, 1, 1, 1)
            }
        }
        .with_metric(if rng.random() { Metric::L2 } else { Metric::InnerProduct })
        .with_group(rng.random())
        .with_order([Order::ByScore, Order::ByIndex, Order::Unordered][rng.random_range(0..3)])
        .with_dtypes(DType::F32, DType::F32);
        let _ =
            (p.group_size(), p.out_heads(), p.rows(), p.out_len(), p.queries_len(), p.codebooks_len(), p.codes_len());
        if p.validate().is_err() {
            continue;
        }
        valid += 1;
        if p.codes_len() + p.queries_len() + p.codebooks_len() + p.rows() * p.n > 1 << 16 {
            continue;
        }
        // Lengths exact or off by one, codes sometimes out of range, lengths sometimes too long.
        let mut len = |exact: usize| if rng.random_bool(0.8) { exact } else { exact + rng.random_range(0..2) * 2 - 1 };
        let (q_len, cb_len, codes_len) = (len(p.queries_len()), len(p.codebooks_len()), len(p.codes_len()));
        let queries: Vec<f32> = (0..q_len).map(|_| rng.random_range(-1.0..1.0)).collect();
        let codebooks: Vec<f32> = (0..cb_len).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut codes: Vec<u8> = (0..codes_len).map(|_| rng.random_range(0..p.c) as u8).collect();
        if !codes.is_empty() && rng.random_bool(0.1) {
            let at = rng.random_range(0..codes.len());
            codes[at] = rng.random_range(p.c.min(255)..=255) as u8;
        }
        let (extra_batch, past_n) = (rng.random_bool(0.1) as usize, rng.random_bool(0.1) as u32);
        let n_valid: Vec<u32> = (0..p.b + extra_batch).map(|_| rng.random_range(0..=p.n as u32 + past_n)).collect();
        let inputs = HostInputs {
            queries: &queries,
            codebooks: &codebooks,
            codes: &codes,
            n_valid: rng.random::<bool>().then_some(&n_valid[..]),
        };
        if let Ok(result) = reference::topk(&p, &inputs) {
            assert_eq!(result.indices.len(), p.out_len());
            ran += 1;
        }
    }
    println!("no_problem_or_buffer_panics: {cases} problems, {valid} valid, {ran} run through the reference");
}

#[cfg(feature = "cuda")]
#[test]
fn missing_device_is_a_typed_error() {
    match Gpu::new(0) {
        Ok(gpu) => println!("device present: {:?}", gpu.name()),
        Err(Error::NoDevice(reason)) => println!("no device, as expected here: {reason}"),
        Err(e) => panic!("expected a device or Error::NoDevice, got {e}"),
    }
    assert!(matches!(Gpu::new(4096), Err(Error::NoDevice(_))));
}

fn small_problem() -> impl Strategy<Value = (Problem, u64)> {
    (
        1usize..3,
        1usize..4,
        1usize..3,
        1usize..3,
        prop::sample::select(vec![(4usize, 1usize), (4, 2), (8, 4), (6, 3)]),
        1usize..9,
        1usize..40,
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        any::<u64>(),
    )
        .prop_flat_map(|(b, g, hkv, sq, (d, m), c, n, group, l2, order, seed)| {
            (1..=n).prop_map(move |k| {
                let p = Problem::new(b, g * hkv, hkv, sq, d, m, c, n, k)
                    .with_dtypes(DType::F32, DType::F32)
                    .with_group(group)
                    .with_metric(if l2 { Metric::L2 } else { Metric::InnerProduct })
                    .with_order(support::ORDERS[order]);
                (p, seed)
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reference_is_optimal_on_random_problems((p, seed) in small_problem(), ragged in any::<bool>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let data: HostData<f32, f32> = support::draw(&mut rng, &p, Data::Random, ragged);
        assert_optimal(&p, &data);
    }

    #[test]
    fn index_order_is_score_order_sorted((p, seed) in small_problem()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let data: HostData<f32, f32> = support::draw(&mut rng, &p, Data::Ties, false);
        let by_score = reference::topk(&p.with_order(Order::ByScore), &data.inputs()).unwrap();
        let by_index = reference::topk(&p.with_order(Order::ByIndex), &data.inputs()).unwrap();
        for (a, b) in by_score.indices.chunks(p.k).zip(by_index.indices.chunks(p.k)) {
            let mut sorted = a.to_vec();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, b.to_vec());
        }
    }

    #[test]
    fn group_scores_are_sums_over_the_group((p, seed) in small_problem()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let p = p.with_group(false);
        let data: HostData<f32, f32> = support::draw(&mut rng, &p, Data::Random, false);
        let each = reference::scores(&p, &data.inputs()).unwrap();
        let grouped = reference::scores(&p.with_group(true), &data.inputs()).unwrap();
        let g = p.group_size();
        for b in 0..p.b {
            for kv in 0..p.hkv {
                for s in 0..p.sq {
                    for key in 0..p.n {
                        let sum: f64 = (0..g).map(|i| each[(((b * p.h + kv * g + i) * p.sq + s) * p.n) + key]).sum();
                        let got = grouped[(((b * p.hkv + kv) * p.sq + s) * p.n) + key];
                        prop_assert!((sum - got).abs() <= 1e-9 * (1.0 + sum.abs()));
                    }
                }
            }
        }
    }
}

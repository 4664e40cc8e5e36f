//! Synthetic data families, shared by the tests (`tests/support/mod.rs`) and the benchmark
//! (`benches/pqtopk.rs` includes this file by path), so both draw exactly the same inputs.
//!
//! Each family is a deterministic function of the random generator's state: queries
//! `[b, h, sq, d]`, codebooks `[hkv, m, c, d/m]` and codes `[b, hkv, n, m]`.
//! Depends only on `pqtopk` and `rand` 0.8 (what the bench has too).
#![allow(dead_code)]

use pqtopk::{Element, Metric, Problem};
use rand::Rng;
use rand::seq::SliceRandom;

/// A synthetic data family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Queries and codebooks uniform in [-1, 1), codes uniform in `0..c`.
    Uniform,
    /// LLM-like: a few outlier channels (queries and codebooks ×10–20) and Zipf-distributed codes
    /// (exponent 1.1; which centroid is popular is a random permutation per sub-space).
    Llm,
    /// One outlier centroid per sub-space (entries of magnitude 25–50) that about 1 key in 10000 uses: the
    /// scores of nearly all keys crowd into a small part of the range the lookup tables allow.
    Narrow,
    /// Every key of a (batch, kv head) has the same code per sub-space: all scores of a row tie.
    Equal,
    /// Keys sorted by their score for the kv head's first query row, ascending with the index.
    Sorted,
}

impl Family {
    pub const ALL: [Family; 5] = [Family::Uniform, Family::Llm, Family::Narrow, Family::Equal, Family::Sorted];

    pub fn name(self) -> &'static str {
        match self {
            Family::Uniform => "uniform",
            Family::Llm => "llm",
            Family::Narrow => "narrow",
            Family::Equal => "equal",
            Family::Sorted => "sorted",
        }
    }

    pub fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Channels of `Llm` scaled as outliers (at most `d`).
pub const LLM_OUTLIER_CHANNELS: usize = 4;
/// Zipf exponent of `Llm`'s codes.
pub const LLM_ZIPF_EXPONENT: f64 = 1.1;
/// Scale of `Narrow`'s outlier centroid (its entries have magnitudes in [scale / 2, scale)).
pub const NARROW_SCALE: f32 = 50.0;
/// Probability that a key of `Narrow` uses an outlier centroid (in one random sub-space).
pub const NARROW_KEY_RATE: f64 = 1e-4;

/// The inputs of one problem.
pub struct Generated<Q, C> {
    pub queries: Vec<Q>,
    pub codebooks: Vec<C>,
    pub codes: Vec<u8>,
}

/// Draws the inputs of `p` from `family`.
pub fn generate<Q: Element, C: Element, R: Rng>(rng: &mut R, p: &Problem, family: Family) -> Generated<Q, C> {
    let mut queries: Vec<f32> = (0..p.queries_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut codebooks: Vec<f32> = (0..p.codebooks_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ds = p.d / p.m;
    let codes = match family {
        Family::Uniform | Family::Sorted => (0..p.codes_len()).map(|_| rng.random_range(0..p.c) as u8).collect(),
        Family::Llm => {
            let mut channels: Vec<usize> = (0..p.d).collect();
            channels.shuffle(rng);
            for &t in &channels[..LLM_OUTLIER_CHANNELS.min(p.d)] {
                let (qs, cs) = (rng.random_range(10.0..20.0f32), rng.random_range(10.0..20.0f32));
                for row in queries.chunks_mut(p.d) {
                    row[t] *= qs;
                }
                // channel t is element t % ds of sub-space t / ds
                for kv in 0..p.hkv {
                    for centroid in 0..p.c {
                        codebooks[((kv * p.m + t / ds) * p.c + centroid) * ds + t % ds] *= cs;
                    }
                }
            }
            // Zipf over ranks 1..=c: cumulative weights, then a popularity permutation per
            // (kv head, sub-space).
            let mut cdf: Vec<f64> = (1..=p.c).map(|r| (r as f64).powf(-LLM_ZIPF_EXPONENT)).collect();
            for i in 1..cdf.len() {
                cdf[i] += cdf[i - 1];
            }
            let total = cdf[p.c - 1];
            let perms: Vec<Vec<u8>> = (0..p.hkv * p.m)
                .map(|_| {
                    let mut perm: Vec<u8> = (0..p.c).map(|x| x as u8).collect();
                    perm.shuffle(rng);
                    perm
                })
                .collect();
            let mut codes = vec![0u8; p.codes_len()];
            for (key, key_codes) in codes.chunks_mut(p.m).enumerate() {
                let kv = (key / p.n) % p.hkv;
                for (j, code) in key_codes.iter_mut().enumerate() {
                    let u = rng.random::<f64>() * total;
                    let rank = cdf.partition_point(|&w| w <= u).min(p.c - 1);
                    *code = perms[kv * p.m + j][rank];
                }
            }
            codes
        }
        Family::Narrow => {
            // Outlier centroid per (kv head, sub-space); the other keys avoid it.
            let outliers: Vec<usize> = (0..p.hkv * p.m).map(|_| rng.random_range(0..p.c)).collect();
            for (s, &o) in outliers.iter().enumerate() {
                // entries of magnitude [0.5, 1) × scale, random signs: a large norm, always
                for x in &mut codebooks[(s * p.c + o) * ds..][..ds] {
                    *x = x.signum() * (0.5 + 0.5 * x.abs()) * NARROW_SCALE;
                }
            }
            let mut codes = vec![0u8; p.codes_len()];
            for (key, key_codes) in codes.chunks_mut(p.m).enumerate() {
                let kv = (key / p.n) % p.hkv;
                for (j, code) in key_codes.iter_mut().enumerate() {
                    let o = outliers[kv * p.m + j];
                    *code = if p.c == 1 {
                        0
                    } else {
                        let x = rng.random_range(0..p.c - 1);
                        (x + usize::from(x >= o)) as u8
                    };
                }
                if p.c > 1 && rng.random_bool(NARROW_KEY_RATE) {
                    let j = rng.random_range(0..p.m);
                    key_codes[j] = outliers[kv * p.m + j] as u8;
                }
            }
            codes
        }
        Family::Equal => {
            let mut codes = vec![0u8; p.codes_len()];
            for head in codes.chunks_mut(p.n * p.m) {
                let shared: Vec<u8> = (0..p.m).map(|_| rng.random_range(0..p.c) as u8).collect();
                for key_codes in head.chunks_mut(p.m) {
                    key_codes.copy_from_slice(&shared);
                }
            }
            codes
        }
    };
    let queries: Vec<Q> = queries.into_iter().map(Q::from_f32).collect();
    let codebooks: Vec<C> = codebooks.into_iter().map(C::from_f32).collect();
    let mut out = Generated { queries, codebooks, codes };
    if family == Family::Sorted {
        sort_keys_by_first_row(p, &mut out);
    }
    out
}

/// Reorders the keys of every (batch, kv head) by their f64 score (on the converted inputs) for
/// the kv head's first query row (query head `kv * h / hkv`, position 0), ascending; ties keep
/// their order.
fn sort_keys_by_first_row<Q: Element, C: Element>(p: &Problem, data: &mut Generated<Q, C>) {
    let (g, ds) = (p.h / p.hkv, p.d / p.m);
    let mut scored: Vec<(f64, usize)> = Vec::with_capacity(p.n);
    let mut sorted = vec![0u8; p.n * p.m];
    for b in 0..p.b {
        for kv in 0..p.hkv {
            let q = &data.queries[((b * p.h + kv * g) * p.sq) * p.d..][..p.d];
            // lookup table [m][c]
            let table: Vec<f64> = (0..p.m * p.c)
                .map(|jc| {
                    let (j, centroid) = (jc / p.c, jc % p.c);
                    let entries = &data.codebooks[((kv * p.m + j) * p.c + centroid) * ds..][..ds];
                    let q = &q[j * ds..][..ds];
                    q.iter()
                        .zip(entries)
                        .map(|(&a, &e)| match p.metric {
                            Metric::InnerProduct => a.to_f64() * e.to_f64(),
                            Metric::L2 => (a.to_f64() - e.to_f64()).powi(2),
                        })
                        .sum()
                })
                .collect();
            let head = &mut data.codes[(b * p.hkv + kv) * p.n * p.m..][..p.n * p.m];
            scored.clear();
            scored.extend(head.chunks(p.m).enumerate().map(|(key, codes)| {
                let s: f64 = codes.iter().enumerate().map(|(j, &code)| table[j * p.c + code as usize]).sum();
                (s, key)
            }));
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (to, &(_, from)) in scored.iter().enumerate() {
                sorted[to * p.m..][..p.m].copy_from_slice(&head[from * p.m..][..p.m]);
            }
            head.copy_from_slice(&sorted);
        }
    }
}

//! CPU tests of the PQCache indexer's contract (`pqtopk::index`) on its reference: training,
//! encoding and appending, and every bad input as a typed error.

mod support;

use pqtopk::reference::{self, Training};
use pqtopk::{DType, Error, IndexShape, TrainOptions};
use rand::Rng;
use support::clustered_keys;

fn train(s: &IndexShape, keys: &[f32], n_valid: Option<&[u32]>, options: &TrainOptions) -> Training<f32> {
    reference::train(s, keys, n_valid, options).unwrap()
}

#[test]
fn training_finds_separated_clusters_and_is_deterministic() {
    let mut rng = support::rng("training_finds_separated_clusters");
    // Two clusters per sub-space and 16 sampled centroids: every cluster gets one with
    // probability 1 − 2⁻¹⁵ (sampled initialization cannot leave a local optimum that misses a
    // cluster, so the test does not ask it to).
    let s = IndexShape::new(2, 2, 300, 8, 4, 16);
    let keys = clustered_keys(&mut rng, &s, 2);
    let options = TrainOptions { iterations: 25, seed: rng.random(), tolerance: 0.0 };
    let first = train(&s, &keys, None, &options);
    // Noise of ±0.01 per element: each key's squared distance to its center is at most 2·1e-4.
    let keys_and_subspaces = (s.b * s.hkv * s.n * s.m) as f64;
    assert!(first.inertia <= keys_and_subspaces * 2e-4, "inertia {}", first.inertia);
    let again = train(&s, &keys, None, &options);
    assert_eq!(
        first.codebooks.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        again.codebooks.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert!(first.iterations.iter().all(|&i| (1..=25).contains(&i)));
}

#[test]
fn more_iterations_never_raise_the_objective() {
    let mut rng = support::rng("more_iterations_never_raise_the_objective");
    let s = IndexShape::new(1, 2, 500, 16, 2, 16);
    let keys: Vec<f32> = (0..s.keys_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let seed = rng.random();
    let mut last = f64::INFINITY;
    for iterations in [1, 2, 4, 8] {
        let t = train(&s, &keys, None, &TrainOptions { iterations, seed, tolerance: 0.0 });
        assert!(t.inertia <= last * (1.0 + 1e-5), "{iterations} iterations: {} > {last}", t.inertia);
        assert_eq!(t.inertia, reference::objective(&s, &keys, None, &t.codebooks).unwrap());
        last = t.inertia;
    }
}

#[test]
fn empty_clusters_are_reseeded_and_only_valid_keys_train() {
    let mut rng = support::rng("empty_clusters_are_reseeded");
    // Two distinct sub-vectors repeated: most of the 8 sampled centroids duplicate one another,
    // and the duplicates with larger indices win no key.
    let s = IndexShape::new(2, 1, 64, 4, 1, 8);
    let mut keys: Vec<f32> =
        (0..s.keys_len() / 4).flat_map(|i| if i % 2 == 0 { [1.0; 4] } else { [-1.0; 4] }).collect();
    // Keys past the valid lengths are huge: were they trained on, the inertia would show it.
    let n_valid = [40u32, 9];
    for bi in 0..2 {
        for key in n_valid[bi] as usize..64 {
            keys[(bi * 64 + key) * 4..][..4].copy_from_slice(&[1e6; 4]);
        }
    }
    let t = train(&s, &keys, Some(&n_valid), &TrainOptions { iterations: 5, seed: rng.random(), tolerance: 0.0 });
    assert!(t.codebooks.iter().all(|x| x.is_finite() && x.abs() <= 1.0), "{:?}", t.codebooks);
    assert_eq!(t.inertia, 0.0);
}

#[test]
fn encode_takes_the_nearest_centroid_and_the_smaller_index_on_ties() {
    let mut rng = support::rng("encode_takes_the_nearest_centroid");
    let s = IndexShape::new(2, 2, 50, 6, 3, 5);
    let keys: Vec<f32> = (0..s.keys_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut codebooks: Vec<f32> = (0..s.codebooks_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    // Centroid 3 of every (kv head, sub-space) duplicates centroid 1: never chosen.
    let ds = s.d / s.m;
    for block in 0..s.hkv * s.m {
        let base = block * s.c * ds;
        let one: Vec<f32> = codebooks[base + ds..][..ds].to_vec();
        codebooks[base + 3 * ds..][..ds].copy_from_slice(&one);
    }
    let codes = reference::encode(&s, &keys, &codebooks).unwrap();
    assert_eq!(codes.len(), s.codes_len());
    for (at, &code) in codes.iter().enumerate() {
        let (j, kv) = (at % s.m, at / s.m / s.n % s.hkv);
        let x = &keys[at / s.m * s.d + j * ds..][..ds];
        let distance = |c: usize| -> f64 {
            let centroid = &codebooks[((kv * s.m + j) * s.c + c) * ds..][..ds];
            centroid.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum()
        };
        assert_ne!(code, 3, "a duplicate of centroid 1 won");
        assert!((0..s.c).all(|c| distance(code as usize) <= distance(c)), "key slot {at}: code {code}");
    }
}

#[test]
fn append_writes_at_each_length_and_refuses_a_full_cache() {
    let mut rng = support::rng("append_writes_at_each_length");
    let s = IndexShape::new(3, 2, 10, 4, 2, 6);
    let codebooks: Vec<f32> = (0..s.codebooks_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = 2;
    let new_keys: Vec<f32> = (0..s.b * s.hkv * t * s.d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut codes = vec![0xEE; s.codes_len()];
    let mut lengths = [0u32, 5, 8];
    reference::append(&s, &new_keys, t, &codebooks, &mut codes, &mut lengths).unwrap();
    assert_eq!(lengths, [2, 7, 10]);
    // The same keys encoded as a cache of t keys per entry.
    let alone = IndexShape { n: t, ..s };
    let expected = reference::encode(&alone, &new_keys, &codebooks).unwrap();
    for bi in 0..s.b {
        for kv in 0..s.hkv {
            let start = [0, 5, 8][bi];
            for key in 0..s.n {
                let got = &codes[((bi * s.hkv + kv) * s.n + key) * s.m..][..s.m];
                if (start..start + t).contains(&key) {
                    assert_eq!(got, &expected[((bi * s.hkv + kv) * t + key - start) * s.m..][..s.m]);
                } else {
                    assert_eq!(got, &[0xEE; 2], "entry {bi} key {key} was touched");
                }
            }
        }
    }
    let before = codes.clone();
    assert_eq!(
        reference::append(&s, &new_keys, t, &codebooks, &mut codes, &mut lengths),
        Err(Error::CacheFull { batch: 2, length: 10, t: 2, n: 10 })
    );
    assert_eq!((codes, lengths), (before, [2, 7, 10]), "a refused append writes nothing");
}

#[test]
fn bad_indexer_inputs_are_typed_errors() {
    let s = IndexShape::new(1, 1, 8, 4, 2, 4);
    let keys = vec![0.5f32; s.keys_len()];
    let options = TrainOptions::default();
    let named = |r: Result<Training<f32>, Error>, name: &str| match r {
        Err(Error::InvalidArgument { name: got, .. }) | Err(Error::BufferLength { name: got, .. }) => {
            assert_eq!(got, name)
        }
        other => panic!("expected an error naming {name}, got {other:?}"),
    };
    named(reference::train(&IndexShape { d: 5, ..s }, &[0.5f32; 40], None, &options), "d");
    named(reference::train(&IndexShape { c: 257, ..s }, &keys, None, &options), "c");
    named(reference::train(&IndexShape { c: 9, ..s }, &keys, None, &options), "c");
    named(reference::train(&s, &keys, Some(&[0]), &options), "c");
    named(reference::train(&s, &keys, Some(&[9]), &options), "n_valid");
    named(reference::train(&s, &keys[1..], None, &options), "keys");
    named(reference::train(&s, &keys, None, &TrainOptions { iterations: 0, ..options }), "iterations");
    named(reference::train(&s, &keys, None, &TrainOptions { tolerance: f64::NAN, ..options }), "tolerance");
    assert!(matches!(
        reference::train::<f32, f32>(&s.with_dtypes(DType::F16, DType::F32), &keys, None, &options),
        Err(Error::DTypeMismatch { name: "keys", .. })
    ));
    assert!(matches!(reference::encode(&s, &keys, &[0.0f32; 3]), Err(Error::BufferLength { name: "codebooks", .. })));
    let codebooks = vec![0.0f32; s.codebooks_len()];
    let (mut codes, mut lengths) = (vec![0u8; s.codes_len()], [0u32]);
    assert!(matches!(
        reference::append(&s, &keys[..4], 0, &codebooks, &mut codes, &mut lengths),
        Err(Error::InvalidArgument { name: "t", .. })
    ));
    assert!(matches!(
        reference::append(&s, &keys[..3], 1, &codebooks, &mut codes, &mut lengths),
        Err(Error::BufferLength { name: "new_keys", .. })
    ));
}

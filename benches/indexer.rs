//! The indexer's benchmarks (`--indexer`): training (10 iterations, no early stop) and encoding
//! of 32K keys × 8 kv heads (d = 128; m = 2, c = 64 and m = 16, c = 256), and one decode step of
//! append (one key per kv head) + top-k, on the stream and as a graph replay. Timed as the top-k
//! table is (L2 flushed before each call, CUDA events, warm-up, median); the peer is
//! `benches/peers/kmeans_torch.py`, run in the same device call.

use super::{Graph, L2Flush, event_times, median};
use cust::memory::DeviceBuffer;
use cust::stream::Stream;
use pqtopk::half::f16;
use pqtopk::{
    AppendLengths, Error, Gpu, IndexShape, Inputs, Outputs, Problem, TrainOptions, ValidLengths, train_workspace_len,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const WARMUP: usize = 3;
const TIMED: usize = 15;

/// The keys of the indexer benchmarks: b = 1, 8 kv heads, 32768 keys of 128 elements.
const KEYS: (usize, usize, usize, usize) = (1, 8, 32768, 128);

/// Median event time of `record` after a warm-up, the L2 flushed before each call.
fn time(
    stream: &Stream,
    flush: &mut L2Flush,
    mut record: impl FnMut() -> Result<(), Error>,
) -> Result<Duration, Error> {
    let times = event_times(stream, flush, WARMUP + TIMED, |_| record())?;
    Ok(median(times[WARMUP..].to_vec()))
}

/// Keys around 64 random centers per kv head with unit noise: k-means has structure to find.
fn keys(rng: &mut StdRng, shape: &IndexShape) -> Vec<f16> {
    let centers: Vec<f32> = (0..shape.hkv * 64 * shape.d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mut keys = Vec::with_capacity(shape.keys_len());
    for _ in 0..shape.b {
        for kv in 0..shape.hkv {
            for _ in 0..shape.n {
                let center = &centers[(kv * 64 + rng.random_range(0..64)) * shape.d..][..shape.d];
                keys.extend(center.iter().map(|&x| f16::from_f32(x + rng.random_range(-1.0..1.0))));
            }
        }
    }
    keys
}

pub fn indexer(gpu: &Gpu, bandwidth: f64, json_out: Option<&str>) -> Result<(), Error> {
    let stream = Stream::new(cust::stream::StreamFlags::NON_BLOCKING, None)?;
    let mut flush = L2Flush::new(true)?;
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let mut rows = vec![];
    let (b, hkv, n, d) = KEYS;
    for (m, c) in [(2, 64), (16, 256)] {
        let shape = IndexShape::new(b, hkv, n, d, m, c).with_dtypes(pqtopk::DType::F16, pqtopk::DType::F16);
        let d_keys = DeviceBuffer::from_slice(&keys(&mut rng, &shape))?;
        let mut codebooks = DeviceBuffer::from_slice(&vec![f16::ZERO; shape.codebooks_len()])?;
        let mut workspace = DeviceBuffer::<u8>::zeroed(train_workspace_len(&shape)?)?;
        let options = TrainOptions { iterations: 10, seed: 7, tolerance: 0.0 };
        let train = time(&stream, &mut flush, || {
            gpu.train_into(&shape, &options, &stream, &d_keys, None, &mut codebooks, &mut workspace)
        })?;
        let mut codes = DeviceBuffer::<u8>::zeroed(shape.codes_len())?;
        let encode = time(&stream, &mut flush, || gpu.encode_into(&shape, &stream, &d_keys, &codebooks, &mut codes))?;
        let encode_floor = (shape.keys_len() * 2 + shape.codes_len()) as f64 / bandwidth;
        // A decode step: 32 query heads over the cache, k = 2048, the cache's lengths on the
        // device (advanced by the append, read by the top-k), as a decode loop keeps them.
        let problem = Problem::new(b, 32, hkv, 1, d, m, c, n, 2048);
        let plan = gpu.plan(&problem)?;
        let queries: Vec<f16> =
            (0..problem.queries_len()).map(|_| f16::from_f32(rng.random_range(-1.0..1.0))).collect();
        let d_queries = DeviceBuffer::from_slice(&queries)?;
        let new_keys: Vec<f16> = (0..b * hkv * d).map(|_| f16::from_f32(rng.random_range(-1.0..1.0))).collect();
        let d_new = DeviceBuffer::from_slice(&new_keys)?;
        let mut lengths = DeviceBuffer::from_slice(&vec![(n / 2) as u32; b])?;
        let mut indices = DeviceBuffer::<u32>::zeroed(problem.out_len())?;
        let mut topk_workspace = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes())?;
        let mut step = |codes: &mut DeviceBuffer<u8>, lengths: &mut DeviceBuffer<u32>| -> Result<(), Error> {
            gpu.append_into(&shape, &stream, &d_new, &codebooks, codes, AppendLengths::Device(lengths))?;
            let inputs = Inputs {
                queries: &d_queries,
                codebooks: &codebooks,
                codes,
                n_valid: Some(ValidLengths::Device(lengths)),
            };
            let mut outputs = Outputs { indices: &mut indices, scores: None };
            gpu.topk_into(&plan, &stream, &inputs, &mut outputs, &mut topk_workspace)
        };
        let step_stream = time(&stream, &mut flush, || step(&mut codes, &mut lengths))?;
        stream.synchronize()?;
        let graph = Graph::capture(&stream, || step(&mut codes, &mut lengths))?;
        let step_graph = time(&stream, &mut flush, || {
            graph.launch(&stream);
            Ok(())
        })?;
        let name = format!("m{m}_c{c}");
        let us = |t: Duration| t.as_secs_f64() * 1e6;
        println!(
            "indexer {name}: train 10 it {:.1} µs, encode {:.1} µs (byte floor {:.1} µs), append + top-k step {:.1} µs stream, {:.1} µs graph",
            us(train),
            us(encode),
            encode_floor * 1e6,
            us(step_stream),
            us(step_graph)
        );
        rows.push(serde_json::json!({
            "name": name, "b": b, "hkv": hkv, "n": n, "d": d, "m": m, "c": c, "iterations": 10,
            "train_us": us(train), "encode_us": us(encode), "encode_floor_us": encode_floor * 1e6,
            "step_stream_us": us(step_stream), "step_graph_us": us(step_graph),
        }));
    }
    if let Some(path) = json_out {
        let doc = serde_json::json!({
            "device": gpu.name()?,
            "timing": format!("CUDA events, median of {TIMED} after {WARMUP} warm-up, L2 flushed before each call"),
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    Ok(())
}

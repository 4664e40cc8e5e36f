//! The demo: synthetic PQ-compressed keys, one decode step of PQCache-style sparse attention,
//! then the whole PQCache loop on a small cache: prefill keys → train codebooks → encode → for
//! each decode step, append the new key's codes and select the top-k.
//!
//! Runs the fused top-k on the GPU when there is one (and checks it against the CPU reference),
//! otherwise on the CPU reference, and says which it used. Training, encoding and appending run
//! on pqtopk's CPU reference (their GPU kernels are issue #12's next step).
//!
//! `cargo xtask demo [b h hkv sq n d m c k]` (defaults: the decode shape 1 32 8 1 31872 128 16 256 2048)

use pqtopk::cust::memory::{CopyDestination, DeviceBuffer};
use pqtopk::cust::stream::{Stream, StreamFlags};
use pqtopk::half::f16;
use pqtopk::reference::{self, HostInputs};
use pqtopk::{DType, Error, Gpu, IndexShape, Inputs, Order, Problem, TrainOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let shape = if args.len() == 9 { args } else { vec![1, 32, 8, 1, 31872, 128, 16, 256, 2048] };
    let [b, h, hkv, sq, n, d, m, c, k] = shape[..] else { unreachable!() };
    let problem = Problem::new(b, h, hkv, sq, d, m, c, n, k);
    problem.validate()?;
    println!(
        "pqtopk demo: queries [{b},{h},{sq},{d}] f16, codebooks [{hkv},{m},{c},{}] f16, codes [{b},{hkv},{n},{m}] u8, top-{k} by inner product",
        d / m
    );

    // Deterministic synthetic data (a small LCG: the demo needs no RNG crate).
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let queries: Vec<f16> =
        (0..problem.queries_len()).map(|_| f16::from_f32(next() as f32 / 2f32.powi(30) - 1.0)).collect();
    let codebooks: Vec<f16> =
        (0..problem.codebooks_len()).map(|_| f16::from_f32(next() as f32 / 2f32.powi(30) - 1.0)).collect();
    let codes: Vec<u8> = (0..problem.codes_len()).map(|_| (next() % c as u32) as u8).collect();
    let host = HostInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };

    let (indices, scores, device) = match Gpu::new(0) {
        Ok(gpu) => {
            let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
            let (q, cb, cd) = (
                DeviceBuffer::from_slice(&queries)?,
                DeviceBuffer::from_slice(&codebooks)?,
                DeviceBuffer::from_slice(&codes)?,
            );
            let plan = gpu.plan(&problem)?;
            let mut out_idx = DeviceBuffer::<u32>::zeroed(problem.out_len())?;
            let mut out_scores = DeviceBuffer::<f32>::zeroed(problem.out_len())?;
            let mut workspace = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes())?;
            let inputs = Inputs { queries: &q, codebooks: &cb, codes: &cd, n_valid: None };
            let mut run = || -> Result<(), Error> {
                let mut outputs = pqtopk::Outputs { indices: &mut out_idx, scores: Some(&mut out_scores) };
                gpu.topk_into(&plan, &stream, &inputs, &mut outputs, &mut workspace)?;
                Ok(stream.synchronize()?)
            };
            run()?;
            let start = Instant::now();
            let reps = 20;
            for _ in 0..reps {
                run()?;
            }
            let per_call = start.elapsed() / reps;
            let mut indices = vec![0u32; problem.out_len()];
            let mut scores = vec![0f32; problem.out_len()];
            out_idx.copy_to(&mut indices[..])?;
            out_scores.copy_to(&mut scores[..])?;
            let name = gpu.name()?;
            println!(
                "ran on the GPU: {name}, {per_call:?} per call including host synchronization (see `cargo bench` for kernel timings)"
            );
            let scores = scores.into_iter().map(f64::from).collect();
            (indices, scores, Some(name))
        }
        Err(Error::NoDevice(reason)) => {
            println!("no GPU ({reason}): running the CPU reference (f64) instead");
            let start = Instant::now();
            let result = reference::topk(&problem, &host)?;
            println!("CPU reference took {:?}", start.elapsed());
            (result.indices, result.scores, None)
        }
        Err(e) => return Err(e.into()),
    };

    let show = k.min(5);
    for row in 0..problem.rows().min(2) {
        let picks: Vec<String> =
            (0..show).map(|i| format!("{}:{:.3}", indices[row * k + i], scores[row * k + i])).collect();
        println!("row {row}: best {show} of {k} (key:score) {}", picks.join("  "));
    }
    if device.is_some() {
        let want = reference::topk(&problem, &host)?;
        let same = (0..problem.rows()).filter(|&r| {
            let mut got: Vec<u32> = indices[r * k..][..k].to_vec();
            let mut exp: Vec<u32> = want.indices[r * k..][..k].to_vec();
            got.sort_unstable();
            exp.sort_unstable();
            got == exp
        });
        println!(
            "GPU result vs CPU reference: {} of {} rows select the identical key set",
            same.count(),
            problem.rows()
        );
    }
    pqcache_loop(Gpu::new(0).ok().as_ref(), &mut next)
}

/// The PQCache loop on a small cache (b = 1, 8 query heads over 2 kv heads, d = 64, m = 8,
/// c = 64, room for 4096 keys): 4000 prefill keys train the codebooks and are encoded; each of
/// 8 decode steps appends one key per kv head and selects each query head's top 64 in index
/// order, as a sparse-attention gather wants them.
fn pqcache_loop(gpu: Option<&Gpu>, next: &mut impl FnMut() -> u32) -> Result<(), Box<dyn std::error::Error>> {
    let (b, h, hkv, d, m, c, n, prefill, k, steps) = (1, 8, 2, 64, 8, 64, 4096, 4000, 64, 8);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| next() as f32 / 2f32.powi(30) - 1.0).collect() };
    let shape = IndexShape::new(b, hkv, n, d, m, c);
    // Prefill: the keys fill the first `prefill` slots of each entry; train on them and encode.
    let mut keys = vec![0f32; shape.keys_len()];
    for (slot, key) in keys.chunks_mut(d).enumerate() {
        if slot % n < prefill {
            key.copy_from_slice(&random(d));
        }
    }
    let lengths = [prefill as u32];
    let start = Instant::now();
    let training = reference::train::<f32, f32>(&shape, &keys, Some(&lengths), &TrainOptions::default())?;
    let mut codes = reference::encode(&shape, &keys, &training.codebooks)?;
    println!(
        "PQCache loop: trained {hkv}×{m} codebooks of {c} centroids on {prefill} keys per kv head \
         ({} iterations, inertia {:.1}) and encoded them in {:?} (CPU reference)",
        training.iterations.iter().max().unwrap_or(&0),
        training.inertia,
        start.elapsed()
    );
    let problem =
        Problem::new(b, h, hkv, 1, d, m, c, n, k).with_dtypes(DType::F32, DType::F32).with_order(Order::ByIndex);
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None).ok();
    let mut lengths = lengths;
    for step in 0..steps {
        reference::append(&shape, &random(b * hkv * d), 1, &training.codebooks, &mut codes, &mut lengths)?;
        let queries = random(problem.queries_len());
        let host =
            HostInputs { queries: &queries, codebooks: &training.codebooks, codes: &codes, n_valid: Some(&lengths) };
        let indices = match (gpu, &stream) {
            (Some(gpu), Some(stream)) => {
                let (queries, codebooks, codes) = (
                    DeviceBuffer::from_slice(&queries)?,
                    DeviceBuffer::from_slice(&training.codebooks)?,
                    DeviceBuffer::from_slice(&codes)?,
                );
                let n_valid = Some(pqtopk::ValidLengths::Host(&lengths));
                let inputs = Inputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid };
                let buffers = gpu.topk(&problem, stream, &inputs, false)?;
                stream.synchronize()?;
                let mut indices = vec![0u32; problem.out_len()];
                buffers.indices.copy_to(&mut indices[..])?;
                indices
            }
            _ => reference::topk(&problem, &host)?.indices,
        };
        println!(
            "step {step}: {} keys per kv head; head 0 attends to keys {:?} … {:?}",
            lengths[0],
            &indices[..3],
            &indices[k - 2..k]
        );
    }
    Ok(())
}

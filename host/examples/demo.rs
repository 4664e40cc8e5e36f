//! The demo: synthetic PQ-compressed keys, one decode step of PQCache-style sparse attention,
//! then the whole PQCache loop on a small cache: prefill keys → train codebooks → encode → for
//! each decode step, append the new key's codes and select the top-k.
//!
//! Runs on the GPU when there is one (and checks it against the CPU reference), otherwise on the
//! CPU reference, and says which it used. On the GPU the whole loop stays there: training,
//! encoding, each step's append (lengths advanced on the device) and top-k.
//!
//! `cargo xtask demo [b h hkv sq n d m c k]` (defaults: the decode shape 1 32 8 1 31872 128 16 256 2048)

use pqtopk::cust::memory::{CopyDestination, DeviceBuffer};
use pqtopk::cust::stream::{Stream, StreamFlags};
use pqtopk::half::f16;
use pqtopk::reference::{self, HostInputs};
use pqtopk::{AppendLengths, DType, Error, Gpu, IndexShape, Inputs, Order, Problem, TrainOptions};
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
    let options = TrainOptions::default();
    let problem =
        Problem::new(b, h, hkv, 1, d, m, c, n, k).with_dtypes(DType::F32, DType::F32).with_order(Order::ByIndex);
    let reference_training = reference::train::<f32, f32>(&shape, &keys, Some(&lengths), &options)?;
    match gpu {
        Some(gpu) => {
            let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
            let d_keys = DeviceBuffer::from_slice(&keys)?;
            let mut d_lengths = DeviceBuffer::from_slice(&lengths)?;
            let mut d_codebooks = DeviceBuffer::from_slice(&vec![0f32; shape.codebooks_len()])?;
            let mut workspace = DeviceBuffer::from_slice(&vec![0u8; pqtopk::train_workspace_len(&shape)?])?;
            let mut d_codes = DeviceBuffer::from_slice(&vec![0u8; shape.codes_len()])?;
            let start = Instant::now();
            gpu.train_into(&shape, &options, &stream, &d_keys, Some(&d_lengths), &mut d_codebooks, &mut workspace)?;
            gpu.encode_into(&shape, &stream, &d_keys, &d_codebooks, &mut d_codes)?;
            stream.synchronize()?;
            let elapsed = start.elapsed();
            let mut codebooks = vec![0f32; shape.codebooks_len()];
            d_codebooks.copy_to(&mut codebooks[..])?;
            let objective = reference::objective(&shape, &keys, Some(&lengths), &codebooks)?;
            println!(
                "PQCache loop: trained {hkv}×{m} codebooks of {c} centroids on {prefill} keys per kv head and \
                 encoded them on the GPU in {elapsed:?}: objective {objective:.1} (the CPU reference's training: {:.1})",
                reference_training.inertia
            );
            let mut host_lengths = lengths;
            let (mut matching, mut rows) = (0, 0);
            for step in 0..steps {
                let d_new = DeviceBuffer::from_slice(&random(b * hkv * d))?;
                let lengths = AppendLengths::Mirrored { device: &mut d_lengths, host: &mut host_lengths };
                gpu.append_into(&shape, &stream, &d_new, &d_codebooks, &mut d_codes, lengths)?;
                let queries = random(problem.queries_len());
                let d_queries = DeviceBuffer::from_slice(&queries)?;
                let n_valid = Some(pqtopk::ValidLengths::Device(&d_lengths));
                let inputs = Inputs { queries: &d_queries, codebooks: &d_codebooks, codes: &d_codes, n_valid };
                let buffers = gpu.topk(&problem, &stream, &inputs, false)?;
                stream.synchronize()?;
                let mut indices = vec![0u32; problem.out_len()];
                buffers.indices.copy_to(&mut indices[..])?;
                // The CPU reference on the GPU's codebooks and codes, as a check.
                let mut codes = vec![0u8; shape.codes_len()];
                d_codes.copy_to(&mut codes[..])?;
                let host = HostInputs {
                    queries: &queries,
                    codebooks: &codebooks,
                    codes: &codes,
                    n_valid: Some(&host_lengths),
                };
                let want = reference::topk(&problem, &host)?.indices;
                matching += indices.chunks(k).zip(want.chunks(k)).filter(|(a, b)| a == b).count();
                rows += problem.rows();
                print_step(step, host_lengths[0], &indices, k);
            }
            println!("GPU loop vs the CPU reference: {matching} of {rows} rows' top-{k} identical");
        }
        None => {
            println!("PQCache loop: no CUDA device, so training, encoding, appends and top-k run on the CPU reference");
            let training = reference_training;
            let mut codes = reference::encode(&shape, &keys, &training.codebooks)?;
            println!(
                "trained {hkv}×{m} codebooks of {c} centroids on {prefill} keys per kv head ({} iterations, inertia {:.1})",
                training.iterations.iter().max().unwrap_or(&0),
                training.inertia
            );
            let mut lengths = lengths;
            for step in 0..steps {
                reference::append(&shape, &random(b * hkv * d), 1, &training.codebooks, &mut codes, &mut lengths)?;
                let queries = random(problem.queries_len());
                let host = HostInputs {
                    queries: &queries,
                    codebooks: &training.codebooks,
                    codes: &codes,
                    n_valid: Some(&lengths),
                };
                print_step(step, lengths[0], &reference::topk(&problem, &host)?.indices, k);
            }
        }
    }
    Ok(())
}

fn print_step(step: usize, length: u32, indices: &[u32], k: usize) {
    println!(
        "step {step}: {length} keys per kv head; head 0 attends to keys {:?} … {:?}",
        &indices[..3],
        &indices[k - 2..k]
    );
}

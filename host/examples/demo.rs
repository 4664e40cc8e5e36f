//! The demo: synthetic PQ-compressed keys, one decode step of PQCache-style sparse attention.
//!
//! Runs the fused top-k on the GPU when there is one (and checks it against the CPU reference),
//! otherwise on the CPU reference, and says which it used.
//!
//! `cargo xtask demo [b h hkv sq n d m c k]` (defaults: the decode shape 1 32 8 1 31872 128 16 256 2048)

use pqtopk::cust::memory::{CopyDestination, DeviceBuffer};
use pqtopk::cust::stream::{Stream, StreamFlags};
use pqtopk::half::f16;
use pqtopk::reference::{self, HostInputs};
use pqtopk::{Error, Gpu, Inputs, Problem};
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
    Ok(())
}

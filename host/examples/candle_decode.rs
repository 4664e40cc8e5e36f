//! One PQCache-style decode step in candle: the old keys are PQ-compressed, pqtopk picks each
//! query head's top-k keys from the codes, and attention runs over the selected keys and values
//! only (a gather, then softmax(q·Kᵀ/√d)·V). The step is checked against dense attention on
//! the same data with every unselected key masked out, which must agree to rounding.
//!
//! `cargo run --release -p pqtopk --features candle --example candle_decode`
//!
//! On a machine with an NVIDIA GPU everything runs there (`Gpu::topk_candle` on candle CUDA
//! tensors); elsewhere the selection is pqtopk's CPU reference and candle runs on the CPU, and
//! the example says so.

use candle_core::{D, DType, Device, IndexOp, Tensor};
use pqtopk::reference::{self, HostInputs};
use pqtopk::{CandleInputs, Gpu, IndexShape, Order, Problem, TrainOptions};
use rand::{Rng, SeedableRng};

const B: usize = 1;
const H: usize = 8;
const HKV: usize = 2;
const D_HEAD: usize = 64;
const N: usize = 8192;
const M: usize = 16;
const C: usize = 64;
const K: usize = 512;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Keys and values of the cache, [b, hkv, n, d], and this step's queries, [b, h, 1, d]. A
    // few channels carry most of the keys' magnitude, as in real KV caches.
    let mut sample = |len: usize, outliers: bool| -> Vec<f32> {
        (0..len)
            .map(|i| {
                let scale = if outliers && i % D_HEAD < 4 { 8.0 } else { 1.0 };
                scale * (rng.random::<f32>() * 2.0 - 1.0)
            })
            .collect()
    };
    let (keys, values, queries) =
        (sample(B * HKV * N * D_HEAD, true), sample(B * HKV * N * D_HEAD, false), sample(B * H * D_HEAD, true));

    // Prefill: train the codebooks on the keys and encode them (pqtopk's CPU reference here).
    let shape = IndexShape::new(B, HKV, N, D_HEAD, M, C);
    let codebooks = reference::train::<f32, f32>(&shape, &keys, None, &TrainOptions::default())?.codebooks;
    let codes = reference::encode(&shape, &keys, &codebooks)?;

    // Decode: each query head selects its top-k keys by PQ score, in index order for the gather.
    let problem = Problem::builder()
        .batch(B)
        .heads(H)
        .kv_heads(HKV)
        .head_dim(D_HEAD)
        .subspaces(M)
        .centroids(C)
        .keys(N)
        .k(K)
        .dtypes(pqtopk::DType::F32, pqtopk::DType::F32)
        .order(Order::ByIndex)
        .build()?;
    let gpu = Device::new_cuda(0).ok().and_then(|device| Gpu::new(0).ok().map(|gpu| (device, gpu)));
    let device = gpu.as_ref().map_or(Device::Cpu, |(device, _)| device.clone());
    let queries_t = Tensor::from_vec(queries.clone(), (B, H, 1, D_HEAD), &device)?;
    let keys_t = Tensor::from_vec(keys, (B, HKV, N, D_HEAD), &device)?;
    let values_t = Tensor::from_vec(values, (B, HKV, N, D_HEAD), &device)?;
    let indices = match &gpu {
        Some((_, gpu)) => {
            println!("selection: pqtopk on the GPU ({})", gpu.name()?);
            let plan = gpu.plan(&problem)?;
            let inputs = CandleInputs {
                queries: &queries_t,
                codebooks: &Tensor::from_vec(codebooks, (HKV, M, C, D_HEAD / M), &device)?,
                codes: &Tensor::from_vec(codes, (B, HKV, N, M), &device)?,
                n_valid: None,
            };
            gpu.topk_candle(&plan, &inputs, false)?.indices
        }
        None => {
            println!("selection: pqtopk's CPU reference (no CUDA device here); attention on candle's CPU backend");
            let inputs = HostInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };
            Tensor::from_vec(reference::topk(&problem, &inputs)?.indices, (B, H, 1, K), &device)?
        }
    };

    // Attention over the selected keys, head by head, against dense attention with the other
    // keys masked out.
    let scale = 1.0 / (D_HEAD as f64).sqrt();
    let mut worst = 0f32;
    for head in 0..H {
        let kv = head / (H / HKV);
        let q = queries_t.i((0, head, 0))?.unsqueeze(0)?; // [1, d]
        let (keys_kv, values_kv) = (keys_t.i((0, kv))?, values_t.i((0, kv))?); // [n, d]
        let selected = indices.i((0, head, 0))?.contiguous()?; // [k]
        let sparse =
            attention(&q, &keys_kv.index_select(&selected, 0)?, &values_kv.index_select(&selected, 0)?, scale, None)?;
        let keep =
            Tensor::zeros(N, DType::F32, &device)?.index_add(&selected, &Tensor::ones(K, DType::F32, &device)?, 0)?;
        let dense = attention(&q, &keys_kv, &values_kv, scale, Some(&keep))?;
        let diff = (sparse - dense)?.abs()?.max_all()?.to_scalar::<f32>()?;
        worst = worst.max(diff);
    }
    println!("decode step: b={B} h={H} hkv={HKV} d={D_HEAD} n={N} m={M} c={C} k={K}");
    println!("sparse attention over the top-{K} keys vs masked dense attention: max |difference| = {worst:.2e}");
    if worst > 1e-4 {
        return Err(format!("sparse and masked dense attention differ by {worst}").into());
    }
    println!("ok");
    Ok(())
}

/// softmax(q·Kᵀ·scale)·V for one query `[1, d]`, keys and values `[len, d]`; where `keep` is
/// given (`[len]`, 1 or 0), keys with 0 get no weight.
fn attention(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    scale: f64,
    keep: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let mut logits = (q.matmul(&keys.t()?)? * scale)?; // [1, len]
    if let Some(keep) = keep {
        let masked = Tensor::full(f32::NEG_INFINITY, logits.shape(), logits.device())?;
        logits = keep.unsqueeze(0)?.gt(0.5)?.where_cond(&logits, &masked)?;
    }
    let max = logits.max_keepdim(D::Minus1)?;
    let exp = logits.broadcast_sub(&max)?.exp()?;
    let weights = exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?;
    weights.matmul(values)
}

//! GPU tests. They run wherever a CUDA device is present and skip, printing why, only when the
//! driver reports no device (or there is no driver). Any other CUDA failure fails them.
//!
//! `PQTOPK_QUICK=1` keeps the sweeps to small shapes (for compute-sanitizer runs).
//! `PQTOPK_SHARD=i/n` checks only every n-th case of a sweep, from the i-th: racecheck of a whole
//! sweep in one process outran the device's 10-minute calls, so it runs as n processes side by side.

mod support;

use cust::memory::{CopyDestination, DeviceBuffer, DeviceSlice};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};
use pqtopk::half::{bf16, f16};
use pqtopk::{DType, Element, Error, Gpu, Inputs, Metric, Order, Outputs, Path, Plan, Problem, ValidLengths};
use pqtopk_abi::{BLOCK_THREADS, SmokeParams};
use rand::Rng;
use rand::rngs::StdRng;
use std::ffi::c_void;
use std::io::Write;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use support::{DTYPES, Data, HostData, METRICS, ORDERS, POISON_INDEX, POISON_SCORE_BITS};

/// The device, shared by all tests and current on this thread. Tests hold it shared; the graph
/// test holds it alone, because a stream capture is invalidated by what other threads do
/// meanwhile (`cuMemFree` synchronizes the whole device).
struct Device {
    gpu: &'static Gpu,
    _guard: Guard,
}

enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl std::ops::Deref for Device {
    type Target = Gpu;
    fn deref(&self) -> &Gpu {
        self.gpu
    }
}

static EXCLUSIVE: RwLock<()> = RwLock::new(());

/// The device, or `None` after printing why the test is skipped.
fn gpu(test: &str) -> Option<Device> {
    open_device(test, || Guard::Shared(EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())))
}

fn gpu_alone(test: &str) -> Option<Device> {
    open_device(test, || Guard::Exclusive(EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner())))
}

fn open_device(test: &str, guard: impl FnOnce() -> Guard) -> Option<Device> {
    static GPU: OnceLock<Result<Gpu, Error>> = OnceLock::new();
    match GPU.get_or_init(|| Gpu::new(0)) {
        Ok(gpu) => {
            let guard = guard();
            gpu.make_current().unwrap();
            Some(Device { gpu, _guard: guard })
        }
        Err(Error::NoDevice(reason)) => {
            // A GPU CI runner sets it: there, a missing device is a failure, not a skip.
            if std::env::var_os("PQTOPK_REQUIRE_GPU").is_some_and(|v| v == "1") {
                panic!("{test}: PQTOPK_REQUIRE_GPU=1 but no CUDA device ({reason})");
            }
            // Straight to the stream, past libtest's capture, so the reason shows in every run.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: no CUDA device ({reason})");
            None
        }
        Err(e) => panic!("{test}: CUDA failed: {e}"),
    }
}

fn quick() -> bool {
    std::env::var_os("PQTOPK_QUICK").is_some()
}

fn stream() -> Stream {
    Stream::new(StreamFlags::NON_BLOCKING, None).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Smoke tests of the device layer

/// The smoke kernels, built apart from the shipped PTX (`cargo xtask build-ptx`).
const SMOKE_PTX: &str = include_str!("../host/ptx/smoke_sm80.ptx");

fn launch_smoke(gpu: &Gpu, stream: &Stream, name: &str, blocks: u32, shared: u32, params: SmokeParams) {
    gpu.make_current().unwrap();
    let module = Module::from_ptx(SMOKE_PTX, &[]).unwrap();
    let f = module.get_function(name).unwrap();
    // SAFETY: every smoke kernel takes one SmokeParams; each test sizes the buffers as the kernel
    // documents.
    unsafe {
        stream.launch(&f, blocks, BLOCK_THREADS, shared, &[&params as *const SmokeParams as *mut c_void]).unwrap()
    };
    stream.synchronize().unwrap();
}

fn random_u32(rng: &mut StdRng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random()).collect()
}

fn smoke_params(input: &DeviceBuffer<u32>, output: &DeviceBuffer<u32>, n: usize, bins: u32) -> SmokeParams {
    SmokeParams { input: input.as_device_ptr().as_raw(), output: output.as_device_ptr().as_raw(), n: n as u32, bins }
}

#[test]
fn smoke_block_reduction_through_static_shared_array() {
    let Some(gpu) = gpu("smoke_block_reduction") else { return };
    let mut rng = support::rng("smoke_block_reduction");
    let n: usize = 256 * 37 + 11;
    let blocks = n.div_ceil(256);
    let input = random_u32(&mut rng, n);
    let d_in = DeviceBuffer::from_slice(&input).unwrap();
    let d_out = DeviceBuffer::from_slice(&vec![POISON_INDEX; blocks]).unwrap();
    let s = stream();
    launch_smoke(&gpu, &s, "smoke_block_sum", blocks as u32, 0, smoke_params(&d_in, &d_out, n, 0));
    let mut out = vec![0u32; blocks];
    d_out.copy_to(&mut out[..]).unwrap();
    let want: Vec<u32> = input.chunks(256).map(|c| c.iter().fold(0u32, |a, &x| a.wrapping_add(x))).collect();
    assert_eq!(out, want);
}

#[test]
fn smoke_warp_shuffles_and_votes() {
    let Some(gpu) = gpu("smoke_warp") else { return };
    let mut rng = support::rng("smoke_warp");
    let n: usize = 256 * 5 + 70;
    let blocks = n.div_ceil(256);
    let input = random_u32(&mut rng, n);
    let d_in = DeviceBuffer::from_slice(&input).unwrap();
    let d_out = DeviceBuffer::from_slice(&vec![POISON_INDEX; blocks * 8 * 4]).unwrap();
    let s = stream();
    launch_smoke(&gpu, &s, "smoke_warp", blocks as u32, 0, smoke_params(&d_in, &d_out, n, 0));
    let mut out = vec![0u32; blocks * 8 * 4];
    d_out.copy_to(&mut out[..]).unwrap();
    let mut padded = input.clone();
    padded.resize(blocks * 256, 0);
    for (w, lanes) in padded.chunks(32).enumerate() {
        let sum = lanes.iter().fold(0u32, |a, &x| a.wrapping_add(x));
        let odd = lanes.iter().enumerate().fold(0u32, |a, (i, &x)| a | ((x & 1) << i));
        assert_eq!(&out[4 * w..4 * w + 4], &[sum, sum, odd, sum], "warp {w}");
    }
}

#[test]
fn smoke_atomics_global_and_shared() {
    let Some(gpu) = gpu("smoke_atomics") else { return };
    let mut rng = support::rng("smoke_atomics");
    let (n, bins) = (256 * 40 + 3usize, 97u32);
    let blocks = n.div_ceil(256);
    let input = random_u32(&mut rng, n);
    let d_in = DeviceBuffer::from_slice(&input).unwrap();
    let d_out = DeviceBuffer::from_slice(&vec![0u32; 2 * bins as usize + 1]).unwrap();
    let s = stream();
    launch_smoke(&gpu, &s, "smoke_atomics", blocks as u32, bins * 4, smoke_params(&d_in, &d_out, n, bins));
    let mut out = vec![0u32; 2 * bins as usize + 1];
    d_out.copy_to(&mut out[..]).unwrap();
    let mut hist = vec![0u32; bins as usize];
    for &x in &input {
        hist[(x % bins) as usize] += 1;
    }
    assert_eq!(&out[..bins as usize], &hist[..], "global atomics");
    assert_eq!(out[bins as usize], 0, "a slot no atomic touches");
    assert_eq!(&out[bins as usize + 1..], &hist[..], "shared atomics");
}

#[test]
fn smoke_dynamic_shared_memory_and_wide_loads() {
    let Some(gpu) = gpu("smoke_dynamic_shared") else { return };
    let mut rng = support::rng("smoke_dynamic_shared");
    let n: usize = 256 * 9 + 130;
    let blocks = n.div_ceil(256);
    let input = random_u32(&mut rng, n);
    let d_in = DeviceBuffer::from_slice(&input).unwrap();
    let d_out = DeviceBuffer::from_slice(&vec![POISON_INDEX; n + 4 * blocks]).unwrap();
    let s = stream();
    launch_smoke(&gpu, &s, "smoke_dynamic_shared", blocks as u32, 256 * 4, smoke_params(&d_in, &d_out, n, 0));
    let mut out = vec![0u32; n + 4 * blocks];
    d_out.copy_to(&mut out[..]).unwrap();
    for (b, chunk) in input.chunks(256).enumerate() {
        let reversed: Vec<u32> = chunk.iter().rev().copied().collect();
        assert_eq!(&out[b * 256..b * 256 + chunk.len()], &reversed[..], "block {b}");
        assert_eq!(&out[n + 4 * b..n + 4 * b + 4], &chunk[..4], "16-byte load, block {b}");
    }
}

// ---------------------------------------------------------------------------------------------
// The fused top-k against the f64 reference

struct Run {
    indices: Vec<u32>,
    scores: Vec<f32>,
}

/// Uploads `data`, runs the fused top-k into poisoned outputs and a garbage workspace, and
/// returns the outputs.
fn run_on_gpu<Q: Element, C: Element>(
    gpu: &Gpu,
    plan: &Plan,
    data: &HostData<Q, C>,
    device_n_valid: bool,
    with_scores: bool,
) -> Run {
    let s = stream();
    let p = plan.problem();
    let queries = DeviceBuffer::from_slice(&data.queries).unwrap();
    let codebooks = DeviceBuffer::from_slice(&data.codebooks).unwrap();
    let codes = DeviceBuffer::from_slice(&data.codes).unwrap();
    let d_valid = data.n_valid.as_ref().map(|v| DeviceBuffer::from_slice(v).unwrap());
    let n_valid = match (&data.n_valid, &d_valid) {
        (Some(v), Some(d)) => Some(if device_n_valid { ValidLengths::Device(d) } else { ValidLengths::Host(v) }),
        _ => None,
    };
    let mut indices = DeviceBuffer::from_slice(&vec![POISON_INDEX; p.out_len()]).unwrap();
    let mut scores = DeviceBuffer::from_slice(&vec![f32::from_bits(POISON_SCORE_BITS); p.out_len()]).unwrap();
    let mut workspace = DeviceBuffer::from_slice(&vec![0xABu8; plan.workspace_bytes()]).unwrap();
    let inputs = Inputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid };
    let mut outputs =
        Outputs { indices: &mut indices, scores: with_scores.then_some(&mut *scores as &mut DeviceSlice<f32>) };
    gpu.topk_into(plan, &s, &inputs, &mut outputs, &mut workspace).unwrap();
    s.synchronize().unwrap();
    let mut run = Run { indices: vec![0; p.out_len()], scores: vec![0.0; p.out_len()] };
    indices.copy_to(&mut run.indices[..]).unwrap();
    scores.copy_to(&mut run.scores[..]).unwrap();
    run
}

/// The kernel paths a problem can take; every case runs on each that applies to it.
const PATHS: [Path; 3] = [Path::OneBlockPerRow, Path::Cluster, Path::Launches];

/// The plans of every path that applies to `p` on this device.
fn plans(gpu: &Gpu, p: &Problem) -> Vec<(Path, Plan)> {
    PATHS.into_iter().filter_map(|path| Some((path, gpu.plan_with_path(p, path).ok()?))).collect()
}

impl support::Runs for &Gpu {
    fn run<Q: Element, C: Element>(
        &mut self,
        rng: &mut StdRng,
        p: &Problem,
        data: &HostData<Q, C>,
    ) -> Vec<(String, Vec<u32>, Vec<f32>)> {
        let device_n_valid = rng.random();
        plans(self, p)
            .into_iter()
            .map(|(path, plan)| {
                let run = run_on_gpu(self, &plan, data, device_n_valid, true);
                (format!("{path:?}"), run.indices, run.scores)
            })
            .collect()
    }
}

/// A case of a sweep: the problem, how its inputs are drawn, and whether rows are ragged.
type Case = (Problem, Data, bool);

/// Checks every case with fresh inputs against the f64 reference and reports how many rows were
/// checked; skips (saying why) without a device.
fn check_all(test: &str, cases: Vec<Case>) {
    let Some(gpu) = gpu(test) else { return };
    let mut rng = support::rng(test);
    let (shard, shards) = shard();
    let mine: Vec<&Case> = cases.iter().skip(shard).step_by(shards).collect();
    let rows: usize =
        mine.iter().map(|(p, data, ragged)| support::check_case(&mut &*gpu, &mut rng, p, *data, *ragged)).sum();
    println!("{test}: {} of {} cases, {rows} rows checked against the f64 reference", mine.len(), cases.len());
}

/// `PQTOPK_SHARD=i/n` as (i, n); (0, 1) when unset. A malformed value fails the test rather than
/// silently checking nothing.
fn shard() -> (usize, usize) {
    let Ok(spec) = std::env::var("PQTOPK_SHARD") else { return (0, 1) };
    let parsed = spec.split_once('/').and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((i, n)) if i < n => (i, n),
        _ => panic!("PQTOPK_SHARD={spec}: expected i/n with i < n"),
    }
}

#[test]
fn sweep_dtypes_metrics_group_and_orders() {
    let mut cases = Vec::new();
    for q in DTYPES {
        for cb in DTYPES {
            for metric in METRICS {
                for group in [false, true] {
                    for order in ORDERS {
                        let p = Problem::new(2, 8, 2, 3, 64, 8, 64, 1000, 32)
                            .with_dtypes(q, cb)
                            .with_metric(metric)
                            .with_group(group)
                            .with_order(order);
                        cases.push((p, Data::Random, cases.len() % 2 == 1));
                    }
                }
            }
        }
    }
    check_all("sweep_dtypes_metrics_group_and_orders", cases);
}

#[test]
fn sweep_k_and_n() {
    let ns: &[usize] = if quick() { &[1, 31, 1000, 9001] } else { &[1, 31, 1000, 31872, 100003] };
    let ks = [1, 7, 32, 255, 256, 1000, 2048, 2049, 5000];
    let mut cases = Vec::new();
    for &n in ns {
        let mut k_values: Vec<usize> = ks.iter().copied().filter(|&k| k < n).collect();
        k_values.push(n);
        for (i, k) in k_values.into_iter().enumerate() {
            let p = Problem::new(1, 2, 1, 1, 64, 16, 256, n, k)
                .with_metric(METRICS[i % 2])
                .with_order(ORDERS[i % 3])
                .with_group(i % 4 == 3);
            cases.push((p, Data::Random, false));
        }
    }
    check_all("sweep_k_and_n", cases);
}

#[test]
fn sweep_m_c_d() {
    let mut cases = Vec::new();
    for m in [1, 2, 4, 8, 16, 32, 64] {
        for c in [16, 64, 256] {
            for d in [64, 128, 256] {
                let i = cases.len();
                let p = Problem::new(1, 4, 2, 2, d, m, c, 700, 50)
                    .with_metric(METRICS[i % 2])
                    .with_dtypes(DTYPES[i % 3], DTYPES[(i / 3) % 3])
                    .with_group(i % 5 == 0);
                cases.push((p, Data::Random, false));
            }
        }
    }
    check_all("sweep_m_c_d", cases);
}

#[test]
fn sweep_group_sizes_and_query_lengths() {
    let mut cases = Vec::new();
    for g in [1, 4, 5, 8] {
        for sq in [1, 3, 16] {
            for group in [false, true] {
                let i = cases.len();
                let p = Problem::new(2, 2 * g, 2, sq, 128, 16, 256, 2500, 300)
                    .with_group(group)
                    .with_metric(METRICS[i % 2]);
                cases.push((p, Data::Random, i % 3 == 0));
            }
        }
    }
    check_all("sweep_group_sizes_and_query_lengths", cases);
}

#[test]
fn many_rows_in_every_order() {
    // More rows than any current GPU has SMs: the selection runs in its many-rows block size;
    // k up to 5000 grows the tie buffer past its 4096 minimum.
    let mut cases = Vec::new();
    for k in [1, 300, 2049, 5000] {
        for order in ORDERS {
            let i = cases.len();
            let p = Problem::new(2, 16, 4, 8, 64, 8, 64, 6000, k).with_metric(METRICS[i % 2]).with_order(order);
            cases.push((p, Data::Random, i % 2 == 1));
        }
    }
    // Short rows past four per SM: the one block per row at half its threads, four to an SM,
    // scoring through the row's table (200 keys) and straight from the codebooks (20 keys).
    for (i, (n, k)) in [(200, 150), (20, 20)].into_iter().enumerate() {
        for order in ORDERS {
            let p = Problem::new(8, 64, 8, 2, 64, 8, 64, n, k).with_metric(METRICS[i]).with_order(order);
            cases.push((p, Data::Llm, i == 0));
        }
    }
    check_all("many_rows_in_every_order", cases);
}

#[test]
fn few_rows_share_the_selection_sweeps() {
    // 8 rows of 70000–140000 keys: each row's gather is split over 2–4 blocks (four sweep steps
    // of 8192 keys or more each), with ragged lengths, exact ties, all keys equal (tied keys
    // that share their score and overflow the tie buffer: ranked by index) and crowded rows
    // (narrow, LLM-like: refined, the first round shared by the row's blocks). Quick runs
    // (the sanitizers, where 15 cases outran a 9-minute racecheck) keep one k in each order.
    let n = if quick() { 70000 } else { 140000 };
    let ks: &[usize] = if quick() { &[2048] } else { &[1, 777, 2048, 4097, n] };
    let mut cases = Vec::new();
    for &k in ks {
        for order in ORDERS {
            let i = cases.len();
            let p = Problem::new(2, 4, 2, 1, 64, 8, 64, n, k).with_metric(METRICS[i % 2]).with_order(order);
            let data = [Data::Random, Data::Equal, Data::Ties, Data::Narrow, Data::Llm][i % 5];
            cases.push((p, data, i % 2 == 1));
        }
    }
    check_all("few_rows_share_the_selection_sweeps", cases);
}

#[test]
fn many_rows_per_kv_head_score_on_tensor_cores() {
    // 16 or more rows per kv head with f16 or bf16 on both sides: the tensor-core scoring. Head
    // dimensions 64–128 (96 is zero-padded to 128), sub-spaces of 8 or 16 elements, ragged row
    // tiles (72 rows) and key steps (n not a multiple of 64), several key chunks per tile.
    let mut cases = Vec::new();
    let shapes = [(64, 8, 256), (96, 12, 16), (128, 16, 256), (128, 8, 64), (64, 8, 64)];
    for (i, &(d, m, c)) in shapes.iter().enumerate() {
        for (j, (dtype, metric)) in
            [(DType::F16, Metric::InnerProduct), (DType::BF16, Metric::L2)].into_iter().enumerate()
        {
            let (g, sq) = if (i + j) % 2 == 0 { (4, 4) } else { (8, 9) };
            let n = if quick() { 3001 } else { 9001 };
            let case = i * 2 + j;
            let p = Problem::new(2, 2 * g, 2, sq, d, m, c, n, [1, 100, 2048, n][case % 4])
                .with_dtypes(dtype, dtype)
                .with_metric(metric)
                .with_order(ORDERS[case % 3]);
            let data = [Data::Random, Data::Ties, Data::Special][case % 3];
            cases.push((p, data, case % 2 == 1));
        }
    }
    check_all("many_rows_per_kv_head_score_on_tensor_cores", cases);
}

#[test]
fn ragged_valid_lengths_pad_short_rows() {
    let mut cases = Vec::new();
    for (n, k) in [(3000, 100), (500, 499), (5000, 2049), (64, 64)] {
        for metric in METRICS {
            let p = Problem::new(8, 4, 2, 2, 64, 8, 256, n, k).with_metric(metric).with_order(ORDERS[cases.len() % 3]);
            cases.push((p, Data::Random, true));
        }
    }
    check_all("ragged_valid_lengths_pad_short_rows", cases);
}

#[test]
fn every_data_family_in_every_order_and_metric() {
    // The synthetic families of tests/support/dist.rs (the bench's too): LLM-like outliers with
    // Zipf codes, one rarely used outlier centroid per sub-space (scores crowd into a sliver of the
    // table range), all keys equal (every score of a row ties), keys sorted by score. Shapes: the
    // per-row scoring (f32, GQA, ragged), the tensor-core scoring (16 rows per kv head, f16) and
    // group mode (bf16/f16); small enough for the sanitizers.
    let n = if quick() { 1500 } else { 5000 };
    let shapes = [
        Problem::new(2, 4, 2, 2, 64, 8, 64, n, 100).with_dtypes(DType::F32, DType::F32),
        Problem::new(1, 8, 2, 4, 128, 16, 256, n, 300).with_dtypes(DType::F16, DType::F16),
        Problem::new(2, 4, 1, 1, 64, 4, 16, n, 1021).with_dtypes(DType::BF16, DType::F16).with_group(true),
    ];
    let cases = family_cases(&Data::FAMILIES, &shapes, |s, metric| s == 0 && metric == Metric::L2);
    check_all("every_data_family_in_every_order_and_metric", cases);
}

/// Every family on every shape (`shapes[s]`) in every order and metric, ragged where
/// `ragged(s, metric)`. Quick runs (the sanitizers) alternate the metric: both still meet every
/// family, shape and order.
fn family_cases(families: &[Data], shapes: &[Problem], ragged: impl Fn(usize, Metric) -> bool) -> Vec<Case> {
    let mut cases = Vec::new();
    for &data in families {
        for (s, shape) in shapes.iter().enumerate() {
            for (o, order) in ORDERS.into_iter().enumerate() {
                for metric in METRICS {
                    if quick() && METRICS[(s + o) % 2] != metric {
                        continue;
                    }
                    cases.push((shape.with_order(order).with_metric(metric), data, ragged(s, metric)));
                }
            }
        }
    }
    cases
}

#[test]
fn crowded_rows_of_the_hub_shapes() {
    // The seed's configurations (m = 2, c = 64, k = 3020 and m = 4, c = 256, k = 6300, one row
    // per SM) on the families that crowd a row: llm (Zipf codes: exact-score groups of hundreds
    // of keys) and narrow (scores in a sliver of the tables' range). Their rows have more ties
    // at the threshold than pairwise ranking takes, and output buckets too crowded to rank
    // pairwise: the selection's fallbacks, which uniform data never reaches.
    let n = if quick() { 8000 } else { 31872 };
    let shapes = [Problem::new(1, 8, 2, 1, 128, 2, 64, n, 3020), Problem::new(1, 8, 2, 1, 128, 4, 256, n, 6300)]
        .map(|p| p.with_dtypes(DType::F16, DType::F16));
    check_all("crowded_rows_of_the_hub_shapes", family_cases(&[Data::Llm, Data::Narrow], &shapes, |_, _| false));
}

#[test]
fn k_close_to_n_at_large_n() {
    // k = n - 4 and k = n over 100003 keys (2-4 rows), in score and index order, across data
    // families; and n = 1, k = 1. Quick runs keep three of the large cases: ties ranked by
    // index in the chunks of both orders (late outliers fail a chunk placed without the ties
    // taken before it), and a score-order row whose keys are all candidates.
    let n = 100003;
    let mut cases: Vec<Case> = Vec::new();
    let large = [
        (99999, Order::ByIndex, Data::LateOutliers, Metric::InnerProduct),
        (99999, Order::ByScore, Data::Equal, Metric::InnerProduct),
        (n, Order::ByScore, Data::Sorted, Metric::L2),
        (99999, Order::ByIndex, Data::Random, Metric::InnerProduct),
        (n, Order::ByIndex, Data::Narrow, Metric::InnerProduct),
        (99999, Order::ByScore, Data::Llm, Metric::L2),
        (n, Order::Unordered, Data::Random, Metric::L2),
        (99999, Order::ByScore, Data::LateOutliers, Metric::L2),
    ];
    for (i, &(k, order, data, metric)) in large.iter().enumerate().take(if quick() { 3 } else { large.len() }) {
        let rows = if quick() { 2 } else { 2 + i % 3 };
        let p = Problem::new(1, rows, 1, 1, 64, 8, 64, n, k).with_order(order).with_metric(metric);
        cases.push((p, data, false));
    }
    for (i, order) in ORDERS.into_iter().enumerate() {
        let p = Problem::new(2, 4, 2, 1, 64, 8, 16, 1, 1).with_order(order).with_metric(METRICS[i % 2]);
        cases.push((p, Data::FAMILIES[i], i == 1));
    }
    // Rows whose index bitmap outgrows the tie buffer (past 131 072 keys) order their taken
    // keys by buckets over the indices (a far key crowds them: the sort), and go to
    // `pq_write_by_index` only where their ties rank by index; ragged, so that some rows fit the
    // bitmap and some do not. More rows than SMs take one block each.
    let past_bitmap = Problem::new(2, 2, 1, 1, 64, 8, 64, 140_000, 2048).with_order(Order::ByIndex);
    cases.push((past_bitmap, Data::Random, true));
    // 16 rows of 69 chunks outnumber a wave of write blocks: each block writes three
    // consecutive chunks of tied keys ranked by index (k = 3000: the second takes some of
    // its ties, the third none).
    cases.push((Problem { h: 8, k: 3000, ..past_bitmap }, Data::Equal, true));
    if !quick() {
        let long = Problem { n: 300_007, ..past_bitmap };
        cases.push((long, Data::Random, true));
        cases.push((long, Data::SortedFirstBest, false));
        cases.push((Problem { k: 1000, ..long }, Data::Equal, false));
        cases.push((long.with_metric(Metric::L2), Data::LateOutliers, false));
        let many_rows = Problem::new(1, 160, 8, 1, 64, 8, 64, 140_000, 512).with_order(Order::ByIndex);
        cases.push((many_rows, Data::Ties, true));
        cases.push((many_rows, Data::Llm, false));
    }
    check_all("k_close_to_n_at_large_n", cases);
}

#[test]
fn exact_ties_break_toward_smaller_index() {
    let Some(gpu) = gpu("ties") else { return };
    let mut rng = support::rng("ties");
    // Ties: two sub-spaces with at most 3 distinct codes each, so 9 distinct keys, each
    // repeated; Equal: every key the same. The tied keys at the threshold number from a few
    // (ranked pairwise) through hundreds (sorted) to more than the selection holds (n = 60000:
    // only the best of them kept as the sweep meets them, in index order), with the top k in
    // shared memory or (k = 20000) not; LateOutliers: equal keys, and better ones past them.
    let cases = [
        (2000, 1, Data::Ties),
        (2000, 150, Data::Ties),
        (9000, 3000, Data::Ties),
        (300, 299, Data::Ties),
        (60000, 1000, Data::Ties),
        (60000, 20000, Data::Equal),
        (60000, 1000, Data::LateOutliers),
    ];
    for (i, (n, k, data)) in cases.into_iter().enumerate() {
        for metric in METRICS {
            let p = Problem::new(1, 4, 1, 2, 32, 2, 16, n, k)
                .with_metric(metric)
                .with_order(ORDERS[i % 3])
                .with_dtypes(DType::F32, DType::F32);
            let host: HostData<f32, f32> = support::draw(&mut rng, &p, data, false);
            let want = pqtopk::reference::topk(&p, &host.inputs()).unwrap();
            for (path, plan) in plans(&gpu, &p) {
                let run = run_on_gpu(&gpu, &plan, &host, false, true);
                support::check(&p, &host, &run.indices, Some(&run.scores));
                assert_eq!(run.indices, want.indices, "{p:?} {path:?}: ties must resolve exactly as the reference");
            }
        }
    }
}

#[test]
fn nan_and_infinities_in_inputs() {
    let mut cases = Vec::new();
    for metric in METRICS {
        for (q, cb) in [(DType::F32, DType::F32), (DType::F16, DType::BF16), (DType::BF16, DType::F16)] {
            for k in [5, 400] {
                let p = Problem::new(1, 4, 2, 3, 64, 8, 16, 400, k)
                    .with_metric(metric)
                    .with_dtypes(q, cb)
                    .with_order(ORDERS[cases.len() % 3]);
                cases.push((p, Data::Special, false));
            }
        }
    }
    check_all("nan_and_infinities_in_inputs", cases);
}

#[test]
fn results_are_bit_identical_across_runs() {
    let Some(gpu) = gpu("determinism") else { return };
    let mut rng = support::rng("determinism");
    let p = Problem::new(2, 8, 2, 2, 128, 16, 256, if quick() { 3000 } else { 31872 }, 1000)
        .with_dtypes(DType::F16, DType::F16);
    let host: HostData<f16, f16> = support::draw(&mut rng, &p, Data::Random, false);
    for (path, plan) in plans(&gpu, &p) {
        let first = run_on_gpu(&gpu, &plan, &host, false, true);
        for _ in 0..3 {
            let again = run_on_gpu(&gpu, &plan, &host, false, true);
            assert_eq!(first.indices, again.indices, "{path:?}");
            assert_eq!(
                first.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                again.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                "{path:?}"
            );
        }
    }
}

#[test]
fn indices_only_and_allocating_form() {
    let Some(gpu) = gpu("indices_only") else { return };
    let mut rng = support::rng("indices_only");
    let p = Problem::new(1, 4, 1, 1, 64, 8, 32, 900, 40).with_order(Order::ByIndex).with_metric(Metric::L2);
    let host: HostData<f16, f16> = support::draw(&mut rng, &p, Data::Random, false);
    for (_, plan) in plans(&gpu, &p) {
        let only = run_on_gpu(&gpu, &plan, &host, false, false);
        support::check(&p, &host, &only.indices, None);
    }
    let s = stream();
    let (q, cb, codes) = (
        DeviceBuffer::from_slice(&host.queries).unwrap(),
        DeviceBuffer::from_slice(&host.codebooks).unwrap(),
        DeviceBuffer::from_slice(&host.codes).unwrap(),
    );
    let out = gpu.topk(&p, &s, &Inputs { queries: &q, codebooks: &cb, codes: &codes, n_valid: None }, true).unwrap();
    s.synchronize().unwrap();
    let mut indices = vec![0u32; p.out_len()];
    let mut scores = vec![0f32; p.out_len()];
    out.indices.copy_to(&mut indices[..]).unwrap();
    out.scores.as_ref().unwrap().copy_to(&mut scores[..]).unwrap();
    support::check(&p, &host, &indices, Some(&scores));
}

#[test]
fn every_device_in_the_process() {
    if gpu("every_device").is_none() {
        return;
    }
    let mut rng = support::rng("every_device");
    let count = Gpu::device_count().unwrap();
    let gpus: Vec<Gpu> = (0..count).map(|o| Gpu::new(o).unwrap()).collect();
    for gpu in &gpus {
        gpu.make_current().unwrap();
        let p = Problem::new(1, 4, 2, 1, 64, 8, 64, 777, 20);
        support::check_case(&mut { gpu }, &mut rng, &p, Data::Random, false);
    }
    println!("every_device_in_the_process: {count} device(s)");
}

// ---------------------------------------------------------------------------------------------
// Bad input on the device path: typed errors before any launch

#[test]
fn bad_buffers_are_rejected_before_launch() {
    let Some(gpu) = gpu("bad_buffers") else { return };
    let s = stream();
    let p = Problem::new(1, 4, 2, 1, 64, 8, 16, 100, 10);
    let plan = gpu.plan(&p).unwrap();
    let q = DeviceBuffer::from_slice(&vec![f16::ZERO; p.queries_len()]).unwrap();
    let q_short = DeviceBuffer::from_slice(&vec![f16::ZERO; p.queries_len() - 1]).unwrap();
    let q_f32 = DeviceBuffer::<f32>::zeroed(p.queries_len()).unwrap();
    let cb = DeviceBuffer::from_slice(&vec![f16::ZERO; p.codebooks_len()]).unwrap();
    let codes = DeviceBuffer::<u8>::zeroed(p.codes_len()).unwrap();
    let codes_long = DeviceBuffer::<u8>::zeroed(p.codes_len() + 1).unwrap();
    let mut idx = DeviceBuffer::<u32>::zeroed(p.out_len()).unwrap();
    let mut idx_short = DeviceBuffer::<u32>::zeroed(p.out_len() - 1).unwrap();
    let mut scores_short = DeviceBuffer::<f32>::zeroed(p.out_len() - 1).unwrap();
    let mut ws = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes()).unwrap();
    let mut ws_short = DeviceBuffer::<u8>::zeroed(plan.workspace_bytes() - 1).unwrap();
    let too_long = [101u32];
    let wrong_count = [1u32, 2];
    let name = |e: Error| match e {
        Error::BufferLength { name, .. } | Error::DTypeMismatch { name, .. } | Error::InvalidArgument { name, .. } => {
            name
        }
        e => panic!("unexpected error {e}"),
    };
    let ok = Inputs { queries: &q, codebooks: &cb, codes: &codes, n_valid: None };
    // The argument a call rejects, before any launch.
    let rejected = |inputs: &Inputs<'_, f16, f16>,
                    indices: &mut DeviceSlice<u32>,
                    scores: Option<&mut DeviceSlice<f32>>,
                    workspace: &mut DeviceSlice<u8>| {
        name(gpu.topk_into(&plan, &s, inputs, &mut Outputs { indices, scores }, workspace).unwrap_err())
    };
    assert_eq!(rejected(&Inputs { queries: &q_short, ..ok }, &mut idx, None, &mut ws), "queries");
    assert_eq!(rejected(&Inputs { codes: &codes_long, ..ok }, &mut idx, None, &mut ws), "codes");
    // Right length, but 2 bytes past a 16-byte boundary.
    let q_long = DeviceBuffer::from_slice(&vec![f16::ZERO; p.queries_len() + 1]).unwrap();
    let q_offset = q_long.index(1..);
    assert_eq!(rejected(&Inputs { queries: &q_offset, ..ok }, &mut idx, None, &mut ws), "queries");
    let n_valid = Some(ValidLengths::Host(&too_long));
    assert_eq!(rejected(&Inputs { n_valid, ..ok }, &mut idx, None, &mut ws), "n_valid");
    let n_valid = Some(ValidLengths::Host(&wrong_count));
    assert_eq!(rejected(&Inputs { n_valid, ..ok }, &mut idx, None, &mut ws), "n_valid");
    assert_eq!(rejected(&ok, &mut idx_short, None, &mut ws), "indices");
    assert_eq!(rejected(&ok, &mut idx, Some(&mut scores_short), &mut ws), "scores");
    assert_eq!(rejected(&ok, &mut idx, None, &mut ws_short), "workspace");
    let mismatched = Inputs { queries: &q_f32, codebooks: &cb, codes: &codes, n_valid: None };
    let err =
        gpu.topk_into(&plan, &s, &mismatched, &mut Outputs { indices: &mut idx, scores: None }, &mut ws).unwrap_err();
    assert_eq!(name(err), "queries");
    assert!(matches!(gpu.plan(&Problem { k: 0, ..p }), Err(Error::InvalidArgument { name: "k", .. })));
    s.synchronize().unwrap();
}

#[test]
fn codes_out_of_range_are_reported_and_never_read_out_of_bounds() {
    let Some(gpu) = gpu("bad_codes") else { return };
    let mut rng = support::rng("bad_codes");
    let s = stream();
    let p = Problem::new(1, 2, 1, 1, 64, 8, 16, 5000, 100).with_dtypes(DType::F32, DType::F32);
    let mut host: HostData<f32, f32> = support::draw(&mut rng, &p, Data::Random, false);
    let codes = DeviceBuffer::from_slice(&host.codes).unwrap();
    gpu.check_codes(&s, &codes, p.c).unwrap();
    let planted = rng.random_range(1..50);
    for _ in 0..planted {
        let at = rng.random_range(0..host.codes.len());
        host.codes[at] = rng.random_range(p.c as u8..=255);
    }
    let bad = host.codes.iter().filter(|&&c| c as usize >= p.c).count() as u64;
    let codes = DeviceBuffer::from_slice(&host.codes).unwrap();
    assert_eq!(gpu.check_codes(&s, &codes, p.c), Err(Error::CodeOutOfRange { count: bad, c: p.c as u32, first: None }));
    // The unchecked path still runs inside its buffers (compute-sanitizer watches this one).
    for (path, plan) in plans(&gpu, &p) {
        let run = run_on_gpu(&gpu, &plan, &host, false, true);
        assert!(run.indices.iter().all(|&i| (i as usize) < p.n), "{path:?}");
    }
}

#[test]
fn captured_in_a_cuda_graph_and_replayed_on_new_inputs() {
    use cust::sys;
    let Some(gpu) = gpu_alone("graph") else { return };
    let mut rng = support::rng("graph");
    let p = Problem::new(1, 8, 2, 2, 128, 16, 256, 4000, 300).with_dtypes(DType::F16, DType::F16);
    let plan = gpu.plan(&p).unwrap();
    let first: HostData<f16, f16> = support::draw(&mut rng, &p, Data::Random, false);
    let mut queries = DeviceBuffer::from_slice(&first.queries).unwrap();
    let mut codebooks = DeviceBuffer::from_slice(&first.codebooks).unwrap();
    let mut codes = DeviceBuffer::from_slice(&first.codes).unwrap();
    let mut indices = DeviceBuffer::from_slice(&vec![POISON_INDEX; p.out_len()]).unwrap();
    let mut scores = DeviceBuffer::from_slice(&vec![f32::from_bits(POISON_SCORE_BITS); p.out_len()]).unwrap();
    let mut workspace = DeviceBuffer::from_slice(&vec![0xCDu8; plan.workspace_bytes()]).unwrap();
    let s = stream();
    let (mut graph, mut exec) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: plain driver calls on live objects of the current context; the graph runs on the
    // buffers above, which outlive it.
    unsafe {
        assert_eq!(
            sys::cuStreamBeginCapture_v2(s.as_inner(), sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED),
            sys::CUresult::CUDA_SUCCESS
        );
        let inputs = Inputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };
        let mut outputs = Outputs { indices: &mut indices, scores: Some(&mut scores) };
        gpu.topk_into(&plan, &s, &inputs, &mut outputs, &mut workspace).unwrap();
        assert_eq!(sys::cuStreamEndCapture(s.as_inner(), &mut graph), sys::CUresult::CUDA_SUCCESS);
        assert_eq!(sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0), sys::CUresult::CUDA_SUCCESS);
    }
    for replay in 0..3 {
        let host: HostData<f16, f16> = support::draw(&mut rng, &p, Data::Random, false);
        queries.copy_from(&host.queries[..]).unwrap();
        codebooks.copy_from(&host.codebooks[..]).unwrap();
        codes.copy_from(&host.codes[..]).unwrap();
        indices.copy_from(&vec![POISON_INDEX; p.out_len()][..]).unwrap();
        // SAFETY: as above.
        unsafe { assert_eq!(sys::cuGraphLaunch(exec, s.as_inner()), sys::CUresult::CUDA_SUCCESS, "replay {replay}") };
        s.synchronize().unwrap();
        let mut got = vec![0u32; p.out_len()];
        let mut got_scores = vec![0f32; p.out_len()];
        indices.copy_to(&mut got[..]).unwrap();
        scores.copy_to(&mut got_scores[..]).unwrap();
        support::check(&p, &host, &got, Some(&got_scores));
    }
    // SAFETY: created above, no longer in use after the synchronize.
    unsafe {
        sys::cuGraphExecDestroy(exec);
        sys::cuGraphDestroy(graph);
    }
}

/// The cudarc adapter: half 2 buffers and a stream from cudarc, on every path, against the
/// reference; a too-short output is a typed error before any launch.
#[cfg(feature = "cudarc")]
#[test]
fn cudarc_buffers_on_a_cudarc_stream() {
    use pqtopk::{CudarcInputs, CudarcOutputs};
    let Some(gpu) = gpu("cudarc") else { return };
    let mut rng = support::rng("cudarc");
    let p = Problem::new(2, 8, 2, 2, 64, 8, 64, if quick() { 1500 } else { 6000 }, 100).with_order(Order::ByIndex);
    let host: HostData<f16, f16> = support::draw(&mut rng, &p, Data::Random, true);
    let context = cudarc::driver::CudaContext::new(0).unwrap();
    let stream = context.new_stream().unwrap();
    let to_half2 = |v: &[f16]| v.iter().map(|x| half2::f16::from_bits(x.to_bits())).collect::<Vec<_>>();
    let queries = stream.clone_htod(&to_half2(&host.queries)).unwrap();
    let codebooks = stream.clone_htod(&to_half2(&host.codebooks)).unwrap();
    let codes = stream.clone_htod(&host.codes).unwrap();
    let n_valid = stream.clone_htod(host.n_valid.as_deref().unwrap()).unwrap();
    let inputs = CudarcInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: Some(&n_valid) };
    for (path, plan) in plans(&gpu, &p) {
        let mut indices = stream.clone_htod(&vec![POISON_INDEX; p.out_len()]).unwrap();
        let mut scores = stream.clone_htod(&vec![f32::from_bits(POISON_SCORE_BITS); p.out_len()]).unwrap();
        let mut workspace = stream.clone_htod(&vec![0xABu8; plan.workspace_bytes()]).unwrap();
        let mut outputs = CudarcOutputs { indices: &mut indices, scores: Some(&mut scores), workspace: &mut workspace };
        gpu.topk_cudarc(&plan, &stream, &inputs, &mut outputs).unwrap();
        let (got_indices, got_scores) = (stream.clone_dtoh(&indices).unwrap(), stream.clone_dtoh(&scores).unwrap());
        eprintln!("cudarc: {path:?}");
        support::check(&p, &host, &got_indices, Some(&got_scores));
        let mut short = stream.clone_htod(&vec![0u32; p.out_len() - 1]).unwrap();
        let mut outputs = CudarcOutputs { indices: &mut short, scores: None, workspace: &mut workspace };
        assert!(matches!(
            gpu.topk_cudarc(&plan, &stream, &inputs, &mut outputs),
            Err(Error::BufferLength { name: "indices", .. })
        ));
    }
}

/// `Gpu::topk_candle` on candle CUDA tensors (f16 queries, bf16 codebooks, lengths) against the
/// reference, twice with fresh data (its outputs are allocated, so a second draw keeps stale
/// results of the first from passing), and each kind of bad tensor as a typed error.
#[cfg(feature = "candle")]
#[test]
fn candle_tensors_on_the_candle_stream() {
    use candle_core::{DType as CandleDType, Device as CandleDevice, Tensor};
    use pqtopk::CandleInputs;
    let Some(gpu) = gpu("candle") else { return };
    let mut rng = support::rng("candle");
    let device = CandleDevice::new_cuda(0).unwrap();
    let p = Problem::new(2, 8, 2, 2, 64, 8, 64, if quick() { 1500 } else { 6000 }, 100)
        .with_dtypes(DType::F16, DType::BF16)
        .with_order(Order::ByScore);
    let half2_f16 = |v: &[f16]| v.iter().map(|x| half2::f16::from_bits(x.to_bits())).collect::<Vec<_>>();
    let half2_bf16 = |v: &[bf16]| v.iter().map(|x| half2::bf16::from_bits(x.to_bits())).collect::<Vec<_>>();
    let plan = gpu.plan(&p).unwrap();
    for _ in 0..2 {
        let host: HostData<f16, bf16> = support::draw(&mut rng, &p, Data::Random, true);
        let queries = Tensor::from_vec(half2_f16(&host.queries), (p.b, p.h, p.sq, p.d), &device).unwrap();
        let codebooks = Tensor::from_vec(half2_bf16(&host.codebooks), (p.hkv, p.m, p.c, p.d / p.m), &device).unwrap();
        let codes = Tensor::from_vec(host.codes.clone(), (p.b, p.hkv, p.n, p.m), &device).unwrap();
        let n_valid = Tensor::from_vec(host.n_valid.clone().unwrap(), p.b, &device).unwrap();
        let inputs = CandleInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: Some(&n_valid) };
        let out = gpu.topk_candle(&plan, &inputs, true).unwrap();
        assert_eq!(out.indices.dims(), [p.b, p.h, p.sq, p.k]);
        let indices = out.indices.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        let scores = out.scores.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        support::check(&p, &host, &indices, Some(&scores));

        // Bad tensors: each a typed error before any launch.
        let bad = |inputs: CandleInputs<'_>| gpu.topk_candle(&plan, &inputs, false).unwrap_err();
        let on_cpu = queries.to_device(&CandleDevice::Cpu).unwrap();
        assert!(matches!(
            bad(CandleInputs { queries: &on_cpu, ..inputs }),
            Error::InvalidArgument { name: "queries", .. }
        ));
        let as_f32 = codebooks.to_dtype(CandleDType::F32).unwrap();
        assert!(matches!(
            bad(CandleInputs { codebooks: &as_f32, ..inputs }),
            Error::DTypeMismatch { name: "codebooks", .. }
        ));
        let reshaped = codes.reshape((p.b, p.hkv, p.m, p.n)).unwrap();
        assert!(matches!(
            bad(CandleInputs { codes: &reshaped, ..inputs }),
            Error::InvalidArgument { name: "codes", .. }
        ));
        let transposed = queries.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
        assert!(matches!(
            bad(CandleInputs { queries: &transposed, ..inputs }),
            Error::InvalidArgument { name: "queries", .. }
        ));
        let lengths_f32 = n_valid.to_dtype(CandleDType::F32).unwrap();
        assert!(matches!(
            bad(CandleInputs { n_valid: Some(&lengths_f32), ..inputs }),
            Error::InvalidArgument { name: "n_valid", .. }
        ));
        // A view one element into a larger tensor: contiguous, but not 16-byte aligned.
        let wider = Tensor::from_vec(
            half2_f16(&[host.queries.clone(), vec![f16::ZERO]].concat()),
            p.queries_len() + 1,
            &device,
        )
        .unwrap();
        let offset = wider.narrow(0, 1, p.queries_len()).unwrap().reshape((p.b, p.h, p.sq, p.d)).unwrap();
        assert!(matches!(bad(CandleInputs { queries: &offset, ..inputs }), Error::InvalidArgument { .. }));
    }
}

/// `Gpu::encode_into` and `Gpu::append_into` against `reference::encode` and `append`: every
/// dtype pair, c from 1 to 256, d/m from 1 to 64, a ragged key count, poisoned codes; appends
/// step by step with lengths on the device, a full entry left alone (device lengths) or
/// `CacheFull` (mirrored lengths); bad arguments typed.
#[test]
fn encode_and_append_match_the_reference() {
    use pqtopk::{AppendLengths, IndexShape};
    let Some(gpu) = gpu("encode") else { return };
    let mut rng = support::rng("encode");
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None).unwrap();
    for (shape, t) in support::encode_shapes() {
        let (b, hkv, n, d, m) = (shape.b, shape.hkv, shape.n, shape.d, shape.m);
        let (kt, ct) = (shape.key_dtype, shape.codebook_dtype);
        let run = |keys: Vec<f32>, codebooks: Vec<f32>, new: Vec<f32>| {
            macro_rules! typed {
                ($k:ty, $c:ty) => {{
                    let keys: Vec<$k> = keys.iter().map(|&x| <$k as Element>::from_f32(x)).collect();
                    let codebooks: Vec<$c> = codebooks.iter().map(|&x| <$c as Element>::from_f32(x)).collect();
                    let want = pqtopk::reference::encode(&shape, &keys, &codebooks).unwrap();
                    let (d_keys, d_codebooks) =
                        (DeviceBuffer::from_slice(&keys).unwrap(), DeviceBuffer::from_slice(&codebooks).unwrap());
                    let mut d_codes = DeviceBuffer::from_slice(&vec![0xEEu8; shape.codes_len()]).unwrap();
                    gpu.encode_into(&shape, &stream, &d_keys, &d_codebooks, &mut d_codes).unwrap();
                    stream.synchronize().unwrap();
                    let mut encoded = vec![0u8; shape.codes_len()];
                    d_codes.copy_to(&mut encoded[..]).unwrap();
                    support::check_codes(&shape, &keys, &codebooks, n, &encoded, &want, |bi, kv, key| {
                        (bi * hkv + kv) * n + key
                    });

                    // Appends of t keys per step into a cache that starts at ragged lengths.
                    let mut lengths: Vec<u32> = (0..b).map(|bi| (n - t - bi * t.min(n / 4)) as u32).collect();
                    let mut host_codes = want.clone();
                    let mut d_lengths = DeviceBuffer::from_slice(&lengths).unwrap();
                    let new: Vec<$k> = new.iter().map(|&x| <$k as Element>::from_f32(x)).collect();
                    let d_new = DeviceBuffer::from_slice(&new).unwrap();
                    let before = lengths.clone();
                    pqtopk::reference::append(&shape, &new, t, &codebooks, &mut host_codes, &mut lengths).unwrap();
                    // One append with the lengths on the device; the codes and lengths after it.
                    let append_on_device = |d_codes: &mut DeviceBuffer<u8>, d_lengths: &mut DeviceBuffer<u32>| {
                        let device_lengths = AppendLengths::Device(d_lengths);
                        gpu.append_into(&shape, &stream, &d_new, &d_codebooks, d_codes, device_lengths).unwrap();
                        stream.synchronize().unwrap();
                        let (mut codes, mut lengths) = (vec![0u8; shape.codes_len()], vec![0u32; b]);
                        d_codes.copy_to(&mut codes[..]).unwrap();
                        d_lengths.copy_to(&mut lengths[..]).unwrap();
                        (codes, lengths)
                    };
                    let (got, got_lengths) = append_on_device(&mut d_codes, &mut d_lengths);
                    assert_eq!(got_lengths, lengths, "device lengths after the append");
                    // The appended keys, tie-aware; everything else untouched (the device's own codes,
                    // which may differ from the reference's where centroids tie).
                    support::check_codes(&shape, &new, &codebooks, t, &got, &host_codes, |bi, kv, key| {
                        (bi * hkv + kv) * n + before[bi] as usize + key
                    });
                    for bi in 0..b {
                        for kv in 0..hkv {
                            let row = (bi * hkv + kv) * n * m;
                            assert_eq!(
                                got[row..row + before[bi] as usize * m],
                                encoded[row..row + before[bi] as usize * m]
                            );
                        }
                    }
                    // Entry 0 is now full: device lengths leave it alone, mirrored ones refuse.
                    if lengths[0] as usize + t > n {
                        let (again, again_lengths) = append_on_device(&mut d_codes, &mut d_lengths);
                        assert_eq!(again_lengths[0], lengths[0], "a full entry's length stays");
                        assert_eq!(again[..hkv * n * m], got[..hkv * n * m], "a full entry's codes stay");
                        let mut host = lengths.clone();
                        let err = gpu.append_into(
                            &shape,
                            &stream,
                            &d_new,
                            &d_codebooks,
                            &mut d_codes,
                            AppendLengths::Mirrored { device: &mut d_lengths, host: &mut host },
                        );
                        assert!(matches!(err, Err(Error::CacheFull { batch: 0, .. })), "{err:?}");
                    }
                    // Bad arguments: typed, before any launch.
                    let mut short = DeviceBuffer::from_slice(&vec![0u8; shape.codes_len() - 1]).unwrap();
                    assert!(matches!(
                        gpu.encode_into(&shape, &stream, &d_keys, &d_codebooks, &mut short),
                        Err(Error::BufferLength { name: "codes", .. })
                    ));
                    let wrong = shape.with_dtypes(if kt == DType::F32 { DType::F16 } else { DType::F32 }, ct);
                    assert!(matches!(
                        gpu.encode_into(&wrong, &stream, &d_keys, &d_codebooks, &mut d_codes),
                        Err(Error::DTypeMismatch { name: "keys", .. })
                    ));
                    let odd = IndexShape { m: d + 1, ..shape };
                    assert!(matches!(
                        gpu.encode_into(&odd, &stream, &d_keys, &d_codebooks, &mut d_codes),
                        Err(Error::InvalidArgument { .. })
                    ));
                }};
            }
            match (kt, ct) {
                (DType::F32, DType::F16) => typed!(f32, f16),
                (DType::F16, DType::BF16) => typed!(f16, bf16),
                (DType::BF16, DType::F32) => typed!(bf16, f32),
                (DType::F32, DType::F32) => typed!(f32, f32),
                other => unreachable!("{other:?}"),
            }
        };
        // Keys and centroids from the same few values, so that exact distance ties occur.
        let keys: Vec<f32> = (0..shape.keys_len()).map(|_| rng.random_range(-4..=4) as f32 / 4.0).collect();
        let codebooks: Vec<f32> = (0..shape.codebooks_len()).map(|_| rng.random_range(-4..=4) as f32 / 4.0).collect();
        let new: Vec<f32> = (0..b * hkv * t * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        run(keys, codebooks, new);
    }
}

/// `Gpu::train_into` against `reference::train` on the same data: the objective of the GPU's
/// codebooks within 1% of the reference's (clustered keys; keys from few values, where distance
/// ties and empty clusters occur; all keys equal), every dtype pair, ragged valid lengths on the
/// device, early stops; a rerun into fresh poisoned buffers gives the same bits; bad arguments
/// typed.
#[test]
fn training_matches_the_reference_objective() {
    use pqtopk::{IndexShape, TrainOptions, train_workspace_len};
    let Some(gpu) = gpu("train") else { return };
    let mut rng = support::rng("train");
    let stream = stream();
    struct OnGpu<'a>(&'a Gpu, &'a Stream);
    impl support::Trains for OnGpu<'_> {
        fn train<K: Element, C: Element>(&mut self, case: &support::TrainCase, keys: &[K]) -> Vec<C> {
            let (gpu, stream, shape) = (self.0, self.1, &case.shape);
            let d_keys = DeviceBuffer::from_slice(keys).unwrap();
            let d_valid = case.n_valid.as_ref().map(|v| DeviceBuffer::from_slice(v).unwrap());
            let poison = C::from_f32(f32::NAN);
            let mut d_codebooks = DeviceBuffer::from_slice(&vec![poison; shape.codebooks_len()]).unwrap();
            let mut workspace = DeviceBuffer::from_slice(&vec![0xABu8; train_workspace_len(shape).unwrap()]).unwrap();
            gpu.train_into(shape, &case.options, stream, &d_keys, d_valid.as_deref(), &mut d_codebooks, &mut workspace)
                .unwrap();
            stream.synchronize().unwrap();
            let mut got = vec![poison; shape.codebooks_len()];
            d_codebooks.copy_to(&mut got[..]).unwrap();
            got
        }
    }
    let cases = support::train_cases(&mut rng);
    for case in &cases {
        support::check_train_case(&mut OnGpu(&gpu, &stream), case);
    }
    let cases = cases.len();
    println!("train: {cases} cases against the f64 reference");
    // Bad arguments: typed, before any launch.
    let shape = IndexShape::new(1, 2, 300, 16, 4, 16);
    let d_keys = DeviceBuffer::from_slice(&vec![0.5f32; shape.keys_len()]).unwrap();
    let mut d_codebooks = DeviceBuffer::from_slice(&vec![0.0f32; shape.codebooks_len()]).unwrap();
    let len = train_workspace_len(&shape).unwrap();
    let mut short = DeviceBuffer::from_slice(&vec![0u8; len - 1]).unwrap();
    let options = TrainOptions::default();
    let err = gpu.train_into(&shape, &options, &stream, &d_keys, None, &mut d_codebooks, &mut short);
    assert!(matches!(err, Err(Error::BufferLength { name: "workspace", .. })), "{err:?}");
    let mut workspace = DeviceBuffer::from_slice(&vec![0u8; len]).unwrap();
    let lengths = DeviceBuffer::from_slice(&[300u32, 300]).unwrap();
    let err = gpu.train_into(&shape, &options, &stream, &d_keys, Some(&lengths), &mut d_codebooks, &mut workspace);
    assert!(matches!(err, Err(Error::BufferLength { name: "n_valid", .. })), "{err:?}");
    let too_many = IndexShape { c: 301, ..shape };
    let err = gpu.train_into(&too_many, &options, &stream, &d_keys, None, &mut d_codebooks, &mut workspace);
    assert!(matches!(err, Err(Error::InvalidArgument { .. })), "{err:?}");
}

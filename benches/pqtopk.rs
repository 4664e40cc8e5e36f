//! Benchmarks of the fused score + top-k, timed on the GPU with CUDA events.
//!
//! `cargo bench --bench pqtopk`                      criterion, on the default shapes
//! `cargo bench --bench pqtopk -- --table [FILE] [--json OUT] [--dtype f16|bf16|f32] [--metric ip|l2] [--order score|index] [--shape NAME]`
//!     one line per shape of FILE (default: benches/shapes.json, the peers' list): median µs, the
//!     byte floor at the measured copy bandwidth, the ratio to it, and the achieved bandwidth.
//!
//! Every timed call rotates among several input sets of random data, after a warm-up; the
//! stream is synchronized (through the end event) before a time is read.

use criterion::Criterion;
use cust::event::{Event, EventFlags};
use cust::memory::{AsyncCopyDestination, DeviceBuffer};
use cust::stream::{Stream, StreamFlags};
use pqtopk::half::{bf16, f16};
use pqtopk::{DType, Element, Error, Gpu, Inputs, Metric, Order, Outputs, Plan, Problem};
use std::time::Duration;

const INPUT_SETS: usize = 4;
const WARMUP: usize = 10;
const TIMED: usize = 50;

#[derive(Clone, Debug)]
struct Shape {
    name: String,
    problem: Problem,
}

/// Reads `{"shapes": [{"name", "b", "h", "hkv", "sq", "n", "d", "m", "c", "k"}, …]}`.
fn load_shapes(path: &str) -> Vec<Shape> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("shape field {k}")) as usize;
            Shape {
                name: s["name"].as_str().unwrap().to_string(),
                problem: Problem::new(f("b"), f("h"), f("hkv"), f("sq"), f("d"), f("m"), f("c"), f("n"), f("k")),
            }
        })
        .collect()
}

/// Device buffers of one problem: several input sets, the outputs and the workspace.
struct Bench<Q: Element, C: Element> {
    plan: Plan,
    sets: Vec<(DeviceBuffer<Q>, DeviceBuffer<C>, DeviceBuffer<u8>)>,
    indices: DeviceBuffer<u32>,
    scores: DeviceBuffer<f32>,
    workspace: DeviceBuffer<u8>,
}

fn random_vec<T>(len: usize, seed: &mut u64, f: impl Fn(f32) -> T) -> Vec<T> {
    (0..len)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            f((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

impl<Q: Element, C: Element> Bench<Q, C> {
    fn new(gpu: &Gpu, p: &Problem) -> Result<Self, Error> {
        let plan = gpu.plan(p)?;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let sets = (0..INPUT_SETS)
            .map(|_| -> Result<_, Error> {
                let q = random_vec(p.queries_len(), &mut seed, Q::from_f32);
                let cb = random_vec(p.codebooks_len(), &mut seed, C::from_f32);
                let codes = random_vec(p.codes_len(), &mut seed, |x| {
                    ((x + 1.0) * 0.5 * p.c as f32).min(p.c as f32 - 1.0) as u8
                });
                Ok((DeviceBuffer::from_slice(&q)?, DeviceBuffer::from_slice(&cb)?, DeviceBuffer::from_slice(&codes)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Bench {
            sets,
            indices: DeviceBuffer::zeroed(p.out_len())?,
            scores: DeviceBuffer::zeroed(p.out_len())?,
            workspace: DeviceBuffer::zeroed(plan.workspace_bytes())?,
            plan,
        })
    }

    fn launch(&mut self, gpu: &Gpu, stream: &Stream, set: usize) -> Result<(), Error> {
        let (q, cb, codes) = &self.sets[set % self.sets.len()];
        let inputs = Inputs { queries: q, codebooks: cb, codes, n_valid: None };
        let mut outputs = Outputs { indices: &mut self.indices, scores: Some(&mut self.scores) };
        gpu.topk_into(&self.plan, stream, &inputs, &mut outputs, &mut self.workspace)
    }

    /// Event-timed durations of `iters` calls, each on the next input set.
    fn time(&mut self, gpu: &Gpu, stream: &Stream, iters: usize) -> Result<Vec<Duration>, Error> {
        let (start, end) = (Event::new(EventFlags::DEFAULT)?, Event::new(EventFlags::DEFAULT)?);
        let mut times = Vec::with_capacity(iters);
        for i in 0..iters {
            start.record(stream)?;
            self.launch(gpu, stream, i)?;
            end.record(stream)?;
            end.synchronize()?;
            times.push(end.elapsed(&start)?);
        }
        Ok(times)
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Device-to-device copy bandwidth (bytes read + written per second) of a 256 MiB copy.
fn copy_bandwidth(stream: &Stream) -> Result<f64, Error> {
    let len = 256 << 20;
    let src = DeviceBuffer::<u8>::zeroed(len)?;
    let mut dst = DeviceBuffer::<u8>::zeroed(len)?;
    let (start, end) = (Event::new(EventFlags::DEFAULT)?, Event::new(EventFlags::DEFAULT)?);
    let mut times = vec![];
    for _ in 0..10 {
        start.record(stream)?;
        // SAFETY: both buffers live until the synchronize below.
        unsafe { dst.async_copy_from(&src, stream)? };
        end.record(stream)?;
        end.synchronize()?;
        times.push(end.elapsed(&start)?);
    }
    Ok(2.0 * len as f64 / median(times).as_secs_f64())
}

struct Options {
    dtype: DType,
    metric: Metric,
    order: Order,
}

/// The median time of a call.
fn measure<Q: Element, C: Element>(gpu: &Gpu, stream: &Stream, p: &Problem) -> Result<Duration, Error> {
    let mut bench = Bench::<Q, C>::new(gpu, p)?;
    bench.time(gpu, stream, WARMUP)?;
    Ok(median(bench.time(gpu, stream, TIMED)?))
}

fn measure_dtype(gpu: &Gpu, stream: &Stream, p: &Problem) -> Result<Duration, Error> {
    match p.query_dtype {
        DType::F32 => measure::<f32, f32>(gpu, stream, p),
        DType::F16 => measure::<f16, f16>(gpu, stream, p),
        DType::BF16 => measure::<bf16, bf16>(gpu, stream, p),
    }
}

fn table(gpu: &Gpu, shapes: &[Shape], json_out: Option<&str>, options: &Options) -> Result<(), Error> {
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    let bandwidth = copy_bandwidth(&stream)?;
    println!(
        "device {} (ordinal {}), copy bandwidth {:.2} TB/s (read + write)",
        gpu.name()?,
        gpu.ordinal(),
        bandwidth / 1e12
    );
    println!(
        "options: {:?} {:?} {:?}; {TIMED} timed calls after {WARMUP} warm-up, rotating {INPUT_SETS} input sets",
        options.dtype, options.metric, options.order
    );
    println!("{:24} {:>10} {:>10} {:>9} {:>10}", "shape", "median_us", "floor_us", "x_floor", "GB/s");
    let mut rows = vec![];
    for shape in shapes {
        let p = shape
            .problem
            .with_dtypes(options.dtype, options.dtype)
            .with_metric(options.metric)
            .with_order(options.order);
        let elem = if options.dtype == DType::F32 { 4 } else { 2 };
        let bytes = p.codes_len() + (p.queries_len() + p.codebooks_len()) * elem + p.out_len() * 4;
        let floor_us = bytes as f64 / bandwidth * 1e6;
        let t = measure_dtype(gpu, &stream, &p)?;
        let us = t.as_secs_f64() * 1e6;
        println!(
            "{:24} {:>10.1} {:>10.2} {:>9.1} {:>10.0}",
            shape.name,
            us,
            floor_us,
            us / floor_us,
            bytes as f64 / t.as_secs_f64() / 1e9,
        );
        rows.push(serde_json::json!({
            "shape": shape.name, "median_us": us, "floor_us": floor_us, "ratio_to_floor": us / floor_us,
            "bytes": bytes, "achieved_gbps": bytes as f64 / t.as_secs_f64() / 1e9,
        }));
    }
    if let Some(path) = json_out {
        let doc = serde_json::json!({ "device": gpu.name()?, "copy_bandwidth_tbps": bandwidth / 1e12, "rows": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write json");
        println!("wrote {path}");
    }
    Ok(())
}

fn criterion_benches(gpu: &Gpu, shapes: &[Shape]) -> Result<(), Error> {
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut group = c.benchmark_group("pq_topk_f16_ip");
    for shape in shapes.iter().filter(|s| s.name.starts_with("decode_b1") || s.name.starts_with("hub_")) {
        let mut bench = Bench::<f16, f16>::new(gpu, &shape.problem)?;
        group.bench_function(&shape.name, |b| {
            b.iter_custom(|iters| bench.time(gpu, &stream, iters as usize).unwrap().into_iter().sum());
        });
    }
    group.finish();
    Ok(())
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).filter(|v| !v.starts_with("--")).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gpu = match Gpu::new(0) {
        Ok(gpu) => gpu,
        Err(Error::NoDevice(reason)) => {
            println!("no CUDA device ({reason}): nothing to benchmark");
            return;
        }
        Err(e) => panic!("CUDA failed: {e}"),
    };
    let default_shapes = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/shapes.json");
    if args.iter().any(|a| a == "--table") {
        let path = arg_after(&args, "--table").unwrap_or_else(|| default_shapes.to_string());
        let options = Options {
            dtype: match arg_after(&args, "--dtype").as_deref() {
                Some("f32") => DType::F32,
                Some("bf16") => DType::BF16,
                _ => DType::F16,
            },
            metric: if arg_after(&args, "--metric").as_deref() == Some("l2") {
                Metric::L2
            } else {
                Metric::InnerProduct
            },
            order: if arg_after(&args, "--order").as_deref() == Some("index") {
                Order::ByIndex
            } else {
                Order::ByScore
            },
        };
        let mut shapes = load_shapes(&path);
        if let Some(only) = arg_after(&args, "--shape") {
            shapes.retain(|s| s.name == only);
        }
        table(&gpu, &shapes, arg_after(&args, "--json").as_deref(), &options).unwrap();
    } else {
        criterion_benches(&gpu, &load_shapes(default_shapes)).unwrap();
    }
}

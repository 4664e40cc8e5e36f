//! Benchmarks of the fused score + top-k, timed on the GPU with CUDA events.
//!
//! `cargo bench --bench pqtopk`                      criterion, on the default shapes
//! `cargo bench --bench pqtopk -- --table [FILE] [--json OUT] [--path auto|small|cluster|launches] [--dist NAME|all] [--dtype f16|bf16|f32] [--metric ip|l2] [--order score|index] [--shape NAME] [--kernels] [--warm]`
//!     one line per (shape of FILE, data family): FILE defaults to benches/shapes.json (the peers'
//!     list); `--dist` takes a family of `tests/support/dist.rs` (uniform, llm, narrow, equal,
//!     sorted; a comma-separated list; or `all`), default uniform. Columns: the median µs of a
//!     call on the stream, the median µs of a CUDA graph replay of the same call, the byte floor
//!     at the measured copy bandwidth, and the stream time's ratio to it. `--kernels` adds a
//!     line per row with each launch's median µs (events recorded between the launches of a
//!     call on the stream, so the gaps between kernels count toward the kernel after them).
//!     `--warm` skips the L2 flush, to show how much of a time is cold code and data.
//! `cargo bench --bench pqtopk -- --launch-floor`
//!     the floor a launch sets, timed as a call is: 1, 2 and 3 dependent launches of the smallest
//!     smoke kernel (one block reading 1 KB and writing 4 bytes), with and without the L2 flush.
//! `cargo bench --bench pqtopk -- --indexer [--json OUT]`
//!     the indexer: training, encoding, and an append + top-k decode step (`benches/indexer.rs`).
//!
//! Timed the way the peers time (`triton.testing.do_bench`): before every timed call the L2 is
//! flushed by a memset of a 256 MiB buffer, outside the event pair; CUDA events around the call;
//! a warm-up; the median. Calls rotate among several input sets of the family's random data, and
//! the stream is synchronized (through the end event) before a time is read.

#[path = "../tests/support/dist.rs"]
mod dist;
mod indexer;

use criterion::Criterion;
use cust::event::{Event, EventFlags};
use cust::memory::{AsyncCopyDestination, DeviceBuffer};
use cust::stream::{Stream, StreamFlags};
use cust::sys;
use dist::Family;
use pqtopk::half::{bf16, f16};
use pqtopk::{DType, Element, Error, Gpu, Inputs, Metric, Order, Outputs, Path, Plan, Problem};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;

const INPUT_SETS: usize = 4;
const WARMUP: usize = 10;
const TIMED: usize = 50;
/// The L2 flush: a memset of this many bytes before every timed call (as `do_bench` does).
const FLUSH_BYTES: usize = 256 << 20;

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

/// Panics with the driver's error code unless `r` is success (raw driver calls of the bench).
fn driver(r: sys::CUresult, what: &str) {
    assert_eq!(r, sys::CUresult::CUDA_SUCCESS, "{what}");
}

/// A 256 MiB buffer whose asynchronous memset evicts the L2 between timed calls, unless the
/// table runs `--warm` (then `flush` does nothing, and code and data may stay in the L2).
struct L2Flush {
    buffer: DeviceBuffer<u8>,
    calls: u8,
    enabled: bool,
}

impl L2Flush {
    fn new(enabled: bool) -> Result<Self, Error> {
        Ok(L2Flush { buffer: DeviceBuffer::zeroed(FLUSH_BYTES)?, calls: 0, enabled })
    }

    /// What the table's timing says of the L2.
    fn describe(&self) -> String {
        if self.enabled {
            format!("L2 flushed ({} MiB memset) before each call", FLUSH_BYTES >> 20)
        } else {
            "L2 not flushed (--warm)".to_string()
        }
    }

    fn flush(&mut self, stream: &Stream) {
        if !self.enabled {
            return;
        }
        self.calls = self.calls.wrapping_add(1);
        // SAFETY: the buffer lives as long as `self`, which outlives every stream it is used on
        // (each timed call synchronizes before the next).
        unsafe {
            driver(
                sys::cuMemsetD8Async(self.buffer.as_device_ptr().as_raw(), self.calls, FLUSH_BYTES, stream.as_inner()),
                "cuMemsetD8Async (L2 flush)",
            )
        };
    }
}

/// An instantiated CUDA graph of one captured call.
struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

impl Graph {
    /// Captures what `record` enqueues on `stream` (which must not be the legacy default stream).
    fn capture(stream: &Stream, record: impl FnOnce() -> Result<(), Error>) -> Result<Self, Error> {
        let (mut graph, mut exec) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: plain driver calls on a live stream of the current context.
        unsafe {
            driver(
                sys::cuStreamBeginCapture_v2(
                    stream.as_inner(),
                    sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
                ),
                "cuStreamBeginCapture_v2",
            );
            let recorded = record();
            driver(sys::cuStreamEndCapture(stream.as_inner(), &mut graph), "cuStreamEndCapture");
            if let Err(e) = recorded {
                sys::cuGraphDestroy(graph);
                return Err(e);
            }
            driver(sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0), "cuGraphInstantiateWithFlags");
        }
        Ok(Graph { graph, exec })
    }

    fn launch(&self, stream: &Stream) {
        // SAFETY: the graph's buffers are owned by the `Bench` that holds it and outlive it.
        unsafe { driver(sys::cuGraphLaunch(self.exec, stream.as_inner()), "cuGraphLaunch") };
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: created in `capture`; every launch was synchronized before the bench drops it.
        unsafe {
            sys::cuGraphExecDestroy(self.exec);
            sys::cuGraphDestroy(self.graph);
        }
    }
}

/// Device buffers of one problem: several input sets, the outputs and the workspace, and a
/// graph of one call per input set (captured on demand).
struct Bench<Q: Element, C: Element> {
    // Declared first: dropped before the buffers it runs on.
    graphs: Vec<Graph>,
    plan: Plan,
    sets: Vec<(DeviceBuffer<Q>, DeviceBuffer<C>, DeviceBuffer<u8>)>,
    indices: DeviceBuffer<u32>,
    scores: DeviceBuffer<f32>,
    workspace: DeviceBuffer<u8>,
}

impl<Q: Element, C: Element> Bench<Q, C> {
    fn new(gpu: &Gpu, p: &Problem, family: Family, path: Path) -> Result<Self, Error> {
        let plan = gpu.plan_with_path(p, path)?;
        let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        let sets = (0..INPUT_SETS)
            .map(|_| -> Result<_, Error> {
                let data = dist::generate::<Q, C, _>(&mut rng, p, family);
                Ok((
                    DeviceBuffer::from_slice(&data.queries)?,
                    DeviceBuffer::from_slice(&data.codebooks)?,
                    DeviceBuffer::from_slice(&data.codes)?,
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(Bench {
            graphs: vec![],
            sets,
            indices: DeviceBuffer::zeroed(p.out_len())?,
            scores: DeviceBuffer::zeroed(p.out_len())?,
            workspace: DeviceBuffer::zeroed(plan.workspace_bytes())?,
            plan,
        })
    }

    fn launch(&mut self, gpu: &Gpu, stream: &Stream, set: usize) -> Result<(), Error> {
        self.launch_observed(gpu, stream, set, |_| Ok(()))
    }

    /// One call on input set `set`, `after(kernel)` once each launch is queued.
    fn launch_observed(
        &mut self,
        gpu: &Gpu,
        stream: &Stream,
        set: usize,
        after: impl FnMut(&'static str) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (q, cb, codes) = &self.sets[set % self.sets.len()];
        let inputs = Inputs { queries: q, codebooks: cb, codes, n_valid: None };
        let mut outputs = Outputs { indices: &mut self.indices, scores: Some(&mut self.scores) };
        gpu.topk_into_observed(&self.plan, stream, &inputs, &mut outputs, &mut self.workspace, after)
    }

    /// The median time of each launch of a call over `iters` calls on the stream, each after
    /// `flush`: an event after each launch, each launch's time from the event before it.
    fn kernel_times(
        &mut self,
        gpu: &Gpu,
        stream: &Stream,
        flush: &mut L2Flush,
        iters: usize,
    ) -> Result<Vec<(&'static str, Duration)>, Error> {
        let start = Event::new(EventFlags::DEFAULT)?;
        let mut marks: Vec<Event> = vec![];
        let mut launches: Vec<(&'static str, Vec<Duration>)> = vec![];
        for i in 0..iters {
            flush.flush(stream);
            start.record(stream)?;
            let mut kernels = vec![];
            self.launch_observed(gpu, stream, i, |kernel| {
                if marks.len() == kernels.len() {
                    marks.push(Event::new(EventFlags::DEFAULT)?);
                }
                marks[kernels.len()].record(stream)?;
                kernels.push(kernel);
                Ok(())
            })?;
            marks[kernels.len() - 1].synchronize()?;
            for (j, kernel) in kernels.into_iter().enumerate() {
                let time = marks[j].elapsed(if j == 0 { &start } else { &marks[j - 1] })?;
                match launches.get_mut(j) {
                    Some((_, times)) => times.push(time),
                    None => launches.push((kernel, vec![time])),
                }
            }
        }
        Ok(launches.into_iter().map(|(kernel, times)| (kernel, median(times))).collect())
    }

    /// Captures one call per input set into a graph (once).
    fn capture_graphs(&mut self, gpu: &Gpu, stream: &Stream) -> Result<(), Error> {
        stream.synchronize()?;
        while self.graphs.len() < self.sets.len() {
            let set = self.graphs.len();
            let graph = Graph::capture(stream, || self.launch(gpu, stream, set))?;
            self.graphs.push(graph);
        }
        Ok(())
    }

    /// Event-timed durations of `iters` calls, each on the next input set after an L2 flush;
    /// replays of the captured graphs when `graph`, calls on the stream otherwise.
    fn time(
        &mut self,
        gpu: &Gpu,
        stream: &Stream,
        flush: &mut L2Flush,
        iters: usize,
        graph: bool,
    ) -> Result<Vec<Duration>, Error> {
        if graph {
            self.capture_graphs(gpu, stream)?;
        }
        event_times(stream, flush, iters, |i| {
            if graph {
                self.graphs[i % self.graphs.len()].launch(stream);
                Ok(())
            } else {
                self.launch(gpu, stream, i)
            }
        })
    }
}

/// Event-timed durations of `iters` calls of `record(i)`, each after an L2 flush, the stream
/// synchronized (through the end event) before each time is read.
fn event_times(
    stream: &Stream,
    flush: &mut L2Flush,
    iters: usize,
    mut record: impl FnMut(usize) -> Result<(), Error>,
) -> Result<Vec<Duration>, Error> {
    let (start, end) = (Event::new(EventFlags::DEFAULT)?, Event::new(EventFlags::DEFAULT)?);
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters {
        flush.flush(stream);
        start.record(stream)?;
        record(i)?;
        end.record(stream)?;
        end.synchronize()?;
        times.push(end.elapsed(&start)?);
    }
    Ok(times)
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

/// The smoke kernels (test-only, not in the shipped PTX), for `--launch-floor`.
const SMOKE_PTX: &str = include_str!("../host/ptx/smoke_sm80.ptx");

/// Prints the median time of 1, 2 and 3 dependent launches of `smoke_block_sum` on one block,
/// timed as a call is (events around the launches; the L2 flushed before them, and not), so
/// that a call's fixed cost per launch can be told from its work. Without the flush nothing is
/// queued ahead of the start event, so the warm times also hold the host's submission of the
/// launches: they are not the floor, only the flushed ones are.
fn launch_floor(gpu: &Gpu) -> Result<(), Error> {
    use pqtopk_abi::{BLOCK_THREADS, SmokeParams};
    gpu.make_current()?;
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    let module = cust::module::Module::from_ptx(SMOKE_PTX, &[])?;
    let kernel = module.get_function("smoke_block_sum")?;
    let input = DeviceBuffer::<u32>::zeroed(BLOCK_THREADS as usize)?;
    let output = DeviceBuffer::<u32>::zeroed(1)?;
    let params = SmokeParams {
        input: input.as_device_ptr().as_raw(),
        output: output.as_device_ptr().as_raw(),
        n: BLOCK_THREADS,
        bins: 0,
    };
    let mut flush = L2Flush::new(true)?;
    let (start, end) = (Event::new(EventFlags::DEFAULT)?, Event::new(EventFlags::DEFAULT)?);
    println!(
        "launches  flushed_us  warm_us   (smoke_block_sum, 1 block of {BLOCK_THREADS}; warm_us holds the host's submission)"
    );
    for launches in 1..=3 {
        let mut time = |flushed: bool| -> Result<Duration, Error> {
            let mut times = vec![];
            for i in 0..WARMUP + TIMED {
                if flushed {
                    flush.flush(&stream);
                }
                start.record(&stream)?;
                for _ in 0..launches {
                    // SAFETY: smoke_block_sum takes one SmokeParams; `input` holds n u32 and
                    // `output` one per block, both alive until the synchronize below.
                    unsafe { stream.launch(&kernel, 1, BLOCK_THREADS, 0, &[&params as *const SmokeParams as *mut _])? };
                }
                end.record(&stream)?;
                end.synchronize()?;
                if i >= WARMUP {
                    times.push(end.elapsed(&start)?);
                }
            }
            Ok(median(times))
        };
        let (flushed, warm) = (time(true)?, time(false)?);
        println!("{launches:8}  {:10.1}  {:7.1}", flushed.as_secs_f64() * 1e6, warm.as_secs_f64() * 1e6);
    }
    Ok(())
}

struct Options {
    dtype: DType,
    metric: Metric,
    order: Order,
    dists: Vec<Family>,
    /// The kernels' path (`Auto`: what `Gpu::plan` picks); shapes it does not apply to are skipped.
    path: Path,
    /// Each launch's time too (`--kernels`).
    kernels: bool,
    /// No L2 flush before the calls (`--warm`): how much of a time is cold code and data.
    warm: bool,
}

/// Median times of a call: (on the stream, as a graph replay), and each launch's where asked.
struct Times {
    stream: Duration,
    graph: Duration,
    kernels: Vec<(&'static str, Duration)>,
}

fn measure<Q: Element, C: Element>(
    gpu: &Gpu,
    stream: &Stream,
    flush: &mut L2Flush,
    p: &Problem,
    family: Family,
    options: &Options,
) -> Result<Times, Error> {
    let mut bench = Bench::<Q, C>::new(gpu, p, family, options.path)?;
    bench.time(gpu, stream, flush, WARMUP, false)?;
    let on_stream = median(bench.time(gpu, stream, flush, TIMED, false)?);
    let kernels = if options.kernels { bench.kernel_times(gpu, stream, flush, TIMED)? } else { vec![] };
    bench.time(gpu, stream, flush, WARMUP, true)?;
    let graph = median(bench.time(gpu, stream, flush, TIMED, true)?);
    Ok(Times { stream: on_stream, graph, kernels })
}

fn measure_dtype(
    gpu: &Gpu,
    stream: &Stream,
    flush: &mut L2Flush,
    p: &Problem,
    family: Family,
    options: &Options,
) -> Result<Times, Error> {
    match p.query_dtype {
        DType::F32 => measure::<f32, f32>(gpu, stream, flush, p, family, options),
        DType::F16 => measure::<f16, f16>(gpu, stream, flush, p, family, options),
        DType::BF16 => measure::<bf16, bf16>(gpu, stream, flush, p, family, options),
    }
}

fn table(gpu: &Gpu, shapes: &[Shape], json_out: Option<&str>, options: &Options) -> Result<(), Error> {
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    let bandwidth = copy_bandwidth(&stream)?;
    let mut flush = L2Flush::new(!options.warm)?;
    println!(
        "device {} (ordinal {}), copy bandwidth {:.2} TB/s (read + write)",
        gpu.name()?,
        gpu.ordinal(),
        bandwidth / 1e12
    );
    println!(
        "options: {:?} {:?} {:?}, path {:?}; {TIMED} timed calls after {WARMUP} warm-up, rotating {INPUT_SETS} input \
         sets, {}",
        options.dtype,
        options.metric,
        options.order,
        options.path,
        flush.describe()
    );
    println!("{:24} {:8} {:>10} {:>10} {:>10} {:>8}", "shape", "dist", "stream_us", "graph_us", "floor_us", "x_floor");
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
        for &family in &options.dists {
            let t = match measure_dtype(gpu, &stream, &mut flush, &p, family, options) {
                Err(Error::Unsupported(why)) => {
                    println!("{:24} {:8} skipped: {why}", shape.name, family.name());
                    continue;
                }
                t => t?,
            };
            let (us, graph_us) = (t.stream.as_secs_f64() * 1e6, t.graph.as_secs_f64() * 1e6);
            println!(
                "{:24} {:8} {:>10.1} {:>10.1} {:>10.2} {:>8.1}",
                shape.name,
                family.name(),
                us,
                graph_us,
                floor_us,
                us / floor_us,
            );
            let kernels: Vec<(&str, f64)> =
                t.kernels.iter().map(|&(kernel, time)| (kernel, time.as_secs_f64() * 1e6)).collect();
            if !kernels.is_empty() {
                let each: Vec<String> = kernels.iter().map(|(kernel, us)| format!("{kernel} {us:.1}")).collect();
                println!("{:24} {:8} kernels: {}", "", "", each.join(" | "));
            }
            rows.push(serde_json::json!({
                "shape": shape.name, "dist": family.name(), "median_us": us, "stream_us": us,
                "graph_us": graph_us, "floor_us": floor_us, "ratio_to_floor": us / floor_us,
                "bytes": bytes, "achieved_gbps": bytes as f64 / t.stream.as_secs_f64() / 1e9,
                "kernels_us": kernels,
            }));
        }
    }
    if let Some(path) = json_out {
        let doc = serde_json::json!({
            "device": gpu.name()?, "copy_bandwidth_tbps": bandwidth / 1e12,
            "timing": format!("CUDA events, median of {TIMED} after {WARMUP} warm-up, {}", flush.describe()),
            "dtype": format!("{:?}", options.dtype), "metric": format!("{:?}", options.metric),
            "order": format!("{:?}", options.order), "path": format!("{:?}", options.path), "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write json");
        println!("wrote {path}");
    }
    Ok(())
}

fn criterion_benches(gpu: &Gpu, shapes: &[Shape]) -> Result<(), Error> {
    let stream = Stream::new(StreamFlags::NON_BLOCKING, None)?;
    let mut flush = L2Flush::new(true)?;
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut group = c.benchmark_group("pq_topk_f16_ip");
    for shape in shapes.iter().filter(|s| s.name.starts_with("decode_b1") || s.name.starts_with("hub_")) {
        let mut bench = Bench::<f16, f16>::new(gpu, &shape.problem, Family::Uniform, Path::Auto)?;
        group.bench_function(&shape.name, |b| {
            // Each call's event time (synchronized before it is read), L2 flushed before each.
            b.iter_custom(|iters| {
                bench.time(gpu, &stream, &mut flush, iters as usize, false).unwrap().into_iter().sum()
            });
        });
    }
    group.finish();
    Ok(())
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).filter(|v| !v.starts_with("--")).cloned()
}

/// `all`, or a comma-separated list of family names.
fn parse_dists(arg: &str) -> Vec<Family> {
    if arg == "all" {
        return Family::ALL.to_vec();
    }
    arg.split(',')
        .map(|name| {
            Family::parse(name).unwrap_or_else(|| {
                let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                panic!("--dist {name}: expected all or one of {}", names.join(", "))
            })
        })
        .collect()
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
    if args.iter().any(|a| a == "--launch-floor") {
        launch_floor(&gpu).unwrap();
    } else if args.iter().any(|a| a == "--indexer") {
        let stream = Stream::new(StreamFlags::NON_BLOCKING, None).unwrap();
        let bandwidth = copy_bandwidth(&stream).unwrap();
        indexer::indexer(&gpu, bandwidth, arg_after(&args, "--json").as_deref()).unwrap();
    } else if args.iter().any(|a| a == "--table") {
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
            dists: parse_dists(arg_after(&args, "--dist").as_deref().unwrap_or("uniform")),
            path: match arg_after(&args, "--path").as_deref() {
                Some("small") => Path::OneBlockPerRow,
                Some("cluster") => Path::Cluster,
                Some("launches") => Path::Launches,
                _ => Path::Auto,
            },
            kernels: args.iter().any(|a| a == "--kernels"),
            warm: args.iter().any(|a| a == "--warm"),
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

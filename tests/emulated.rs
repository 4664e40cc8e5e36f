//! The kernels without a GPU: the launches of each call, as the plan makes them, run through the
//! kernels' host build (`pqtopk-kernels-emulated`: a CPU thread per GPU thread, barriers and warp
//! collectives as rendezvous) and are checked against the f64 reference as the GPU tests check
//! the device. These run everywhere, CI included; they test the kernels' logic (selection paths,
//! data families, edge cases), while `tests/gpu.rs` tests the compiled PTX on a device.
//!
//! The emulator also fails a launch on what the GPU leaves undefined: divergent barriers, shared
//! memory views beyond the launch's, indices outside a view, deadlocks, integer overflow.

mod support;

use pqtopk::half::{bf16, f16};
use pqtopk::{DType, Element, IndexShape, Kernel, Launch, Metric, Order, Path, Plan, Problem, RawBuffers, RawSlice};

use pqtopk_kernels_emulated as kernels;
use rand::Rng;
use rand::rngs::StdRng;
use support::{Data, HostData, METRICS, ORDERS, POISON_INDEX, POISON_SCORE_BITS};

/// Bytes at the strictest alignment the kernels assume of a buffer (the workspace's 256).
struct Aligned {
    words: Vec<u128>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn filled(len: usize, byte: u8) -> Aligned {
        let mut words = vec![0u128; len.div_ceil(16) + 16];
        let offset = (words.as_ptr() as *const u8).align_offset(256);
        // SAFETY: offset + len bytes lie within the words (16 spare words cover the alignment).
        unsafe { (words.as_mut_ptr() as *mut u8).add(offset).write_bytes(byte, len) };
        Aligned { words, offset, len }
    }

    fn copy_of<T: Copy>(data: &[T]) -> Aligned {
        let mut buffer = Aligned::filled(size_of_val(data), 0);
        // SAFETY: the buffer holds exactly the slice's bytes from its aligned start.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, buffer.start(), buffer.len) };
        buffer
    }

    fn start(&mut self) -> *mut u8 {
        // SAFETY: within the words, as in `filled`.
        unsafe { (self.words.as_mut_ptr() as *mut u8).add(self.offset) }
    }

    fn address(&mut self) -> u64 {
        self.start() as u64
    }

    fn read<T: Copy>(&mut self) -> Vec<T> {
        let len = self.len / size_of::<T>();
        // SAFETY: the buffer holds `len` elements of T from its aligned start.
        unsafe { std::slice::from_raw_parts(self.start() as *const T, len) }.to_vec()
    }
}

/// Runs one launch through the emulator; a failed launch fails the test with the kernel's name.
fn emulate(launch: Launch) -> pqtopk::Result<()> {
    let Launch { kernel, blocks, threads, shared_bytes } = launch;
    let cluster = kernel.cluster_blocks();
    let run = |body: &(dyn Fn() + Sync)| {
        // SAFETY: the plan made the launch for buffers that `run` allocated to its sizes and
        // alignments; nothing else touches them until it returns.
        unsafe { kernels::emulate(blocks, cluster, threads, shared_bytes, body) }
    };
    // SAFETY (every arm): the parameters are the plan's for this kernel.
    let result = match kernel {
        Kernel::TopkSmall(p) => run(&|| unsafe { kernels::pq_topk_small(p) }),
        Kernel::Tables(p) => run(&|| unsafe { kernels::pq_tables(p) }),
        Kernel::Ranges(p) => run(&|| unsafe { kernels::pq_ranges(p) }),
        Kernel::Score(p) => run(&|| unsafe { kernels::pq_score(p) }),
        Kernel::ScoreDense(p) => run(&|| unsafe { kernels::pq_score_dense(p) }),
        Kernel::Select(p) => run(&|| unsafe { kernels::pq_select(p) }),
        Kernel::SelectByIndex(p) => run(&|| unsafe { kernels::pq_select_by_index(p) }),
        Kernel::SelectLongByIndex(p) => run(&|| unsafe { kernels::pq_select_long_by_index(p) }),
        Kernel::SortRuns(p) => run(&|| unsafe { kernels::pq_sort_runs(p) }),
        Kernel::MergeRuns(p) => run(&|| unsafe { kernels::pq_merge_runs(p) }),
        Kernel::WriteByIndex(p) => run(&|| unsafe { kernels::pq_write_by_index(p) }),
        Kernel::WriteCandidates(p) => run(&|| unsafe { kernels::pq_write_candidates(p) }),
        Kernel::TopkCluster(p) => run(&|| unsafe { kernels::pq_topk_cluster(p) }),
        Kernel::AdvanceLengths(p) => run(&|| unsafe { kernels::pq_advance_lengths(p) }),
        Kernel::Encode { width_index, params: p } => run(&|| unsafe { kernels::ENCODE_BY_WIDTH[width_index](p) }),
        Kernel::TrainInit(p) => run(&|| unsafe { kernels::pq_train_init(p) }),
        Kernel::TrainUpdate(p) => run(&|| unsafe { kernels::pq_train_update(p) }),
        Kernel::TrainAssign { width_index, params: p } => {
            run(&|| unsafe { kernels::TRAIN_ASSIGN_BY_WIDTH[width_index](p) })
        }
    };
    if let Err(failure) = result {
        panic!("{kernel:?} ({blocks} blocks of {threads}): {failure}");
    }
    Ok(())
}

/// Runs the call's launches on `data` into poisoned outputs and a garbage workspace; returns
/// the indices and scores.
fn run_emulated<Q: Element, C: Element>(plan: &Plan, data: &HostData<Q, C>) -> (Vec<u32>, Vec<f32>) {
    let p = plan.problem();
    let mut queries = Aligned::copy_of(&data.queries);
    let mut codebooks = Aligned::copy_of(&data.codebooks);
    let mut codes = Aligned::copy_of(&data.codes);
    let mut n_valid = data.n_valid.as_deref().map(Aligned::copy_of);
    let mut indices = Aligned::copy_of(&vec![POISON_INDEX; p.out_len()]);
    let mut scores = Aligned::copy_of(&vec![POISON_SCORE_BITS; p.out_len()]);
    let mut workspace = Aligned::filled(plan.workspace_bytes(), 0xAB);
    let buffers = RawBuffers {
        queries: queries.address(),
        codebooks: codebooks.address(),
        codes: codes.address(),
        n_valid: n_valid.as_mut().map_or(0, Aligned::address),
        indices: indices.address(),
        scores: scores.address(),
        workspace: workspace.address(),
    };
    plan.launches(&buffers, emulate).unwrap();
    (indices.read(), scores.read())
}

/// The kernel paths; every case runs on each that applies to it.
const PATHS: [Path; 3] = [Path::OneBlockPerRow, Path::Cluster, Path::Launches];

/// The emulated kernels, on every path of the host build that applies.
struct Emulated;

impl support::Runs for Emulated {
    fn run<Q: Element, C: Element>(
        &mut self,
        _: &mut StdRng,
        p: &Problem,
        data: &HostData<Q, C>,
    ) -> Vec<(String, Vec<u32>, Vec<f32>)> {
        PATHS
            .into_iter()
            .filter_map(|path| {
                let (indices, scores) = run_emulated(&Plan::emulated(p, path).ok()?, data);
                Some((format!("{path:?}"), indices, scores))
            })
            .collect()
    }
}

/// Checks every case with fresh inputs against the f64 reference.
fn check_all(test: &str, cases: Vec<(Problem, Data, bool)>) {
    let mut rng = support::rng(test);
    let rows: usize =
        cases.iter().map(|(p, data, ragged)| support::check_case(&mut Emulated, &mut rng, p, *data, *ragged)).sum();
    println!("{test}: {} cases, {rows} rows checked against the f64 reference (emulated kernels)", cases.len());
}

#[test]
fn dtypes_metrics_group_and_orders() {
    let mut cases = Vec::new();
    for (i, (q, cb)) in [
        (DType::F32, DType::F32),
        (DType::F16, DType::F16),
        (DType::BF16, DType::BF16),
        (DType::F16, DType::F32),
        (DType::F32, DType::BF16),
    ]
    .into_iter()
    .enumerate()
    {
        for metric in METRICS {
            for (j, order) in ORDERS.into_iter().enumerate() {
                let p = Problem::new(2, 8, 2, 3, 64, 8, 64, 1000, 32)
                    .with_dtypes(q, cb)
                    .with_metric(metric)
                    .with_group((i + j) % 2 == 1)
                    .with_order(order);
                cases.push((p, Data::Random, cases.len() % 2 == 1));
            }
        }
    }
    // Sub-spaces of three elements (no vector loads) whose centroids several lanes share.
    for (i, metric) in METRICS.into_iter().enumerate() {
        let p = Problem::new(1, 4, 2, 2, 24, 8, 32, 700, 50).with_metric(metric).with_group(i == 1);
        cases.push((p, Data::Random, false));
    }
    check_all("dtypes_metrics_group_and_orders", cases);
}

#[test]
fn k_and_n_from_one_to_past_the_sort_capacity() {
    let mut cases = Vec::new();
    for n in [1, 31, 1000, 9001] {
        let mut ks: Vec<usize> = [1, 7, 32, 255, 256, 1000, 2048, 2049, 5000].into_iter().filter(|&k| k < n).collect();
        ks.push(n);
        for (i, k) in ks.into_iter().enumerate() {
            let p = Problem::new(1, 2, 1, 1, 64, 16, 256, n, k)
                .with_metric(METRICS[i % 2])
                .with_order(ORDERS[i % 3])
                .with_group(i % 4 == 3);
            cases.push((p, Data::Random, false));
        }
    }
    check_all("k_and_n_from_one_to_past_the_sort_capacity", cases);
}

#[test]
fn k_close_to_n_over_scores_of_both_signs() {
    // Issue #10's edge shape: nearly every key taken, so the output spans scores of both signs
    // and many powers of two, whose order bits crowd a few buckets: the output buckets are
    // spread over the scores' values instead.
    let cases = [(4097, Order::ByScore), (4000, Order::ByScore), (4097, Order::ByIndex)]
        .into_iter()
        .enumerate()
        .map(|(i, (k, order))| {
            let p = Problem::new(1, 4, 2, 1, 128, 16, 256, 4097, k)
                .with_dtypes(DType::F16, DType::F16)
                .with_metric(METRICS[i % 2])
                .with_order(order);
            (p, Data::Random, false)
        })
        .collect();
    check_all("k_close_to_n_over_scores_of_both_signs", cases);
}

#[test]
fn every_data_family() {
    let shapes = [
        Problem::new(2, 4, 2, 2, 64, 8, 64, 5000, 100).with_dtypes(DType::F32, DType::F32),
        Problem::new(1, 8, 2, 1, 128, 16, 256, 5000, 300).with_dtypes(DType::F16, DType::F16),
        Problem::new(2, 4, 1, 1, 64, 4, 16, 1500, 1021).with_dtypes(DType::BF16, DType::F16).with_group(true),
    ];
    let mut cases = Vec::new();
    for (s, shape) in shapes.iter().enumerate() {
        for (f, data) in Data::FAMILIES.into_iter().enumerate() {
            let p = shape.with_metric(METRICS[(s + f) % 2]).with_order(ORDERS[(s + f) % 3]);
            cases.push((p, data, (s + f) % 4 == 0));
        }
    }
    check_all("every_data_family", cases);
}

#[test]
fn ties_nan_and_infinities() {
    let mut cases = Vec::new();
    for (i, data) in [Data::Ties, Data::Special].into_iter().enumerate() {
        for (j, (n, k)) in [(700, 50), (6000, 2049)].into_iter().enumerate() {
            let p = Problem::new(2, 4, 2, 1, 64, 8, 64, n, k).with_metric(METRICS[(i + j) % 2]).with_order(ORDERS[j]);
            cases.push((p, data, j == 1));
        }
    }
    check_all("ties_nan_and_infinities", cases);
}

#[test]
fn ragged_valid_lengths() {
    let mut cases = Vec::new();
    for (i, (n, k)) in [(3000, 100), (500, 499), (5000, 2049), (64, 64)].into_iter().enumerate() {
        let p = Problem::new(8, 4, 2, 1, 64, 8, 256, n, k).with_metric(METRICS[i % 2]).with_order(ORDERS[i % 3]);
        cases.push((p, Data::Random, true));
    }
    check_all("ragged_valid_lengths", cases);
}

#[test]
fn many_rows_per_kv_head_on_tensor_cores() {
    let mut cases = Vec::new();
    for (i, (dtype, metric)) in [(DType::F16, Metric::InnerProduct), (DType::BF16, Metric::L2)].into_iter().enumerate()
    {
        let p = Problem::new(1, 8, 1, 4, 64, 8, 64, 3001, [100, 2048][i])
            .with_dtypes(dtype, dtype)
            .with_metric(metric)
            .with_order(ORDERS[i]);
        cases.push((p, [Data::Random, Data::Special][i], i == 1));
    }
    check_all("many_rows_per_kv_head_on_tensor_cores", cases);
}

#[test]
fn k_past_the_shared_sort_capacity_sorts_in_runs() {
    // k = 20000 rounds to 32768 slots, more than the selection's shared memory sorts:
    // `pq_write_candidates` writes each row's candidates a chunk per block, then runs of
    // `RUN_KEYS` and merge passes sort them. Equal keys rank by index in the chunks, and late
    // outliers (keys above the ties, after the last tie taken) fail a chunk placed without the
    // ties taken before it.
    let p = Problem::new(1, 2, 1, 1, 64, 8, 64, 24000, 20000);
    let cases =
        vec![(p, Data::Random, false), (p, Data::Ties, true), (p, Data::Equal, false), (p, Data::LateOutliers, false)];
    check_all("k_past_the_shared_sort_capacity_sorts_in_runs", cases);
}

#[test]
fn k_past_the_shared_sort_capacity_by_index_writes_in_chunks() {
    // The same k in index order: the selection publishes what each row takes and
    // `pq_write_by_index` writes its 12 chunks, placed by their chained counts; ragged rows
    // shorter than k are copied by the selection itself; all keys equal rank by index in the
    // chunks, with late outliers as above.
    let p = Problem::new(2, 2, 1, 1, 64, 8, 64, 24000, 20000).with_order(Order::ByIndex);
    let cases = vec![
        (p, Data::Random, false),
        (p.with_metric(Metric::L2), Data::Ties, true),
        (p, Data::Equal, false),
        (p, Data::LateOutliers, false),
    ];
    check_all("k_past_the_shared_sort_capacity_by_index_writes_in_chunks", cases);
}

#[test]
fn rows_past_the_index_bitmap_sort_by_index() {
    // Index order over rows of 140 000 keys, whose index bitmap outgrows the tie buffer (4096
    // slots hold 131 072 keys' bits): `pq_select_long_by_index` orders the taken keys by buckets
    // over their indices itself (or sorts them, where a far key crowds the rest into a few
    // buckets), and only rows whose tied keys rank by index (equal keys, few-valued ties, late
    // outliers) go to the chunks of `pq_write_by_index`, which leave the rows the selection
    // wrote alone. Ragged rows mix those with rows short enough for the bitmap, in one launch.
    let p = Problem::new(2, 2, 1, 1, 64, 8, 64, 140_000, 2048).with_order(Order::ByIndex);
    let cases = vec![
        (p, Data::Random, true),
        (Problem { k: 1000, ..p }, Data::Equal, false),
        (p.with_metric(Metric::L2), Data::LateOutliers, false),
        (Problem { k: 4096, ..p }, Data::Ties, true),
        (p, Data::SortedFirstBest, false),
        // 10 rows of 69 chunks outnumber a wave of write blocks (528 on the emulator's 132
        // SMs): each block writes two consecutive chunks, the second placed by the first's
        // counts without a look-back; the last block of a row has one; ragged rows end in
        // blocks' first or second chunks. Equal keys, k = 3000: a second chunk takes some of
        // its ties, and another none.
        (Problem { h: 5, k: 3000, ..p }, Data::Equal, true),
        (Problem { h: 5, ..p }.with_metric(Metric::L2), Data::LateOutliers, false),
    ];
    check_all("rows_past_the_index_bitmap_sort_by_index", cases);
}

#[test]
fn few_long_rows_split_their_selection() {
    let mut cases = Vec::new();
    // Crowded rows (narrow, LLM-like) refine their ties' digits, the first round shared by the
    // row's blocks.
    let data = [Data::Random, Data::Ties, Data::Equal, Data::Equal, Data::LateOutliers, Data::Narrow, Data::Llm];
    for (i, k) in [777, 4097, 2048, 300, 1000, 2048, 3020].into_iter().enumerate() {
        let p = Problem::new(1, 2, 1, 1, 64, 8, 64, 70000, k).with_metric(METRICS[i % 2]).with_order(ORDERS[i % 3]);
        cases.push((p, data[i], i == 1));
    }
    // Score order past the sort capacity: the split row's blocks share the tie gather, then
    // its candidates are written in chunks.
    let p = Problem::new(1, 2, 1, 1, 64, 8, 64, 70000, 40000);
    cases.push((p, Data::Random, false));
    check_all("few_long_rows_split_their_selection", cases);
}

#[test]
fn crowded_rows_of_the_hub_shapes() {
    let mut cases = Vec::new();
    for (i, data) in [Data::Llm, Data::Narrow].into_iter().enumerate() {
        let p =
            Problem::new(1, 2, 1, 1, 128, 2, 64, 31872, 3020).with_dtypes(DType::F16, DType::F16).with_order(ORDERS[i]);
        cases.push((p, data, false));
    }
    check_all("crowded_rows_of_the_hub_shapes", cases);
}

/// Encodes random keys, then appends `t` keys per entry at ragged lengths, through the emulated
/// `pq_encode` and `pq_advance_lengths`, against the f64 reference (tie-aware).
fn encode_case<K: Element, C: Element>(rng: &mut StdRng, shape: &IndexShape, t: usize) {
    let (b, hkv, n, m) = (shape.b, shape.hkv, shape.n, shape.m);
    let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (keys, codebooks, new) = (draw(shape.keys_len()), draw(shape.codebooks_len()), draw(b * hkv * t * shape.d));
    let keys: Vec<K> = keys.into_iter().map(K::from_f32).collect();
    let codebooks: Vec<C> = codebooks.into_iter().map(C::from_f32).collect();
    let new: Vec<K> = new.into_iter().map(K::from_f32).collect();
    let want = pqtopk::reference::encode(shape, &keys, &codebooks).unwrap();
    let (mut d_keys, mut d_codebooks, mut d_new) =
        (Aligned::copy_of(&keys), Aligned::copy_of(&codebooks), Aligned::copy_of(&new));
    let mut d_codes = Aligned::filled(shape.codes_len(), 0xEE);
    let params = pqtopk::encode_params(shape, n, [d_keys.address(), d_codebooks.address(), d_codes.address(), 0]);
    pqtopk::encode_launches(shape, params, None, emulate).unwrap();
    let encoded: Vec<u8> = d_codes.read();
    support::check_codes(shape, &keys, &codebooks, n, &encoded, &want, |bi, kv, key| (bi * hkv + kv) * n + key);

    let before: Vec<u32> = (0..b).map(|bi| (n - t - bi * t.min(n / 4)) as u32).collect();
    let (mut lengths, mut host_codes) = (before.clone(), want.clone());
    pqtopk::reference::append(shape, &new, t, &codebooks, &mut host_codes, &mut lengths).unwrap();
    let mut d_lengths = Aligned::copy_of(&before);
    let params = pqtopk::encode_params(
        shape,
        t,
        [d_new.address(), d_codebooks.address(), d_codes.address(), d_lengths.address()],
    );
    pqtopk::encode_launches(shape, params, Some(t), emulate).unwrap();
    let (got, got_lengths): (Vec<u8>, Vec<u32>) = (d_codes.read(), d_lengths.read());
    assert_eq!(got_lengths, lengths, "lengths after the append");
    support::check_codes(shape, &new, &codebooks, t, &got, &host_codes, |bi, kv, key| {
        (bi * hkv + kv) * n + before[bi] as usize + key
    });
    // The codes before the append are the device's own (they may differ from the reference's
    // where centroids tie), untouched.
    for bi in 0..b {
        for kv in 0..hkv {
            let row = (bi * hkv + kv) * n * m;
            assert_eq!(got[row..row + before[bi] as usize * m], encoded[row..row + before[bi] as usize * m]);
        }
    }
}

#[test]
fn encode_and_append_match_the_reference() {
    let mut rng = support::rng("encode_and_append_match_the_reference");
    for (shape, t) in support::encode_shapes() {
        macro_rules! typed {
            ($($k:ty, $c:ty, $kd:ident, $cd:ident);*) => {
                match (shape.key_dtype, shape.codebook_dtype) {
                    $((DType::$kd, DType::$cd) => encode_case::<$k, $c>(&mut rng, &shape, t),)*
                }
            };
        }
        typed!(f32, f32, F32, F32; f32, f16, F32, F16; f32, bf16, F32, BF16;
               f16, f32, F16, F32; f16, f16, F16, F16; f16, bf16, F16, BF16;
               bf16, f32, BF16, F32; bf16, f16, BF16, F16; bf16, bf16, BF16, BF16);
    }
}

/// The emulated training kernels.
struct EmulatedTraining;

impl support::Trains for EmulatedTraining {
    fn train<K: Element, C: Element>(&mut self, case: &support::TrainCase, keys: &[K]) -> Vec<C> {
        let shape = &case.shape;
        let mut d_keys = Aligned::copy_of(keys);
        let mut d_valid = case.n_valid.as_deref().map(Aligned::copy_of);
        let mut d_codebooks = Aligned::copy_of(&vec![C::from_f32(f32::NAN); shape.codebooks_len()]);
        let mut workspace = Aligned::filled(pqtopk::train_workspace_len(shape).unwrap(), 0xAB);
        let buffers = pqtopk::TrainAddresses {
            keys: RawSlice { address: d_keys.address(), len: keys.len() },
            n_valid: d_valid.as_mut().map(|v| RawSlice { address: v.address(), len: shape.b }),
            codebooks: RawSlice { address: d_codebooks.address(), len: shape.codebooks_len() },
            workspace: RawSlice { address: workspace.address(), len: workspace.len },
        };
        pqtopk::emulated_train_launches::<K, C>(shape, &case.options, buffers, emulate).unwrap();
        d_codebooks.read()
    }
}

#[test]
fn training_matches_the_reference_objective() {
    let mut rng = support::rng("training_matches_the_reference_objective");
    let cases = support::train_cases(&mut rng);
    for case in &cases {
        support::check_train_case(&mut EmulatedTraining, case);
    }
    println!("training: {} cases against the f64 reference (emulated kernels)", cases.len());
}

/// `pq_ranges` (the tensor-core path's `pq_tables`) writes only each row's sub-space ranges. The selection is
/// exact whatever they are (they only place the histogram's bins), so no top-k check sees them:
/// they are checked here against the f64 smallest and largest partial score over the centroids,
/// on enough rows for 64-row tiles and a ragged last tile.
#[test]
fn tensor_core_ranges_bound_the_partial_scores() {
    let mut rng = support::rng("tensor_core_ranges_bound_the_partial_scores");
    ranges_case::<f16>(&mut rng, 64, Metric::InnerProduct);
    ranges_case::<bf16>(&mut rng, 128, Metric::L2);
}

/// One kv head of 8 heads × 1060 queries (8480 rows), `d`, m = 8, c = 256: runs only the plan's
/// `pq_ranges` and compares every row's ranges with the reference.
fn ranges_case<E: Element>(rng: &mut StdRng, d: usize, metric: Metric) {
    let (m, c) = (8, 256);
    let p = Problem::new(1, 8, 1, 1060, d, m, c, 5000, 16).with_dtypes(E::DTYPE, E::DTYPE).with_metric(metric);
    let plan = Plan::emulated(&p, Path::Launches).unwrap();
    let mut draw = |len: usize| -> Vec<E> { (0..len).map(|_| E::from_f32(rng.random_range(-1.0f32..1.0))).collect() };
    let (queries, codebooks) = (draw(p.queries_len()), draw(p.codebooks_len()));
    let mut d_queries = Aligned::copy_of(&queries);
    let mut d_codebooks = Aligned::copy_of(&codebooks);
    let mut codes = Aligned::copy_of(&vec![0u8; p.codes_len()]);
    let (mut indices, mut scores) = (Aligned::filled(p.out_len() * 4, 0), Aligned::filled(p.out_len() * 4, 0));
    let mut workspace = Aligned::filled(plan.workspace_bytes(), 0xAB);
    let buffers = RawBuffers {
        queries: d_queries.address(),
        codebooks: d_codebooks.address(),
        codes: codes.address(),
        n_valid: 0,
        indices: indices.address(),
        scores: scores.address(),
        workspace: workspace.address(),
    };
    let mut ranges = None;
    plan.launches(&buffers, |launch| {
        if let Kernel::Ranges(params) = launch.kernel {
            assert_eq!(params.tiling.rows_per_block, 64, "64-row tiles");
            ranges = Some(params.ranges);
            emulate(launch)?;
        }
        Ok(())
    })
    .unwrap();
    let rows = p.rows();
    assert_ne!(rows % 64, 0, "a ragged last tile");
    let ranges = ranges.expect("a pq_ranges launch");
    // SAFETY: the workspace holds m pairs of f32 per row at the plan's ranges.
    let got = unsafe { std::slice::from_raw_parts(ranges as *const f32, rows * m * 2) };
    let ds = d / m;
    for row in 0..rows {
        for j in 0..m {
            let partial = |code: usize| -> f64 {
                (0..ds)
                    .map(|x| {
                        let (q, e) =
                            (queries[row * d + j * ds + x].to_f64(), codebooks[(j * c + code) * ds + x].to_f64());
                        if metric == Metric::L2 { (q - e) * (q - e) } else { q * e }
                    })
                    .sum()
            };
            let (lo, hi) =
                (0..c).map(partial).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (got_lo, got_hi) = (got[(row * m + j) * 2] as f64, got[(row * m + j) * 2 + 1] as f64);
            for (what, got, want) in [("smallest", got_lo, lo), ("largest", got_hi, hi)] {
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "row {row}, sub-space {j}: {what} {got}, want {want}"
                );
            }
        }
    }
}

//! pqtopk's GPU kernels, compiled to PTX by `cargo xtask build-ptx`.
//!
//! Kernel ABI: every entry point takes one `#[repr(C)]` struct from `pqtopk-abi` by value and
//! documents its block size, grid and dynamic shared memory. Rows of at most `SMALL_MAX_KEYS`
//! keys take one launch, `pq_topk_small`. Otherwise a top-k call is three launches:
//! `pq_tables` builds each row tile's lookup tables (and zeroes the histograms), `pq_score`
//! writes every row's order keys and histogram (`pq_score_dense` instead, by tensor cores, where
//! many rows share a kv head), `pq_select` selects and orders each row's top k (in index order
//! `pq_select_by_index`, or `pq_select_long_by_index` for rows too long for its index bitmap).
//! Where the top k does not fit in shared memory, the selection publishes what each row takes
//! and a chunk per block writes it: `pq_write_by_index` in index order (also the ties of long
//! rows that rank by index), and in score order `pq_write_candidates`, then `pq_sort_runs` and
//! `pq_merge_runs` passes.
//!
//! The host build of this crate (any other target, stable Rust) runs the same kernels on CPU
//! threads through the device layer's emulation; see `device`.
#![cfg_attr(target_arch = "nvptx64", no_std)]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(
        abi_ptx,
        stdarch_nvptx,
        asm_experimental_arch,
        core_intrinsics,
        gpu_intrinsics,
        gpu_launch_sized_workgroup_mem
    )
)]
#![cfg_attr(target_arch = "nvptx64", allow(internal_features))]
// The smoke build (`--cfg pqtopk_smoke`, for the GPU tests) has only the smoke kernels.
#![cfg_attr(pqtopk_smoke, allow(dead_code, unused_imports, unused_macros))]

/// Runs `body` once per listed value of the constant, as straight-line code: LLVM leaves some
/// short loops rolled, which moves the arrays they index to local memory.
macro_rules! unrolled {
    ($i:ident in [$($n:literal),*] $body:block) => {
        $({
            const $i: usize = $n;
            $body
        })*
    };
}

// `device` first: its macros serve the modules after it.
#[macro_use]
mod device;

/// The kernels of the host build run on CPU threads through this (see the device layer).
#[cfg(not(target_arch = "nvptx64"))]
pub use device::{LaunchFailure, emulate};

mod dense;
mod encode;
#[cfg(pqtopk_sm90)]
mod fused;
mod output;
mod score;
mod select;
mod small;
#[cfg(pqtopk_smoke)]
mod smoke;
mod train;

#[cfg(pqtopk_sm90)]
use pqtopk_abi::ClusterParams;
use pqtopk_abi::{
    AdvanceParams, CodeCheckParams, DenseScoreParams, EncodeParams, MergeParams, RUN_KEYS, ScoreParams, SelectParams,
    SmallParams, TablesParams, TrainParams, ranges_staging_floats, tables_staging_floats,
};
use score::{Lut2, Lut4, Tile};

kernel! {
    /// Builds the lookup tables of every row tile, and zeroes the histograms and the selection's
    /// split state: one block of `BLOCK_THREADS` (≥ c) per (tile, sub-space),
    /// `row_tiles · b·hkv · m` blocks, with dynamic shared memory of
    /// `tables_staging_floats(rows_per_block, d/m) · 4` bytes for the staged queries.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `TablesParams` documents, with tables.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_tables(p: TablesParams) {
        let (tile, j) = score::zero_selection_state(&p);
        // SAFETY: launched with the documented shared memory; the shapes were validated.
        unsafe {
            let staging = device::dynamic_shared(tables_staging_floats(tile.rows, p.shape.d / p.shape.m) as usize);
            score::build_tables(&p, tile, j, staging);
        }
    }
}

kernel! {
    /// `pq_tables` for the tensor-core path, which needs no tables: writes every row tile's
    /// ranges and zeroes the histograms and the selection's split state, with the same grid and
    /// block, and dynamic shared memory of `ranges_staging_floats(c, d/m) · 4` bytes for the
    /// staged codebook. A kernel of its own, so that `pq_tables`' code, which few-rows calls
    /// fetch cold, stays as short as the table path (perf-notes v18).
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `TablesParams` documents, with f16 or
    /// bf16 queries and codebooks alike, `d/m ≤ RANGES_MAX_SUBSPACE_DIM` and a multiple of 4, at
    /// most `BLOCK_THREADS` rows per tile.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_ranges(p: TablesParams) {
        let (tile, j) = score::zero_selection_state(&p);
        // SAFETY: launched with the documented shared memory; forwarded to the caller.
        unsafe {
            let staging = device::dynamic_shared(ranges_staging_floats(p.shape.c, p.shape.d / p.shape.m) as usize);
            score::build_ranges(&p, tile, j, staging);
        }
    }
}

kernel! {
    /// Scores every valid key of every output row and histograms the rows: one block of
    /// `BLOCK_THREADS` per item (`key_chunks · row_tiles · b·hkv` of them, see `ScoreParams`), with
    /// dynamic shared memory of `lut_width · (m·c + HIST_BINS) · 4` bytes for the row tile's lookup
    /// tables and histograms.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `ScoreParams` documents; `pq_tables` has
    /// finished; the histograms are zero.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_score(p: ScoreParams) {
        let tile = Tile::of_item(&p, device::block_idx().0);
        // SAFETY (all arms): forwarded to the caller; lut_width picks the table layout.
        unsafe {
            match p.tiling.lut_width {
                4 => score::score_item::<Lut4>(&p, tile),
                2 => score::score_item::<Lut2>(&p, tile),
                _ => score::score_item::<f32>(&p, tile),
            }
        }
    }
}

kernel! {
    /// Scores every valid key of every output row and histograms the rows by tensor cores, where
    /// many rows share a kv head: one block of `DENSE_THREADS` per item (see `DenseScoreParams`),
    /// with dynamic shared memory of `dense_shared_bytes(c, d)` bytes.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `DenseScoreParams` documents, with queries
    /// and codebooks 16-byte aligned; `pq_tables` has finished; the histograms are zero.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_score_dense(p: DenseScoreParams) {
        // SAFETY: forwarded to the caller.
        unsafe { dense::score_item(&p) }
    }
}

kernel! {
    /// Selects each row's exact top k from the order keys and histogram that `pq_score` wrote, and
    /// writes the outputs (where the top k does not fit `top_k_in_shared`: what the row takes,
    /// for `pq_write_candidates` and the run sort, or in index order `pq_write_by_index`).
    /// `split` blocks per row (any multiple of 32 threads that divides `HIST_BINS`,
    /// up to `SELECT_THREADS`), with dynamic shared memory of
    /// `HIST_BINS · 4 + (tie_capacity + sort_capacity) · 8` bytes.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `SelectParams` documents, and `pq_score`
    /// has finished; `sort_capacity` and `tie_capacity` are powers of two.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_select(p: SelectParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::row::select_row::<true, false>(&p) }
    }
}

kernel! {
    /// `pq_select` for index order (and unordered results), with the same grid, block and
    /// shared memory: a kernel of its own, so that the code a decode step fetches cold holds no
    /// score-order output (perf-notes v18: few-rows kernels are bound by fetching their code).
    ///
    /// # Safety
    /// As `pq_select`, with `p.shape.order` not `ByScore`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_select_by_index(p: SelectParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::row::select_row::<false, false>(&p) }
    }
}

kernel! {
    /// `pq_select_by_index` for rows whose index bitmap may not fit in the tie buffer
    /// (`index_bitmap_fits` for `n`), with the same grid, block and shared memory.
    ///
    /// # Safety
    /// As `pq_select_by_index`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_select_long_by_index(p: SelectParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::row::select_row::<false, true>(&p) }
    }
}

kernel! {
    /// Writes in index order the top k of the rows whose `pq_select_by_index` published what
    /// they take (see `SelectParams::write_state`): one block of `WRITE_THREADS` per chunk of
    /// `WRITE_CHUNK_KEYS` keys of a row (or `write_chunks_per_block` consecutive ones), grid
    /// `rows · ceil(write_chunks / write_chunks_per_block)`, no dynamic shared memory.
    /// The chunks of a row place their keys, and rank the row's ties by index, by a chained
    /// prefix of their counts, so that the row's whole sweep runs at once rather than step by
    /// step in one block.
    ///
    /// # Safety
    /// `p` as for `pq_select_by_index`, which has finished; `p.write_chunks > 0`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_write_by_index(p: SelectParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::row::write_chunks::<false>(&p) }
    }
}

kernel! {
    /// `pq_write_by_index` for score order: writes the candidates of the rows whose `pq_select`
    /// published what they take, for `pq_sort_runs`, a block per chunk of a row.
    ///
    /// # Safety
    /// `p` as for `pq_select`, which has finished; `p.write_chunks > 0`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_write_candidates(p: SelectParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::row::write_chunks::<true>(&p) }
    }
}

kernel! {
    /// Sorts the candidates of rows whose top k is too large for `pq_select`'s shared memory (score
    /// order only) in runs of `RUN_KEYS`: one block of `SELECT_THREADS` per (row, run), grid
    /// `rows · ceil(k / RUN_KEYS)`, with dynamic shared memory of `RUN_KEYS · 8` bytes. A row of one
    /// run gets its outputs here.
    ///
    /// # Safety
    /// `p` as for `pq_select`; it and `pq_write_candidates` have finished.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_sort_runs(p: SelectParams) {
        // SAFETY: launched with the documented shared memory; the rest is forwarded to the caller.
        unsafe { select::runs::sort_run(&p, device::dynamic_shared(RUN_KEYS as usize)) }
    }
}

kernel! {
    /// One pass that merges pairs of sorted runs (see `MergeParams`): one thread per slot, grid
    /// `rows · ceil(k / BLOCK_THREADS)` of `BLOCK_THREADS`; `merge_passes(k)` passes after
    /// `pq_sort_runs`, widths `RUN_KEYS · 2^i`, alternating between two buffers.
    ///
    /// # Safety
    /// `p.select` as for `pq_select`; the previous pass (or `pq_sort_runs`) has finished.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_merge_runs(p: MergeParams) {
        // SAFETY: forwarded to the caller.
        unsafe { select::runs::merge_pass(&p) }
    }
}

kernel! {
    /// The whole top-k of rows of at most `SMALL_MAX_KEYS` keys in one launch: one block of
    /// `SMALL_THREADS` per output row, with dynamic shared memory of
    /// `small_shared_bytes(n, heads, d, m, c)`.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `SmallParams` documents, with codebooks
    /// 16-byte aligned; `n ≤ SMALL_MAX_KEYS`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_topk_small(p: SmallParams) {
        // SAFETY: forwarded to the caller.
        unsafe { small::topk_row(&p) }
    }
}

kernel! {
    /// Scores and selects few rows on chip, in one launch after `pq_tables`: one cluster of
    /// `CLUSTER_BLOCKS` blocks of `CLUSTER_THREADS` per row tile (see `ClusterParams`), with dynamic
    /// shared memory of `cluster_layout(..).bytes`. sm_90 only.
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `ClusterParams` documents; `pq_tables` has
    /// finished; the grid is a whole number of clusters; `lut_width == rows_per_block`.
    #[cfg(pqtopk_sm90)]
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_topk_cluster(p: ClusterParams) {
        // SAFETY (all arms): forwarded to the caller; lut_width picks the table layout.
        unsafe {
            match p.tiling.lut_width {
                4 => fused::topk_tile::<Lut4>(&p),
                2 => fused::topk_tile::<Lut2>(&p),
                _ => fused::topk_tile::<f32>(&p),
            }
        }
    }
}

kernel! {
    /// Counts codes ≥ c. Grid-stride over `len` codes; any grid.
    ///
    /// # Safety
    /// `p.codes` holds `p.len` bytes and `p.bad_count` one u32.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_count_bad_codes(p: CodeCheckParams) {
        let stride = device::grid_dim_x() as u64 * device::block_dim() as u64;
        let mut i = device::block_idx().0 as u64 * device::block_dim() as u64 + device::thread_idx() as u64;
        let mut bad = 0;
        while i < p.len {
            // SAFETY: i < len.
            bad += (unsafe { device::load_nc_u8((p.codes as *const u8).add(i as usize)) } as u32 >= p.c) as u32;
            i += stride;
        }
        if bad != 0 {
            // SAFETY: the counter is valid by the caller's promise.
            unsafe { device::atomic_add(p.bad_count as *mut u32, bad) };
        }
    }
}

/// Kernels of one family, one per register width: `$name` runs `$module::$run::<$width>` on its
/// parameters, with the registers that width needs. Each invocation states what the family does
/// and what its caller guarantees.
macro_rules! per_width_kernels {
    ($params:ty, $module:ident::$run:ident, $family:ident; $($name:ident: $width:literal),*) => {
        $(kernel! {
            /// One register width of its family (see the invocation of `per_width_kernels`).
            ///
            /// # Safety
            /// As the invocation states.
            #[cfg(not(pqtopk_smoke))]
            pub unsafe fn $name(p: $params) {
                // SAFETY: forwarded to the caller.
                unsafe { $module::$run::<$width>(&p) }
            }
        })*

        /// The family's kernels in width order (`register_width_index`), for the host build's
        /// callers, which call them by index as the GPU's look them up by name.
        #[cfg(not(target_arch = "nvptx64"))]
        pub const $family: [unsafe fn($params); pqtopk_abi::REGISTER_WIDTH_KERNELS] = [$($name),*];
    };
}

// Encodes keys against the codebooks, or appends a decode step's keys at each batch entry's
// length: one block of `ENCODE_THREADS` per (chunk of `ENCODE_KEYS_PER_BLOCK` keys, batch entry
// and kv head, sub-space), chunk fastest, with `encode_shared_bytes(c, d/m)` bytes of dynamic
// shared memory. One kernel per register width (`kernel_names::ENCODE`, indexed by
// `register_width_index(d/m)`), each with the registers its width needs.
//
// # Safety
// `p` describes valid device buffers of the shapes `EncodeParams` documents; `d` is a multiple
// of `m`, `1 ≤ c ≤ 256`, and `register_width(d/m)` is the kernel's width; the keys and
// codebooks stay unchanged during the launch, and nothing else reads or writes the codes it
// writes.
per_width_kernels!(EncodeParams, encode::encode_chunk, ENCODE_BY_WIDTH;
    pq_encode_w0: 0, pq_encode_w1: 1, pq_encode_w2: 2, pq_encode_w4: 4, pq_encode_w8: 8, pq_encode_w16: 16);

kernel! {
    /// After `pq_encode` appended `t` keys per batch entry: advances each entry's length by `t`
    /// where it stays within `n`. One thread per batch entry.
    ///
    /// # Safety
    /// `p.lengths` holds `p.b` u32 that nothing else touches during the launch.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_advance_lengths(p: AdvanceParams) {
        // SAFETY: forwarded to the caller.
        unsafe { encode::advance_lengths(&p) }
    }
}

kernel! {
    /// Training's first step: ranks each (kv head, sub-space)'s valid keys by the seed, keeps the
    /// first `train_order_len(c)` in the workspace, seeds the centroids (and the codebooks) from
    /// them, and resets the sums and state. One block of `TRAIN_THREADS` per (kv head, sub-space).
    ///
    /// # Safety
    /// `p` describes valid device buffers of the shapes `TrainParams` documents, with
    /// `b · n ≤ u32::MAX`, `d` a multiple of `m`, `1 ≤ c ≤ 256`; the keys and lengths stay unchanged
    /// until the last update, and nothing else touches the codebooks or the workspace.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_train_init(p: TrainParams) {
        // SAFETY: forwarded to the caller.
        unsafe { train::init(&p) }
    }
}

// Training's assignment step, after `pq_train_init` or `pq_train_update` on the same stream:
// one block of `TRAIN_THREADS` per (chunk of `keys_per_block` keys, batch entry and kv head,
// sub-space), chunk fastest, with `train_assign_layout(c, d/m).bytes` of dynamic shared memory.
// One kernel per register width, as `pq_encode_w*`.
//
// # Safety
// As `pq_train_init`; `register_width(d/m)` is the kernel's width.
per_width_kernels!(TrainParams, train::assign_chunks, TRAIN_ASSIGN_BY_WIDTH;
    pq_train_assign_w0: 0, pq_train_assign_w1: 1, pq_train_assign_w2: 2, pq_train_assign_w4: 4,
    pq_train_assign_w8: 8, pq_train_assign_w16: 16);

kernel! {
    /// Training's update step, after `pq_train_assign` on the same stream: one block of
    /// `TRAIN_THREADS` per (kv head, sub-space).
    ///
    /// # Safety
    /// As `pq_train_init`.
    #[cfg(not(pqtopk_smoke))]
    pub unsafe fn pq_train_update(p: TrainParams) {
        // SAFETY: forwarded to the caller.
        unsafe { train::update(&p) }
    }
}

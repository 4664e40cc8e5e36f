//! # pqtopk
//!
//! Fused product-quantized scoring + exact top-k on NVIDIA GPUs, with kernels written in Rust.
//!
//! For every query row it scores all PQ-compressed keys of its kv head (inner product or L2)
//! and returns the exact top-k indices (and scores), asynchronously on the caller's stream: one
//! kernel launch for short rows (up to 1024 keys at few rows), otherwise three, with a caller-owned workspace that
//! holds the tables, histograms and one u32 order key per (row, key). Rows that share a kv head
//! sixteen or more at a time (chunked prefill, large GQA groups) are scored with tensor cores
//! instead of lookup tables. See [`Problem`] for the contract, `Gpu` for the launches (the
//! `cuda` feature) and [`mod@reference`] for the CPU implementation of the same contract.
//!
//! ## Features
//! - `cuda`: the GPU path (`Gpu`, its plans and launches, through cust, which links
//!   `libcuda`). Without it the crate builds on any machine, CUDA or not, and offers the
//!   problem, its validation, the errors and the CPU [`mod@reference`].
//! - `cudarc` (implies `cuda`): `Gpu::topk_cudarc` on cudarc's `CudaSlice`s and `CudaStream`.
//! - `candle` (implies `cudarc`): `Gpu::topk_candle` on candle `Tensor`s. candle's CUDA backend
//!   compiles its own kernels with `nvcc` when it builds (`scripts/cuda-toolkit.sh` installs one
//!   from PyPI) and links the CUDA libraries.
//!
//! ## Contract in brief
//! - Ties break toward the smaller key index; NaN scores rank after every number (a NaN key is
//!   only selected when fewer than k keys have a number score, after all of those).
//! - Rows with fewer than k valid keys are padded with index `u32::MAX` and score −inf (inner
//!   product) or +inf (L2).
//! - Results are deterministic: the same inputs give bit-identical outputs.
//! - [`Order::ByScore`] is best first; [`Order::ByIndex`] is key index ascending.

#![warn(missing_docs)]

#[cfg(feature = "candle")]
mod candle_adapter;
#[cfg(feature = "cudarc")]
mod cudarc_adapter;
mod dtype;
#[cfg(feature = "cuda")]
mod encode;
mod error;
#[cfg(feature = "cuda")]
mod gpu;
pub mod index;
#[cfg(feature = "cuda")]
mod plan;
mod problem;
#[cfg(feature = "cuda")]
mod raw;
pub mod reference;
#[cfg(feature = "cuda")]
mod train;

#[cfg(feature = "candle")]
pub use candle_adapter::{CandleInputs, CandleOutputs};
#[cfg(feature = "cudarc")]
pub use cudarc_adapter::{CudarcElement, CudarcInputs, CudarcOutputs};
#[cfg(feature = "cuda")]
pub use cust;
pub use dtype::{DType, Element};
#[cfg(feature = "cuda")]
pub use encode::AppendLengths;
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub use encode::{encode_launches, encode_params};
pub use error::{CodePosition, Error, Result};
#[cfg(feature = "cuda")]
pub use gpu::{
    CheckedBuffers, Gpu, Inputs, Kernel, Launch, Outputs, Path, Plan, RawBuffers, RawSlice, TopkBuffers, ValidLengths,
};
pub use half;
pub use index::{IndexShape, TrainOptions};
pub use problem::{MAX_KEYS, Metric, Order, Problem, ProblemBuilder};
#[cfg(feature = "cuda")]
pub use train::train_workspace_len;
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub use train::{TrainAddresses, emulated_train_launches};

/// The README's example compiles as a doctest.
#[cfg(all(doctest, feature = "cuda"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

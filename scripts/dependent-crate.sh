#!/usr/bin/env bash
# CI: a throwaway crate that depends on pqtopk, as a user's would. Without features it must build
# and run with no CUDA install and no libcuda (the problem, the errors and the CPU reference);
# with `cuda` it builds against a libcuda (the stub `cargo xtask test` made) and, without a
# device, gets Error::NoDevice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dep=$(mktemp -d)
trap 'rm -rf "$dep"' EXIT
mkdir -p "$dep/src"
cat > "$dep/Cargo.toml" <<EOF
[package]
name = "pqtopk-dependent"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
pqtopk = { path = "$root/host" }

[features]
cuda = ["pqtopk/cuda"]

[workspace]
EOF
cat > "$dep/src/main.rs" <<'EOF'
use pqtopk::reference::{self, HostInputs};
use pqtopk::{DType, Problem};

fn main() {
    let p = Problem::new(1, 2, 1, 1, 4, 2, 3, 5, 2).with_dtypes(DType::F32, DType::F32);
    let queries = vec![1.0f32; p.queries_len()];
    let codebooks: Vec<f32> = (0..p.codebooks_len()).map(|i| i as f32).collect();
    let codes: Vec<u8> = (0..p.codes_len()).map(|i| (i % 3) as u8).collect();
    let inputs = HostInputs { queries: &queries, codebooks: &codebooks, codes: &codes, n_valid: None };
    let top = reference::topk(&p, &inputs).expect("reference");
    println!("reference top-2 of row 0: {:?}", &top.indices[..2]);
    println!("a bad shape: {}", Problem { k: 0, ..p }.validate().unwrap_err());
    #[cfg(feature = "cuda")]
    match pqtopk::Gpu::new(0) {
        Ok(gpu) => println!("GPU: {:?}", gpu.name()),
        Err(pqtopk::Error::NoDevice(why)) => println!("no GPU: {why}"),
        Err(e) => panic!("{e}"),
    }
}
EOF
cd "$dep"
export RUSTUP_TOOLCHAIN=1.95.0 CARGO_TARGET_DIR="$root/target/dependent-crate"
echo "--- without features, no CUDA_LIBRARY_PATH, no libcuda on the loader path"
env -u CUDA_LIBRARY_PATH -u LD_LIBRARY_PATH cargo run --quiet
stub=""
for dir in "$root/target/libcuda-driver" "$root/target/libcuda-stub"; do
  [ -d "$dir" ] && stub=$dir
done
[ -n "$stub" ] || { echo "no libcuda: run cargo xtask test first"; exit 1; }
echo "--- with the cuda feature, libcuda from $stub"
CUDA_LIBRARY_PATH="$stub" LD_LIBRARY_PATH="$stub/lib64:${LD_LIBRARY_PATH:-}" cargo run --quiet --features cuda

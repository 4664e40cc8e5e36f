//! Project automation, dependency-free on purpose (see rust-analyzer's xtask).
//!
//! `cargo xtask build-ptx [--check]`  build the kernels to PTX (sm_80, sm_90) into `host/ptx/`
//! `cargo xtask test [ARGS]`          the test suite (GPU tests skip without a device)
//! `cargo xtask clippy`               clippy on the stable crates and the kernel crate, warnings denied
//! `cargo xtask demo [ARGS]`          the demo: GPU when there is one, CPU reference otherwise
//! `cargo xtask clippy-candle`        clippy on the candle adapter, its test and example (nvcc from PyPI)
//! `cargo xtask gpu-bundle [--bench-only]` test + bench binaries, PTX and scripts for a GPU machine
//! `cargo xtask package [ARGS]`       `cargo package` of pqtopk-abi and pqtopk (publishable, and they build)
//! `cargo xtask doc`                  the API docs, with and without `cuda`, warnings denied
//!
//! The same binary doubles as the nvptx linker that rustc calls (see `ptx_link`).

mod libcuda;
mod ptx;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    if std::env::var_os(ptx::LINKER_MODE_ENV).is_some() {
        return report(ptx::link(std::env::args().skip(1).collect()));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    report(match cmd {
        "build-ptx" => ptx::build(rest.iter().any(|a| a == "--check")),
        "test" => cargo_with_libcuda(&["test", "--workspace", "--features", CUDA], rest),
        // Both ways: the GPU path, and the CPU-only crate a dependent gets without `cuda`.
        "clippy" => {
            let lints = ["--", "-D", "warnings"];
            cargo_with_libcuda(
                &[&["clippy", "--workspace", "--all-targets", "--features", CUDA][..], &lints].concat(),
                rest,
            )
            .and_then(|()| run(cargo().args(["clippy", "-p", "pqtopk", "--all-targets"]).args(lints)))
            .and_then(|()| ptx::clippy())
        }
        // The candle adapter, its test and its example, checked (not linked: candle links the
        // CUDA libraries, which a machine without CUDA lacks) with an nvcc from PyPI.
        "clippy-candle" => cargo_libcuda(
            &["clippy", "-p", "pqtopk", "--features", "candle", "--all-targets", "--", "-D", "warnings"],
            rest,
        )
        .and_then(|mut cmd| run(with_nvcc(&mut cmd)?)),
        "demo" => cargo_with_libcuda(
            &["run", "--release", "-p", "pqtopk", "--features", CUDA, "--example", "demo", "--"],
            rest,
        ),
        "gpu-bundle" => gpu_bundle(rest.iter().any(|a| a == "--bench-only")),
        "package" => forget_packaged_sources()
            .and_then(|()| cargo_with_libcuda(&["package", "-p", "pqtopk-abi", "-p", "pqtopk"], rest)),
        // Both ways, warnings denied: docs.rs builds the default (CPU) features.
        "doc" => {
            let doc = ["doc", "--no-deps", "-p", "pqtopk-abi", "-p", "pqtopk"];
            run(cargo().args(doc).env("RUSTDOCFLAGS", "-D warnings")).and_then(|()| {
                let mut cmd = cargo_libcuda(&[&doc[..], &["--features", CUDA]].concat(), rest)?;
                run(cmd.env("RUSTDOCFLAGS", "-D warnings"))
            })
        }
        _ => {
            Err("usage: cargo xtask <build-ptx [--check] | test [ARGS] | clippy | clippy-candle | demo [ARGS] | gpu-bundle [--bench-only] | package | doc>"
                .into())
        }
    })
}

fn report(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed: {status}")) }
}

/// The host crate's GPU features (the GPU path and the cudarc adapter), which the tests, the
/// bench and the demo build with.
const CUDA: &str = "pqtopk/cuda,pqtopk/cudarc";

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project_root());
    cmd
}

/// Runs cargo with a libcuda to link against and load: the system driver's where there is one,
/// otherwise a stub that reports "no CUDA-capable device", so GPU tests skip and the demo falls
/// back to the CPU reference.
fn cargo_with_libcuda(base: &[&str], extra: &[String]) -> Result<()> {
    run(&mut cargo_libcuda(base, extra)?)
}

/// A cargo command with `base` and `extra` arguments that finds a libcuda to link and load.
fn cargo_libcuda(base: &[&str], extra: &[String]) -> Result<Command> {
    let lib = libcuda::locate_or_build_stub()?;
    let mut cmd = cargo();
    cmd.args(base).args(extra);
    lib.apply(&mut cmd);
    Ok(cmd)
}

/// `cmd` with an nvcc on PATH (`scripts/cuda-toolkit.sh` installs one from PyPI) and the
/// compute capability candle's kernels are compiled for (sm_80, as pqtopk's PTX), so that it
/// needs no GPU.
fn with_nvcc(cmd: &mut Command) -> Result<&mut Command> {
    let script = project_root().join("scripts/cuda-toolkit.sh");
    let output = Command::new("bash").arg(&script).output().map_err(|e| format!("cannot run {script:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{script:?} failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let toolkit = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    Ok(cmd.env("PATH", format!("{toolkit}/bin:{path}")).env("CUDA_COMPUTE_CAP", "80"))
}

/// Removes what earlier `cargo package` runs unpacked of our own crates into Cargo's registry
/// cache. Packaging verifies `pqtopk` against the just-packed `pqtopk-abi` through a local
/// registry keyed by the target folder's path, and Cargo reuses an unpacked copy of the same
/// version from an earlier run as it is: in a reused checkout path, a stale ABI failed the build.
fn forget_packaged_sources() -> Result<()> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(home.join("registry/src")) else { return Ok(()) };
    for registry in registries.flatten() {
        let Ok(crates) = std::fs::read_dir(registry.path()) else { continue };
        for unpacked in crates.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            // Only local registries (crates.io's folder is named after its host).
            let local = registry.file_name().to_string_lossy().starts_with('-');
            if local && (name.starts_with("pqtopk-abi-") || name.starts_with("pqtopk-0")) {
                std::fs::remove_dir_all(unpacked.path()).map_err(|e| format!("{name}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Builds everything a GPU machine without Rust needs into `gpu-bundle/`.
fn gpu_bundle(bench_only: bool) -> Result<()> {
    ptx::build(false)?;
    let lib = libcuda::locate_or_build_stub()?;
    let out = project_root().join("gpu-bundle");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("bin")).map_err(|e| e.to_string())?;
    // (file prefix, cargo arguments); everything optimized (`cargo bench` uses the bench profile).
    let builds: [(&str, &[&str]); 3] = [
        ("test", &["test", "--no-run", "--release", "--tests", "--features", CUDA]),
        ("bench", &["bench", "--no-run", "--benches", "--features", CUDA]),
        ("example", &["build", "--release", "--examples", "--features", CUDA]),
    ];
    // The bench with the peers' FlashInfer wheels (45 MB) fits a 64 MiB device transfer only
    // without the test and example binaries.
    for (prefix, args) in builds.into_iter().filter(|(prefix, _)| !bench_only || *prefix == "bench") {
        let mut cmd = cargo();
        cmd.args(args).args(["-p", "pqtopk", "--message-format=json"]);
        lib.apply(&mut cmd);
        let output = cmd.output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("cargo {} failed:\n{}", args[0], String::from_utf8_lossy(&output.stderr)));
        }
        for exe in executables(&String::from_utf8_lossy(&output.stdout)) {
            let name = Path::new(&exe).file_name().unwrap().to_string_lossy().to_string();
            // strip cargo's hash suffix so scripts can name the binaries
            let stem = name.rsplit_once('-').map_or(name.as_str(), |(s, _)| s).to_string();
            std::fs::copy(&exe, out.join("bin").join(format!("{prefix}-{stem}"))).map_err(|e| e.to_string())?;
        }
    }
    // The peers, wheels/ (FlashInfer for peers_sota.py) included.
    let shared_peers = project_root().join("../shared/peers");
    if shared_peers.is_dir() {
        copy_dir(&shared_peers, &out.join("peers"))?;
    }
    for file in [
        "scripts/run-gpu-suite.sh",
        "scripts/run-bench.sh",
        "scripts/run-ab.sh",
        "scripts/run-ncu.sh",
        "scripts/run-branches.sh",
        "scripts/run-landing.sh",
        "scripts/compare.py",
        "benches/shapes.json",
        "benches/edge-shapes.json",
        "benches/short-rows.json",
        "benches/peers/kmeans_torch.py",
    ] {
        let from = project_root().join(file);
        std::fs::copy(&from, out.join(from.file_name().unwrap())).map_err(|e| e.to_string())?;
    }
    println!("gpu-bundle ready: {}", out.display());
    Ok(())
}

/// Copies the folder `from` into `to`, recursively (regular files and folders; links followed).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("{} -> {}: {e}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

/// The `"executable":"…"` paths of cargo's JSON messages (no JSON parser, to stay dependency-free).
fn executables(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .filter_map(|line| {
            let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = line[start..].find('"')?;
            Some(line[start..start + end].to_string())
        })
        .collect()
}

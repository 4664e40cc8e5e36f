//! `build-ptx`: kernels-gpu → PTX with rustc's own NVPTX backend and our own link step.
//!
//! rustc hands the nvptx target's linker bitcode objects plus `--export-symbol` names; we run the
//! pinned toolchain's llvm-tools on them: `llvm-link` → `opt` (internalize + O3) → `llc`.

use crate::{Result, project_root, run};
use std::path::{Path, PathBuf};
use std::process::Command;

const NIGHTLY: &str = "nightly-2026-05-20";
const TRIPLE: &str = "nvptx64-nvidia-cuda";
/// Set on the nested cargo: when present, xtask acts as the nvptx linker and this names the
/// directory holding the llvm-tools binaries.
pub const LINKER_MODE_ENV: &str = "PQTOPK_PTX_LINKER_TOOLS";
/// One PTX file that `build-ptx` writes to host/ptx: the target, the file, the `--cfg` that
/// picks its kernels, and which kernels those are.
struct Target {
    cpu: &'static str,
    file: &'static str,
    cfg: Option<&'static str>,
    kernels: Kernels,
}

/// The kernels of a PTX file.
#[derive(Clone, Copy, PartialEq)]
enum Kernels {
    /// The shipped kernels (launch bounds from the ABI), without or with the cluster kernels.
    Shipped { clusters: bool },
    /// The smoke kernels of the GPU tests (no launch bounds).
    Smoke,
}

/// The shipped kernels for each supported architecture (keep in sync with `PTX_SM*` in
/// `host/src/gpu.rs`; sm_90's also has the cluster kernels), and the smoke kernels that the GPU
/// tests load on their own (sm_80 PTX runs on later devices too).
const TARGETS: [Target; 3] = [
    Target { cpu: "sm_80", file: "pqtopk_sm80.ptx", cfg: None, kernels: Kernels::Shipped { clusters: false } },
    Target {
        cpu: "sm_90",
        file: "pqtopk_sm90.ptx",
        cfg: Some("pqtopk_sm90"),
        kernels: Kernels::Shipped { clusters: true },
    },
    Target { cpu: "sm_80", file: "smoke_sm80.ptx", cfg: Some("pqtopk_smoke"), kernels: Kernels::Smoke },
];

pub fn build(check: bool) -> Result<()> {
    let sysroot = ensure_nightly()?;
    let tools = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin");
    let root = project_root();
    let mut stale = Vec::new();
    for Target { cpu, file, cfg, kernels } in TARGETS {
        let target_dir = root.join("target/ptx").join(file.trim_end_matches(".ptx"));
        let mut cmd = nested_cargo(&root.join("kernels-gpu"));
        cmd.args(["build", "--release", "--target", TRIPLE, "-Zbuild-std=core", "--target-dir"])
            .arg(&target_dir)
            .env("RUSTFLAGS", format!("-C target-cpu={cpu}{}", cfg.map(|c| format!(" --cfg {c}")).unwrap_or_default()))
            .env("CARGO_TARGET_NVPTX64_NVIDIA_CUDA_LINKER", std::env::current_exe().map_err(|e| e.to_string())?)
            .env(LINKER_MODE_ENV, &tools);
        run(&mut cmd)?;
        let built = target_dir.join(TRIPLE).join("release/pqtopk_kernels_gpu.ptx");
        let ptx = std::fs::read_to_string(&built).map_err(|e| format!("{}: {e}", built.display()))?;
        let ptx = without_crate_hashes(&ptx);
        let ptx = match kernels {
            Kernels::Shipped { clusters } => with_launch_bounds(&ptx, clusters)?,
            Kernels::Smoke => ptx,
        };
        no_local_memory(&ptx)?;
        let committed = root.join("host/ptx").join(file);
        if check {
            if std::fs::read_to_string(&committed).ok().as_deref() != Some(ptx.as_str()) {
                stale.push(committed.display().to_string());
            }
        } else {
            std::fs::create_dir_all(committed.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::write(&committed, &ptx).map_err(|e| e.to_string())?;
            println!("wrote {} ({} bytes)", committed.display(), ptx.len());
        }
    }
    if stale.is_empty() {
        if check {
            println!("committed PTX is up to date");
        }
        Ok(())
    } else {
        Err(format!("committed PTX is stale: {}\nrun `cargo xtask build-ptx` and commit the result", stale.join(", ")))
    }
}

/// A cargo of the pinned nightly, in a clean environment: nothing from the outer (stable) cargo or
/// rustup invocation may leak into the kernel build.
fn nested_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", NIGHTLY, "cargo"]).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let leaks = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("RUSTUP_TOOLCHAIN")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
            || key == "RUST_RECURSION_COUNT";
        if leaks {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Installs the pinned nightly with `rust-src` and `llvm-tools` when missing (the image sets
/// `RUSTUP_AUTO_INSTALL=0`), and returns its sysroot.
fn ensure_nightly() -> Result<PathBuf> {
    let sysroot = || -> Option<PathBuf> {
        let out = Command::new("rustup").args(["run", NIGHTLY, "rustc", "--print", "sysroot"]).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    let complete = |root: &Path| {
        root.join("lib/rustlib/src/rust/library/core").is_dir()
            && root.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/llc").is_file()
            && root.join("bin/cargo-clippy").is_file()
    };
    if let Some(root) = sysroot().filter(|r| complete(r)) {
        return Ok(root);
    }
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src,llvm-tools,clippy",
    ]))?;
    sysroot()
        .filter(|r| complete(r))
        .ok_or_else(|| format!("{NIGHTLY} is missing rust-src, llvm-tools or clippy after install"))
}

/// Clippy on the kernel crate, warnings (dead code included) denied, for each PTX's `--cfg`.
pub fn clippy() -> Result<()> {
    ensure_nightly()?;
    let root = project_root();
    for Target { file, cfg, .. } in TARGETS {
        let mut cmd = nested_cargo(&root.join("kernels-gpu"));
        cmd.args(["clippy", "--release", "--target", TRIPLE, "-Zbuild-std=core", "--target-dir"])
            .arg(root.join("target/clippy-kernels").join(file.trim_end_matches(".ptx")))
            .args(["--", "-D", "warnings"])
            .env("RUSTFLAGS", cfg.map(|c| format!("--cfg {c}")).unwrap_or_default());
        run(&mut cmd)?;
    }
    Ok(())
}

/// The link step rustc delegates to us for the nvptx target.
pub fn link(args: Vec<String>) -> Result<()> {
    let tools = PathBuf::from(std::env::var_os(LINKER_MODE_ENV).unwrap());
    let mut exports = Vec::new();
    let mut inputs = Vec::new();
    let mut output = None;
    let mut cpu = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--export-symbol" => exports.extend(it.next()),
            "-o" => output = it.next(),
            "--target-cpu" => cpu = it.next(),
            "-L" | "--target" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            _ => inputs.push(arg),
        }
    }
    let output = PathBuf::from(output.ok_or("linker: no -o")?);
    let cpu = cpu.ok_or("linker: no --target-cpu")?;
    let linked = output.with_extension("linked.bc");
    let optimized = output.with_extension("opt.bc");
    run(Command::new(tools.join("llvm-link")).arg("--ignore-non-bitcode").args(&inputs).arg("-o").arg(&linked))?;
    run(Command::new(tools.join("opt"))
        .arg(format!("--internalize-public-api-list={}", exports.join(",")))
        .arg("--passes=internalize,globaldce,default<O3>")
        .arg(&linked)
        .arg("-o")
        .arg(&optimized))?;
    run(Command::new(tools.join("llc"))
        .args([format!("-mtriple={TRIPLE}"), format!("-mcpu={cpu}"), "-O3".into()])
        .arg(&optimized)
        .arg("-o")
        .arg(&output))
}

/// Fails if a kernel declares local memory: an array that LLVM could not keep in registers
/// (a loop it left rolled, a reference taken to a parameter) costs every thread a round trip to
/// memory, which has slowed these kernels severalfold before. Spell such loops out with
/// `unrolled!`.
fn no_local_memory(ptx: &str) -> Result<()> {
    let mut kernel = "";
    for line in ptx.lines() {
        if let Some(rest) = line.strip_prefix(".visible .entry ") {
            kernel = rest.split('(').next().unwrap_or(rest);
        } else if line.starts_with(".func") {
            kernel = "";
        } else if !kernel.is_empty() && line.trim_start().starts_with(".local") {
            return Err(format!("kernel {kernel} uses local memory: {}", line.trim()));
        }
    }
    Ok(())
}

/// Adds each kernel's `.maxntid` and `.minnctapersm` from `pqtopk_abi::LAUNCH_BOUNDS` after its
/// parameter list, where PTX places performance-tuning directives, and the cluster kernels'
/// `.explicitcluster` and `.reqnctapercluster` (they exist only where `clusters`, in the sm_90
/// PTX).
fn with_launch_bounds(ptx: &str, clusters: bool) -> Result<String> {
    let mut out = ptx.to_string();
    for (kernel, threads, blocks) in pqtopk_abi::LAUNCH_BOUNDS {
        let cluster_kernel = pqtopk_abi::CLUSTER_KERNELS.contains(&kernel);
        let entry = format!(".entry {kernel}(");
        let Some(start) = out.find(&entry) else {
            if cluster_kernel && !clusters {
                continue;
            }
            return Err(format!("launch bounds: no kernel {kernel} in the PTX"));
        };
        if cluster_kernel && !clusters {
            return Err(format!("cluster kernel {kernel} in a PTX without clusters"));
        }
        let close = out[start..].find("\n)").ok_or(format!("launch bounds: {kernel} has no parameter list end"))?;
        let line_end = start + close + 1 + out[start + close + 1..].find('\n').unwrap_or(0);
        let mut directives = format!(".maxntid {threads}, 1, 1\n.minnctapersm {blocks}\n");
        if cluster_kernel {
            directives += &format!(".explicitcluster\n.reqnctapercluster {}, 1, 1\n", pqtopk_abi::CLUSTER_BLOCKS);
        }
        out.insert_str(line_end + 1, &directives);
    }
    Ok(out)
}

/// Crate names inside mangled symbols of the PTX (v0 mangling: `<length><name>`).
const CRATES: [&str; 4] = ["18pqtopk_kernels_gpu", "10pqtopk_abi", "4core", "17compiler_builtins"];

/// Replaces the crate disambiguator (`Cs<hash>_`) before crate names in mangled symbols by `Cs_`.
/// Cargo derives that hash from the source path (the checkout, or the toolchain's `rust-src`), so
/// without this the PTX of internal functions would differ between clones and machines, and
/// `build-ptx --check` could not compare it.
fn without_crate_hashes(ptx: &str) -> String {
    let mut out = String::with_capacity(ptx.len());
    let mut rest = ptx;
    while let Some((at, name)) = CRATES.iter().filter_map(|n| rest.find(n).map(|at| (at, *n))).min() {
        let head = &rest[..at];
        // The symbol's alphanumeric run before `_<name>` is `R…Cs<hash>`; the mangling prefix
        // (`R`, `N` + namespace letters) never spells `Cs`, so its first `Cs` starts the hash.
        let hash = head.strip_suffix('_').and_then(|h| {
            let run = h.len() - h.chars().rev().take_while(|c| c.is_ascii_alphanumeric()).count();
            h[run..].find("Cs").map(|cs| run + cs + 2)
        });
        match hash {
            Some(cut) => {
                out.push_str(&head[..cut]);
                out.push('_');
            }
            None => out.push_str(head),
        }
        out.push_str(name);
        rest = &rest[at + name.len()..];
    }
    out.push_str(rest);
    out
}

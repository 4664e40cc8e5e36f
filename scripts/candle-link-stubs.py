#!/usr/bin/env python3
"""Stub CUDA libraries to link candle's GPU binaries on a machine without CUDA.

candle enables cudarc's `dynamic-linking`, so its binaries link libcuda, libcublas, libcublasLt,
libcurand and libnvrtc by name. This writes, into OUT/lib64, one stub shared library per library
with every function that cudarc's bindings declare and the soname of the real CUDA 13 library
(the GPU machine's PyTorch is CUDA 13: its nvidia wheels have libcublas.so.13), so
that the linker records the right dependency; on a GPU machine the real libraries (the driver's
libcuda, and e.g. the nvidia-* wheels that PyTorch installs) are found at run time instead. A
stub function is never meant to run.

    python3 scripts/candle-link-stubs.py CUDARC_SRC OUT [LIBCUDA]

LIBCUDA (xtask's stub for cust) adds its functions to the libcuda stub, which then serves both.
"""

import pathlib
import re
import subprocess
import sys

LIBRARIES = {
    # module of cudarc: (link name, soname)
    "driver": ("cuda", "libcuda.so.1"),
    "cublas": ("cublas", "libcublas.so.13"),
    "cublaslt": ("cublasLt", "libcublasLt.so.13"),
    "curand": ("curand", "libcurand.so.10"),
    "nvrtc": ("nvrtc", "libnvrtc.so.13"),
}


def main():
    cudarc, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    lib64 = out / "lib64"
    lib64.mkdir(parents=True, exist_ok=True)
    for module, (name, soname) in LIBRARIES.items():
        text = (cudarc / "src" / module / "sys" / "mod.rs").read_text()
        functions = set(re.findall(r"pub unsafe fn (\w+)\(", text))
        if name == "cuda" and len(sys.argv) > 3:
            exported = subprocess.run(["nm", "-D", "--defined-only", sys.argv[3]], check=True, capture_output=True, text=True)
            functions |= {line.split()[-1] for line in exported.stdout.splitlines() if " T " in line}
        functions = sorted(functions)
        source = out / f"{name}.c"
        source.write_text("".join(f"int {f}(void) {{ return 999; }}\n" for f in functions))
        target = lib64 / f"lib{name}.so"
        subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(target), str(source)], check=True)
        print(f"{target}: {len(functions)} functions, soname {soname}")


if __name__ == "__main__":
    main()

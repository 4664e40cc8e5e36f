//! The host build emulates sm_90, thread-block clusters included: the kernels' sm_90 code
//! (`cfg(pqtopk_sm90)`, as `cargo xtask build-ptx` sets it for the sm_90 PTX) is compiled in.
fn main() {
    println!("cargo:rustc-cfg=pqtopk_sm90");
}

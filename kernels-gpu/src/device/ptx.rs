//! The device layer on the GPU: intrinsics and inline PTX.
use core::arch::asm;
use core::arch::nvptx;

use super::Shared;

/// A kernel entry point, `kernel! { /// docs  pub unsafe fn name(p: Params) { .. } }`: an
/// unmangled `extern "ptx-kernel"` function, which the host launches by name.
macro_rules! kernel {
    ($(#[$attr:meta])* pub unsafe fn $name:ident($p:ident: $params:ty) $body:block) => {
        $(#[$attr])*
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name($p: $params) $body
    };
}

// ---------------------------------------------------------------------------------------------
// Indices

#[inline(always)]
pub fn thread_idx() -> u32 {
    // SAFETY: reading a special register has no preconditions.
    unsafe { nvptx::_thread_idx_x() }
}

#[inline(always)]
pub fn block_dim() -> u32 {
    // SAFETY: as above.
    unsafe { nvptx::_block_dim_x() }
}

#[inline(always)]
pub fn block_idx() -> (u32, u32, u32) {
    // SAFETY: as above.
    unsafe { (nvptx::_block_idx_x(), nvptx::_block_idx_y(), nvptx::_block_idx_z()) }
}

/// Blocks in the (one-dimensional) grid.
#[inline(always)]
pub fn grid_dim_x() -> u32 {
    // SAFETY: as above.
    unsafe { nvptx::_grid_dim_x() }
}

// ---------------------------------------------------------------------------------------------
// Barriers

/// Block-wide barrier; also orders the block's shared- and global-memory accesses around it.
///
/// # Safety
/// Every thread of the block must reach this same barrier (it must not sit in a branch that
/// only some threads take), or the block deadlocks or behaves undefined.
#[inline(always)]
pub unsafe fn sync_threads() {
    // SAFETY: forwarded to the caller.
    unsafe { nvptx::_syncthreads() }
}

/// Warp-wide barrier; also orders the warp's shared-memory accesses around it.
///
/// # Safety
/// All 32 lanes of the warp must reach this same barrier.
#[inline(always)]
pub unsafe fn sync_warp() {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("bar.warp.sync 0xffffffff;") }
}

/// Aborts the kernel; the launch then fails with an error the host reports.
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: trapping is always allowed.
    unsafe { nvptx::trap() }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    trap()
}

// ---------------------------------------------------------------------------------------------
// Warp shuffles and votes. All lanes of the warp must execute them together (full mask).

/// `v` from lane `lane ^ mask`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn shfl_xor(v: u32, mask: u32) -> u32 {
    let r: u32;
    // SAFETY: full-warp convergence is the caller's promise.
    unsafe {
        asm!("shfl.sync.bfly.b32 {r}, {v}, {m}, 0x1f, 0xffffffff;", r = out(reg32) r, v = in(reg32) v, m = in(reg32) mask)
    };
    r
}

/// `v` from lane `lane + delta` (own value where that is past lane 31).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn shfl_down(v: u32, delta: u32) -> u32 {
    let r: u32;
    // SAFETY: full-warp convergence is the caller's promise.
    unsafe {
        asm!("shfl.sync.down.b32 {r}, {v}, {d}, 0x1f, 0xffffffff;", r = out(reg32) r, v = in(reg32) v, d = in(reg32) delta)
    };
    r
}

/// `v` from lane `lane - delta` (own value where that is below lane 0).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn shfl_up(v: u32, delta: u32) -> u32 {
    let r: u32;
    // SAFETY: full-warp convergence is the caller's promise.
    unsafe {
        asm!("shfl.sync.up.b32 {r}, {v}, {d}, 0, 0xffffffff;", r = out(reg32) r, v = in(reg32) v, d = in(reg32) delta)
    };
    r
}

/// `v` from lane `src`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn shfl_idx(v: u32, src: u32) -> u32 {
    let r: u32;
    // SAFETY: full-warp convergence is the caller's promise.
    unsafe {
        asm!("shfl.sync.idx.b32 {r}, {v}, {s}, 0x1f, 0xffffffff;", r = out(reg32) r, v = in(reg32) v, s = in(reg32) src)
    };
    r
}

/// Bit `i` set where lane `i` passed `true`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn ballot(pred: bool) -> u32 {
    let r: u32;
    // SAFETY: full-warp convergence is the caller's promise.
    unsafe {
        asm!("{{ .reg .pred p; setp.ne.u32 p, {x}, 0; vote.sync.ballot.b32 {r}, p, 0xffffffff; }}",
             r = out(reg32) r, x = in(reg32) pred as u32)
    };
    r
}

// ---------------------------------------------------------------------------------------------
// Atomics on generic addresses (global or shared memory), relaxed, device scope.

/// Adds `v` to `*p` and returns the old value.
///
/// # Safety
/// `p` must be a valid, 4-byte aligned address in global or shared memory.
#[inline(always)]
pub unsafe fn atomic_add(p: *mut u32, v: u32) -> u32 {
    let old: u32;
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("atom.add.u32 {o}, [{p}], {v};", o = out(reg32) old, p = in(reg64) p, v = in(reg32) v) };
    old
}

/// Adds `v` to `*p` without waiting for the old value.
///
/// # Safety
/// `p` must be a valid, 4-byte aligned address in global or shared memory.
#[inline(always)]
pub unsafe fn atomic_add_no_return(p: *mut u32, v: u32) {
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("red.add.u32 [{p}], {v};", p = in(reg64) p, v = in(reg32) v) };
}

/// Adds `v` to `*p` (two's complement: an i64 added as its bits) without waiting.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned address in global or shared memory.
#[inline(always)]
pub unsafe fn atomic_add_u64_no_return(p: *mut u64, v: u64) {
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("red.add.u64 [{p}], {v};", p = in(reg64) p, v = in(reg64) v) };
}

/// Stores the larger of `*p` and `v` in `*p` without waiting.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned address in global or shared memory.
#[inline(always)]
pub unsafe fn atomic_max_u64_no_return(p: *mut u64, v: u64) {
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("red.max.u64 [{p}], {v};", p = in(reg64) p, v = in(reg64) v) };
}

/// Orders this thread's earlier memory accesses before its later ones for every thread of the
/// device (acquire and release at GPU scope).
#[inline(always)]
pub fn fence_acq_rel_gpu() {
    // SAFETY: a fence has no operands and touches no memory of its own.
    unsafe { asm!("fence.acq_rel.gpu;") };
}

/// A coherent load at GPU scope: sees every write that happens before it under the memory
/// model, including other blocks' writes published through fences and atomics, never a stale
/// cached copy.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned global address.
#[inline(always)]
pub unsafe fn load_relaxed_u64(p: *const u64) -> u64 {
    let v: u64;
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("ld.relaxed.gpu.u64 {v}, [{p}];", v = out(reg64) v, p = in(reg64) p) };
    v
}

/// A store at GPU scope that [`load_relaxed_u64`] in another block sees once it lands, never
/// torn.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned global address.
#[inline(always)]
pub unsafe fn store_relaxed_u64(p: *mut u64, v: u64) {
    // SAFETY: the address is the caller's promise.
    unsafe { asm!("st.relaxed.gpu.u64 [{p}], {v};", p = in(reg64) p, v = in(reg64) v) };
}

// ---------------------------------------------------------------------------------------------
// Global loads through the non-coherent (read-only) path. They are `pure`: the compiler may
// batch and reorder them, which is what keeps many loads in flight.

/// # Safety
/// `p` must be a valid global address of the type's size and alignment, and the memory must not
/// be written by any thread during the kernel (the non-coherent cache does not see such writes).
#[inline(always)]
pub unsafe fn load_nc_u8(p: *const u8) -> u8 {
    let v: u16;
    // SAFETY: the address and read-only-ness are the caller's promise.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.u8 {v}, [g]; }}", v = out(reg16) v, p = in(reg64) p, options(pure, readonly, nostack))
    };
    v as u8
}

/// # Safety
/// As [`load_nc_u8`], 2-byte aligned.
#[inline(always)]
pub unsafe fn load_nc_u16(p: *const u16) -> u16 {
    let v: u16;
    // SAFETY: the address and read-only-ness are the caller's promise.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.u16 {v}, [g]; }}", v = out(reg16) v, p = in(reg64) p, options(pure, readonly, nostack))
    };
    v
}

/// # Safety
/// As [`load_nc_u8`], 4-byte aligned.
#[inline(always)]
pub unsafe fn load_nc_u32(p: *const u32) -> u32 {
    let v: u32;
    // SAFETY: the address and read-only-ness are the caller's promise.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.u32 {v}, [g]; }}", v = out(reg32) v, p = in(reg64) p, options(pure, readonly, nostack))
    };
    v
}

/// An 8-byte load.
///
/// # Safety
/// As [`load_nc_u8`], 8-byte aligned.
#[inline(always)]
pub unsafe fn load_nc_v2(p: *const [u32; 2]) -> [u32; 2] {
    let (a, b): (u32, u32);
    // SAFETY: the address and read-only-ness are the caller's promise.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.v2.u32 {{{a}, {b}}}, [g]; }}",
             a = out(reg32) a, b = out(reg32) b, p = in(reg64) p, options(pure, readonly, nostack))
    };
    [a, b]
}

/// A 16-byte load.
///
/// # Safety
/// As [`load_nc_u8`], 16-byte aligned.
#[inline(always)]
pub unsafe fn load_nc_v4(p: *const [u32; 4]) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: the address and read-only-ness are the caller's promise.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.v4.u32 {{{a}, {b}, {c}, {d}}}, [g]; }}",
             a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d, p = in(reg64) p,
             options(pure, readonly, nostack))
    };
    [a, b, c, d]
}

// ---------------------------------------------------------------------------------------------
// Tensor cores

/// `a·b + c` for one warp's 16×8 tile over k = 16 (`mma.sync.aligned.m16n8k16.row.col`), with
/// f16 operands (bf16 with `BF16`) packed in pairs and f32 accumulators. Lane `l` holds, with
/// `g = l / 4` and `t = l % 4`: `a` = A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..];
/// `b` = B[2t..][g], B[2t+8..][g] (B is k × n, so a key's elements are consecutive); `c` and
/// the result = C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1].
///
/// # Safety
/// All 32 lanes of the warp execute it convergently (`.aligned`).
#[inline(always)]
pub unsafe fn mma_16x8x16<const BF16: bool>(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
    let (d0, d1, d2, d3): (f32, f32, f32, f32);
    macro_rules! mma {
        ($ty:literal) => {
            // SAFETY: registers only; convergence is the caller's promise.
            unsafe {
                asm!(
                    concat!("mma.sync.aligned.m16n8k16.row.col.f32.", $ty, ".", $ty, ".f32 ",
                            "{{{d0}, {d1}, {d2}, {d3}}}, {{{a0}, {a1}, {a2}, {a3}}}, {{{b0}, {b1}}}, ",
                            "{{{c0}, {c1}, {c2}, {c3}}};"),
                    d0 = out(reg32) d0, d1 = out(reg32) d1, d2 = out(reg32) d2, d3 = out(reg32) d3,
                    a0 = in(reg32) a[0], a1 = in(reg32) a[1], a2 = in(reg32) a[2], a3 = in(reg32) a[3],
                    b0 = in(reg32) b[0], b1 = in(reg32) b[1],
                    c0 = in(reg32) c[0], c1 = in(reg32) c[1], c2 = in(reg32) c[2], c3 = in(reg32) c[3],
                    // Not `pure`: a warp-collective must not be sunk into divergent code.
                    options(nomem, nostack),
                )
            }
        };
    }
    if BF16 {
        mma!("bf16")
    } else {
        mma!("f16")
    }
    [d0, d1, d2, d3]
}

// ---------------------------------------------------------------------------------------------
/// `a · b + c` with one rounding (`fma.rn.f32`): Rust does not contract a product and a sum, so
/// `a * b + c` costs an `FMUL` and an `FADD`.
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    let d: f32;
    // SAFETY: register arithmetic with no memory access.
    unsafe {
        asm!("fma.rn.f32 {d}, {a}, {b}, {c};", d = out(reg32) d, a = in(reg32) a, b = in(reg32) b, c = in(reg32) c,
            options(pure, nomem, nostack))
    };
    d
}

// Conversions

#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    let f: f32;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.f32.f16 {f}, {h};", f = out(reg32) f, h = in(reg16) bits, options(pure, nomem, nostack)) };
    f
}

/// `x` truncated toward zero to u32, saturating at both ends; NaN gives 0. One `cvt`, where
/// Rust's `as` spells the same saturation out in five instructions.
#[inline(always)]
pub fn f32_to_u32_saturating(x: f32) -> u32 {
    let v: u32;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.rzi.sat.u32.f32 {v}, {x};", v = out(reg32) v, x = in(reg32) x, options(pure, nomem, nostack)) };
    v
}

/// `x` rounded to the nearest integer (ties to even), saturating at i64's ends; NaN gives 0.
#[inline(always)]
pub fn f32_to_i64_nearest(x: f32) -> i64 {
    let v: i64;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.rni.s64.f32 {v}, {x};", v = out(reg64) v, x = in(reg32) x, options(pure, nomem, nostack)) };
    v
}

/// `x` rounded to the nearest u64 (ties to even), saturating; NaN gives 0.
#[inline(always)]
pub fn f64_to_u64_nearest(x: f64) -> u64 {
    let v: u64;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.rni.u64.f64 {v}, {x};", v = out(reg64) v, x = in(reg64) x, options(pure, nomem, nostack)) };
    v
}

/// `x` rounded to f16 (nearest, ties to even), as bits.
#[inline(always)]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let v: u16;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.rn.f16.f32 {v}, {x};", v = out(reg16) v, x = in(reg32) x, options(pure, nomem, nostack)) };
    v
}

/// `x` rounded to bf16 (nearest, ties to even), as bits.
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let v: u16;
    // SAFETY: a register conversion with no memory access.
    unsafe { asm!("cvt.rn.bf16.f32 {v}, {x};", v = out(reg16) v, x = in(reg32) x, options(pure, nomem, nostack)) };
    v
}

// ---------------------------------------------------------------------------------------------
// Shared memory

impl Shared<u32> {
    /// Adds `v` to element `i` and returns the old value (a shared-memory atomic, not a generic
    /// one).
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_add(self, i: usize, v: u32) -> u32 {
        debug_assert!(i < self.len);
        let old: u32;
        // SAFETY: in bounds by the caller's promise; the view addresses shared memory, so the
        // generic address converts to the shared window.
        unsafe {
            asm!(
                "{{ .reg .u64 s; cvta.to.shared.u64 s, {p}; atom.shared.add.u32 {o}, [s], {v}; }}",
                o = out(reg32) old,
                p = in(reg64) self.ptr.add(i),
                v = in(reg32) v,
            )
        };
        old
    }

    /// Adds `v` to element `i`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_add_no_return(self, i: usize, v: u32) {
        debug_assert!(i < self.len);
        // SAFETY: as for `atomic_add`; a shared-window address fits 32 bits, and so does `i`.
        // The element's address is formed there, by one 32-bit multiply-add from the view's
        // start, where a generic address took a 64-bit one per call (histogram counts are the
        // inner loop of the scoring epilogues). ptxas may still re-read the window base beside
        // each call where registers are short, as in `pq_score_dense` (perf-notes v24, v25).
        unsafe {
            asm!(
                "{{ .reg .u64 g; .reg .u32 s; cvta.to.shared.u64 g, {p}; cvt.u32.u64 s, g; \
                 mad.lo.u32 s, {i}, 4, s; red.shared.add.u32 [s], {v}; }}",
                p = in(reg64) self.ptr,
                i = in(reg32) i as u32,
                v = in(reg32) v,
            )
        };
    }
    /// Stores the larger of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_max_no_return(self, i: usize, v: u32) {
        debug_assert!(i < self.len);
        // SAFETY: as for `atomic_add`.
        unsafe {
            asm!(
                "{{ .reg .u64 s; cvta.to.shared.u64 s, {p}; red.shared.max.u32 [s], {v}; }}",
                p = in(reg64) self.ptr.add(i),
                v = in(reg32) v,
            )
        };
    }
}

impl Shared<u64> {
    /// Adds `v` to element `i` (two's complement: an i64 added as its bits).
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_add_no_return(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: as for `Shared::<u32>::atomic_add`.
        unsafe {
            asm!(
                "{{ .reg .u64 s; cvta.to.shared.u64 s, {p}; red.shared.add.u64 [s], {v}; }}",
                p = in(reg64) self.ptr.add(i),
                v = in(reg64) v,
            )
        };
    }

    /// Stores the smaller of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_min(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: as for `Shared::<u32>::atomic_add`.
        unsafe {
            asm!(
                "{{ .reg .u64 s; cvta.to.shared.u64 s, {p}; red.shared.min.u64 [s], {v}; }}",
                p = in(reg64) self.ptr.add(i),
                v = in(reg64) v,
            )
        };
    }

    /// Stores the larger of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    #[inline(always)]
    pub unsafe fn atomic_max(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: as for `Shared::<u32>::atomic_add`.
        unsafe {
            asm!(
                "{{ .reg .u64 s; cvta.to.shared.u64 s, {p}; red.shared.max.u64 [s], {v}; }}",
                p = in(reg64) self.ptr.add(i),
                v = in(reg64) v,
            )
        };
    }
}

/// The launch-sized dynamic shared memory of the block, viewed as `len` elements of `T`.
///
/// # Safety
/// The kernel must have been launched with at least `len · size_of::<T>()` bytes of dynamic
/// shared memory.
#[inline(always)]
pub unsafe fn dynamic_shared<T>(len: usize) -> Shared<T> {
    Shared { ptr: core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<T>(), len }
}

/// `len` elements of `T` at byte `offset` of the launch-sized dynamic shared memory (16-byte
/// aligned at its start), for layouts that the ABI defines.
///
/// # Safety
/// The kernel must have been launched with at least `offset + len · size_of::<T>()` bytes of
/// dynamic shared memory; `offset` is a multiple of `T`'s alignment, at most 16.
#[inline(always)]
pub unsafe fn dynamic_shared_at<T>(offset: u32, len: usize) -> Shared<T> {
    let base = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<[u32; 4]>() as *mut u8;
    // SAFETY: within the launch's dynamic shared memory by the caller's promise.
    Shared { ptr: unsafe { base.add(offset as usize) } as *mut T, len }
}

/// A fixed-size shared-memory array, `static_shared!(NAME: [T; N])`, as a [`Shared<T>`].
///
/// `NAME` must be unique in the crate (it becomes a PTX `.shared` symbol).
#[macro_export]
macro_rules! static_shared {
    ($name:ident : [$t:ty; $n:expr]) => {{
        core::arch::global_asm!(
            concat!(".shared .align 16 .b8 ", stringify!($name), "[{bytes}];"),
            bytes = const core::mem::size_of::<[$t; $n]>(),
        );
        let len: usize = $n;
        let p: *mut $t;
        // SAFETY: taking the generic address of a shared symbol has no preconditions.
        unsafe { core::arch::asm!(concat!("cvta.shared.u64 {p}, ", stringify!($name), ";"), p = out(reg64) p) };
        // SAFETY: the symbol spans exactly N elements of T.
        unsafe { $crate::device::Shared::from_raw(p, len) }
    }};
}

impl<T> Shared<T> {
    /// # Safety
    /// `ptr` must address `len` elements of `T` in the block's shared memory.
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        Shared { ptr, len }
    }
}

// ---------------------------------------------------------------------------------------------
// Thread-block clusters (sm_90): cluster barriers and distributed shared memory. Compiled only
// into the sm_90 PTX (`--cfg pqtopk_sm90`), since the sm_80 JIT rejects these instructions.

/// This block's rank within its cluster.
#[cfg(pqtopk_sm90)]
#[inline(always)]
pub fn cluster_rank() -> u32 {
    let r: u32;
    // SAFETY: reading a special register has no preconditions.
    unsafe { asm!("mov.u32 {r}, %cluster_ctarank;", r = out(reg32) r) };
    r
}

/// Cluster-wide barrier: every thread of every block of the cluster arrives (release) and waits
/// (acquire), so each block's shared-memory writes before it are visible to every block after
/// it, local and remote. (Release and acquire are the default semantics of `arrive` and `wait`;
/// PTX 7.8, which the sm_90 build targets, does not take them spelled out.)
///
/// # Safety
/// Every thread of every block of the cluster must reach this same barrier.
#[cfg(pqtopk_sm90)]
#[inline(always)]
pub unsafe fn cluster_sync() {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("barrier.cluster.arrive.aligned;", "barrier.cluster.wait.aligned;") };
}

/// The view `Shared<T>` of this block, in block `rank` of the cluster (whose shared memory has
/// the same layout): its elements by their `shared::cluster` addresses.
#[cfg(pqtopk_sm90)]
#[derive(Clone, Copy)]
pub struct Remote<T> {
    addr: u32,
    len: usize,
    _element: core::marker::PhantomData<T>,
}

#[cfg(pqtopk_sm90)]
impl<T: Copy> Shared<T> {
    /// This view in block `rank` of the cluster.
    ///
    /// # Safety
    /// `rank` is below the cluster's size; the view addresses shared memory.
    #[inline(always)]
    pub unsafe fn in_block(self, rank: u32) -> Remote<T> {
        let addr: u32;
        // SAFETY: the view's generic address converts to the shared window; mapa maps it to the
        // same offset in the other block.
        unsafe {
            asm!(
                "{{ .reg .u64 s; .reg .u32 l; cvta.to.shared.u64 s, {p}; cvt.u32.u64 l, s; mapa.shared::cluster.u32 {a}, l, {r}; }}",
                a = out(reg32) addr,
                p = in(reg64) self.ptr,
                r = in(reg32) rank,
            )
        };
        Remote { addr, len: self.len, _element: core::marker::PhantomData }
    }
}

#[cfg(pqtopk_sm90)]
impl<T> Remote<T> {
    #[inline(always)]
    fn at(self, i: usize) -> u32 {
        debug_assert!(i < self.len);
        self.addr + (i * core::mem::size_of::<T>()) as u32
    }
}

#[cfg(pqtopk_sm90)]
impl Remote<u32> {
    /// # Safety
    /// `i < len`; the other block is running, and no thread writes the element between the
    /// cluster barriers around this read.
    #[inline(always)]
    pub unsafe fn get(self, i: usize) -> u32 {
        let v: u32;
        // SAFETY: the caller's promise.
        unsafe { asm!("ld.shared::cluster.u32 {v}, [{a}];", v = out(reg32) v, a = in(reg32) self.at(i)) };
        v
    }

    /// Adds `v` to element `i` and returns the old value.
    ///
    /// # Safety
    /// `i < len`; the other block is running.
    #[inline(always)]
    pub unsafe fn atomic_add(self, i: usize, v: u32) -> u32 {
        let old: u32;
        // SAFETY: the caller's promise.
        unsafe {
            asm!("atom.shared::cluster.add.u32 {o}, [{a}], {v};", o = out(reg32) old, a = in(reg32) self.at(i), v = in(reg32) v)
        };
        old
    }
}

#[cfg(pqtopk_sm90)]
impl Remote<u64> {
    /// # Safety
    /// As [`Remote::<u32>::get`].
    #[inline(always)]
    pub unsafe fn get(self, i: usize) -> u64 {
        let v: u64;
        // SAFETY: the caller's promise.
        unsafe { asm!("ld.shared::cluster.u64 {v}, [{a}];", v = out(reg64) v, a = in(reg32) self.at(i)) };
        v
    }

    /// # Safety
    /// `i < len`; the other block is running, and no other thread reads or writes the element
    /// between the cluster barriers around this write.
    #[inline(always)]
    pub unsafe fn set(self, i: usize, v: u64) {
        // SAFETY: the caller's promise.
        unsafe { asm!("st.shared::cluster.u64 [{a}], {v};", a = in(reg32) self.at(i), v = in(reg64) v) };
    }
}

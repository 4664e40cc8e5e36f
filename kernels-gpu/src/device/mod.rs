//! The device layer: the one module that uses intrinsics, `asm!` and raw shared memory.
//!
//! Everything else in this crate is plain Rust over these functions. We write our own layer
//! because `cuda_std` needs the LLVM-7 `rustc_codegen_nvvm`; rustc's NVPTX backend gives us
//! `core::arch::nvptx` and inline PTX, which is all a kernel needs.
//!
//! Two implementations sit under the same functions: `ptx` on the GPU, and `emulated` in the
//! host build, which runs the kernels on CPU threads (a thread per GPU thread, barriers and
//! warp collectives as rendezvous) so that the kernels' logic is tested without a GPU.

#[cfg(target_arch = "nvptx64")]
#[macro_use]
mod ptx;
#[cfg(target_arch = "nvptx64")]
pub use ptx::*;

#[cfg(not(target_arch = "nvptx64"))]
#[macro_use]
mod emulated;
#[cfg(not(target_arch = "nvptx64"))]
pub use emulated::*;

pub const WARP: u32 = 32;

#[inline(always)]
pub fn lane() -> u32 {
    thread_idx() % WARP
}

/// The smallest and the largest of `lo` and `hi` over the warp (every lane gets both).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[inline(always)]
pub unsafe fn warp_min_max_u64(mut lo: u64, mut hi: u64) -> (u64, u64) {
    let mut mask = WARP / 2;
    while mask > 0 {
        // SAFETY: forwarded to the caller.
        let other =
            |v: u64| unsafe { (shfl_xor(v as u32, mask) as u64) | (shfl_xor((v >> 32) as u32, mask) as u64) << 32 };
        (lo, hi) = (lo.min(other(lo)), hi.max(other(hi)));
        mask /= 2;
    }
    (lo, hi)
}

/// Index types that [`strided`] walks.
pub trait StrideIndex: Copy + PartialOrd {
    /// `self + step`, or the type's largest value where that overflows.
    fn advance(self, step: usize) -> Self;
}

impl StrideIndex for u32 {
    #[inline(always)]
    fn advance(self, step: usize) -> u32 {
        self.saturating_add(step as u32)
    }
}

impl StrideIndex for usize {
    #[inline(always)]
    fn advance(self, step: usize) -> usize {
        self.saturating_add(step)
    }
}

/// `start, start + step, …` below `end`: what `(start..end).step_by(step)` yields, without the
/// division `StepBy` does when it is built (it counts the steps up front). On the GPU that is a
/// software division on the path of every strided loop: about 20 instructions for u32, about 70
/// or a call for usize. Keep `step_by` where its count pays: a step known at compile time (a
/// division by a constant is a shift or a multiply), and loops of loads that the compiler
/// unrolls to keep several in flight once it knows the count (the scoring kernel's).
/// `step > 0`, below `T`'s range.
#[inline(always)]
pub fn strided<T: StrideIndex>(start: T, end: T, step: usize) -> impl Iterator<Item = T> {
    let mut next = start;
    core::iter::from_fn(move || {
        let i = next;
        (i < end).then(|| {
            next = i.advance(step);
            i
        })
    })
}

#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

// ---------------------------------------------------------------------------------------------
// Shared memory as typed arrays

/// A typed view of a block's shared memory: `len` elements of `T`.
///
/// Every thread of the block holds the same view; which thread touches which element, and the
/// barriers between them, are the kernel's business. Accesses are unchecked in release builds
/// (the emulator checks them in its test builds).
#[derive(Clone, Copy)]
pub struct Shared<T> {
    ptr: *mut T,
    len: usize,
}

impl<T: Copy> Shared<T> {
    /// # Safety
    /// `i < len`, and no other thread writes element `i` between the barriers around this read.
    #[inline(always)]
    pub unsafe fn get(self, i: usize) -> T {
        debug_assert!(i < self.len);
        // SAFETY: in bounds and race-free by the caller's promise.
        unsafe { *self.ptr.add(i) }
    }

    /// # Safety
    /// `i < len`, and no other thread reads or writes element `i` between the barriers around
    /// this write.
    #[inline(always)]
    pub unsafe fn set(self, i: usize, v: T) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds and race-free by the caller's promise.
        unsafe { *self.ptr.add(i) = v }
    }

    // Views are never empty, and nothing asks.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        self.len
    }

    /// The elements from `start`, `len` of them.
    ///
    /// # Safety
    /// `start + len <= self.len()`.
    #[inline(always)]
    pub unsafe fn sub(self, start: usize, len: usize) -> Shared<T> {
        debug_assert!(start + len <= self.len);
        // SAFETY: in bounds by the caller's promise.
        Shared { ptr: unsafe { self.ptr.add(start) }, len }
    }

    /// Reinterprets the memory after the first `elements` as an array of `U`, aligned to `U`.
    ///
    /// # Safety
    /// The launch must have provided the bytes the returned view covers (`len` of `U`).
    #[inline(always)]
    pub unsafe fn tail<U: Copy>(self, elements: usize, len: usize) -> Shared<U> {
        let bytes = (elements * core::mem::size_of::<T>()).next_multiple_of(core::mem::align_of::<U>());
        // SAFETY: the caller promises the launch sized shared memory to cover it.
        Shared { ptr: unsafe { (self.ptr as *mut u8).add(bytes) as *mut U }, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `strided` yields what `step_by` does, for empty, exact, ragged and overflowing ranges.
    #[test]
    fn strided_walks_as_step_by() {
        for (start, end, step) in [(0u32, 0, 1), (5, 3, 2), (0, 10, 1), (3, 1000, 256), (7, 8, 32), (1, 1024, 1024)] {
            let want: Vec<u32> = (start..end).step_by(step).collect();
            assert_eq!(walked(start, end, step), want, "{start}..{end} by {step}");
            let want: Vec<usize> = (start as usize..end as usize).step_by(step).collect();
            assert_eq!(strided(start as usize, end as usize, step).collect::<Vec<_>>(), want);
        }
        let top = u32::MAX - 3;
        assert_eq!(walked(top, u32::MAX, 2), vec![top, top + 2]);
        assert_eq!(walked(top, u32::MAX, 1000), vec![top]);
    }

    fn walked(start: u32, end: u32, step: usize) -> Vec<u32> {
        strided(start, end, step).collect()
    }
}

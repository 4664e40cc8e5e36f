//! Smoke kernels: each proves one piece of the device layer on the GPU against a CPU result
//! (see `tests/gpu.rs`). Grid `(blocks)` of `BLOCK_THREADS` threads unless a kernel says more.

use crate::device::{self, Shared};
use pqtopk_abi::{BLOCK_THREADS, SmokeParams};

fn global_thread(p: &SmokeParams) -> Option<usize> {
    let i = device::block_idx().0 * device::block_dim() + device::thread_idx();
    (i < p.n).then_some(i as usize)
}

kernel! {
    /// `output[block] = Σ input[block·256 ..][..256]` (wrapping u32) by a tree in a static shared
    /// array.
    ///
    /// # Safety
    /// `input` holds `n` u32, `output` one u32 per block.
    pub unsafe fn smoke_block_sum(p: SmokeParams) {
        let partial = static_shared!(SMOKE_BLOCK_SUM: [u32; BLOCK_THREADS as usize]);
        let t = device::thread_idx() as usize;
        // SAFETY: i < n.
        let v = global_thread(&p).map_or(0, |i| unsafe { *(p.input as *const u32).add(i) });
        // SAFETY: every thread reaches every barrier; element t is written by thread t only, and
        // elements t + stride are read only after a barrier.
        unsafe {
            partial.set(t, v);
            device::sync_threads();
            let mut stride = BLOCK_THREADS as usize / 2;
            while stride > 0 {
                if t < stride {
                    partial.set(t, partial.get(t).wrapping_add(partial.get(t + stride)));
                }
                device::sync_threads();
                stride /= 2;
            }
            if t == 0 {
                *(p.output as *mut u32).add(device::block_idx().0 as usize) = partial.get(0);
            }
        }
    }
}

kernel! {
    /// Per warp `w`: `output[4w] = Σ` by xor butterfly, `output[4w+1] = Σ` by shuffle-down,
    /// `output[4w+2]` = ballot of odd inputs, `output[4w+3]` = lane 31's inclusive prefix sum by
    /// shuffle-up. Inputs past `n` count as 0.
    ///
    /// # Safety
    /// `input` holds `n` u32, `output` 4 u32 per warp of the grid.
    pub unsafe fn smoke_warp(p: SmokeParams) {
        // SAFETY: i < n.
        let v = global_thread(&p).map_or(0, |i| unsafe { *(p.input as *const u32).add(i) });
        let warp = (device::block_idx().0 * device::block_dim() + device::thread_idx()) / device::WARP;
        // SAFETY: the whole warp runs every call (no early return above).
        unsafe {
            let (mut xor_sum, mut down_sum, mut prefix) = (v, v, v);
            let mut delta = 1;
            while delta < device::WARP {
                xor_sum = xor_sum.wrapping_add(device::shfl_xor(xor_sum, delta));
                down_sum = down_sum.wrapping_add(device::shfl_down(down_sum, delta));
                let up = device::shfl_up(prefix, delta);
                if device::lane() >= delta {
                    prefix = prefix.wrapping_add(up);
                }
                delta *= 2;
            }
            let odd = device::ballot(v & 1 == 1);
            let out = (p.output as *mut u32).add(4 * warp as usize);
            if device::lane() == 0 {
                *out = xor_sum;
                *out.add(1) = down_sum;
                *out.add(2) = odd;
            }
            if device::lane() == 31 {
                *out.add(3) = prefix;
            }
        }
    }
}

kernel! {
    /// `output[0..bins]` += histogram of `input % bins`; `output[bins]` = max input. Atomics on
    /// global memory directly and through a shared-memory histogram (dynamic shared memory of
    /// `bins · 4` bytes), which must agree: `output[bins+1..2·bins+1]` gets the shared-path counts.
    ///
    /// # Safety
    /// `input` holds `n` u32; `output` holds `2·bins + 1` u32, zeroed.
    pub unsafe fn smoke_atomics(p: SmokeParams) {
        // SAFETY: launched with bins·4 bytes of dynamic shared memory.
        let local: Shared<u32> = unsafe { device::dynamic_shared(p.bins as usize) };
        let out = p.output as *mut u32;
        // SAFETY: every thread reaches every barrier; bins are in bounds; atomics order the counts.
        unsafe {
            let mut b = device::thread_idx();
            while b < p.bins {
                local.set(b as usize, 0);
                b += device::block_dim();
            }
            device::sync_threads();
            if let Some(i) = global_thread(&p) {
                let v = *(p.input as *const u32).add(i);
                device::atomic_add(out.add((v % p.bins) as usize), 1);
                local.atomic_add((v % p.bins) as usize, 1);
            }
            device::sync_threads();
            let mut b = device::thread_idx();
            while b < p.bins {
                device::atomic_add(out.add((p.bins + 1 + b) as usize), local.get(b as usize));
                b += device::block_dim();
            }
        }
    }
}

kernel! {
    /// Reverses each block's slice of `input` through dynamic shared memory of `block_dim · 4`
    /// bytes; also proves the 16-byte non-coherent load: `output[n + 4·block ..][..4]` = the first
    /// 16 bytes of the block's slice when it holds at least 4 elements.
    ///
    /// # Safety
    /// `input` holds `n` u32 (16-byte aligned); `output` holds `n + 4·blocks` u32.
    pub unsafe fn smoke_dynamic_shared(p: SmokeParams) {
        let t = device::thread_idx() as usize;
        let block_start = (device::block_idx().0 * device::block_dim()) as usize;
        let len = (p.n as usize).saturating_sub(block_start).min(device::block_dim() as usize);
        // SAFETY: launched with block_dim·4 bytes of dynamic shared memory.
        let buf: Shared<u32> = unsafe { device::dynamic_shared(device::block_dim() as usize) };
        // SAFETY: every thread reaches the barrier; each element has one writer, read after it.
        unsafe {
            if t < len {
                buf.set(t, *(p.input as *const u32).add(block_start + t));
            }
            device::sync_threads();
            if t < len {
                *(p.output as *mut u32).add(block_start + t) = buf.get(len - 1 - t);
            }
            if t == 0 && len >= 4 {
                let wide = device::load_nc_v4((p.input as *const u32).add(block_start) as *const [u32; 4]);
                let at = (p.output as *mut u32).add(p.n as usize + 4 * device::block_idx().0 as usize);
                for (k, w) in wide.iter().enumerate() {
                    *at.add(k) = *w;
                }
            }
        }
    }
}

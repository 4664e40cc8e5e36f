//! Raw driver calls, under the checked layer in `gpu.rs`.

use crate::error::{Error, Result};
use cust::sys::{self, CUdevice, CUfunction, CUresult, CUstream};

/// The device address of a buffer, for a kernel's parameters.
pub fn address<T: cust::memory::DeviceCopy>(buffer: &cust::memory::DeviceSlice<T>) -> u64 {
    buffer.as_device_ptr().as_raw()
}

/// Launches `func` with `threads` threads per block and one by-value parameter.
///
/// # Safety
/// `func` is a kernel of the current context whose single parameter has the layout of `P`;
/// every address inside `params` is valid for what the kernel does with it; `grid`, `threads`
/// and `shared` meet the kernel's documented requirements; `stream` belongs to the current
/// context.
pub unsafe fn launch<P>(
    func: CUfunction,
    grid: u32,
    threads: u32,
    shared: u32,
    stream: CUstream,
    params: &P,
) -> Result<()> {
    let mut args = [params as *const P as *mut std::ffi::c_void];
    // SAFETY: forwarded to the caller; the driver copies the parameter before returning.
    check("cuLaunchKernel", unsafe {
        sys::cuLaunchKernel(func, grid, 1, 1, threads, 1, 1, shared, stream, args.as_mut_ptr(), std::ptr::null_mut())
    })
}

fn check(call: &'static str, status: CUresult) -> Result<()> {
    if status == CUresult::CUDA_SUCCESS { Ok(()) } else { Err(Error::Driver { call, code: status as u32 }) }
}

/// Blocks of `threads` threads with `shared` bytes of dynamic shared memory that one SM
/// holds at once.
///
/// # Safety
/// `func` is a kernel of the current context.
pub unsafe fn max_active_blocks(func: CUfunction, threads: u32, shared: usize) -> Result<u32> {
    let mut blocks = 0i32;
    // SAFETY: forwarded to the caller; `blocks` is a valid out-pointer.
    check("cuOccupancyMaxActiveBlocksPerMultiprocessor", unsafe {
        sys::cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, func, threads as i32, shared)
    })?;
    Ok(blocks as u32)
}

/// Lets `func` use up to `bytes` of dynamic shared memory.
///
/// # Safety
/// `func` is a kernel of the current context, and `bytes` is within the device's opt-in limit.
pub unsafe fn set_max_dynamic_shared(func: CUfunction, bytes: usize) -> Result<()> {
    // SAFETY: forwarded to the caller.
    check("cuFuncSetAttribute", unsafe {
        sys::cuFuncSetAttribute(
            func,
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes as i32,
        )
    })
}

/// Attribute `attribute` of `device`.
///
/// # Safety
/// `device` is a valid device handle of an initialized driver.
pub unsafe fn device_attribute(device: CUdevice, attribute: sys::CUdevice_attribute) -> Result<usize> {
    let mut value = 0i32;
    // SAFETY: forwarded to the caller; `value` is a valid out-pointer.
    check("cuDeviceGetAttribute", unsafe { sys::cuDeviceGetAttribute(&mut value, attribute, device) })?;
    Ok(value as usize)
}

/// Bytes of static shared memory that `func` declares.
///
/// # Safety
/// `func` is a kernel of the current context.
pub unsafe fn static_shared_bytes(func: CUfunction) -> Result<usize> {
    let mut value = 0i32;
    // SAFETY: forwarded to the caller; `value` is a valid out-pointer.
    check("cuFuncGetAttribute", unsafe {
        sys::cuFuncGetAttribute(&mut value, sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, func)
    })?;
    Ok(value as usize)
}

//! The device layer in the host build: the kernels run on the CPU, a coroutine per GPU thread.
//!
//! [`emulate`] runs a grid. A block's threads (a cluster's, for cluster launches) are stackful
//! coroutines on one OS thread, and a few OS threads run blocks at once, so blocks that
//! communicate through global atomics do so concurrently. A thread runs until it reaches a block barrier or a warp collective (shuffle,
//! vote, `mma`, warp barrier), which it waits at until every live thread of its block (or warp)
//! has arrived. Within each round the threads run in a random order, so two threads that touch
//! the same memory without a barrier between them meet in either order (the seed is in every
//! failure, and `PQTOPK_EMULATOR_SEED` replays it). Shared memory is a buffer per block, filled
//! with a poison byte before each block starts, so a kernel that reads what it never wrote sees
//! garbage, as it may on a GPU.
//!
//! A launch fails, with a message, where:
//! - threads of one block wait at barriers of different call sites (a divergent barrier), or
//!   lanes of one warp at collectives of different call sites, or lanes of a warp that some of
//!   its lanes have left meet at a collective (whose full mask they would not fill);
//! - every live thread waits and none can go on (a deadlock);
//! - a shared-memory view is larger than the launch provided (always checked), or an index
//!   leaves its view (`debug_assert!`s: test builds);
//! - a thread panics (an overflow in a debug build, an out-of-range slice index).
//!
//! It models neither the GPU's memory model beyond barriers and atomics nor its timing: it tests
//! the kernels' logic, not their speed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::{Shared, WARP};

/// A kernel entry point, `kernel! { /// docs  pub unsafe fn name(p: Params) { .. } }`: in the
/// host build a plain function, which [`emulate`] runs on every thread of a grid.
macro_rules! kernel {
    ($(#[$attr:meta])* pub unsafe fn $name:ident($p:ident: $params:ty) $body:block) => {
        $(#[$attr])*
        pub unsafe fn $name($p: $params) $body
    };
}

/// A fixed-size shared-memory array, `static_shared!(NAME: [T; N])`, as a [`Shared<T>`]: one
/// per block and name.
#[macro_export]
macro_rules! static_shared {
    ($name:ident : [$t:ty; $n:expr]) => {{
        let len: usize = $n;
        // SAFETY: the name is unique in the crate, as on the GPU, where it is a PTX symbol.
        unsafe { $crate::device::static_shared_array::<$t>(stringify!($name), len) }
    }};
}

/// Each byte of shared memory at a block's start.
const POISON: u8 = 0xA5;
/// Stack of each emulated thread.
const THREAD_STACK: usize = 256 << 10;

/// Why a launch failed: the first failure of any of its blocks.
#[derive(Clone, Debug)]
pub struct LaunchFailure {
    pub block: u32,
    /// The thread that panicked, if one did (a deadlock or a divergence has none).
    pub thread: Option<u32>,
    pub message: String,
    /// The seed of the threads' order, for `PQTOPK_EMULATOR_SEED`.
    pub seed: u64,
}

impl core::fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "block {}", self.block)?;
        if let Some(thread) = self.thread {
            write!(f, ", thread {thread}")?;
        }
        write!(f, ": {} (PQTOPK_EMULATOR_SEED={})", self.message, self.seed)
    }
}

/// Runs `kernel` on every thread of `grid` blocks of `threads` threads, each block with
/// `shared_bytes` of dynamic shared memory, in clusters of `cluster` blocks (1: no clusters);
/// returns when every block has finished, or at the first failure.
///
/// # Safety
/// As the kernel's own launch: every address in what `kernel` captures is valid for what the
/// kernel does with it, and `grid`, `threads`, `shared_bytes` and `cluster` meet its
/// requirements.
pub unsafe fn emulate(
    grid: u32,
    cluster: u32,
    threads: u32,
    shared_bytes: u32,
    kernel: impl Fn() + Sync,
) -> Result<(), LaunchFailure> {
    assert!(threads > 0 && threads <= 1024, "{threads} threads per block");
    assert!(cluster > 0 && grid.is_multiple_of(cluster), "{grid} blocks in clusters of {cluster}");
    let seed = std::env::var("PQTOPK_EMULATOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), grid));
    let launch = Launch { grid, next_block: AtomicUsize::new(0), failure: Mutex::new(None), seed };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min((grid / cluster) as usize);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (launch, kernel) = (&launch, &kernel);
            scope.spawn(move || {
                let mut members: Vec<Block> =
                    (0..cluster).map(|_| Block::new(threads, shared_bytes as usize)).collect();
                let mut stacks = Vec::new();
                while launch.failure.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                    let first = launch.next_block.fetch_add(cluster as usize, Ordering::Relaxed);
                    if first >= grid as usize {
                        break;
                    }
                    if let Err(failure) = run_blocks(&mut members, launch, first as u32, kernel, &mut stacks) {
                        launch.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(failure);
                    }
                }
            });
        }
    });
    match launch.failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

struct Launch {
    grid: u32,
    next_block: AtomicUsize,
    failure: Mutex<Option<LaunchFailure>>,
    seed: u64,
}

/// Where a suspended thread waits.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Block(&'static Location<'static>),
    Warp(&'static Location<'static>),
    Cluster(&'static Location<'static>),
}

/// A thread between two of its runs.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Runnable,
    Waiting(Wait),
    Exited,
}

/// What the running thread is.
#[derive(Clone, Copy)]
struct Here {
    launch: *const Launch,
    /// The blocks that run together (one, or a cluster's), and which of them this thread's is.
    members: *const Block,
    member: u32,
    block_idx: u32,
    thread: u32,
    yielder: *const Yielder<(), Wait>,
}

thread_local! {
    static HERE: Cell<Option<Here>> = const { Cell::new(None) };
}

fn here() -> Here {
    HERE.get().expect("a device function called outside an emulated launch")
}

fn block() -> &'static Block {
    member(here().member)
}

/// Block `rank` of the running thread's cluster.
fn member(rank: u32) -> &'static Block {
    // SAFETY: `run_blocks` sets `HERE` only while its blocks live, and ranks index them.
    unsafe { &*here().members.add(rank as usize) }
}

/// Suspends the running thread until what it waits for is complete.
fn suspend(wait: Wait) {
    // SAFETY: the yielder is the running coroutine's, set before it was resumed.
    unsafe { &*here().yielder }.suspend(wait)
}

/// A block's state, reused by the blocks that one worker runs in turn.
struct Block {
    threads: u32,
    /// Dynamic shared memory, 16-byte aligned.
    dynamic: SharedBytes,
    statics: RefCell<HashMap<&'static str, SharedBytes>>,
    /// Each lane's value in a warp collective, by thread, in two arrays that a thread's
    /// collectives use in turn (`phases`): a lane that has read the values of one collective
    /// and runs on to the next writes the other array, which no lane reads any more (every lane
    /// read it before arriving at the collective in between).
    slots: [Vec<AtomicU64>; 2],
    phases: Vec<Cell<usize>>,
}

impl Block {
    fn new(threads: u32, shared_bytes: usize) -> Block {
        Block {
            threads,
            dynamic: SharedBytes::new(shared_bytes),
            statics: RefCell::new(HashMap::new()),
            slots: std::array::from_fn(|_| (0..threads).map(|_| AtomicU64::new(0)).collect()),
            phases: (0..threads).map(|_| Cell::new(0)).collect(),
        }
    }

    /// Before a block runs in it: poisoned shared memory, warp collectives from the first slots.
    fn reset(&mut self) {
        self.dynamic.poison();
        for bytes in self.statics.get_mut().values() {
            bytes.poison();
        }
        self.phases.iter().for_each(|phase| phase.set(0));
    }
}

/// Runs the blocks `first..first + members.len()` of the launch (one block, or one cluster's) to
/// their end, a coroutine per thread, block `first + i` in `members[i]`.
fn run_blocks(
    members: &mut [Block],
    launch: &Launch,
    first: u32,
    kernel: &(impl Fn() + Sync),
    stacks: &mut Vec<DefaultStack>,
) -> Result<(), LaunchFailure> {
    members.iter_mut().for_each(Block::reset);
    let per_block = members[0].threads as usize;
    let threads = per_block * members.len();
    let yielders: Vec<Cell<*const Yielder<(), Wait>>> = (0..threads).map(|_| Cell::new(std::ptr::null())).collect();
    let mut coroutines: Vec<_> = (0..threads)
        .map(|g| {
            let stack = stacks.pop().unwrap_or_else(|| DefaultStack::new(THREAD_STACK).expect("a thread stack"));
            let yielder = &yielders[g];
            // SAFETY: the coroutine borrows `yielders` and `kernel`, which outlive it: every
            // coroutine finishes or is dropped before this function returns.
            unsafe {
                Coroutine::with_stack_unchecked(stack, move |y: &Yielder<(), Wait>, ()| {
                    yielder.set(y);
                    HERE.set(HERE.get().map(|h| Here { yielder: y, ..h }));
                    kernel()
                })
            }
        })
        .collect();
    let mut states = vec![State::Runnable; threads];
    let mut rng = launch.seed ^ (first as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut order: Vec<usize> = (0..threads).collect();
    let fail = |g: Option<usize>, message: String| LaunchFailure {
        block: first + g.map_or(0, |g| (g / per_block) as u32),
        thread: g.map(|g| (g % per_block) as u32),
        message,
        seed: launch.seed,
    };
    let members: &[Block] = members;
    loop {
        // Every runnable thread runs to its next wait, in a random order.
        for i in (1..threads).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &g in &order {
            if states[g] != State::Runnable {
                continue;
            }
            let (member, thread) = (g / per_block, g % per_block);
            HERE.set(Some(Here {
                launch,
                members: members.as_ptr(),
                member: member as u32,
                block_idx: first + member as u32,
                thread: thread as u32,
                yielder: yielders[g].get(),
            }));
            let resumed = panic::catch_unwind(AssertUnwindSafe(|| coroutines[g].resume(())));
            HERE.set(None);
            states[g] = match resumed {
                Ok(CoroutineResult::Yield(wait)) => State::Waiting(wait),
                Ok(CoroutineResult::Return(())) => State::Exited,
                Err(payload) => return Err(fail(Some(g), panic_message(&*payload))),
            };
        }
        // Warps whose live lanes all wait at one collective go on; then blocks whose live
        // threads all wait at one barrier; then the cluster's.
        let mut released = false;
        for block in states.chunks_mut(per_block) {
            for lanes in block.chunks_mut(WARP as usize) {
                let waits = |l: &State| matches!(l, State::Waiting(Wait::Warp(_)));
                if !lanes.iter().any(waits) {
                    continue;
                }
                if lanes.contains(&State::Exited) {
                    return Err(fail(None, "a warp collective after some of the warp's lanes exited".into()));
                }
                if lanes.iter().all(waits) {
                    agree(lanes).map_err(|m| fail(None, m))?;
                    lanes.fill(State::Runnable);
                    released = true;
                }
            }
        }
        if released {
            continue;
        }
        for block in states.chunks_mut(per_block) {
            let mut live: Vec<&mut State> = block.iter_mut().filter(|s| **s != State::Exited).collect();
            if !live.is_empty() && live.iter().all(|s| matches!(s, State::Waiting(Wait::Block(_)))) {
                let mut waiting: Vec<State> = live.iter().map(|s| **s).collect();
                agree(&mut waiting).map_err(|m| fail(None, m))?;
                live.iter_mut().for_each(|s| **s = State::Runnable);
                released = true;
            }
        }
        if released {
            continue;
        }
        let live: Vec<usize> = (0..threads).filter(|&g| states[g] != State::Exited).collect();
        if live.is_empty() {
            break;
        }
        if live.iter().all(|&g| matches!(states[g], State::Waiting(Wait::Cluster(_)))) {
            let mut waiting: Vec<State> = live.iter().map(|&g| states[g]).collect();
            agree(&mut waiting).map_err(|m| fail(None, m))?;
            live.iter().for_each(|&g| states[g] = State::Runnable);
            continue;
        }
        let stuck: Vec<String> = live
            .iter()
            .filter_map(|&g| {
                let (b, t) = (first as usize + g / per_block, g % per_block);
                match states[g] {
                    State::Waiting(Wait::Block(at)) => Some(format!("block {b} thread {t} at the barrier of {at}")),
                    State::Waiting(Wait::Warp(at)) => Some(format!("block {b} thread {t} at the collective of {at}")),
                    State::Waiting(Wait::Cluster(at)) => {
                        Some(format!("block {b} thread {t} at the cluster barrier of {at}"))
                    }
                    _ => None,
                }
            })
            .take(4)
            .collect();
        return Err(fail(None, format!("deadlock: {}", stuck.join("; "))));
    }
    stacks.extend(coroutines.into_iter().map(Coroutine::into_stack));
    Ok(())
}

/// Whether every waiting thread waits at the same call site; the two first that differ if not.
fn agree(waiting: &mut [State]) -> Result<(), String> {
    let site = |s: &State| match s {
        State::Waiting(Wait::Block(at) | Wait::Warp(at) | Wait::Cluster(at)) => Some(*at),
        _ => None,
    };
    let first = site(&waiting[0]);
    match waiting.iter().map(site).find(|s| *s != first) {
        Some(other) => Err(format!("divergent: threads wait at {} and at {}", first.unwrap(), other.unwrap())),
        None => Ok(()),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A 16-byte aligned buffer that every thread of a block reads and writes through raw pointers.
struct SharedBytes {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl SharedBytes {
    fn new(len: usize) -> SharedBytes {
        // u64 words, two per 16 bytes, and a spare one for the alignment.
        let words = (0..len.div_ceil(16) * 2 + 1).map(|_| AtomicU64::new(0)).collect();
        SharedBytes { words, len }
    }

    /// The first 16-byte aligned byte.
    fn base(&self) -> *mut u8 {
        let p = self.words.as_ptr() as *mut u8;
        // SAFETY: the buffer has one spare word for the alignment.
        unsafe { p.add(p.align_offset(16)) }
    }

    fn poison(&self) {
        // SAFETY: within the buffer; no thread of the block runs while it is poisoned.
        unsafe { self.base().write_bytes(POISON, self.len) };
    }
}

/// Every lane's `v`, after all lanes of the warp have given theirs.
#[track_caller]
fn exchange(v: u64) -> [u64; WARP as usize] {
    let (thread, block) = (here().thread as usize, block());
    let slots = &block.slots[block.phases[thread].replace(block.phases[thread].get() ^ 1)];
    slots[thread].store(v, Ordering::Relaxed);
    suspend(Wait::Warp(Location::caller()));
    let warp = thread / WARP as usize * WARP as usize;
    std::array::from_fn(|i| slots.get(warp + i).map_or(0, |s| s.load(Ordering::Relaxed)))
}

// ---------------------------------------------------------------------------------------------
// Indices

pub fn thread_idx() -> u32 {
    here().thread
}

pub fn block_dim() -> u32 {
    block().threads
}

pub fn block_idx() -> (u32, u32, u32) {
    (here().block_idx, 0, 0)
}

/// Blocks in the (one-dimensional) grid.
pub fn grid_dim_x() -> u32 {
    // SAFETY: `run_blocks` sets `HERE` only while the launch lives.
    unsafe { &*here().launch }.grid
}

// ---------------------------------------------------------------------------------------------
// Barriers

/// Block-wide barrier; also orders the block's shared- and global-memory accesses around it.
///
/// # Safety
/// Every thread of the block must reach this same barrier.
#[track_caller]
pub unsafe fn sync_threads() {
    suspend(Wait::Block(Location::caller()));
}

/// Warp-wide barrier.
///
/// # Safety
/// All 32 lanes of the warp must reach this same barrier.
#[track_caller]
pub unsafe fn sync_warp() {
    suspend(Wait::Warp(Location::caller()));
}

// ---------------------------------------------------------------------------------------------
// Warp shuffles and votes (full mask).

/// `v` from lane `lane ^ mask`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[track_caller]
pub unsafe fn shfl_xor(v: u32, mask: u32) -> u32 {
    exchange(v as u64)[((super::lane() ^ mask) % WARP) as usize] as u32
}

/// `v` from lane `lane + delta` (own value where that is past lane 31).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[track_caller]
pub unsafe fn shfl_down(v: u32, delta: u32) -> u32 {
    let all = exchange(v as u64);
    let src = super::lane() + delta;
    if src < WARP { all[src as usize] as u32 } else { v }
}

/// `v` from lane `lane - delta` (own value where that is below lane 0).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[track_caller]
pub unsafe fn shfl_up(v: u32, delta: u32) -> u32 {
    let all = exchange(v as u64);
    match super::lane().checked_sub(delta) {
        Some(src) => all[src as usize] as u32,
        None => v,
    }
}

/// `v` from lane `src`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[track_caller]
pub unsafe fn shfl_idx(v: u32, src: u32) -> u32 {
    exchange(v as u64)[(src % WARP) as usize] as u32
}

/// Bit `i` set where lane `i` passed `true`.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently.
#[track_caller]
pub unsafe fn ballot(pred: bool) -> u32 {
    let all = exchange(pred as u64);
    (0..WARP).filter(|&i| all[i as usize] != 0).fold(0, |bits, i| bits | 1 << i)
}

// ---------------------------------------------------------------------------------------------
// Atomics on generic addresses, relaxed, device scope.

/// Adds `v` to `*p` and returns the old value.
///
/// # Safety
/// `p` must be a valid, 4-byte aligned address in global or shared memory.
pub unsafe fn atomic_add(p: *mut u32, v: u32) -> u32 {
    // SAFETY: valid and aligned by the caller's promise; every concurrent access is atomic.
    unsafe { AtomicU32::from_ptr(p) }.fetch_add(v, Ordering::Relaxed)
}

/// Adds `v` to `*p`.
///
/// # Safety
/// As [`atomic_add`].
pub unsafe fn atomic_add_no_return(p: *mut u32, v: u32) {
    // SAFETY: forwarded to the caller.
    unsafe { atomic_add(p, v) };
}

/// Adds `v` to `*p` (two's complement).
///
/// # Safety
/// `p` must be a valid, 8-byte aligned address in global or shared memory.
pub unsafe fn atomic_add_u64_no_return(p: *mut u64, v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { AtomicU64::from_ptr(p) }.fetch_add(v, Ordering::Relaxed);
}

/// Stores the larger of `*p` and `v` in `*p`.
///
/// # Safety
/// As [`atomic_add_u64_no_return`].
pub unsafe fn atomic_max_u64_no_return(p: *mut u64, v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { AtomicU64::from_ptr(p) }.fetch_max(v, Ordering::Relaxed);
}

/// Orders the thread's memory accesses before and after it, device-wide.
pub fn fence_acq_rel_gpu() {
    fence(Ordering::AcqRel);
}

/// A coherent load that another block may have written.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned address in global memory.
pub unsafe fn load_relaxed_u64(p: *const u64) -> u64 {
    // SAFETY: forwarded to the caller.
    unsafe { AtomicU64::from_ptr(p as *mut u64) }.load(Ordering::Relaxed)
}

/// A store that [`load_relaxed_u64`] in another block sees, never torn.
///
/// # Safety
/// `p` must be a valid, 8-byte aligned address in global memory.
pub unsafe fn store_relaxed_u64(p: *mut u64, v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { AtomicU64::from_ptr(p) }.store(v, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Global loads of data no thread writes during the launch.

/// # Safety
/// `p` must be a valid address of global memory that nothing writes during the launch.
pub unsafe fn load_nc_u8(p: *const u8) -> u8 {
    // SAFETY: forwarded to the caller.
    unsafe { p.read() }
}

/// # Safety
/// As [`load_nc_u8`], 2-byte aligned.
pub unsafe fn load_nc_u16(p: *const u16) -> u16 {
    // SAFETY: forwarded to the caller.
    unsafe { p.read() }
}

/// # Safety
/// As [`load_nc_u8`], 4-byte aligned.
pub unsafe fn load_nc_u32(p: *const u32) -> u32 {
    // SAFETY: forwarded to the caller.
    unsafe { p.read() }
}

/// An 8-byte load.
///
/// # Safety
/// As [`load_nc_u8`], 8-byte aligned.
pub unsafe fn load_nc_v2(p: *const [u32; 2]) -> [u32; 2] {
    assert!((p as usize).is_multiple_of(8), "misaligned 8-byte load at {p:?}");
    // SAFETY: forwarded to the caller.
    unsafe { p.read() }
}

/// A 16-byte load.
///
/// # Safety
/// As [`load_nc_u8`], 16-byte aligned.
pub unsafe fn load_nc_v4(p: *const [u32; 4]) -> [u32; 4] {
    assert!((p as usize).is_multiple_of(16), "misaligned 16-byte load at {p:?}");
    // SAFETY: forwarded to the caller.
    unsafe { p.read() }
}

// ---------------------------------------------------------------------------------------------
// Tensor cores

/// `a·b + c` for one warp's 16×8 tile over k = 16, with the fragment layout of the GPU's
/// `mma_16x8x16` (see there); products and sums in f32.
///
/// # Safety
/// All 32 lanes of the warp execute it convergently.
#[track_caller]
pub unsafe fn mma_16x8x16<const BF16: bool>(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
    let a01 = exchange(a[0] as u64 | (a[1] as u64) << 32);
    let a23 = exchange(a[2] as u64 | (a[3] as u64) << 32);
    let bs = exchange(b[0] as u64 | (b[1] as u64) << 32);
    let half = |packed: u32, high: bool| {
        let bits = if high { (packed >> 16) as u16 } else { packed as u16 };
        if BF16 { super::bf16_to_f32(bits) } else { f16_to_f32(bits) }
    };
    // A[row][col] and B[k][col] from the lanes that hold them.
    let a_at = |row: usize, col: usize| {
        let (g, hi_row, hi_col) = (row % 8, row >= 8, col >= 8);
        let lane = g * 4 + (col % 8) / 2;
        let register = hi_row as usize + 2 * hi_col as usize;
        let pair = if register < 2 { a01[lane] } else { a23[lane] };
        half((pair >> (32 * (register % 2))) as u32, col % 2 == 1)
    };
    let b_at = |k: usize, col: usize| {
        let lane = col * 4 + (k % 8) / 2;
        half((bs[lane] >> (32 * (k >= 8) as u32)) as u32, k % 2 == 1)
    };
    let (g, t) = ((super::lane() / 4) as usize, (super::lane() % 4) as usize);
    let cell = |row: usize, col: usize, acc: f32| (0..16).fold(acc, |s, k| a_at(row, k).mul_add(b_at(k, col), s));
    [cell(g, 2 * t, c[0]), cell(g, 2 * t + 1, c[1]), cell(g + 8, 2 * t, c[2]), cell(g + 8, 2 * t + 1, c[3])]
}

// ---------------------------------------------------------------------------------------------
// Conversions, with the GPU's rounding and saturation.

pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// `a · b + c` with one rounding, as `fma.rn.f32`.
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `x` truncated toward zero to u32, saturating at both ends; NaN gives 0.
pub fn f32_to_u32_saturating(x: f32) -> u32 {
    x as u32
}

/// `x` rounded to the nearest integer (ties to even), saturating at i64's ends; NaN gives 0.
pub fn f32_to_i64_nearest(x: f32) -> i64 {
    x.round_ties_even() as i64
}

/// `x` rounded to the nearest u64 (ties to even), saturating; NaN gives 0.
pub fn f64_to_u64_nearest(x: f64) -> u64 {
    x.round_ties_even() as u64
}

/// `x` rounded to f16 (nearest, ties to even), as bits.
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// `x` rounded to bf16 (nearest, ties to even), as bits.
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

// ---------------------------------------------------------------------------------------------
// Shared memory

impl Shared<u32> {
    /// Adds `v` to element `i` and returns the old value.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_add(self, i: usize, v: u32) -> u32 {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { atomic_add(self.ptr.add(i), v) }
    }

    /// Adds `v` to element `i`.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_add_no_return(self, i: usize, v: u32) {
        // SAFETY: forwarded to the caller.
        unsafe { self.atomic_add(i, v) };
    }

    /// Stores the larger of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_max_no_return(self, i: usize, v: u32) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { AtomicU32::from_ptr(self.ptr.add(i)) }.fetch_max(v, Ordering::Relaxed);
    }
}

impl Shared<u64> {
    /// Adds `v` to element `i` (two's complement).
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_add_no_return(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { atomic_add_u64_no_return(self.ptr.add(i), v) };
    }

    /// Stores the smaller of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_min(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { AtomicU64::from_ptr(self.ptr.add(i)) }.fetch_min(v, Ordering::Relaxed);
    }

    /// Stores the larger of element `i` and `v` in element `i`.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_max(self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { AtomicU64::from_ptr(self.ptr.add(i)) }.fetch_max(v, Ordering::Relaxed);
    }
}

/// The launch-sized dynamic shared memory of the block, viewed as `len` elements of `T`.
///
/// # Safety
/// The kernel must have been launched with at least `len · size_of::<T>()` bytes of dynamic
/// shared memory.
pub unsafe fn dynamic_shared<T>(len: usize) -> Shared<T> {
    // SAFETY: forwarded to the caller.
    unsafe { dynamic_shared_at(0, len) }
}

/// `len` elements of `T` at byte `offset` of the launch-sized dynamic shared memory.
///
/// # Safety
/// The kernel must have been launched with at least `offset + len · size_of::<T>()` bytes of
/// dynamic shared memory; `offset` is a multiple of `T`'s alignment, at most 16.
pub unsafe fn dynamic_shared_at<T>(offset: u32, len: usize) -> Shared<T> {
    let dynamic = &block().dynamic;
    let end = offset as usize + len * size_of::<T>();
    assert!(end <= dynamic.len, "a shared view to byte {end} of a launch with {} bytes", dynamic.len);
    assert!((offset as usize).is_multiple_of(align_of::<T>()), "shared view at misaligned offset {offset}");
    // SAFETY: within the buffer, checked above.
    Shared { ptr: unsafe { dynamic.base().add(offset as usize) } as *mut T, len }
}

/// The block's shared array `name` of `len` elements of `T` (see [`static_shared!`]).
///
/// # Safety
/// Every use of `name` has the same `T` and `len`.
#[doc(hidden)]
pub unsafe fn static_shared_array<T>(name: &'static str, len: usize) -> Shared<T> {
    let bytes = len * size_of::<T>();
    let mut statics = block().statics.borrow_mut();
    let array = statics.entry(name).or_insert_with(|| {
        let array = SharedBytes::new(bytes);
        array.poison();
        array
    });
    assert_eq!(array.len, bytes, "static shared array {name} declared with two sizes");
    Shared { ptr: array.base() as *mut T, len }
}

// ---------------------------------------------------------------------------------------------
// Thread-block clusters: the blocks of a cluster run together, and their dynamic shared memory
// is reachable from each other.

/// This block's rank within its cluster.
#[cfg(pqtopk_sm90)]
pub fn cluster_rank() -> u32 {
    here().member
}

/// Cluster-wide barrier.
///
/// # Safety
/// Every thread of every block of the cluster must reach this same barrier.
#[cfg(pqtopk_sm90)]
#[track_caller]
pub unsafe fn cluster_sync() {
    suspend(Wait::Cluster(Location::caller()));
}

/// The view `Shared<T>` of this block's dynamic shared memory, in block `rank` of the cluster.
#[cfg(pqtopk_sm90)]
#[derive(Clone, Copy)]
pub struct Remote<T> {
    ptr: *mut T,
    len: usize,
}

#[cfg(pqtopk_sm90)]
impl<T: Copy> Shared<T> {
    /// This view in block `rank` of the cluster.
    ///
    /// # Safety
    /// `rank` is below the cluster's size; the view lies in dynamic shared memory.
    pub unsafe fn in_block(self, rank: u32) -> Remote<T> {
        let (mine, theirs) = (&block().dynamic, &member(rank).dynamic);
        let offset = (self.ptr as usize).wrapping_sub(mine.base() as usize);
        assert!(offset + self.len * size_of::<T>() <= mine.len, "a remote view outside dynamic shared memory");
        // SAFETY: the same offset in the other block's buffer, of the same length.
        Remote { ptr: unsafe { theirs.base().add(offset) } as *mut T, len: self.len }
    }
}

#[cfg(pqtopk_sm90)]
impl<T: Copy> Remote<T> {
    /// # Safety
    /// `i < len`; no thread writes the element between the cluster barriers around this read.
    pub unsafe fn get(self, i: usize) -> T {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { self.ptr.add(i).read() }
    }

    /// # Safety
    /// `i < len`; no other thread reads or writes the element between the cluster barriers
    /// around this write.
    pub unsafe fn set(self, i: usize, v: T) {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { self.ptr.add(i).write(v) }
    }
}

#[cfg(pqtopk_sm90)]
impl Remote<u32> {
    /// Adds `v` to element `i` and returns the old value.
    ///
    /// # Safety
    /// `i < len`.
    pub unsafe fn atomic_add(self, i: usize, v: u32) -> u32 {
        debug_assert!(i < self.len);
        // SAFETY: in bounds by the caller's promise.
        unsafe { atomic_add(self.ptr.add(i), v) }
    }
}

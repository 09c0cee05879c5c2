//! The CPU path: a shared library built by the CPU backend, loaded with libloading, and a grid
//! run on a thread pool.
//!
//! ABI (written by `tk-backend-cpu`, version 1): each kernel is exported as
//! `int32_t <symbol>(void *const *args, const int32_t *program_id, const int32_t *num_programs)`,
//! where `args[i]` points at the value of parameter `i` (the scalar itself, or the buffer's base
//! pointer) and `program_id`/`num_programs` point at three `int32_t` each. The function runs one
//! program and returns 0, or `n > 0` when the program stopped at trap site `n - 1` (a failed
//! `device_assert`, a bad loop step, an integer division fault). The runtime calls it for every
//! program id of the grid, spreading programs over threads, and stops at the first trap.

use crate::error::RuntimeError;
use std::ffi::c_void;
use std::path::Path;

/// The entry point of one compiled kernel.
pub type KernelFn = unsafe extern "C" fn(*const *const c_void, *const i32, *const i32) -> i32;

/// A loaded shared library. Kept alive as long as any kernel from it may run.
pub struct CpuLibrary {
    lib: libloading::Library,
}

impl CpuLibrary {
    pub fn open(path: &Path) -> Result<CpuLibrary, RuntimeError> {
        // SAFETY: the library was produced by tkc for this target; its initialisers are empty.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| RuntimeError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(CpuLibrary { lib })
    }

    pub fn symbol(&self, name: &str, path: &Path) -> Result<KernelFn, RuntimeError> {
        // SAFETY: the manifest names this symbol as a kernel entry with the ABI above.
        unsafe {
            self.lib.get::<KernelFn>(name.as_bytes()).map(|s| *s).map_err(|e| RuntimeError::Load {
                path: path.display().to_string(),
                reason: format!("symbol `{name}`: {e}"),
            })
        }
    }
}

/// Argument storage shaped for the ABI: one 8-byte slot per parameter.
pub struct ArgSlots {
    slots: Vec<u64>,
}

impl ArgSlots {
    pub fn new(values: Vec<u64>) -> ArgSlots {
        ArgSlots { slots: values }
    }
    fn pointers(&self) -> Vec<*const c_void> {
        self.slots.iter().map(|s| s as *const u64 as *const c_void).collect()
    }
}

struct SendPtr(Vec<*const c_void>);
// SAFETY: the pointed-to slots and buffers outlive the launch (it blocks until every program has
// run), and kernels get read-only access to the slots.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

impl SendPtr {
    fn get(&self) -> *const *const c_void {
        self.0.as_ptr()
    }
}

/// A program that stopped at a trap: the code it returned and its program id.
pub struct Trapped {
    pub code: i32,
    pub program: [u32; 3],
}

/// Runs `f` for every program of `grid` on `pool`, in contiguous chunks per thread. Stops early
/// (every thread finishes its current program) once any program traps.
pub fn launch(
    pool: &rayon::ThreadPool,
    f: KernelFn,
    grid: [u32; 3],
    args: &ArgSlots,
) -> Option<Trapped> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let stop = AtomicBool::new(false);
    let first: Mutex<Option<Trapped>> = Mutex::new(None);
    let ptrs = &SendPtr(args.pointers());
    let total = grid[0] as u64 * grid[1] as u64 * grid[2] as u64;
    let threads = pool.current_num_threads().max(1) as u64;
    let chunks = threads.min(total).max(1);
    let npid = [grid[0] as i32, grid[1] as i32, grid[2] as i32];
    let run = |chunk: u64| {
        let start = total * chunk / chunks;
        let end = total * (chunk + 1) / chunks;
        for linear in start..end {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let x = linear % grid[0] as u64;
            let y = (linear / grid[0] as u64) % grid[1] as u64;
            let z = linear / (grid[0] as u64 * grid[1] as u64);
            let pid = [x as i32, y as i32, z as i32];
            // SAFETY: the ABI above; argument slots and buffers are valid for the whole launch.
            let code = unsafe { f(ptrs.get(), pid.as_ptr(), npid.as_ptr()) };
            if code != 0 {
                stop.store(true, Ordering::Relaxed);
                let mut g = first.lock().unwrap_or_else(|e| e.into_inner());
                if g.is_none() {
                    *g = Some(Trapped { code, program: [x as u32, y as u32, z as u32] });
                }
                return;
            }
        }
    };
    // Always on pool threads: their stacks are sized for the kernels' block values.
    pool.scope(|s| {
        for c in 0..chunks {
            let run = &run;
            s.spawn(move |_| run(c));
        }
    });
    first.into_inner().unwrap_or_else(|e| e.into_inner())
}

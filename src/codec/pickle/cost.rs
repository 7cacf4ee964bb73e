//! Work and memory accounting for the tests that prove the decoder
//! linear: `add` counts units of work (opcodes, bytes read or copied,
//! values moved or torn down) on the calling thread, and the counting
//! allocator below records this thread's peak of live heap bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static WORK: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

pub fn add(n: usize) {
    let _ = WORK.try_with(|w| w.set(w.get().saturating_add(n)));
}

/// Runs `f` and returns its result with the work it counted and the
/// peak of heap bytes it held beyond what was live when it started.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    WORK.with(|w| w.set(0));
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let work = WORK.with(Cell::get);
    let peak = PEAK.with(Cell::get) - base;
    (r, work, peak.max(0) as usize)
}

struct Counting;

fn track(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged;
// the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        track(new as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

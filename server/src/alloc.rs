//! The binary's allocator: the system's, counting the allocations it makes
//! (`tether_allocations_total` on `/metrics`), so a test can hold the cost
//! of an event to a number of allocations — a count, the same on any
//! machine, where a time would not be.
//!
//! Each thread counts in a thread-local cell and adds its count to the
//! shared total every [`FLUSH_EVERY`] allocations (one shared counter
//! touched on every allocation would bounce between cores); a thread that
//! ends takes at most that many uncounted with it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const FLUSH_EVERY: u64 = 64;

static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` and without a destructor: usable inside the allocator, at any point of a thread's life.
    static LOCAL: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting.
pub struct Counting;

fn count() {
    let _ = LOCAL.try_with(|n| {
        let v = n.get() + 1;
        if v >= FLUSH_EVERY {
            TOTAL.fetch_add(v, Ordering::Relaxed);
            n.set(0);
        } else {
            n.set(v);
        }
    });
}

// SAFETY: every call is passed on unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; the counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations counted so far (those of the running threads' last
/// [`FLUSH_EVERY`] aside), when this binary's allocator is [`Counting`];
/// 0 otherwise (the library's own tests).
pub fn allocations() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

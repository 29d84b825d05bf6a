//! `scripts/fuzz`: the parser fuzzer ([`ganlab::fuzz`]) at full size, with Rust's largest
//! single allocation recorded (libtorch's own C++ allocations are not seen here).
//!
//! Usage: `fuzz [EXECUTIONS (default 1000000)] [SEED (default 0)] [TARGET-SUBSTRING]`.
//! Exit status 1 when a parser panicked or an allocation exceeded the cap.

// A global allocator is an `unsafe` trait: the one other place unsafe code is allowed
// (see the workspace lints); it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, recording the largest request.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000u64);
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0u64);
    let only = args.get(2).map(String::as_str);
    let work = std::env::temp_dir().join(format!("ganlab-fuzz-{seed}-{}", std::process::id()));
    let start = std::time::Instant::now();
    let r = match ganlab::fuzz::run(budget, seed, &work, only) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    for (name, n) in &r.executions {
        println!("{name:24} {n:>9} executions");
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    println!(
        "total {} executions in {secs:.0} s ({:.0}/s), seed {seed}; panics {}; largest Rust allocation {} bytes (cap {})",
        r.total(),
        r.total() as f64 / secs,
        r.panics.len(),
        largest,
        ganlab::fuzz::ALLOC_CAP
    );
    for (t, f, m) in r.panics.iter().take(20) {
        println!("PANIC {t}: {m} (input kept in {})", f.display());
    }
    if r.panics.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    }
    if !r.panics.is_empty() || largest > ganlab::fuzz::ALLOC_CAP {
        std::process::exit(1);
    }
}

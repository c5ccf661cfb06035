//! Giving back to the system the memory a large configuration update freed.
//!
//! Converting a push of thousands of xDS resources allocates far more at its peak (decoded messages, the
//! descriptor pool, two generations of the configuration side by side) than the result keeps. glibc's
//! allocator returns freed memory to the system only from the top of a heap, and after large frees it raises its
//! own trim threshold, so without being asked it keeps the peak resident: about a quarter of the RSS after a
//! 5,000-cluster push (benches/README.md, scenario (h)). `malloc_trim(0)` asks it to release every free page of
//! every arena. It walks the arenas taking each one's lock in turn, so it runs after an update is applied, on a
//! thread that carries no traffic, never on the data path.

/// Asks the C allocator to return the memory it holds free to the system. Returns whether it released any.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only the allocator's own state, which it locks; it
    // may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries (musl) return freed memory themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

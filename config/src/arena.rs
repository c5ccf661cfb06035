//! Growing the load thread's malloc arena in a few large steps before the load, instead of one system call per
//! small step during it.
//!
//! A load runs on a thread of its own (`load.rs`), so glibc gives it an arena of its own. glibc grows a
//! thread's arena by exactly what each allocation lacks, rounded to a page, with one `mprotect` each time (the
//! main arena's `brk` keeps 128 KiB to spare; a thread's arena keeps nothing). A load of the benchmark's
//! configuration made about 1,300 `mprotect` calls, and with the kernel's work on the mapping they took about
//! 2 ms of its 15-17 ms of CPU (benches/README.md, "eleventh session: start-up"). Once grown, an arena stays
//! writable: what a free gives back is released with `madvise`, and growing again within the old size makes no
//! call. So allocating blocks just under glibc's threshold for direct `mmap` (128 KiB), which come from the
//! arena, and freeing them at once grows it in a few dozen calls and leaves it ready for the load. Only each
//! block's header page is touched, and the free gives those back at once, before the load allocates anything:
//! peak and idle RSS were measured unchanged.

/// A block just under glibc's default `mmap` threshold (128 KiB): larger ones would be mapped on their own.
const BLOCK: usize = 120 * 1024;

/// About 6.6 MiB: the heap peak of loading a sidecar's configuration (heaptrack: 6.4 MB for the benchmark's,
/// six listeners and five clusters; with 48 blocks its load still grew the arena 93 times). A larger
/// configuration grows the arena further, page by page, as before.
const BLOCKS: usize = 56;

/// Grows the calling thread's arena (see the module's comment). Only worth calling first thing on a new thread.
pub fn grow_for_load() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let blocks: Vec<Vec<u8>> = (0..BLOCKS)
        .map(|_| std::hint::black_box(Vec::with_capacity(BLOCK)))
        .collect();
    drop(std::hint::black_box(blocks));
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The largest writable part of a thread arena's heap, from `/proc/self/maps`: glibc maps each such heap
    /// aligned to its 64 MiB maximum size, writable at the start and inaccessible beyond.
    fn largest_thread_heap() -> usize {
        const HEAP_ALIGN: usize = 64 * 1024 * 1024;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut largest = 0;
        for line in maps.lines() {
            let mut parts = line.split_whitespace();
            let (range, perms) = (parts.next().unwrap(), parts.next().unwrap());
            let (start, end) = range.split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            if start % HEAP_ALIGN == 0 && perms.starts_with("rw") && parts.nth(3).is_none() {
                largest = largest.max(end - start);
            }
        }
        largest
    }

    /// Run in a process of its own (below): a new thread there gets a new arena, as the load thread of
    /// `outrigger run` does. Before, no arena is writable beyond a few pages; after, the new thread's is for
    /// the whole reserve, and stays so once the blocks are freed.
    #[test]
    #[ignore = "run by the_load_threads_arena_is_grown_in_one_go, in a process of its own"]
    fn arena_of_a_new_thread() {
        std::thread::spawn(|| {
            let before = largest_thread_heap();
            grow_for_load();
            let after = largest_thread_heap();
            assert!(
                before < BLOCK * BLOCKS / 4,
                "an arena of {before} bytes before"
            );
            assert!(
                after >= BLOCK * BLOCKS,
                "grown to {after} bytes, not {} (is /proc/sys/vm/overcommit_memory 2? glibc then \
                 unmaps what a free gives back)",
                BLOCK * BLOCKS
            );
        })
        .join()
        .unwrap();
    }

    /// This test binary runs many loads on many threads, whose arenas a new thread may reuse; a fresh process
    /// of the same binary running only the test above has none.
    #[test]
    fn the_load_threads_arena_is_grown_in_one_go() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "arena::tests::arena_of_a_new_thread",
                "--test-threads",
                "1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

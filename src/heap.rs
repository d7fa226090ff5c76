//! Handing freed heap memory back to the system.
//!
//! glibc's allocator keeps pages it has freed: after a cold sync the operator's resident size
//! stays at its high-water mark although much of it is free (the JSON of thousands of writes and
//! watch events, decoded between the long-lived cached objects, leaves free pages inside the
//! heap that it only returns from the top). `malloc_trim` releases every free page, wherever it
//! lies. Elsewhere (musl, other systems) this does nothing.

/// Release the allocator's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` takes no pointers and only works on glibc's own allocator state,
    // under the allocator's locks, as any call to `malloc` or `free` does.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    /// Resident set size of this process, in KiB.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_pages_inside_the_heap_go_back_to_the_system() {
        // Small blocks (below the mmap threshold, so they come from the heap), every other one
        // kept: the freed half lies in holes the top-of-heap trimming cannot reach.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|_| vec![1u8; 4000]).collect();
        let kept: Vec<Vec<u8>> = blocks
            .drain(..)
            .enumerate()
            .filter(|(i, _)| i % 8 == 0)
            .map(|(_, b)| b)
            .collect();
        let before = rss_kib();
        super::release_free_memory();
        let after = rss_kib();
        assert!(kept.iter().all(|b| b[0] == 1));
        // About 140 MiB were freed in holes; at least 50 MiB of them must be returned.
        assert!(
            before.saturating_sub(after) > 50 * 1024,
            "RSS {before} KiB before, {after} KiB after"
        );
    }
}

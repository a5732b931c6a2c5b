//! Small pages for processes whose peak memory matters more than TLB reach: the snapshot
//! service and the `quiver snapshot` client.
//!
//! mimalloc maps its arenas in large aligned spans, and with the kernel's transparent huge
//! pages set to `always` (the Debian default) every 2 MiB span a heap touches is backed by a
//! whole zeroed huge page, however little of it is used. Measured on a 500,000-row snapshot
//! (`docs/benchmarks.md`): the client peaked at 104-123 MiB with huge pages and 59-64 MiB under
//! glibc's allocator, the service at 273-290 MiB against 230-250 MiB without them, and its cold
//! answer came sooner (no 2 MiB page zeroed per first touch). The flag covers the whole
//! process from the next page fault on, mappings made before it included.

/// Turns transparent huge pages off for this process (a kernel without the flag is left as
/// it is: the choice only costs memory).
pub fn prefer_small_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "could not turn transparent huge pages off");
    }
}

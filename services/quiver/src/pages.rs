//! Small pages for the snapshot service, whose peak memory is what a deployment sizes it by.
//!
//! mimalloc maps its arenas in large aligned spans, and with the kernel's transparent huge
//! pages set to `always` (the Debian default) every 2 MiB span a heap touches is backed by a
//! whole zeroed huge page, however little of it is used. Measured on a 500,000-row snapshot
//! (`docs/benchmarks.md`): the service peaked at 270 MiB with huge pages and 219 MiB without,
//! with the same warm answer time and a faster cold one (no 2 MiB page zeroed per first
//! touch). The `quiver snapshot` client keeps them: without, it held about 25 MiB less but
//! took about 15% longer. The flag covers the whole process from the next page fault on,
//! mappings made before it included.

/// Turns transparent huge pages off for this process (a kernel without the flag is left as
/// it is: the choice only costs memory).
pub fn prefer_small_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "could not turn transparent huge pages off");
    }
}

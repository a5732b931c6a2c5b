//! Small pages for every server process.
//!
//! mimalloc reserves its arenas as large aligned regions, and the kernel backs them with
//! transparent huge pages (a `quiver dev` here held 96 of its 139 MiB in huge pages with the
//! kernel set to `madvise`; another machine had `always`). Every 2 MiB span a heap touches is
//! then a whole zeroed huge page, however little of it is used, and on a fragmented machine a
//! fault can wait while the kernel compacts memory to make one (`compact_stall` in
//! `/proc/vmstat`). Measured (`docs/benchmarks.md`):
//! - the snapshot service peaked at 270 MiB with huge pages and 219 MiB without, with the same
//!   warm answer time and a faster cold one;
//! - an online store holding 1,000,000 rows held 306-317 MiB with them and 242 MiB without,
//!   serving reads at the same rate;
//! - live freshness p99 during a backfill (`quiver dev`) was 141-177 ms with them and 38-43 ms
//!   without, at about the same backfill speed.
//!
//! The `quiver snapshot` client keeps them: without, it held about 25 MiB less but took about
//! 15% longer. The flag covers the whole process from the next page fault on, mappings made
//! before it included.

/// Turns transparent huge pages off for this process (a kernel without the flag is left as
/// it is: the choice only costs memory).
pub fn prefer_small_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "could not turn transparent huge pages off");
    }
}

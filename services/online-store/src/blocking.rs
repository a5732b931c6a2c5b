//! Long synchronous work on the async runtime.

/// Runs `work` (CPU or disk bound: applying an entry, writing a batch, decoding a file) where it
/// does not hold up the runtime: on a multi-threaded runtime the worker's other tasks move to
/// another thread meanwhile, so a long entry (a backfill chunk) does not stall every RPC of the
/// process. On a current-thread runtime (unit tests) it simply runs.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

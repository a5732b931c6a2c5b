//! Keeps a node alive on a full disk.
//!
//! A RocksDB write that fails for lack of space leaves the database in an error state (and
//! Debian's build aborts the process on the next sync), so the node must stop writing before the
//! disk is full, and keep enough room for the little it must still write (votes, the committed
//! index, entries it already holds). Two settings:
//!
//! - below `min_free_disk_bytes` free, the node is **low**: it proposes nothing (client writes
//!   get `UNAVAILABLE` with a retry hint; exports and backfills wait), refuses every Raft message
//!   (the leader retries later), never campaigns, reports itself not ready (what it would serve
//!   falls behind), and as leader stops sending heartbeats, so a node with room takes over. It
//!   steps down once space is back and it hears the new leader.
//! - a **ballast** file of `disk_ballast_bytes` sits in the data directory. When free space
//!   falls below the minimum, it is deleted at once, which gives those small writes room even
//!   if something else filled the disk to the last byte; it is made again once space is back
//!   (the minimum plus the ballast free), and the node resumes by itself.
//!
//! Free space is read (statvfs) before every Raft write and every 250 ms.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The ballast's file name in the data directory.
const BALLAST: &str = "ballast";

/// Watches the free space of a node's data directory.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    ballast_bytes: u64,
    low: AtomicBool,
    free: AtomicU64,
}

impl DiskGuard {
    /// A guard of `dir` (which exists), laying the ballast if there is room for it.
    pub fn new(dir: &Path, min_free: u64, ballast_bytes: u64) -> Arc<Self> {
        let guard = Arc::new(Self {
            dir: dir.to_path_buf(),
            min_free,
            ballast_bytes,
            low: AtomicBool::new(false),
            free: AtomicU64::new(u64::MAX),
        });
        guard.check();
        guard
    }

    /// Reads the free space and updates the state; whether the disk is low.
    pub fn check(&self) -> bool {
        if self.min_free == 0 {
            return false;
        }
        let Some(free) = free_bytes(&self.dir) else {
            return self.low.load(Ordering::Relaxed);
        };
        self.free.store(free, Ordering::Relaxed);
        let ballast = self.dir.join(BALLAST);
        let was_low = self.low.load(Ordering::Relaxed);
        if free < self.min_free {
            if ballast.exists() {
                match std::fs::remove_file(&ballast) {
                    Ok(()) => tracing::warn!(
                        free_mib = free >> 20,
                        released_mib = self.ballast_bytes >> 20,
                        "disk nearly full: released the ballast; refusing writes until space is back"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot remove the ballast"),
                }
            } else if !was_low {
                tracing::warn!(
                    free_mib = free >> 20,
                    "disk nearly full: refusing writes until space is back"
                );
            }
            self.low.store(true, Ordering::Relaxed);
            return true;
        }
        // Back to normal only with room for the ballast too, so the state does not flap.
        if !ballast.exists() && self.ballast_bytes > 0 {
            if free < self.min_free + self.ballast_bytes {
                return was_low;
            }
            if let Err(e) = lay_ballast(&ballast, self.ballast_bytes) {
                tracing::warn!(error = %e, "cannot lay the ballast");
                let _ = std::fs::remove_file(&ballast);
                return was_low;
            }
        }
        if was_low {
            tracing::info!(free_mib = free >> 20, "disk space is back: writes resume");
        }
        self.low.store(false, Ordering::Relaxed);
        false
    }

    /// Whether the disk was low at the last check.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Free bytes at the last check.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// What a refused write is told.
    pub fn refusal(&self) -> String {
        format!(
            "this node's disk is nearly full ({} MiB free; it went under [online_store] \
             min_free_disk_bytes = {} MiB and takes writes again once {} MiB are free, the \
             minimum plus its ballast); retry later",
            self.free() >> 20,
            self.min_free >> 20,
            (self.min_free + self.ballast_bytes) >> 20
        )
    }

    /// Checks every 250 ms and calls `changed(low)` when the state flips, until `guard` is
    /// dropped.
    pub fn watch(guard: &Arc<Self>, changed: impl Fn(bool) + Send + 'static) {
        let weak = Arc::downgrade(guard);
        tokio::spawn(async move {
            let mut was_low = false;
            loop {
                let Some(guard) = weak.upgrade() else { return };
                let low = tokio::task::spawn_blocking(move || guard.check())
                    .await
                    .unwrap_or(was_low);
                if low != was_low {
                    changed(low);
                    was_low = low;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// Free bytes available to this process on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Writes `bytes` of real data (not a sparse file: its blocks must be allocated to be worth
/// anything when released).
fn lay_ballast(path: &Path, bytes: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    let block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ballast_is_laid_released_below_the_minimum_and_laid_again() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 2 << 20);
        let guard = DiskGuard::new(dir.path(), 1, 1 << 20);
        assert!(!guard.is_low());
        assert!(dir.path().join(BALLAST).exists());
        assert_eq!(
            std::fs::metadata(dir.path().join(BALLAST)).unwrap().len(),
            1 << 20
        );

        // Nothing is free enough: low, and the ballast goes at once.
        let strict = DiskGuard {
            dir: dir.path().to_path_buf(),
            min_free: u64::MAX / 2,
            ballast_bytes: 1 << 20,
            low: AtomicBool::new(false),
            free: AtomicU64::new(0),
        };
        assert!(strict.check());
        assert!(!dir.path().join(BALLAST).exists());
        assert!(
            strict.refusal().contains("nearly full"),
            "{}",
            strict.refusal()
        );
        // Space back: the ballast is laid again and writes resume.
        assert!(!guard.check());
        assert!(dir.path().join(BALLAST).exists());
    }

    #[test]
    fn a_zero_minimum_turns_the_guard_off() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path(), 0, 1 << 20);
        assert!(!guard.check());
        assert!(!dir.path().join(BALLAST).exists());
    }
}

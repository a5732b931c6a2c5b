//! Fans committed changes out to `Watch` streams without gaps or duplicates.
//!
//! Commits take the gate exclusively while they write and publish; a new watcher takes it
//! shared while it subscribes and reads its starting state. So every change is either in the
//! starting state or arrives on the subscription, and revisions are de-duplicated by number.

use std::sync::Arc;

use quiver_proto::registry::WatchEvent;
use tokio::sync::{broadcast, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How many events a slow watcher may fall behind before it re-reads from storage.
const BUFFER: usize = 1024;

/// The publish side of the change stream.
pub struct WatchHub {
    sender: broadcast::Sender<Arc<WatchEvent>>,
    gate: RwLock<()>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            gate: RwLock::new(()),
        }
    }
}

impl WatchHub {
    /// Held by a commit while it writes and publishes.
    pub async fn commit_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// Publishes a committed change (call while holding the commit gate).
    pub fn publish(&self, event: WatchEvent) {
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Subscribes; hold the returned guard while reading the starting state.
    pub async fn subscribe(
        &self,
    ) -> (
        RwLockReadGuard<'_, ()>,
        broadcast::Receiver<Arc<WatchEvent>>,
    ) {
        let guard = self.gate.read().await;
        (guard, self.sender.subscribe())
    }
}

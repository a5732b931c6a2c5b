//! Graceful shutdown through one cancellation token tree.
//!
//! SIGTERM or ctrl-c cancels the root token; servers then report NOT_SERVING, stop accepting,
//! drain in-flight requests within their grace period, and storage flushes on drop.

use tokio_util::sync::CancellationToken;

/// The process-wide shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers the shutdown on SIGTERM or ctrl-c.
    pub fn on_signals(self) -> Self {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            token.cancel();
        });
        self
    }

    /// Triggers the shutdown now.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the shutdown starts.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// A child signal: triggered with this one, or on its own without affecting the parent.
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
        }
    }

    /// The underlying token, for APIs that take one.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; ctrl-c only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_follow_the_parent_only() {
        let root = Shutdown::new();
        let child = root.child();
        child.trigger();
        assert!(!root.is_triggered());
        let other = root.child();
        root.trigger();
        other.wait().await;
        assert!(other.is_triggered());
    }
}

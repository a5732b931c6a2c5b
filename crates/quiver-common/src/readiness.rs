//! Readiness: whether a role can answer its clients yet, as opposed to liveness (the process
//! runs). A role starts not ready and says why; the gRPC server mirrors the state into
//! `grpc.health.v1` (the client services and `""`), and the HTTP endpoint's `/readyz` reports
//! every role of the process, so a Kubernetes readiness probe sends traffic only to pods that can
//! serve it, while `/healthz` stays a cheap liveness signal.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// `None` when ready, otherwise why not.
type State = Option<String>;

/// Every role of this process (`quiver dev` runs several), for `/readyz`.
static ROLES: Mutex<Vec<(&'static str, watch::Receiver<State>)>> = Mutex::new(Vec::new());

/// One role's readiness; clones share it.
#[derive(Clone)]
pub struct Readiness {
    state: Arc<watch::Sender<State>>,
}

impl Readiness {
    /// A role that is not ready yet, with the reason.
    pub fn new(role: &'static str, starting: &str) -> Self {
        let (state, receiver) = watch::channel(Some(starting.to_string()));
        if let Ok(mut roles) = ROLES.lock() {
            roles.retain(|(_, state)| state.has_changed().is_ok());
            roles.push((role, receiver));
        }
        Self {
            state: Arc::new(state),
        }
    }

    /// A role that is ready from the start (its server only listens once it can answer).
    pub fn ready(role: &'static str) -> Self {
        let readiness = Self::new(role, "");
        readiness.set_ready();
        readiness
    }

    /// The role can answer.
    pub fn set_ready(&self) {
        self.state.send_if_modified(|s| s.take().is_some());
    }

    /// The role cannot answer, because of `reason`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.state.send_if_modified(|s| {
            let changed = s.as_deref() != Some(reason.as_str());
            *s = Some(reason);
            changed
        });
    }

    /// Why the role is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.state.borrow().clone()
    }

    /// Follows the state (`None` = ready).
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.state.subscribe()
    }
}

/// Every role of this process and why it is not ready (`None` = ready), for `/readyz`.
pub fn report() -> Vec<(&'static str, Option<String>)> {
    ROLES
        .lock()
        .map(|roles| {
            roles
                .iter()
                // A role whose server has stopped no longer counts.
                .filter(|(_, state)| state.has_changed().is_ok())
                .map(|(role, state)| (*role, state.borrow().clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_report() {
        let r = Readiness::new("test-role", "starting");
        assert_eq!(r.not_ready_reason().as_deref(), Some("starting"));
        assert!(report().contains(&("test-role", Some("starting".into()))));
        r.set_ready();
        assert_eq!(r.not_ready_reason(), None);
        r.set_not_ready("no leader");
        assert!(report().contains(&("test-role", Some("no leader".into()))));
        drop(r);
        assert!(!report().iter().any(|(role, _)| *role == "test-role"));
    }
}

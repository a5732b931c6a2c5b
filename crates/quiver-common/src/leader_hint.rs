//! "Not the leader" answers and the client side that follows them.
//!
//! A node that cannot serve a leader-only request answers `UNAVAILABLE` with the leader's
//! address (host:port) in the `quiver-leader` metadata; clients retry there.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// The metadata key carrying the leader's address.
pub const LEADER_METADATA: &str = "quiver-leader";

/// An `UNAVAILABLE` status pointing at `leader` (if known).
pub fn not_leader(message: impl Into<String>, leader: Option<&str>) -> Status {
    let mut status = Status::unavailable(message);
    if let Some(value) = leader.and_then(|l| MetadataValue::try_from(l).ok()) {
        status.metadata_mut().insert(LEADER_METADATA, value);
    }
    status
}

/// The leader address a status points at, if any.
pub fn leader_of(status: &Status) -> Option<String> {
    if status.code() != Code::Unavailable {
        return None;
    }
    status
        .metadata()
        .get(LEADER_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Runs `call` against `address`, following leader hints and retrying `UNAVAILABLE` (an
/// election in progress) with a short backoff, for at most `attempts` tries. `address` may list
/// several nodes separated by commas: when a node is unavailable and names no other leader
/// (it is down, or cut off), the next try goes to the next node of the list, so one dead node
/// does not stop a client that knows others.
pub async fn with_leader<T, F, Fut>(
    address: &str,
    attempts: usize,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let seeds: Vec<&str> = address
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let mut seed = 0;
    let mut target = seeds.first().copied().unwrap_or(address).to_string();
    let mut last = Status::unavailable("no attempt made");
    for attempt in 0..attempts.max(1) {
        match call(target.clone()).await {
            Ok(value) => return Ok(value),
            Err(status) if status.code() == Code::Unavailable => {
                match leader_of(&status) {
                    Some(leader) if leader != target => target = leader,
                    _ => {
                        if seeds.len() > 1 {
                            seed = (seed + 1) % seeds.len();
                            target = seeds[seed].to_string();
                        }
                        tokio::time::sleep(Duration::from_millis(
                            100 * (attempt as u64 + 1).min(10),
                        ))
                        .await
                    }
                }
                last = status;
            }
            Err(status) => return Err(status),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_the_hint_then_succeeds() {
        let mut seen = Vec::new();
        let result = with_leader("a:1", 5, |target| {
            seen.push(target.clone());
            async move {
                if target == "a:1" {
                    Err(not_leader("not leader", Some("b:2")))
                } else {
                    Ok(target)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), "b:2");
        assert_eq!(seen, ["a:1", "b:2"]);
    }

    #[tokio::test]
    async fn a_node_that_names_no_leader_passes_the_call_to_the_next_one_listed() {
        let mut seen = Vec::new();
        let result = with_leader("a:1, b:2,c:3", 5, |target| {
            seen.push(target.clone());
            async move {
                match target.as_str() {
                    "a:1" => Err(Status::unavailable("connection refused")),
                    "b:2" => Err(not_leader("not leader", Some("c:3"))),
                    _ => Ok(target),
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), "c:3");
        assert_eq!(seen, ["a:1", "b:2", "c:3"]);
    }

    #[tokio::test]
    async fn other_errors_are_final() {
        let result: Result<(), _> =
            with_leader("a:1", 5, |_| async { Err(Status::invalid_argument("bad")) }).await;
        assert_eq!(result.unwrap_err().code(), Code::InvalidArgument);
    }
}

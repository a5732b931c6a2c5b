//! What the online store says about view versions (phase and backfill progress), for
//! `quiver describe view` and `quiver apply`. The registry knows definitions; only the online
//! store knows whether a version serves yet, so these commands ask both.

use std::time::{Duration, Instant};

use quiver::addresses::{connect, Addresses};
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{ViewPhase, ViewStatesRequest, ViewVersionState};
use serde_json::json;

/// The online store's view versions of `project`/`view` (every view when empty), or why they
/// could not be read.
pub async fn fetch(
    addresses: &Addresses,
    project: &str,
    view: &str,
) -> Result<Vec<ViewVersionState>, String> {
    let channel =
        tokio::time::timeout(Duration::from_secs(2), connect(&addresses.online, "online"))
            .await
            .map_err(|_| format!("the online store at {} did not answer", addresses.online))?
            .map_err(|e| e.to_string())?;
    let response = OnlineStoreServiceClient::new(channel)
        .view_states(ViewStatesRequest {
            project: project.to_string(),
            view: view.to_string(),
        })
        .await
        .map_err(|s| s.message().to_string())?;
    Ok(response.into_inner().versions)
}

/// Waits up to `timeout` for the online store to know `versions` of `project` ((view, version)
/// pairs); what it knows by then.
pub async fn wait_for(
    addresses: &Addresses,
    project: &str,
    versions: &[(String, u32)],
    timeout: Duration,
) -> Result<Vec<ViewVersionState>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let known = fetch(addresses, project, "").await?;
        let all = versions
            .iter()
            .all(|(v, n)| known.iter().any(|k| k.view == *v && k.version == *n));
        if all || Instant::now() >= deadline {
            return Ok(known);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One version's phase for people, e.g. `backfilling (4,458 of 19,808 events)`.
pub fn describe(state: &ViewVersionState) -> String {
    let Some(s) = &state.state else {
        return "unknown".into();
    };
    match ViewPhase::try_from(s.phase) {
        Ok(ViewPhase::Serving) => "serving".into(),
        Ok(ViewPhase::Retired) => "retired".into(),
        _ => format!(
            "backfilling ({} of {} events)",
            s.backfilled_rows, s.backfill_total
        ),
    }
}

/// One version's phase as JSON: `{version, phase, backfilled_events, backfill_events}`.
pub fn to_json(state: &ViewVersionState) -> serde_json::Value {
    let s = state.state.clone().unwrap_or_default();
    let phase = match ViewPhase::try_from(s.phase) {
        Ok(ViewPhase::Serving) => "serving",
        Ok(ViewPhase::Retired) => "retired",
        _ => "backfilling",
    };
    json!({
        "view": state.view,
        "version": state.version,
        "phase": phase,
        "backfilled_events": s.backfilled_rows,
        "backfill_events": s.backfill_total,
    })
}

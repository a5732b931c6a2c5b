//! The small HTTP endpoint every process serves: Prometheus `/metrics`, `/healthz` (liveness:
//! the process runs and is not draining) and `/readyz` (readiness: every role of the process can
//! answer its clients; see `readiness`).

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::Shutdown;

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` triggers. `/healthz`
/// answers 503 once the shutdown has started, so load balancers stop routing here first.
pub async fn serve_http(listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let health_shutdown = shutdown.clone();
    let router = Router::new()
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .route(
            "/healthz",
            get(move || {
                let draining = health_shutdown.is_triggered();
                async move {
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                    } else {
                        (StatusCode::OK, "ok\n")
                    }
                }
            }),
        )
        .route("/readyz", get(readyz));
    let address = listener.local_addr()?;
    tracing::info!(%address, "http endpoint listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// 200 when every role of the process is ready, else 503; the body lists each role's state.
async fn readyz() -> (StatusCode, String) {
    let roles = crate::readiness::report();
    let mut body = String::new();
    for (role, reason) in &roles {
        match reason {
            None => body.push_str(&format!("{role}: ready\n")),
            Some(reason) => body.push_str(&format!("{role}: not ready: {reason}\n")),
        }
    }
    if roles.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no role is running\n".into(),
        );
    }
    let status = if roles.iter().all(|(_, reason)| reason.is_none()) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

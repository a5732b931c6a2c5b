//! The small HTTP endpoint every process serves: Prometheus `/metrics` and `/healthz`.

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
        );
    let address = listener.local_addr()?;
    tracing::info!(%address, "http endpoint listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

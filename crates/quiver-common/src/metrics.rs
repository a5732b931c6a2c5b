//! Per-RPC Prometheus metrics, recorded by a tower layer every gRPC server carries.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};
use tonic::codegen::http;
use tower::{Layer, Service};

// Registration fails only on a duplicate name, which these fixed names cannot cause; a failure
// would be a programming error caught by the first test that scrapes metrics.
#[allow(clippy::expect_used)]
static RPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "quiver_rpc_requests_total",
        "gRPC requests handled, by service, method and gRPC status code.",
        &["service", "method", "code"]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static RPC_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "quiver_rpc_duration_seconds",
        "Time to the response headers of a gRPC request, by service and method.",
        &["service", "method"],
        vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 10.0
        ]
    )
    .expect("metric registers once")
});

#[allow(clippy::expect_used)]
static RPC_IN_FLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "quiver_rpc_in_flight",
        "gRPC requests being handled now, by service and method.",
        &["service", "method"]
    )
    .expect("metric registers once")
});

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap_or_else(|e| format!("# metrics encoding failed: {e}\n"))
}

/// A tower layer that counts, times and tracks in-flight gRPC requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps around a gRPC server.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let in_flight = InFlight::start(&service, &method);
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut result = response.await;
            // Every response passes here: the one place to bound what an error quotes.
            if let Ok(response) = &mut result {
                crate::status_message::settle(response.headers_mut());
            }
            // tonic answers errors "trailers-only", so a failed call carries grpc-status in its
            // headers; a call without it succeeded (or fails later inside a stream).
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(|c| format!("{:?}", tonic::Code::from(c)))
                    .unwrap_or_else(|| "Ok".to_string()),
                Err(_) => "TransportError".to_string(),
            };
            RPC_REQUESTS
                .with_label_values(&[&service, &method, &code])
                .inc();
            RPC_DURATION
                .with_label_values(&[&service, &method])
                .observe(started.elapsed().as_secs_f64());
            drop(in_flight);
            result
        })
    }
}

/// Decrements the in-flight gauge when the request ends, even if its future is dropped.
struct InFlight {
    gauge: prometheus::IntGauge,
}

impl InFlight {
    fn start(service: &str, method: &str) -> Self {
        let gauge = RPC_IN_FLIGHT.with_label_values(&[service, method]);
        gauge.inc();
        Self { gauge }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// `/quiver.registry.v1.RegistryService/Apply` -> (`quiver.registry.v1.RegistryService`, `Apply`).
fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_string(), method.to_string()),
        None => (trimmed.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/quiver.registry.v1.RegistryService/Apply"),
            ("quiver.registry.v1.RegistryService".into(), "Apply".into())
        );
        assert_eq!(split_path("/odd"), ("odd".into(), String::new()));
    }
}

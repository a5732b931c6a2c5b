//! W3C trace context over gRPC metadata: servers take their span's parent from the caller's
//! `traceparent`; clients put the current span's context on their outgoing requests. Both are
//! no-ops while traces are off.

use opentelemetry::propagation::{Extractor, Injector};
use tonic::codegen::http::HeaderMap;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::traces_enabled;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct Metadata<'a>(&'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Makes `span` (a server's request span) a child of the trace the caller sent, if any.
pub fn continue_remote_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !traces_enabled() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let _ = span.set_parent(parent);
}

/// Puts the current span's trace context on an outgoing request.
pub fn propagate<T>(request: &mut tonic::Request<T>) {
    if !traces_enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Metadata(request.metadata_mut()))
    });
}

/// A request carrying the current span's trace context.
pub fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    propagate(&mut request);
    request
}

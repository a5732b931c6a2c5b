//! Channels from a Quiver process (or the CLI) to a Quiver service, carrying the process's
//! credential.
//!
//! A process has one credential: the CLI's `--token`, or a server's cluster-internal token
//! when auth is on. It is set once at start ([`set_credential`]) and every channel wrapped in
//! [`Authorized`] sends it as `authorization: Bearer <token>`. Without one, nothing is added,
//! which is what a cluster without auth expects. [`endpoint`] likewise speaks TLS when the
//! process has it on.

use std::sync::OnceLock;
use std::task::{Context, Poll};

use tonic::codegen::http::{header::AUTHORIZATION, HeaderValue, Request};
use tonic::transport::Endpoint;
use tower::Service;

use crate::uri::http_uri;

static CREDENTIAL: OnceLock<HeaderValue> = OnceLock::new();

/// Sets the bearer token this process sends on every [`Authorized`] channel. The first call
/// wins (a process has one identity); an empty token sets nothing.
pub fn set_credential(token: &str) -> anyhow::Result<()> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow::anyhow!("the token has characters a header cannot carry"))?;
    value.set_sensitive(true);
    let _ = CREDENTIAL.set(value);
    Ok(())
}

/// The `authorization` header this process sends, if any.
pub fn credential() -> Option<&'static HeaderValue> {
    CREDENTIAL.get()
}

/// An endpoint for `address` (`host:port` or a URL): `https` trusting the cluster's CA when
/// the process has TLS on ([`crate::tls`]), plain `http` otherwise.
pub fn endpoint(address: &str) -> anyhow::Result<Endpoint> {
    let tls = crate::tls::client_config();
    let uri = match (&tls, address.split_once("://")) {
        (Some(_), None) => format!("https://{address}"),
        (Some(_), Some(("http", rest))) => format!("https://{rest}"),
        _ => http_uri(address),
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| anyhow::anyhow!("invalid address {address:?}: {e}"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("TLS settings for {address:?}: {e}")),
        None => Ok(endpoint),
    }
}

/// A tonic channel that sends the process's credential.
pub type AuthChannel = Authorized<tonic::transport::Channel>;

/// Wraps `channel` so that every request carries the process's credential.
pub fn authorized(channel: tonic::transport::Channel) -> AuthChannel {
    Authorized { inner: channel }
}

/// A service that adds the process's `authorization` header to each request.
#[derive(Debug, Clone)]
pub struct Authorized<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Authorized<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(value) = credential() {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        self.inner.call(request)
    }
}

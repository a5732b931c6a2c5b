//! The tower layer that authenticates every request of a gRPC server and attaches the
//! [`Caller`](super::Caller) to it, or answers UNAUTHENTICATED / PERMISSION_DENIED itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{header::AUTHORIZATION, Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::access::{access, Access, Scope};
use super::token_cache::Authenticator;
use super::Projects;
use super::{Caller, Role};

/// Authenticates requests when auth is on (an authenticator is given); passes everything
/// through otherwise.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Option<Arc<Authenticator>>,
    peer: bool,
}

impl AuthLayer {
    /// For a client port: each method's rule from [`access`].
    pub fn clients(auth: Option<Arc<Authenticator>>) -> Self {
        Self { auth, peer: false }
    }

    /// For a peer port: every method but health is cluster-internal.
    pub fn peers(auth: Option<Arc<Authenticator>>) -> Self {
        Self { auth, peer: true }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            peer: self.peer,
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Option<Arc<Authenticator>>,
    peer: bool,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(auth) = self.auth.clone() else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready handles the request (tower's clone-and-swap).
        let ready_inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready_inner);
        let peer = self.peer;
        let path = request.uri().path().to_string();
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("").to_string());
        Box::pin(async move {
            match decide(&auth, peer, &path, header.as_deref()).await {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                Err(status) => return Ok(status.into_http()),
            }
            inner.call(request).await
        })
    }
}

/// The caller of `request`, `None` for open methods, or the refusal.
async fn decide(
    auth: &Authenticator,
    peer: bool,
    path: &str,
    header: Option<&str>,
) -> Result<Option<Caller>, Status> {
    let rule = match access(path) {
        Access::Open => return Ok(None),
        _ if peer => Access::Internal,
        rule => rule,
    };
    let identity = auth.identify_fresh(header).await?;
    match rule {
        Access::Open => Ok(None),
        Access::Token {
            method,
            role,
            scope,
        } => {
            let caller = identity.caller(method, role)?;
            if scope == Scope::Everything && caller.projects != Projects::All {
                return Err(caller.needs_every_project());
            }
            Ok(Some(caller))
        }
        Access::Internal => match identity {
            super::token_cache::Identity::Internal => Ok(Some(
                super::token_cache::Identity::Internal.caller("internal", Role::Admin)?,
            )),
            super::token_cache::Identity::Token(record) => Err(Status::permission_denied(format!(
                "token {:?} cannot call {path}: it is cluster-internal (only Quiver processes call it{})",
                record.id,
                if peer { ", on the peer port" } else { "" }
            ))),
        },
    }
}

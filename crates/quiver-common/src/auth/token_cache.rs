//! The tokens a process accepts: a copy of the registry's token table (digests, roles,
//! projects, expiry, revocation), refreshed every `auth.refresh_interval` (and at once, at most
//! every 200 ms, when a request names a token id it does not know: a new token works at once),
//! and the cluster-internal credential from the process's config.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use quiver_proto::auth::token_service_client::TokenServiceClient;
use quiver_proto::auth::{Token, TokenDigestsRequest};
use tonic::Status;

use super::token::{digests_equal, sha256_hex, split};
use super::{Caller, Projects, Role};
use crate::client_channel::{authorized, endpoint};
use crate::Shutdown;

/// One token as a process checks it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The public id.
    pub id: String,
    /// SHA-256 of the secret, hex.
    pub digest: String,
    /// Its role.
    pub role: Role,
    /// Its projects.
    pub projects: Projects,
    /// When it stops working.
    pub expires_at: Option<SystemTime>,
    /// Refused when set.
    pub revoked: bool,
}

impl TryFrom<&Token> for TokenRecord {
    type Error = String;

    fn try_from(token: &Token) -> Result<Self, String> {
        Ok(Self {
            id: token.id.clone(),
            digest: token.digest.clone(),
            role: Role::parse(&token.role)?,
            projects: if token.projects.is_empty() {
                Projects::All
            } else {
                Projects::Only(token.projects.clone())
            },
            expires_at: token.expires_at.and_then(|t| SystemTime::try_from(t).ok()),
            revoked: token.revoked,
        })
    }
}

/// How often an unknown token id may make a process reload the table ahead of its interval.
const MISS_REFRESH: Duration = Duration::from_millis(200);

/// Reads the registry's token table in the registry's own process (its store), so the
/// registry never dials itself.
pub type LocalTokens = Arc<dyn Fn() -> anyhow::Result<Vec<TokenRecord>> + Send + Sync>;

/// Where a cache reloads from.
#[derive(Clone)]
enum Source {
    /// `TokenService/Digests` of the registry at this address.
    Registry(String),
    /// The registry's store, in this process.
    Local(LocalTokens),
}

/// The token table as last loaded; cheap to clone.
#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<RwLock<Option<HashMap<String, TokenRecord>>>>,
    /// Where it reloads from, once following started.
    source: Arc<OnceLock<Source>>,
    /// When an unknown id last made it reload.
    last_miss_refresh: Arc<tokio::sync::Mutex<Option<Instant>>>,
    /// Whether that reload failed (the registry unreachable): an unknown id may then be a new
    /// token this process cannot see yet, not a bad one.
    miss_refresh_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl TokenCache {
    /// Replaces the table.
    pub fn replace(&self, tokens: impl IntoIterator<Item = TokenRecord>) {
        // A table just loaded is the registry's: an unknown id is unknown there too.
        self.miss_refresh_failed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let table = tokens.into_iter().map(|t| (t.id.clone(), t)).collect();
        if let Ok(mut inner) = self.inner.write() {
            *inner = Some(table);
        }
    }

    /// Whether the table has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.inner.read().map(|t| t.is_some()).unwrap_or(false)
    }

    /// Whether the table holds `id`.
    fn knows(&self, id: &str) -> bool {
        self.inner
            .read()
            .map(|t| t.as_ref().is_some_and(|t| t.contains_key(id)))
            .unwrap_or(false)
    }

    /// Reads the table from its source.
    async fn load(source: &Source) -> anyhow::Result<Vec<TokenRecord>> {
        match source {
            Source::Registry(address) => fetch(address).await,
            Source::Local(read) => {
                let read = read.clone();
                tokio::task::spawn_blocking(move || read()).await?
            }
        }
    }

    /// Reloads the table now, unless that happened within the last 200 ms (concurrent callers
    /// wait for one reload).
    async fn refresh_on_miss(&self) {
        let Some(source) = self.source.get() else {
            return;
        };
        let mut last = self.last_miss_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < MISS_REFRESH) {
            return;
        }
        match Self::load(source).await {
            Ok(tokens) => self.replace(tokens),
            Err(error) => {
                self.miss_refresh_failed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%error, "cannot refresh tokens");
            }
        }
        *last = Some(Instant::now());
    }

    fn lookup(&self, id: &str) -> Result<Option<TokenRecord>, Status> {
        let inner = self
            .inner
            .read()
            .map_err(|_| Status::internal("token cache poisoned"))?;
        match inner.as_ref() {
            None => Err(Status::unavailable(
                "this process has not loaded the token table from the registry yet; retry",
            )),
            Some(table) => Ok(table.get(id).cloned()),
        }
    }

    /// Keeps the table equal to the registry's at `registry`, polling every `interval` (with
    /// this process's internal credential) until `shutdown`. A failed poll keeps the last
    /// table: a revocation made while the registry is unreachable waits for it.
    pub fn follow_registry(&self, registry: String, interval: Duration, shutdown: Shutdown) {
        self.follow(Source::Registry(registry), interval, shutdown);
    }

    /// As [`TokenCache::follow_registry`], in the registry's process: reads its store.
    pub fn follow_local(&self, read: LocalTokens, interval: Duration, shutdown: Shutdown) {
        self.follow(Source::Local(read), interval, shutdown);
    }

    fn follow(&self, source: Source, interval: Duration, shutdown: Shutdown) {
        if self.source.set(source.clone()).is_err() {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                match Self::load(&source).await {
                    Ok(tokens) => {
                        cache.replace(tokens);
                        warned = false;
                    }
                    Err(error) if !warned || !cache.is_loaded() => {
                        tracing::warn!(%error, "cannot refresh tokens from the registry");
                        warned = true;
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
    }
}

async fn fetch(registry: &str) -> anyhow::Result<Vec<TokenRecord>> {
    let channel = endpoint(registry)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let tokens = TokenServiceClient::new(authorized(channel))
        .digests(TokenDigestsRequest {})
        .await?
        .into_inner()
        .tokens;
    let mut out = Vec::with_capacity(tokens.len());
    for token in &tokens {
        match TokenRecord::try_from(token) {
            Ok(record) => out.push(record),
            Err(error) => tracing::warn!(id = %token.id, %error, "skipping a malformed token"),
        }
    }
    Ok(out)
}

/// Decides who a bearer credential is.
#[derive(Debug, Clone)]
pub struct Authenticator {
    internal_digest: String,
    tokens: TokenCache,
    refresh_interval: Duration,
}

/// Who presented a credential, before the method's rule is applied.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Another Quiver process.
    Internal,
    /// A token holder.
    Token(TokenRecord),
}

impl Authenticator {
    /// Accepts `internal_token` as the cluster-internal credential and the tokens in `tokens`.
    pub fn new(internal_token: &str, tokens: TokenCache) -> anyhow::Result<Self> {
        anyhow::ensure!(
            internal_token.len() >= 32,
            "auth.internal_token must be at least 32 characters (a random secret shared by the \
             cluster's processes)"
        );
        Ok(Self {
            internal_digest: sha256_hex(internal_token),
            tokens,
            refresh_interval: Duration::from_secs(2),
        })
    }

    /// How often the token table is reloaded (`[auth] refresh_interval`).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// How often the token table is reloaded.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// The token table.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// As [`Authenticator::identify`], reloading the token table first when the credential
    /// names a token id this process does not know yet (a token made a moment ago).
    pub async fn identify_fresh(&self, authorization: Option<&str>) -> Result<Identity, Status> {
        let unknown = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| split(t.trim()))
            .is_some_and(|(id, _)| !self.tokens.knows(id));
        if unknown {
            self.tokens.refresh_on_miss().await;
        }
        self.identify(authorization)
    }

    /// Who `authorization` (the header's value) names: UNAUTHENTICATED when it is missing,
    /// malformed, unknown, expired or revoked.
    pub fn identify(&self, authorization: Option<&str>) -> Result<Identity, Status> {
        let Some(header) = authorization else {
            return Err(Status::unauthenticated(
                "no credential: send `authorization: Bearer <token>` (quiver --token or \
                 QUIVER_TOKEN)",
            ));
        };
        let presented = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header is not `Bearer <token>`")
            })?;
        if digests_equal(&sha256_hex(presented), &self.internal_digest) {
            return Ok(Identity::Internal);
        }
        let Some((id, secret)) = split(presented) else {
            return Err(Status::unauthenticated(
                "the token is not a Quiver token (`t_<id>.<secret>`)",
            ));
        };
        let known = self.tokens.lookup(id)?;
        if known.is_none()
            && self
                .tokens
                .miss_refresh_failed
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Status::unavailable(format!(
                "token {id:?} is not known to this process, and the registry, which holds the \
                 tokens, cannot be reached to look it up; retry"
            )));
        }
        let record = known
            .filter(|r| digests_equal(&sha256_hex(secret), &r.digest))
            .ok_or_else(|| Status::unauthenticated(format!("token {id:?} is not valid")))?;
        if record.revoked {
            return Err(Status::unauthenticated(format!(
                "token {id:?} has been revoked"
            )));
        }
        if record.expires_at.is_some_and(|t| t <= SystemTime::now()) {
            return Err(Status::unauthenticated(format!("token {id:?} has expired")));
        }
        Ok(Identity::Token(record))
    }
}

impl Identity {
    /// The caller this identity is when calling `method`, which needs `needs`: PERMISSION_DENIED
    /// when the token's role is too weak. Projects are checked by the handler.
    pub fn caller(self, method: &'static str, needs: Role) -> Result<Caller, Status> {
        match self {
            Identity::Internal => Ok(Caller {
                id: "internal".into(),
                role: None,
                projects: Projects::All,
                method,
                needs,
            }),
            Identity::Token(record) if record.role >= needs => Ok(Caller {
                id: record.id,
                role: Some(record.role),
                projects: record.projects,
                method,
                needs,
            }),
            Identity::Token(record) => Err(Status::permission_denied(format!(
                "token {:?} has role {}; {method} needs {needs}",
                record.id, record.role
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::generate;

    /// A token this process has not seen, while the registry cannot be reached, may be a new
    /// one: `UNAVAILABLE` (retry), not `not valid`; once the registry answers, it works.
    #[tokio::test]
    async fn an_unseen_token_while_the_registry_is_unreachable_is_unavailable() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let record = |made: &crate::auth::token::NewToken| TokenRecord {
            id: made.id.clone(),
            digest: made.digest.clone(),
            role: Role::Reader,
            projects: Projects::All,
            expires_at: None,
            revoked: false,
        };
        let (old, new) = (generate().unwrap(), generate().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let table = Arc::new(std::sync::Mutex::new(vec![record(&old)]));
        let read: LocalTokens = {
            let (up, table) = (up.clone(), table.clone());
            Arc::new(move || {
                anyhow::ensure!(up.load(Ordering::SeqCst), "registry unreachable");
                Ok(table.lock().unwrap().clone())
            })
        };
        let cache = TokenCache::default();
        let shutdown = Shutdown::new();
        cache.follow_local(read, Duration::from_secs(3_600), shutdown.clone());
        while !cache.is_loaded() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let auth = Authenticator::new(&"i".repeat(40), cache.clone()).unwrap();
        up.store(false, Ordering::SeqCst);
        table.lock().unwrap().push(record(&new));
        let bearer = format!("Bearer {}", new.token);
        let refused = auth.identify_fresh(Some(&bearer)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("cannot be reached"),
            "{refused:?}"
        );
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(MISS_REFRESH).await;
        assert!(auth.identify_fresh(Some(&bearer)).await.is_ok());
        // A token the registry does not hold is not valid, as ever.
        let bogus = format!("Bearer {}", generate().unwrap().token);
        tokio::time::sleep(MISS_REFRESH).await;
        let refused = auth.identify_fresh(Some(&bogus)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        shutdown.trigger();
    }

    #[test]
    fn credentials_are_internal_tokens_or_refused_with_a_reason() {
        let internal = "i".repeat(40);
        let cache = TokenCache::default();
        let auth = Authenticator::new(&internal, cache.clone()).unwrap();
        let made = generate().unwrap();
        let bearer = format!("Bearer {}", made.token);
        assert_eq!(
            auth.identify(Some(&bearer)).unwrap_err().code(),
            tonic::Code::Unavailable,
            "not loaded yet"
        );
        let record = TokenRecord {
            id: made.id.clone(),
            digest: made.digest.clone(),
            role: Role::Reader,
            projects: Projects::Only(vec!["shop".into()]),
            expires_at: None,
            revoked: false,
        };
        cache.replace([record.clone()]);
        assert!(matches!(
            auth.identify(Some(&format!("Bearer {internal}"))),
            Ok(Identity::Internal)
        ));
        let caller = auth
            .identify(Some(&bearer))
            .unwrap()
            .caller("GetFeatures", Role::Reader)
            .unwrap();
        assert_eq!(caller.id, made.id);
        let weak = auth
            .identify(Some(&bearer))
            .unwrap()
            .caller("Push", Role::Writer)
            .unwrap_err();
        assert_eq!(weak.code(), tonic::Code::PermissionDenied);
        assert!(weak
            .message()
            .contains("has role reader; Push needs writer"));
        for (header, why) in [
            (None, "no credential"),
            (Some("Basic x"), "not `Bearer"),
            (Some("Bearer nonsense"), "not a Quiver token"),
        ] {
            let e = auth.identify(header).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert!(e.message().contains(why), "{}", e.message());
        }
        let wrong_secret = format!("Bearer {}.{}", made.id, "0".repeat(64));
        assert!(auth
            .identify(Some(&wrong_secret))
            .unwrap_err()
            .message()
            .contains("is not valid"));
        cache.replace([TokenRecord {
            revoked: true,
            ..record.clone()
        }]);
        assert!(auth
            .identify(Some(&bearer))
            .unwrap_err()
            .message()
            .contains("revoked"));
        cache.replace([TokenRecord {
            expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
            ..record
        }]);
        assert!(auth
            .identify(Some(&bearer))
            .unwrap_err()
            .message()
            .contains("expired"));
        assert!(Authenticator::new("short", TokenCache::default()).is_err());
    }
}

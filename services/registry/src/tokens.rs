//! `quiver.auth.v1.TokenService`: access tokens kept in the registry's sled database.
//!
//! Tree `tokens`: id -> `quiver.auth.v1.Token` (protobuf, with the secret's SHA-256 digest; the
//! secret itself is never stored). Revoked tokens stay, marked, so `list` shows them and every
//! process's cache learns the revocation. Each change is flushed before it is acknowledged.

use std::time::{Duration, SystemTime};

use prost::Message;
use quiver_common::auth::token::generate;
use quiver_common::auth::{Role, TokenRecord};
use quiver_core::names::is_valid_name;
use quiver_proto::auth::token_service_server::TokenService;
use quiver_proto::auth::{
    CreateTokenRequest, CreateTokenResponse, ListTokensRequest, ListTokensResponse,
    RevokeTokenRequest, RevokeTokenResponse, Token, TokenDigestsRequest, TokenDigestsResponse,
};
use tonic::{Request, Response, Status};

use crate::error::RegistryError;
use crate::store::Store;

/// The token table.
#[derive(Clone)]
pub struct Tokens {
    db: sled::Db,
    tree: sled::Tree,
}

impl Tokens {
    /// The token table of `store`'s database.
    pub fn open(store: &Store) -> Result<Self, RegistryError> {
        let db = store.db().clone();
        Ok(Self {
            tree: db.open_tree("tokens")?,
            db,
        })
    }

    /// Every token with its digest, oldest first.
    pub fn all(&self) -> Result<Vec<Token>, RegistryError> {
        let mut tokens = Vec::new();
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            tokens.push(
                Token::decode(value.as_ref()).map_err(|e| RegistryError::Corrupt {
                    key: format!("tokens/{}", String::from_utf8_lossy(&key)),
                    reason: e.to_string(),
                })?,
            );
        }
        tokens.sort_by_key(|t| t.created_at.map(|c| (c.seconds, c.nanos)));
        Ok(tokens)
    }

    /// Every token as a process checks it.
    pub fn records(&self) -> anyhow::Result<Vec<TokenRecord>> {
        let mut records = Vec::new();
        for token in self.all()? {
            match TokenRecord::try_from(&token) {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(id = %token.id, %error, "skipping a malformed token"),
            }
        }
        Ok(records)
    }

    /// Hands the table to this process's token cache at once, so the registry itself refuses a
    /// token the moment its revocation is acknowledged (other processes learn it at their next
    /// poll).
    fn publish(&self) {
        let Some(auth) = quiver_common::auth::installed() else {
            return;
        };
        match self.records() {
            Ok(records) => auth.tokens().replace(records),
            Err(error) => tracing::warn!(%error, "cannot reload this process's token cache"),
        }
    }

    /// Makes and stores a token; returns the whole token (shown once) and what was stored.
    pub async fn create(
        &self,
        request: CreateTokenRequest,
    ) -> Result<(String, Token), RegistryError> {
        let role = Role::parse(&request.role).map_err(|reason| RegistryError::BadRequest {
            field: "role",
            reason,
        })?;
        if let Some(bad) = request.projects.iter().find(|p| !is_valid_name(p)) {
            return Err(RegistryError::BadRequest {
                field: "projects",
                reason: format!("{bad:?} is not a project name"),
            });
        }
        // 0 is "no expiry"; a lifetime past this is a mistake, not a plan (and would overflow
        // the clock's arithmetic).
        const MAX_TTL_SECONDS: u64 = 100 * 365 * 86_400;
        if request.ttl_seconds > MAX_TTL_SECONDS {
            return Err(RegistryError::BadRequest {
                field: "ttl_seconds",
                reason: format!(
                    "{} is more than 100 years ({MAX_TTL_SECONDS}); leave it 0 for a token that \
                     never expires",
                    request.ttl_seconds
                ),
            });
        }
        let made = generate().map_err(|e| RegistryError::BadRequest {
            field: "token",
            reason: e.to_string(),
        })?;
        let now = SystemTime::now();
        let token = Token {
            id: made.id.clone(),
            role: role.name().to_string(),
            projects: request.projects,
            created_at: Some(now.into()),
            expires_at: (request.ttl_seconds > 0)
                .then(|| (now + Duration::from_secs(request.ttl_seconds)).into()),
            revoked: false,
            description: request.description,
            digest: made.digest,
        };
        self.tree
            .insert(token.id.as_bytes(), token.encode_to_vec())?;
        self.db.flush_async().await?;
        self.publish();
        tracing::info!(id = %token.id, role = %token.role, projects = ?token.projects, "token created");
        Ok((made.token, token))
    }

    /// Marks a token revoked.
    pub async fn revoke(&self, id: &str) -> Result<Token, RegistryError> {
        let Some(stored) = self.tree.get(id.as_bytes())? else {
            return Err(RegistryError::NotFound(format!("no token {id:?}")));
        };
        let mut token = Token::decode(stored.as_ref()).map_err(|e| RegistryError::Corrupt {
            key: format!("tokens/{id}"),
            reason: e.to_string(),
        })?;
        token.revoked = true;
        self.tree
            .insert(token.id.as_bytes(), token.encode_to_vec())?;
        self.db.flush_async().await?;
        self.publish();
        tracing::info!(id = %token.id, "token revoked");
        Ok(token)
    }
}

/// `token` without its digest, as clients see it.
fn public(mut token: Token) -> Token {
    token.digest.clear();
    token
}

#[tonic::async_trait]
impl TokenService for Tokens {
    async fn create(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let (token, info) = Tokens::create(self, request.into_inner()).await?;
        Ok(Response::new(CreateTokenResponse {
            token,
            info: Some(public(info)),
        }))
    }

    async fn list(
        &self,
        _request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        Ok(Response::new(ListTokensResponse {
            tokens: self.all()?.into_iter().map(public).collect(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let info = Tokens::revoke(self, &request.into_inner().id).await?;
        Ok(Response::new(RevokeTokenResponse {
            info: Some(public(info)),
        }))
    }

    async fn digests(
        &self,
        _request: Request<TokenDigestsRequest>,
    ) -> Result<Response<TokenDigestsResponse>, Status> {
        Ok(Response::new(TokenDigestsResponse {
            tokens: self.all()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_revocation_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tokens = Tokens::open(&store).unwrap();
        let (whole, info) = tokens
            .create(CreateTokenRequest {
                role: "writer".into(),
                projects: vec!["shop".into()],
                ttl_seconds: 60,
                description: "test".into(),
            })
            .await
            .unwrap();
        assert!(whole.starts_with(&format!("{}.", info.id)));
        let secret = whole.split_once('.').unwrap().1;
        let stored = tokens.all().unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].digest.is_empty() && !stored[0].digest.contains(secret));
        assert!(stored[0].expires_at.is_some());
        assert!(tokens.revoke(&info.id).await.unwrap().revoked);
        assert!(tokens.all().unwrap()[0].revoked);
        assert!(matches!(
            tokens.revoke("t_missing").await,
            Err(RegistryError::NotFound(_))
        ));
        let bad = tokens
            .create(CreateTokenRequest {
                role: "owner".into(),
                ..Default::default()
            })
            .await;
        assert!(matches!(
            bad,
            Err(RegistryError::BadRequest { field: "role", .. })
        ));
    }
}

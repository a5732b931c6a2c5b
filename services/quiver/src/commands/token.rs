//! `quiver token <create|list|revoke>`: access tokens, kept (hashed) by the registry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver::addresses::connect;
use quiver::rpc_error;
use quiver_core::duration::parse_duration;
use quiver_proto::auth::token_service_client::TokenServiceClient;
use quiver_proto::auth::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, Token};

use crate::cli::{Output, TokenArgs, TokenCommand};

/// Runs a token command.
pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut client = TokenServiceClient::new(connect(&args.addresses.registry, "registry").await?);
    match args.command {
        TokenCommand::Create {
            role,
            projects,
            ttl,
            description,
        } => {
            let ttl = ttl
                .map(|t| {
                    let ttl =
                        parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl {t:?}: {e}"))?;
                    // The protocol's 0 means "no expiry": a token meant to live less than a
                    // second must not become one that never expires.
                    anyhow::ensure!(
                        ttl >= Duration::from_secs(1),
                        "--ttl {t:?}: at least 1s (leave --ttl out for a token that never expires)"
                    );
                    Ok(ttl)
                })
                .transpose()?
                .unwrap_or(Duration::ZERO);
            let created = client
                .create(CreateTokenRequest {
                    role,
                    projects,
                    ttl_seconds: ttl.as_secs(),
                    description,
                })
                .await
                .map_err(|s| rpc_error("token create", s))?
                .into_inner();
            let info = created.info.unwrap_or_default();
            match args.output {
                Output::Json => {
                    let mut json = to_json(&info);
                    json["token"] = created.token.into();
                    println!("{}", serde_json::to_string_pretty(&json)?);
                }
                Output::Text => {
                    eprintln!(
                        "Token {} ({} on {}, {}). Shown once; keep it secret:",
                        info.id,
                        info.role,
                        scope(&info),
                        expiry(&info)
                    );
                    println!("{}", created.token);
                }
            }
        }
        TokenCommand::List => {
            let tokens = client
                .list(ListTokensRequest {})
                .await
                .map_err(|s| rpc_error("token list", s))?
                .into_inner()
                .tokens;
            match args.output {
                Output::Json => {
                    let list: Vec<_> = tokens.iter().map(to_json).collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "tokens": list }))?
                    );
                }
                Output::Text => {
                    println!(
                        "{:<12} {:<7} {:<24} {:<28} status",
                        "id", "role", "projects", "expires"
                    );
                    for t in &tokens {
                        println!(
                            "{:<12} {:<7} {:<24} {:<28} {}",
                            t.id,
                            t.role,
                            scope(t),
                            expiry(t),
                            status(t)
                        );
                    }
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let info = client
                .revoke(RevokeTokenRequest { id })
                .await
                .map_err(|s| rpc_error("token revoke", s))?
                .into_inner()
                .info
                .unwrap_or_default();
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&to_json(&info))?),
                Output::Text => println!(
                    "Token {} revoked: every process refuses it from its next token refresh (auth.refresh_interval, 2s by default).",
                    info.id
                ),
            }
        }
    }
    Ok(())
}

/// `revoked`, `expired` (by this machine's clock) or `active`.
fn status(token: &Token) -> &'static str {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if token.revoked {
        "revoked"
    } else if token.expires_at.is_some_and(|t| t.seconds <= now) {
        "expired"
    } else {
        "active"
    }
}

fn scope(token: &Token) -> String {
    if token.projects.is_empty() {
        "every project".into()
    } else {
        token.projects.join(",")
    }
}

fn expiry(token: &Token) -> String {
    token
        .expires_at
        .map(|t| format!("expires {}", rfc3339(t.seconds)))
        .unwrap_or_else(|| "no expiry".into())
}

fn rfc3339(seconds: i64) -> String {
    quiver_core::timestamp::format_rfc3339(
        seconds.saturating_mul(1_000_000),
        quiver_core::timestamp::Fraction::None,
    )
}

fn to_json(token: &Token) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "role": token.role,
        "projects": token.projects,
        "created_at": token.created_at.map(|t| rfc3339(t.seconds)),
        "expires_at": token.expires_at.map(|t| rfc3339(t.seconds)),
        "revoked": token.revoked,
        "status": status(token),
        "description": token.description,
    })
}

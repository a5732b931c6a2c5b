//! `quiver token <create|list|revoke>`: access tokens, kept (hashed) by the registry.

use std::time::{Duration, UNIX_EPOCH};

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
                .map(|t| parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl {t:?}: {e}")))
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
                            if t.revoked { "revoked" } else { "active" }
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
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn to_json(token: &Token) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "role": token.role,
        "projects": token.projects,
        "created_at": token.created_at.map(|t| rfc3339(t.seconds)),
        "expires_at": token.expires_at.map(|t| rfc3339(t.seconds)),
        "revoked": token.revoked,
        "description": token.description,
    })
}

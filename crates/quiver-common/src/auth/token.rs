//! The token format: `<id>.<secret>`, where the id (`t_` and 8 hex digits) is public (listed,
//! named in errors, used to revoke) and the secret is 32 random bytes in hex. Only the secret's
//! SHA-256 is stored.

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// A freshly made token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The public id.
    pub id: String,
    /// The whole token, shown once.
    pub token: String,
    /// SHA-256 of the secret, hex: what is stored.
    pub digest: String,
}

/// Makes a token from the system's secure random source.
pub fn generate() -> anyhow::Result<NewToken> {
    let random = SystemRandom::new();
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    random
        .fill(&mut id)
        .and_then(|_| random.fill(&mut secret))
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    let id = format!("t_{}", hex(&id));
    let secret = hex(&secret);
    Ok(NewToken {
        token: format!("{id}.{secret}"),
        digest: sha256_hex(&secret),
        id,
    })
}

/// A random secret (32 bytes, hex), e.g. a cluster-internal credential.
pub fn random_secret() -> anyhow::Result<String> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(hex(&secret))
}

/// Splits a presented token into its id and secret, if it has the token form.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (id.starts_with("t_") && id.len() > 2 && !secret.is_empty()).then_some((id, secret))
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &str) -> String {
    hex(digest(&SHA256, text.as_bytes()).as_ref())
}

/// Whether two digests are equal, in time independent of where they differ.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_a_secret_whose_digest_is_stored() {
        let made = generate().unwrap();
        let (id, secret) = split(&made.token).unwrap();
        assert_eq!(id, made.id);
        assert_eq!(id.len(), 10);
        assert_eq!(secret.len(), 64);
        assert!(digests_equal(&sha256_hex(secret), &made.digest));
        assert!(!digests_equal(&sha256_hex("other"), &made.digest));
        assert_ne!(generate().unwrap().token, made.token);
        assert!(split("no-dot").is_none());
        assert!(split("x_1.abc").is_none());
    }
}

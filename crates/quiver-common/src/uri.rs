//! Addresses as users write them (`host:port`) and as tonic wants them (`http://host:port`).

/// `address` as a URI: `host:port` gets `http://`; anything with a scheme is kept.
pub fn http_uri(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

#[cfg(test)]
mod tests {
    use super::http_uri;

    #[test]
    fn adds_a_scheme_only_when_missing() {
        assert_eq!(http_uri("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(http_uri("https://q.example:443"), "https://q.example:443");
    }
}

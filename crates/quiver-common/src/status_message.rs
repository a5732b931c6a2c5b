//! What every error status a server sends back is made to say.
//!
//! - A bound on its message. Messages quote what was wrong, and a request can hold a megabyte in
//!   one field (a feature ref, a project name): quoted whole, the `grpc-message` header passes
//!   HTTP/2's header-size limit and the client sees `RESOURCE_EXHAUSTED: received metadata size
//!   exceeds hard limit` instead of the error.
//! - A request that is not protobuf at all is the client's fault: tonic's codec answers
//!   `INTERNAL` (which reads as a server bug), made `INVALID_ARGUMENT` here.

use tonic::codegen::http::{HeaderMap, HeaderValue};

/// The most bytes of a `grpc-message` header sent back, percent-encoded: half of what gRPC's C
/// core (the Python client) accepts in all of a response's metadata (16 KiB).
pub const MAX_ENCODED: usize = 8_192;

/// The fixes below, on one response's headers.
pub fn settle(headers: &mut HeaderMap) {
    undecodable_request_is_invalid(headers);
    bound(headers);
}

/// tonic's message when a request's bytes do not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// `INTERNAL` for a request that did not decode becomes `INVALID_ARGUMENT`.
fn undecodable_request_is_invalid(headers: &mut HeaderMap) {
    let internal = headers.get("grpc-status").is_some_and(|s| s == "13");
    let undecodable = headers.get("grpc-message").is_some_and(|m| {
        m.as_bytes()
            .starts_with(UNDECODABLE.replace(' ', "%20").as_bytes())
            || m.as_bytes().starts_with(UNDECODABLE.as_bytes())
    });
    if internal && undecodable {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
    }
}

/// Cuts a response's `grpc-message` (percent-encoded, as gRPC sends it) at a character so it
/// stays within [`MAX_ENCODED`] bytes, saying how much was cut.
pub fn bound(headers: &mut HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    if value.len() <= MAX_ENCODED {
        return;
    }
    let text = String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned();
    let total = text.chars().count();
    // Room for the note at the end.
    let mut room = MAX_ENCODED - 64;
    let mut kept = String::new();
    for c in text.chars() {
        let mut utf8 = [0u8; 4];
        let size = encoded_len(c.encode_utf8(&mut utf8).as_bytes());
        if size > room {
            break;
        }
        room -= size;
        kept.push(c);
    }
    let cut = format!(
        "{kept}... ({} more characters cut)",
        total - kept.chars().count()
    );
    if let Ok(value) = HeaderValue::from_bytes(&percent_encode(cut.as_bytes())) {
        headers.insert("grpc-message", value);
    }
}

/// gRPC's percent-decoding of `grpc-message`.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&h), Some(&l)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// How long `bytes` are percent-encoded.
fn encoded_len(bytes: &[u8]) -> usize {
    bytes.iter().map(|&b| if plain(b) { 1 } else { 3 }).sum()
}

/// Whether gRPC sends a byte of a message as it is.
fn plain(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'%'
}

/// gRPC's percent-encoding: every byte outside printable ASCII, and `%`.
fn percent_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_does_not_decode_is_the_clients_fault() {
        let status = tonic::Status::internal(format!("{UNDECODABLE}: invalid wire type"));
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        settle(&mut headers);
        let back = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(back.code(), tonic::Code::InvalidArgument);
        assert!(back.message().starts_with(UNDECODABLE));
        // Any other internal error stays one.
        let mut headers = HeaderMap::new();
        tonic::Status::internal("the store is corrupt")
            .add_header(&mut headers)
            .unwrap();
        settle(&mut headers);
        assert_eq!(headers["grpc-status"], "13");
    }

    #[test]
    fn long_messages_are_cut_at_a_character_and_say_so() {
        let status = tonic::Status::invalid_argument(format!(
            "unknown feature view {:?}",
            "é".repeat(1_000_000)
        ));
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        assert!(headers["grpc-message"].len() > 1_000_000);
        bound(&mut headers);
        let back = tonic::Status::from_header_map(&headers).unwrap();
        assert!(back.message().starts_with("unknown feature view \"éé"));
        assert!(headers["grpc-message"].len() <= MAX_ENCODED);
        // 22 characters before the quoted value, a million in it, its closing quote.
        let kept = back.message().split("...").next().unwrap().chars().count();
        let cut = format!("... ({} more characters cut)", 1_000_023 - kept);
        assert!(back.message().ends_with(&cut), "{}", back.message());
        assert!(kept > 1_300, "{kept}"); // six encoded bytes each
                                         // A short one is left as it is.
        let short = tonic::Status::not_found("no such view \"x\"");
        let mut headers = HeaderMap::new();
        short.add_header(&mut headers).unwrap();
        let before = headers.clone();
        bound(&mut headers);
        assert_eq!(headers, before);
    }
}

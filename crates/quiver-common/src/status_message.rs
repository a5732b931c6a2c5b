//! What every error status a server sends back is made to say.
//!
//! - A bound on its message. Messages quote what was wrong, and a request can hold a megabyte in
//!   one field (a feature ref, a project name): quoted whole, the `grpc-message` header passes
//!   HTTP/2's header-size limit and the client sees `RESOURCE_EXHAUSTED: received metadata size
//!   exceeds hard limit` instead of the error.
//! - A request that is not protobuf at all is the client's fault: tonic's codec answers
//!   `INTERNAL` (which reads as a server bug), made `INVALID_ARGUMENT` here.

use tonic::codegen::http::HeaderMap;

/// The most bytes of a `grpc-message` header sent back, percent-encoded: half of what gRPC's C
/// core (the Python client) accepts in all of a response's metadata (16 KiB).
pub const MAX_ENCODED: usize = 8_192;

/// The fixes below, on one response's headers (an error's: tonic answers them
/// "trailers-only", its status in the headers). tonic's own `Status` reads and writes them, so
/// the message's percent-encoding is tonic's.
pub fn settle(headers: &mut HeaderMap) {
    if !headers.contains_key("grpc-message") {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let code = undecodable_request_is_invalid(&status);
    let message = bounded(status.message(), headers["grpc-message"].len());
    if code != status.code() || message.is_some() {
        let message = message.unwrap_or_else(|| status.message().to_string());
        // Replaces `grpc-status` and `grpc-message`; other metadata stays.
        let _ = tonic::Status::new(code, message).add_header(headers);
    }
}

/// tonic's message when a request's bytes do not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// `INTERNAL` for a request that did not decode becomes `INVALID_ARGUMENT`.
fn undecodable_request_is_invalid(status: &tonic::Status) -> tonic::Code {
    if status.code() == tonic::Code::Internal && status.message().starts_with(UNDECODABLE) {
        tonic::Code::InvalidArgument
    } else {
        status.code()
    }
}

/// `message`, cut at a character so it stays within [`MAX_ENCODED`] bytes percent-encoded,
/// saying how much was cut; None when it fits (`encoded` is its length as sent).
fn bounded(message: &str, encoded: usize) -> Option<String> {
    if encoded <= MAX_ENCODED {
        return None;
    }
    let total = message.chars().count();
    // Room for the note at the end.
    let mut room = MAX_ENCODED - 64;
    let mut kept = String::new();
    for c in message.chars() {
        let mut utf8 = [0u8; 4];
        let size = encoded_len(c.encode_utf8(&mut utf8).as_bytes());
        if size > room {
            break;
        }
        room -= size;
        kept.push(c);
    }
    Some(format!(
        "{kept}... ({} more characters cut)",
        total - kept.chars().count()
    ))
}

/// How long `bytes` are percent-encoded.
fn encoded_len(bytes: &[u8]) -> usize {
    bytes.iter().map(|&b| if plain(b) { 1 } else { 3 }).sum()
}

/// Whether gRPC sends a byte of a message as it is.
fn plain(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'%'
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
        settle(&mut headers);
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
        settle(&mut headers);
        assert_eq!(headers, before);
    }
}

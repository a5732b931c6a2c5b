//! Entity keys: a row's join key values encoded as one byte string, the key every store uses.

use crate::types::{value::Kind, Value};

/// A join key value that cannot be part of an entity key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("join key {index} is {kind}; entity keys are int64, string or bytes")]
pub struct BadKeyValue {
    /// Which join key.
    pub index: usize,
    /// What it was.
    pub kind: &'static str,
}

/// Encodes an entity's join key values, in the entity's order, into a self-delimiting byte
/// string: per value a type tag, then 8 big-endian bytes (int64, sign bit flipped so byte
/// order is numeric order) or a 4-byte length and the bytes (string, bytes).
pub fn encode_entity(values: &[Value]) -> Result<Vec<u8>, BadKeyValue> {
    let mut out = Vec::with_capacity(values.len() * 12);
    for (index, value) in values.iter().enumerate() {
        let part = match &value.kind {
            Some(Kind::Int64Value(v)) => KeyPart::Int(*v),
            Some(Kind::StringValue(s)) => KeyPart::String(s.as_bytes()),
            Some(Kind::BytesValue(b)) => KeyPart::Bytes(b),
            other => {
                return Err(BadKeyValue {
                    index,
                    kind: value_kind_name(other.as_ref()),
                })
            }
        };
        part.encode_into(&mut out);
    }
    Ok(out)
}

/// One join key value, borrowed (for encoders reading columns without building `Value`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart<'a> {
    /// An int64.
    Int(i64),
    /// A string's UTF-8 bytes.
    String(&'a [u8]),
    /// Bytes.
    Bytes(&'a [u8]),
}

impl KeyPart<'_> {
    /// Appends this value's encoding (see [`encode_entity`]); a key is its parts in order.
    pub fn encode_into(self, out: &mut Vec<u8>) {
        match self {
            Self::Int(v) => {
                out.push(b'i');
                out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
            }
            Self::String(s) => push_bytes(out, b's', s),
            Self::Bytes(b) => push_bytes(out, b'b', b),
        }
    }
}

fn push_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    // Keys are bounded far below 4 GiB by gRPC message limits.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A readable name of a value's kind, for errors.
pub fn value_kind_name(kind: Option<&Kind>) -> &'static str {
    match kind {
        None | Some(Kind::NullValue(_)) => "null",
        Some(Kind::Int64Value(_)) => "int64",
        Some(Kind::Float64Value(_)) => "float64",
        Some(Kind::Float32Value(_)) => "float32",
        Some(Kind::BoolValue(_)) => "bool",
        Some(Kind::StringValue(_)) => "string",
        Some(Kind::BytesValue(_)) => "bytes",
        Some(Kind::TimestampValue(_)) => "timestamp",
        Some(Kind::Float32ListValue(_)) => "float32_list",
    }
}

/// A readable form of an entity key encoded by [`encode_entity`]: the join key values joined
/// by `/` (for metrics and logs).
pub fn display_entity(mut key: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = key.split_first() {
        match tag {
            b'i' if rest.len() >= 8 => {
                let mut word = [0u8; 8];
                word.copy_from_slice(&rest[..8]);
                parts.push(((u64::from_be_bytes(word) ^ (1 << 63)) as i64).to_string());
                key = &rest[8..];
            }
            b's' | b'b' if rest.len() >= 4 => {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let Some(bytes) = rest.get(4..4 + len) else {
                    break;
                };
                parts.push(String::from_utf8_lossy(bytes).into_owned());
                key = &rest[4 + len..];
            }
            _ => break,
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_display_as_their_values() {
        let key = encode_entity(&[
            Value {
                kind: Some(Kind::Int64Value(-42)),
            },
            Value {
                kind: Some(Kind::StringValue("shop".into())),
            },
        ])
        .unwrap();
        assert_eq!(display_entity(&key), "-42/shop");
    }
}

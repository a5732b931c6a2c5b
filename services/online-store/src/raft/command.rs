//! The log's command encoding: a format byte, then a `quiver.online.v1.LogCommand` (one typed
//! kind). Entries written before it hold a bare `LegacyCommand` (a message whose set fields
//! decided what it was); they still decode, into the same kinds, so a store upgraded in place
//! applies its old log unchanged.

use prost::Message;
use quiver_proto::online::log_command::Kind;
use quiver_proto::online::{EventWrite, LegacyCommand, LogCommand, RowWrite};

use super::Command;

/// The first byte of an encoded `LogCommand`. A legacy entry starts with a field key of field
/// 1-8 (`0x0A`..`0x42`), never this (a key byte with its high bit set continues a varint).
const FORMAT: u8 = 0xC1;

/// The log command of `kind`.
pub fn command(kind: Kind) -> Command {
    Command {
        write: encode(kind),
    }
}

/// `kind` as the log stores it.
pub fn encode(kind: Kind) -> Vec<u8> {
    let message = LogCommand { kind: Some(kind) };
    let mut bytes = Vec::with_capacity(1 + message.encoded_len());
    bytes.push(FORMAT);
    message.encode_raw(&mut bytes);
    bytes
}

/// What an entry's (or a staged entry's) bytes command; `None` when they do not decode (a
/// committed entry that does not decode is skipped the same way on every replica).
pub fn decode(bytes: &[u8]) -> Option<Kind> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => LogCommand::decode(rest).ok()?.kind,
        _ => LegacyCommand::decode(bytes).ok().map(from_legacy),
    }
}

/// A legacy entry's kind, in the order its apply looked at the fields.
pub fn from_legacy(legacy: LegacyCommand) -> Kind {
    if let Some(begin) = legacy.view_begin {
        Kind::ViewBegin(begin)
    } else if let Some(end) = legacy.view_end {
        Kind::ViewEnd(end)
    } else if let Some(chunk) = legacy.backfill {
        Kind::Backfill(chunk)
    } else if !legacy.event_batches.is_empty() {
        Kind::Events(EventWrite {
            batches: legacy.event_batches,
            // Written before the rules had numbers: the oldest.
            admission_rules: 0,
        })
    } else if let Some(export) = legacy.export {
        Kind::Export(export)
    } else {
        Kind::Rows(RowWrite {
            producer_id: legacy.producer_id,
            sequence: legacy.sequence,
            rows: legacy.rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use quiver_proto::online::{ExportStep, ViewEnd};

    use super::*;

    #[test]
    fn typed_commands_round_trip_and_legacy_entries_still_decode() {
        let end = Kind::ViewEnd(ViewEnd {
            project: "p".into(),
            view: "v".into(),
        });
        assert_eq!(decode(&encode(end.clone())), Some(end));
        // An empty command of a kind is still that kind.
        let export = Kind::Export(ExportStep::default());
        assert_eq!(decode(&encode(export.clone())), Some(export));
        // The old layout: set fields decide.
        let legacy = LegacyCommand {
            producer_id: "w".into(),
            sequence: 7,
            ..LegacyCommand::default()
        };
        assert_eq!(
            decode(&legacy.encode_to_vec()),
            Some(Kind::Rows(RowWrite {
                producer_id: "w".into(),
                sequence: 7,
                rows: Vec::new(),
            }))
        );
        let legacy = LegacyCommand {
            view_end: Some(ViewEnd::default()),
            ..LegacyCommand::default()
        };
        assert_eq!(
            decode(&legacy.encode_to_vec()),
            Some(Kind::ViewEnd(ViewEnd::default()))
        );
        assert_eq!(decode(&[FORMAT, 0xFF, 0xFF]), None);
    }
}

//! The registry's durable state in sled.
//!
//! Trees (keys use `\0` separators; names never contain it):
//! - `meta`:      `revision` -> u64 BE, bumped once per applied change set.
//! - `objects`:   project \0 kind-tag \0 name \0 version BE u32 -> `RegistryObject` (every version, forever).
//! - `heads`:     project \0 kind-tag \0 name -> `RegistryObject` (the latest version, or its deletion record).
//! - `changes`:   revision BE u64 -> `WatchEvent` (what each revision changed, for Watch replay).
//! - `consumers`: project \0 consumer \0 target -> last seen, unix micros BE i64.
//!
//! One apply is one sled transaction over `meta`, `objects`, `heads` and `changes`, guarded by
//! the revision, then flushed before it is acknowledged.

use std::path::Path;

use prost::Message;
use quiver_proto::registry::{RegistryObject, WatchEvent};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::definition::Kind;
use crate::error::RegistryError;

const REVISION: &[u8] = b"revision";

/// The registry's storage.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    objects: sled::Tree,
    heads: sled::Tree,
    changes: sled::Tree,
    consumers: sled::Tree,
}

/// One consumer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The consumer (model) name.
    pub consumer: String,
    /// `service:NAME` or `feature:VIEW:FEATURE`.
    pub target: String,
    /// Last seen, unix microseconds.
    pub last_seen_micros: i64,
}

impl Store {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let db = sled::open(dir)?;
        Ok(Self {
            meta: db.open_tree("meta")?,
            objects: db.open_tree("objects")?,
            heads: db.open_tree("heads")?,
            changes: db.open_tree("changes")?,
            consumers: db.open_tree("consumers")?,
            db,
        })
    }

    /// The database, for tables kept beside the definitions (tokens).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The current registry revision (0 before the first apply).
    pub fn revision(&self) -> Result<u64, RegistryError> {
        Ok(self
            .meta
            .get(REVISION)?
            .map(|v| decode_u64(&v))
            .unwrap_or(0))
    }

    /// Every project with at least one object (live or deleted), sorted.
    pub fn projects(&self) -> Result<Vec<String>, RegistryError> {
        let mut projects: Vec<String> = Vec::new();
        for entry in self.heads.iter().keys() {
            let key = entry?;
            let project = key.split(|b| *b == 0).next().unwrap_or_default();
            let project = String::from_utf8_lossy(project).into_owned();
            if projects.last() != Some(&project) {
                projects.push(project);
            }
        }
        Ok(projects)
    }

    /// The head record of every object of `project` (live and deleted), in kind then name order.
    pub fn heads(&self, project: &str) -> Result<Vec<RegistryObject>, RegistryError> {
        let prefix = format!("{project}\0");
        self.heads
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// The head record of every object of every project.
    pub fn all_heads(&self) -> Result<Vec<RegistryObject>, RegistryError> {
        self.heads
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    /// One object's head record.
    pub fn head(
        &self,
        project: &str,
        kind: Kind,
        name: &str,
    ) -> Result<Option<RegistryObject>, RegistryError> {
        let key = head_key(project, kind, name);
        self.heads.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// One version of one object.
    pub fn version(
        &self,
        project: &str,
        kind: Kind,
        name: &str,
        version: u32,
    ) -> Result<Option<RegistryObject>, RegistryError> {
        let key = version_key(project, kind, name, version);
        self.objects
            .get(&key)?
            .map(|v| decode(&key, &v))
            .transpose()
    }

    /// The versions of one object, ascending.
    pub fn versions(
        &self,
        project: &str,
        kind: Kind,
        name: &str,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut prefix = head_key(project, kind, name);
        prefix.push(0);
        self.objects
            .scan_prefix(&prefix)
            .keys()
            .map(|key| {
                let key = key?;
                let tail: [u8; 4] = key[prefix.len()..]
                    .try_into()
                    .map_err(|_| corrupt(&key, "version suffix is not 4 bytes"))?;
                Ok(u32::from_be_bytes(tail))
            })
            .collect()
    }

    /// Atomically writes `event`'s objects as revision `event.revision`, provided the registry
    /// is still at `base_revision`. New versions go to `objects` and `heads`; deletion records
    /// only to `heads`. Durable when it returns.
    pub async fn commit(
        &self,
        base_revision: u64,
        event: &WatchEvent,
    ) -> Result<(), RegistryError> {
        // Keys and bytes are computed up front: a transaction closure may run more than once.
        let mut writes = Vec::with_capacity(event.objects.len());
        for object in &event.objects {
            let meta = object.meta.as_ref().ok_or_else(|| RegistryError::Corrupt {
                key: format!("revision {}", event.revision),
                reason: "an object to commit has no meta".into(),
            })?;
            let kind = Kind::from_pb(meta.kind).ok_or_else(|| RegistryError::Corrupt {
                key: format!("revision {}", event.revision),
                reason: format!("object {} has kind {}", meta.name, meta.kind),
            })?;
            let version =
                (!meta.deleted).then(|| version_key(&meta.project, kind, &meta.name, meta.version));
            writes.push((
                head_key(&meta.project, kind, &meta.name),
                version,
                object.encode_to_vec(),
            ));
        }
        let event_bytes = event.encode_to_vec();
        let result = (&self.meta, &self.objects, &self.heads, &self.changes).transaction(
            |(meta, objects, heads, changes)| {
                let current = meta.get(REVISION)?.map(|v| decode_u64(&v)).unwrap_or(0);
                if current != base_revision {
                    return Err(ConflictableTransactionError::Abort(
                        RegistryError::Conflict {
                            expected: base_revision,
                            current,
                        },
                    ));
                }
                for (head, version, bytes) in &writes {
                    if let Some(version) = version {
                        objects.insert(version.as_slice(), bytes.as_slice())?;
                    }
                    heads.insert(head.as_slice(), bytes.as_slice())?;
                }
                changes.insert(&event.revision.to_be_bytes(), event_bytes.as_slice())?;
                meta.insert(REVISION, &event.revision.to_be_bytes())?;
                Ok(())
            },
        );
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush_async().await?;
        Ok(())
    }

    /// Every change event after `revision`, ascending.
    pub fn changes_after(&self, revision: u64) -> Result<Vec<WatchEvent>, RegistryError> {
        let start = revision.saturating_add(1).to_be_bytes();
        self.changes
            .range(start..)
            .map(|entry| {
                let (key, value) = entry?;
                WatchEvent::decode(value.as_ref()).map_err(|e| corrupt(&key, &e.to_string()))
            })
            .collect()
    }

    /// Records (or refreshes) that `consumer` read `target` at `now_micros`.
    pub fn record_consumer(
        &self,
        project: &str,
        consumer: &str,
        target: &str,
        now_micros: i64,
    ) -> Result<(), RegistryError> {
        let key = format!("{project}\0{consumer}\0{target}");
        self.consumers
            .insert(key.as_bytes(), &now_micros.to_be_bytes())?;
        Ok(())
    }

    /// Every consumer record of `project`.
    pub fn consumers(&self, project: &str) -> Result<Vec<ConsumerRecord>, RegistryError> {
        let prefix = format!("{project}\0");
        self.consumers
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                let text = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let (consumer, target) = text
                    .split_once('\0')
                    .ok_or_else(|| corrupt(&key, "consumer key has no target"))?;
                let micros: [u8; 8] = value
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt(&key, "last-seen is not 8 bytes"))?;
                Ok(ConsumerRecord {
                    consumer: consumer.to_string(),
                    target: target.to_string(),
                    last_seen_micros: i64::from_be_bytes(micros),
                })
            })
            .collect()
    }
}

fn head_key(project: &str, kind: Kind, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(project.len() + name.len() + 3);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.push(kind.tag());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

fn version_key(project: &str, kind: Kind, name: &str, version: u32) -> Vec<u8> {
    let mut key = head_key(project, kind, name);
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn decode(key: &[u8], value: &[u8]) -> Result<RegistryObject, RegistryError> {
    RegistryObject::decode(value).map_err(|e| corrupt(key, &e.to_string()))
}

fn corrupt(key: &[u8], reason: &str) -> RegistryError {
    RegistryError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        reason: reason.to_string(),
    }
}

//! The offline store's files. The online store's leader exports what the Raft log admitted
//! (and what it kept out) as Parquet files in an object store; the snapshot service reads them.
//! Both sides meet here: how a store is opened from a URL ([`store`]), where files go and how
//! they are named from the log range they hold ([`layout`]), and the Parquet form of an exported
//! row ([`event_file`], [`quarantine_file`], over the value conversions in [`columns`]).

pub mod column_read;
pub mod columns;
pub mod event_file;
pub mod layout;
pub mod quarantine_file;
pub mod store;

pub use layout::{FileRange, Partition};
pub use object_store::path::Path;
pub use store::{Lake, LakeError};

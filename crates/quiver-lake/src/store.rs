//! Opening the offline store from a URL: a local directory (a path or `file://`) or an
//! S3-compatible bucket (`s3://bucket/prefix`, endpoint and credentials from the standard
//! `AWS_*` environment variables, e.g. `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// An offline-store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The store URL is not usable.
    #[error("offline store {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The object store failed.
    #[error("offline store: {0}")]
    Store(#[from] object_store::Error),
    /// A file could not be written or read as Parquet.
    #[error("offline file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl LakeError {
    /// Whether a file was not there: listed, then deleted by compaction before it was read.
    /// Readers list again and retry.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Store(object_store::Error::NotFound { .. }))
    }
}

/// An opened offline store: the object store and the root every path is under.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Lake {
    /// Opens the store at `url` (a local directory is created if missing).
    pub fn open(url: &str) -> Result<Self, LakeError> {
        let bad = |reason: String| LakeError::Url {
            url: url.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Err(bad(
                    "no bucket in the URL (expected s3://bucket[/prefix])".into()
                ));
            }
            let mut builder = AmazonS3Builder::from_env().with_url(url);
            // An explicit http:// endpoint (a local S3-compatible server) implies plain HTTP.
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            let prefix = rest[bucket.len()..].trim_matches('/');
            let s3 = builder.build().map_err(|e| bad(e.to_string()))?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            if dir.is_empty() || dir.contains("://") {
                return Err(bad(
                    "expected a directory, file:///dir or s3://bucket/prefix".into(),
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create: {e}")))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_automatic_cleanup(true),
            )
        };
        Ok(Self {
            store,
            url: url.to_string(),
        })
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes `bytes` at `path`, atomically: readers see the whole file or none of it (a local
    /// write goes to a temporary file and is renamed; an S3 PUT is atomic).
    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads the whole file at `path`.
    pub async fn get(&self, path: &Path) -> Result<Bytes, LakeError> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Reads bytes `range` of the file at `path`.
    pub async fn get_range(&self, path: &Path, range: Range<u64>) -> Result<Bytes, LakeError> {
        Ok(self.store.get_range(path, range).await?)
    }

    /// Reads several byte ranges of the file at `path` (nearby ones in one request).
    pub async fn get_ranges(
        &self,
        path: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, LakeError> {
        Ok(self.store.get_ranges(path, ranges).await?)
    }

    /// Deletes `path` (a missing file is not an error: deletes are retried).
    pub async fn delete(&self, path: &Path) -> Result<(), LakeError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every file under `prefix`, with its size.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<(Path, u64)>, LakeError> {
        let objects: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        Ok(objects.into_iter().map(|o| (o.location, o.size)).collect())
    }
}

//! Where blob bytes live: the local file system (the default, no setup) or an S3-compatible
//! object store, behind the one `ObjectStore` trait of the `object_store` crate.
//!
//! An object's key is `{organization}/{first two digits}/{sha256}`: the organization is part of
//! the name, so the same bytes uploaded by two organizations are two objects, and no id of one
//! organization names an object of another. The database row (`blobs`) is what makes a blob
//! exist for the API; an object without its row (a crash between the two writes) is invisible
//! and is overwritten, byte for byte, by the next upload of the same content.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

use hestami_core::blob::Sha256Hex;
use hestami_core::ids::OrganizationId;

use crate::error::StoreError;

/// A place for blob bytes.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    description: String,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        code: "BLOB_STORE_UNAVAILABLE",
        message: format!("the blob store did not answer: {e}"),
    }
}

impl BlobStore {
    /// Blobs under `dir` on the local file system (created if missing).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!("cannot create the blob directory {dir:?}: {e}"))
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StoreError::Config(format!("blob directory {dir:?}: {e}")))?;
        Ok(Self {
            inner: Arc::new(fs),
            description: format!("file://{}", dir.display()),
        })
    }

    /// Blobs in an S3-compatible bucket. `url` is `s3://BUCKET` with optional query parameters
    /// `endpoint` (for a store other than AWS, such as MinIO or Ceph), `region` and
    /// `allowHttp=true`; credentials come from the standard `AWS_*` environment variables.
    pub fn s3(url: &str) -> Result<Self, StoreError> {
        Self::s3_with(url, None)
    }

    /// [`BlobStore::s3`] with the access key id and secret given rather than read from the
    /// environment (for an embedding program that keeps them elsewhere).
    pub fn s3_with_keys(url: &str, key_id: &str, secret: &str) -> Result<Self, StoreError> {
        Self::s3_with(url, Some((key_id, secret)))
    }

    fn s3_with(url: &str, keys: Option<(&str, &str)>) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Config(format!("not an s3:// URL: {url}")))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() {
            return Err(StoreError::Config("the S3 URL names no bucket".into()));
        }
        // reqwest is built without a default TLS provider: the one process-wide choice is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some((key_id, secret)) = keys {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match key {
                "endpoint" => builder.with_endpoint(value),
                "region" => builder.with_region(value),
                "allowHttp" => builder.with_allow_http(value == "true"),
                other => {
                    return Err(StoreError::Config(format!(
                        "unknown S3 URL parameter {other:?} (endpoint, region, allowHttp)"
                    )));
                }
            };
        }
        let s3 = builder
            .build()
            .map_err(|e| StoreError::Config(format!("S3 blob store: {e}")))?;
        Ok(Self {
            inner: Arc::new(s3),
            description: format!("s3://{bucket}"),
        })
    }

    /// `file://DIR` (or a plain path) or `s3://BUCKET?…`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("s3://") {
            Self::s3(url)
        } else {
            Self::local(url.strip_prefix("file://").unwrap_or(url))
        }
    }

    /// Where the bytes go, for logs (no credentials).
    pub fn describe(&self) -> &str {
        &self.description
    }

    fn key(org: OrganizationId, sha: &Sha256Hex) -> Path {
        let digits = sha.as_str();
        Path::from(format!("{org}/{}/{digits}", &digits[..2]))
    }

    /// Stores the bytes of a blob (replacing an object of the same name, which holds the same
    /// bytes).
    pub(crate) async fn put(
        &self,
        org: OrganizationId,
        sha: &Sha256Hex,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        self.inner
            .put(&Self::key(org, sha), bytes.into())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Whether the store holds the blob's bytes.
    pub(crate) async fn exists(
        &self,
        org: OrganizationId,
        sha: &Sha256Hex,
    ) -> Result<bool, StoreError> {
        match self.inner.head(&Self::key(org, sha)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The bytes of a blob, or `None` when the store has no such object.
    pub(crate) async fn get(
        &self,
        org: OrganizationId,
        sha: &Sha256Hex,
    ) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&Self::key(org, sha)).await {
            Ok(found) => found.bytes().await.map(Some).map_err(unavailable),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl crate::Store {
    /// The key that signs download links: made once per database by whichever process needs it
    /// first, then read by every process (so a link made by one is honoured by all).
    pub(crate) async fn link_key(&self) -> Result<Vec<u8>, StoreError> {
        self.link_key
            .get_or_try_init(|| async {
                use crate::db::args;
                let read = "SELECT secret FROM server_keys WHERE name = 'download_links'";
                let mut tx = self.shared(false).await?;
                let found = tx.fetch_optional(read, args![]).await?;
                tx.commit().await?;
                if let Some(row) = found {
                    return Ok(row.get::<String>("secret")?.into_bytes());
                }
                // The first process to need it makes it; a concurrent first keeps the other's.
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| {
                    StoreError::Internal(format!("no randomness for the link key: {e}"))
                })?;
                let fresh = Sha256Hex::from_digest(&fresh);
                let mut tx = self.shared(true).await?;
                tx.execute(
                    "INSERT INTO server_keys (name, secret) VALUES ('download_links', $1) \
                     ON CONFLICT (name) DO NOTHING",
                    args![fresh.as_str()],
                )
                .await?;
                let row = tx.fetch_one(read, args![]).await?;
                tx.commit().await?;
                Ok(row.get::<String>("secret")?.into_bytes())
            })
            .await
            .cloned()
    }
}

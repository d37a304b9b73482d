//! Throw-away databases for tests, on either backend.
//!
//! PostgreSQL tests read `HESTAMI_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When the server cannot be reached they are
//! skipped, unless `HESTAMI_REQUIRE_POSTGRES=1` (as in CI), where they fail.

use std::path::PathBuf;

use crate::db::Backend;
use crate::error::StoreError;
use crate::store::{Store, derive_app_url};

/// The PostgreSQL URL tests use.
pub fn postgres_url() -> String {
    std::env::var("HESTAMI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL tests must run (and so fail when the server is unreachable).
pub fn postgres_required() -> bool {
    std::env::var("HESTAMI_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh, migrated database that is removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    backend: Backend,
    /// The owner's URL (migrations, admin).
    pub owner_url: String,
    /// The URL the server uses (`hestami_app` on PostgreSQL).
    pub app_url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh SQLite database in a temporary file.
    pub async fn sqlite() -> Result<Self, StoreError> {
        let path =
            std::env::temp_dir().join(format!("hestami-test-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        Store::migrate(&url).await?;
        Ok(Self {
            backend: Backend::Sqlite,
            owner_url: url.clone(),
            app_url: url,
            cleanup: Cleanup::File(path),
        })
    }

    /// A fresh PostgreSQL database on the test server, or `None` when the server cannot be
    /// reached and PostgreSQL is not required.
    ///
    /// # Panics
    /// When PostgreSQL is required (`HESTAMI_REQUIRE_POSTGRES=1`) and cannot be reached.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_url();
        let name = format!("hestami_t_{}", uuid::Uuid::new_v4().simple());
        let created = async {
            let pool = sqlx::PgPool::connect(&admin_url).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await?;
            pool.close().await;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        if let Err(e) = created {
            assert!(
                !postgres_required(),
                "PostgreSQL is required but unreachable at {admin_url}: {e}"
            );
            eprintln!("skipping PostgreSQL test: {e}");
            return None;
        }
        let owner_url = replace_database(&admin_url, &name);
        if let Err(e) = Store::migrate(&owner_url).await {
            panic!("migrating the test database failed: {e}");
        }
        let app_url = derive_app_url(&owner_url).unwrap_or_else(|e| panic!("{e}"));
        Some(Self {
            backend: Backend::Postgres,
            owner_url,
            app_url,
            cleanup: Cleanup::Database { admin_url, name },
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Database { admin_url, name } => {
                // Drop runs inside the test's runtime; a runtime of our own on a plain thread
                // avoids blocking it.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&pool)
                            .await;
                            pool.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

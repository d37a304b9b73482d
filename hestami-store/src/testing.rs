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

/// Fixtures that go through the real services: what an organization and a technician need
/// before work can be scheduled and assigned.
pub mod fixtures {
    use chrono::NaiveDate;
    use rust_decimal::Decimal;
    use std::collections::BTreeSet;

    use hestami_core::area::{AreaKind, ServiceArea};
    use hestami_core::compliance::{InsuranceKind, Jurisdiction, License, LicenseStatus};
    use hestami_core::customer::{CountryCode, PostalCode};
    use hestami_core::ids::TechnicianId;
    use hestami_core::text::{Name, TradeCode};
    use hestami_core::workforce::{ShiftSpan, Weekday, WeeklyShifts};

    use crate::app::contractor::{ContractorCommand, NewInsurance, NewLicense};
    use crate::app::workforce::{TechnicianDetail, WorkforceCommand};
    use crate::app::{Caller, Command, Request, Services, decode_output};
    use crate::engine::fingerprint;
    use crate::error::StoreError;

    /// Submits `command` with a fresh idempotency key and decodes its output; a recorded refusal
    /// comes back as [`StoreError::Failure`]. For fixtures, benchmarks and examples: requests from
    /// clients carry their own key.
    pub async fn submit<C: Command, T: serde::de::DeserializeOwned>(
        services: &Services,
        caller: &Caller,
        command: C,
    ) -> Result<T, StoreError> {
        let key = uuid::Uuid::new_v4();
        let request = Request {
            idempotency_key: key,
            fingerprint: fingerprint(&serde_json::to_value(&command)?),
            trace_id: None,
            command,
        };
        let completed = services.submit(caller, request).await?;
        match completed.outcome {
            Ok(text) => decode_output(&text),
            Err(failure) => Err(StoreError::Failure(failure)),
        }
    }

    fn invalid(e: hestami_core::Invalid) -> StoreError {
        StoreError::Internal(format!("fixture value refused: {e}"))
    }

    /// Makes the organization compliant for `trades` in `country`/`region` until 2040 (a
    /// verified licence per trade and general liability of 2,000,000 per occurrence) and gives
    /// it service areas covering `postal_codes`.
    pub async fn make_ready(
        services: &Services,
        caller: &Caller,
        country: &str,
        region: &str,
        trades: &[&str],
        postal_codes: &[&str],
    ) -> Result<(), StoreError> {
        let country = CountryCode::parse(country).map_err(invalid)?;
        let jurisdiction = Jurisdiction::parse(country, Some(region), None).map_err(invalid)?;
        let from = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
        let until = NaiveDate::from_ymd_opt(2040, 12, 31).unwrap_or_default();
        for trade in trades {
            let license: License = submit(
                services,
                caller,
                ContractorCommand::AddLicense(NewLicense {
                    trade: TradeCode::parse(trade).map_err(invalid)?,
                    jurisdiction: jurisdiction.clone(),
                    number: Name::parse(&format!("{}-0001", trade.to_uppercase()))
                        .map_err(invalid)?,
                    issued_on: Some(from),
                    expires_on: until,
                    document_ref: None,
                }),
            )
            .await?;
            let _: License = submit(
                services,
                caller,
                ContractorCommand::VerifyLicense {
                    license_id: license.id,
                    status: LicenseStatus::Verified,
                    expected_version: None,
                },
            )
            .await?;
        }
        let _: serde_json::Value = submit(
            services,
            caller,
            ContractorCommand::AddInsurance(NewInsurance {
                kind: InsuranceKind::GeneralLiability,
                carrier: Name::parse("Acme Mutual").map_err(invalid)?,
                policy_number: Name::parse("GL-1").map_err(invalid)?,
                per_occurrence_limit: Decimal::from(2_000_000),
                aggregate_limit: Decimal::from(4_000_000),
                effective_on: from,
                expires_on: until,
                certificate_ref: None,
                additional_insureds: Vec::new(),
            }),
        )
        .await?;
        let codes = postal_codes
            .iter()
            .map(|c| PostalCode::parse(c))
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(invalid)?;
        let _: serde_json::Value = submit(
            services,
            caller,
            ContractorCommand::SetServiceAreas {
                areas: vec![ServiceArea::new(
                    AreaKind::PostalCodes {
                        postal_codes: codes,
                    },
                    vec![],
                )],
            },
        )
        .await?;
        Ok(())
    }

    /// Gives a technician shifts around the clock, every day, from 2020 on.
    pub async fn around_the_clock(
        services: &Services,
        caller: &Caller,
        technician_id: TechnicianId,
    ) -> Result<TechnicianDetail, StoreError> {
        let spans = Weekday::ALL
            .iter()
            .map(|d| ShiftSpan::parse(*d, "00:00", "24:00"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let shifts = WeeklyShifts::parse(
            NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
            spans,
        )
        .map_err(invalid)?;
        submit(
            services,
            caller,
            WorkforceCommand::SetShifts {
                technician_id,
                shifts,
            },
        )
        .await
    }
}

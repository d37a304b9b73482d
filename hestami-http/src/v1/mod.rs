//! Version 1 of the wire contract: one module per namespace, each with its DTOs, conversions
//! and procedure declarations. The DTOs are frozen once `v1.0.0` is released; the domain types
//! underneath may change, and the conversions here absorb it.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query};

pub mod attachment;
pub mod auth;
pub mod contractor;
pub mod customer;
pub mod dispatch;
pub mod documents;
pub mod estimate;
pub mod feed;
pub mod form;
pub mod inventory;
pub mod invoice;
pub mod job;
pub mod maintenance;
pub mod members;
pub mod money;
pub mod notification;
pub mod org;
pub mod plan;
pub mod pricebook;
pub mod procurement;
pub mod sync;
pub mod technician;
pub mod webhook;
pub mod workflow;
pub mod workorder;

/// Every v1 procedure.
pub fn procedures() -> Vec<Procedure> {
    [
        auth::procedures(),
        org::procedures(),
        contractor::procedures(),
        customer::procedures(),
        technician::procedures(),
        job::procedures(),
        dispatch::procedures(),
        plan::procedures(),
        pricebook::procedures(),
        estimate::procedures(),
        invoice::procedures(),
        workflow::procedures(),
        feed::procedures(),
        sync::procedures(),
        attachment::procedures(),
        form::procedures(),
        documents::procedures(),
        notification::procedures(),
        webhook::procedures(),
        members::procedures(),
        inventory::procedures(),
        procurement::procedures(),
        maintenance::procedures(),
        workorder::procedures(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An empty input: `{}` (or `{}` with nothing but unknown fields refused).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A body passed on untouched (its schema is the wrapped procedure's).
#[derive(Debug, serde::Deserialize, ToSchema)]
struct RawObject(serde_json::Value);

/// The same procedure as `inner` (name, workflow, input, idempotency), whose rendered output is
/// finished by `finish` with the request's context: for what the recorded outcome does not hold,
/// such as the organization's currency. `finish` must be deterministic for a replay to render
/// the same body.
pub(crate) fn then_render<O, F, Fut>(inner: Procedure, finish: F) -> Procedure
where
    O: Serialize + DeserializeOwned + ToSchema + 'static,
    F: Fn(Ctx, O) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ApiError>> + Send + 'static,
{
    let name = Name {
        namespace: inner.namespace,
        version: inner.version,
        name: inner.name,
        summary: inner.summary,
        errors: inner.errors,
    };
    let (workflow, input, org_scoped) = (inner.workflow, inner.input, inner.org_scoped);
    let inner = Arc::new(inner);
    let finish = Arc::new(finish);
    let mut wrapped = query(name, move |ctx: Ctx, raw: RawObject| {
        let inner = inner.clone();
        let finish = finish.clone();
        async move {
            let body = serde_json::to_vec(&raw.0).map_err(|e| ApiError::internal(&e))?;
            let rendered = inner.call(ctx.clone(), body.into()).await?;
            let output: O =
                serde_json::from_slice(&rendered).map_err(|e| ApiError::internal(&e))?;
            finish(ctx, output).await
        }
    });
    wrapped.workflow = workflow;
    wrapped.input = input;
    wrapped.org_scoped = org_scoped;
    wrapped
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use hestami_core::org::{Currency, OrgKind, TimeZone};
    use hestami_core::text::{Email, OrgName};
    use hestami_store::app::{Caller, Services};
    use hestami_store::directory::NewOrganization;
    use hestami_store::engine::EngineConfig;
    use hestami_store::testing::TestDb;
    use hestami_store::{Store, StoreOptions};

    use super::*;
    use crate::rpc::Ctx;

    struct World {
        ctx: Ctx,
        _db: TestDb,
    }

    async fn world() -> World {
        let db = TestDb::sqlite().await.expect("a SQLite test database");
        let admin = Store::connect(&db.owner_url, StoreOptions::default())
            .await
            .expect("connect as owner");
        let created = admin
            .create_organization(NewOrganization {
                name: OrgName::parse("Org").expect("valid"),
                kind: OrgKind::Contractor,
                time_zone: TimeZone::parse("America/Chicago").expect("valid"),
                currency: Currency::parse("USD").expect("valid"),
                owner_email: Email::parse("owner@example.com").expect("valid"),
            })
            .await
            .expect("an organization");
        let app = Store::connect(&db.app_url, StoreOptions::default())
            .await
            .expect("connect");
        let services =
            Services::new(app, EngineConfig::default()).with_wait(Duration::from_secs(20));
        let caller = Caller {
            organization_id: created.organization_id,
            user_id: Some(created.user_id),
            scope: Default::default(),
        };
        World {
            ctx: Ctx {
                services,
                user_id: Some(created.user_id),
                token: None,
                caller: Some(caller),
                role: Some(hestami_core::org::Role::Owner),
                peer: None,
                trace_id: "0".repeat(32),
                limiter: None,
            },
            _db: db,
        }
    }

    impl World {
        async fn raw(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
            let p = procedures()
                .into_iter()
                .find(|p| p.path() == path)
                .unwrap_or_else(|| panic!("{path} is a procedure"));
            let bytes = p
                .call(
                    self.ctx.clone(),
                    serde_json::to_vec(body).expect("valid").into(),
                )
                .await?;
            Ok(serde_json::from_slice(&bytes).expect("valid"))
        }

        async fn ok(&self, path: &str, mut body: Value) -> Value {
            if procedures()
                .iter()
                .any(|p| p.path() == path && p.workflow.is_some())
            {
                body["idempotencyKey"] = json!(uuid::Uuid::new_v4());
            }
            match self.raw(path, &body).await {
                Ok(v) => v,
                Err(e) => panic!("{path}: {e:?}"),
            }
        }
    }

    #[tokio::test]
    async fn contractor_workforce_and_eligibility_round_trip() {
        let w = world().await;

        // Insurance renders the organization's currency, and a replay is byte-identical.
        let body = json!({ "idempotencyKey": uuid::Uuid::new_v4(), "kind": "general_liability",
            "carrier": "Acme", "policyNumber": "GL-1", "perOccurrenceLimit": "1000000.00",
            "aggregateLimit": "2000000", "effectiveOn": "2020-01-01", "expiresOn": "2099-12-31" });
        let first = w
            .raw("contractor/v1/addInsurance", &body)
            .await
            .expect("valid");
        assert_eq!(first["currency"], "USD");
        assert_eq!(first["perOccurrenceLimit"], "1000000.00");
        assert_eq!(
            w.raw("contractor/v1/addInsurance", &body)
                .await
                .expect("valid"),
            first
        );
        let bad = json!({ "idempotencyKey": uuid::Uuid::new_v4(), "kind": "bond",
            "carrier": "Acme", "policyNumber": "B-1", "perOccurrenceLimit": "1e6",
            "aggregateLimit": "-3", "effectiveOn": "2020-01-01", "expiresOn": "2019-12-31" });
        let err = w
            .raw("contractor/v1/addInsurance", &bad)
            .await
            .expect_err("refused");
        let fields: Vec<_> = err
            .field_errors
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("perOccurrenceLimit", "invalid_amount"),
                ("aggregateLimit", "invalid_amount"),
                ("expiresOn", "before_effective"),
            ]
        );

        let license = w
            .ok(
                "contractor/v1/addLicense",
                json!({ "trade": "plumbing", "jurisdiction": { "country": "US", "region": "IL" },
                        "number": "PL-1", "expiresOn": "2099-12-31" }),
            )
            .await;
        assert_eq!(license["status"], "pending");
        let verified = w
            .ok(
                "contractor/v1/verifyLicense",
                json!({ "licenseId": license["id"], "status": "verified" }),
            )
            .await;
        assert_eq!(verified["status"], "verified");
        let creds = w.ok("contractor/v1/listCredentials", json!({})).await;
        assert_eq!(creds["insurance"][0]["currency"], "USD");

        let areas = w
            .ok(
                "contractor/v1/setServiceAreas",
                json!({ "areas": [{ "kind": "postalCodes", "postalCodes": ["60601"] },
                    { "kind": "polygon", "geojson": { "type": "Polygon",
                      "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]] } },
                    { "kind": "radius", "center": { "lat": 41.9, "lon": -87.6 }, "radiusKm": 30, "trades": ["hvac"] }] }),
            )
            .await;
        assert_eq!(areas["version"], 1);
        assert_eq!(areas["areas"][1]["geojson"]["type"], "MultiPolygon");
        assert_eq!(
            w.ok("contractor/v1/getServiceAreas", json!({})).await,
            areas
        );
        let requirements = w.ok("contractor/v1/getRequirements", json!({})).await;
        assert_eq!(requirements["version"], 0);
        let status = w.ok("contractor/v1/complianceStatus", json!({})).await;
        assert!(status["trades"].is_array(), "{status}");
        w.ok("contractor/v1/listExpiring", json!({ "withinDays": 30 }))
            .await;

        let customer = w.ok("customer/v1/create", json!({ "name": "Ada" })).await;
        let property = w
            .ok(
                "customer/v1/addProperty",
                json!({ "customerId": customer["id"], "address": { "line1": "1 Main St", "city": "Chicago",
                        "region": "IL", "postalCode": "60601", "country": "US" } }),
            )
            .await;
        let tech = w
            .ok(
                "technician/v1/create",
                json!({ "name": "Grace", "trades": ["plumbing"] }),
            )
            .await;
        let id = tech["id"].clone();
        w.ok(
            "technician/v1/setSkills",
            json!({ "technicianId": id, "skills": [{ "trade": "plumbing", "level": 3 }] }),
        )
        .await;
        let weekly: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| json!({ "weekday": d, "start": "00:00", "end": "24:00" }))
            .collect();
        w.ok(
            "technician/v1/setShifts",
            json!({ "technicianId": id, "effectiveFrom": "2020-01-01", "weekly": weekly }),
        )
        .await;
        w.ok(
            "technician/v1/addCertification",
            json!({ "technicianId": id, "name": "Backflow", "issuer": "City", "expiresOn": "2099-01-01" }),
        )
        .await;
        let profile = w
            .ok(
                "technician/v1/setHomeBase",
                json!({ "technicianId": id, "homeBase": { "lat": 41.88, "lon": -87.63 }, "dailyCapacity": 4 }),
            )
            .await;
        assert_eq!(profile["dailyCapacity"], 4);
        assert_eq!(profile["skills"][0]["level"], 3);
        assert_eq!(profile["shifts"][0]["weekly"][0]["end"], "24:00");
        assert_eq!(
            w.ok("technician/v1/getProfile", json!({ "technicianId": id }))
                .await,
            profile
        );
        let missing = w
            .raw(
                "technician/v1/setHomeBase",
                &json!({ "idempotencyKey": uuid::Uuid::new_v4(), "technicianId": id }),
            )
            .await
            .expect_err("refused");
        assert_eq!(missing.field_errors[0].field, "homeBase");

        let start = chrono::Utc::now() + chrono::Duration::days(1);
        let end = start + chrono::Duration::hours(2);
        let spans = w
            .ok(
                "technician/v1/availability",
                json!({ "technicianId": id, "from": start, "to": end }),
            )
            .await;
        assert_eq!(spans["spans"][0]["reason"]["kind"], "free", "{spans}");

        let job = w
            .ok(
                "job/v1/create",
                json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                        "priority": "urgent", "summary": "Leak", "minSkillLevel": 4,
                        "requiredCertifications": ["backflow"] }),
            )
            .await;
        assert_eq!(job["minSkillLevel"], 4);
        let needs_window = w
            .raw("dispatch/v1/eligibleTechs", &json!({ "jobId": job["id"] }))
            .await
            .expect_err("refused");
        assert_eq!(needs_window.code, "JOB_WINDOW_REQUIRED");
        let half = w
            .raw(
                "dispatch/v1/eligibleTechs",
                &json!({ "jobId": job["id"], "windowStart": start }),
            )
            .await
            .expect_err("refused");
        assert_eq!(half.field_errors[0].field, "windowEnd");
        let candidates = w
            .ok(
                "dispatch/v1/eligibleTechs",
                json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
            )
            .await;
        let c = &candidates["candidates"][0];
        assert_eq!(c["eligible"], false, "{candidates}");
        let codes: Vec<_> = c["failedRules"]
            .as_array()
            .expect("valid")
            .iter()
            .map(|r| r["code"].as_str().expect("valid").to_owned())
            .collect();
        assert!(!codes.is_empty(), "{candidates}");
    }
}

//! `feed/v1/changes` over HTTP, on SQLite and on PostgreSQL: an integration pages the change feed
//! by position, sees every change once in order, sees only its organization's, and the field
//! role does not read it.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Tenant, TestServer};

both!(
    an_integration_pages_the_change_feed_in_order,
    the_feed_is_the_organizations_own_and_refuses_bad_input,
);

async fn changes(s: &TestServer, who: &Tenant, after: i64, limit: u32) -> Value {
    s.call_as(
        who,
        "feed/v1/changes",
        json!({ "after": after, "limit": limit }),
    )
    .await
    .ok()
}

async fn an_integration_pages_the_change_feed_in_order(s: TestServer) {
    let f = s.fixture().await;
    s.make_ready(&s.a).await;
    let job = s.job(&f).await;

    // Everything from the start, one page.
    let all = changes(&s, &s.a, 0, 200).await;
    let items = all["items"].as_array().unwrap();
    assert!(!all["more"].as_bool().unwrap());
    let seqs: Vec<i64> = items.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps: {seqs:?}"
    );
    assert_eq!(all["next"], json!(seqs.last().unwrap()));
    let find = |id: &Value| {
        items
            .iter()
            .find(|c| &c["entityId"] == id)
            .unwrap_or_else(|| panic!("{id} is in the feed: {all}"))
    };
    assert_eq!(find(&f.customer["id"])["entityKind"], "customer");
    let created = find(&job["id"]);
    assert_eq!(created["entityKind"], "job");
    assert_eq!(created["operation"], "created");
    assert_eq!(created["version"], 1);
    assert_eq!(created["actorUserId"], json!(s.a.user));
    assert!(created["workflowId"].is_string());

    // The same, one change a page: the same rows, in the same order, then nothing more.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = changes(&s, &s.a, after, 1).await;
        let page_items = page["items"].as_array().unwrap();
        if page_items.is_empty() {
            assert_eq!(
                page["next"],
                json!(after),
                "an empty page keeps the position"
            );
            assert!(!page["more"].as_bool().unwrap());
            break;
        }
        paged.push(page_items[0]["seq"].as_i64().unwrap());
        after = page["next"].as_i64().unwrap();
    }
    assert_eq!(paged, seqs);

    // A later change shows after the position kept.
    let (start, end) = TestServer::window();
    s.mutate(
        "job/v1/schedule",
        json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end, "expectedVersion": 1 }),
    )
    .await;
    let later = changes(&s, &s.a, after, 50).await;
    let transitioned = later["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["entityId"] == job["id"])
        .unwrap();
    assert_eq!(transitioned["version"], 2);
    assert_eq!(transitioned["operation"], "transitioned");
}

async fn the_feed_is_the_organizations_own_and_refuses_bad_input(s: TestServer) {
    s.fixture().await;
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    // Org B's feed holds its own creation and nothing of what org A did.
    let theirs = changes(&s, &b, 0, 200).await;
    let ids: Vec<&Value> = theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["entityId"])
        .collect();
    assert_eq!(ids, vec![&json!(b.org)], "{theirs}");
    // Org A's token asking for org B's feed is not a member there.
    let crossed = Tenant {
        org: b.org.clone(),
        ..s.a.clone()
    };
    s.call_as(&crossed, "feed/v1/changes", json!({}))
        .await
        .assert_error(403, "NOT_A_MEMBER");
    // A technician sees their own work through sync/v1/pull, not the organization's feed.
    let technician = Tenant {
        token: s.member(&s.a, "tech@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.call_as(&technician, "feed/v1/changes", json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    let viewer = Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    let seen = changes(&s, &viewer, 0, 200).await;
    assert!(!seen["items"].as_array().unwrap().is_empty());
    // Bad input names its field.
    for (body, field) in [
        (json!({ "after": -1 }), "after"),
        (json!({ "limit": 0 }), "limit"),
        (json!({ "limit": 201 }), "limit"),
    ] {
        let refused = s.call("feed/v1/changes", body).await;
        refused.assert_error(400, "VALIDATION_FAILED");
        assert_eq!(
            refused.json["field_errors"][0]["field"], field,
            "{refused:?}"
        );
    }
}

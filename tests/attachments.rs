//! Photos, documents and signatures over HTTP, on SQLite and on PostgreSQL: the blob path
//! (content-addressed, typed by its bytes, limited in size, private to its organization and,
//! for a technician, to their work), attachments, signed download links, and the customer's
//! signature taken on completion and shown on the invoice.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Reply, Tenant, TestServer, key, sha};

both!(
    blobs_are_named_by_their_bytes_typed_by_their_bytes_and_kept_to_their_organization,
    attachments_follow_a_technicians_scope_and_links_expire_into_nothing,
    a_signature_taken_on_completion_is_on_the_job_and_its_invoice,
);

/// A small PNG-signed image with `salt` in it (distinct bytes, distinct blob).
fn png(salt: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(salt.as_bytes());
    bytes
}

fn pdf(salt: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {salt}\n").into_bytes()
}

async fn put(s: &TestServer, who: &Tenant, name: &str, bytes: Vec<u8>) -> Reply {
    s.put_blob(who, name, bytes).await
}

async fn get(s: &TestServer, who: Option<&Tenant>, path: &str) -> Reply {
    let mut request = s.http.get(format!("{}{path}", s.base));
    if let Some(who) = who {
        request = request
            .header("authorization", format!("Bearer {}", who.token))
            .header("x-organization-id", &who.org);
    }
    TestServer::reply(request.send().await.unwrap()).await
}

fn attach(sha: &str, to: &str, id: &Value, kind: &str) -> Value {
    json!({ "idempotencyKey": key(), "sha256": sha, "attachedTo": to, "subjectId": id, "kind": kind })
}

async fn job(s: &TestServer, f: &support::Fixture) -> Value {
    s.mutate(
        "job/v1/create",
        json!({ "customerId": f.customer["id"], "propertyId": f.property["id"],
                "trade": "plumbing", "priority": "routine", "summary": "Fix the tap" }),
    )
    .await
}

/// A job with one visit led by `lead`.
async fn visit(s: &TestServer, f: &support::Fixture, lead: &Value) -> (Value, Value) {
    let j = job(s, f).await;
    let now = chrono::Utc::now();
    let schedule = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": j["id"], "windowStart": (now + chrono::Duration::hours(1)).to_rfc3339(),
                    "windowEnd": (now + chrono::Duration::hours(3)).to_rfc3339(),
                    "leadTechnicianId": lead["id"] }),
        )
        .await;
    (j, schedule["appointments"][0].clone())
}

async fn blobs_are_named_by_their_bytes_typed_by_their_bytes_and_kept_to_their_organization(
    s: TestServer,
) {
    let f = s.fixture().await;
    let photo = png("kitchen sink");
    let name = sha(&photo);

    // Stored once: the same bytes again are the same blob.
    let first = put(&s, &s.a, &name, photo.clone()).await;
    assert_eq!(first.status.as_u16(), 201, "{first:?}");
    assert_eq!(first.json["mediaType"], "image/png");
    assert_eq!(first.json["sizeBytes"], photo.len());
    let again = put(&s, &s.a, &name.to_uppercase(), photo.clone()).await;
    assert_eq!(again.status.as_u16(), 200, "{again:?}");
    assert_eq!(again.json["sha256"], name.as_str());
    assert_eq!(again.json["createdAt"], first.json["createdAt"]);

    // The name must be the bytes' digest; the type must be on the allowlist, whatever the name.
    let wrong = put(&s, &s.a, &sha(b"something else"), photo.clone()).await;
    wrong.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(wrong.json["field_errors"][0]["field"], "sha256");
    assert_eq!(wrong.json["field_errors"][0]["code"], "digest_mismatch");
    put(&s, &s.a, "photo.png", photo.clone())
        .await
        .assert_error(400, "VALIDATION_FAILED");
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let page_name = sha(&page);
    put(&s, &s.a, &page_name, page)
        .await
        .assert_error(400, "BLOB_TYPE_NOT_ALLOWED");
    get(&s, Some(&s.a), &format!("/api/v1/blobs/{page_name}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let huge = {
        let mut bytes = png("huge");
        bytes.resize(25 * 1024 * 1024 + 1, 0);
        bytes
    };
    let huge_name = sha(&huge);
    put(&s, &s.a, &huge_name, huge)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // Downloaded with its type, and nothing for the browser to guess.
    let got = get(&s, Some(&s.a), &format!("/api/v1/blobs/{name}")).await;
    assert_eq!(got.status.as_u16(), 200, "{got:?}");
    assert_eq!(got.bytes, photo);
    assert_eq!(got.headers["content-type"], "image/png");
    assert_eq!(got.headers["x-content-type-options"], "nosniff");
    get(&s, None, &format!("/api/v1/blobs/{name}"))
        .await
        .assert_error(401, "UNAUTHENTICATED");

    // Another organization knows nothing of it, even by its name, and keeps its own copy.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    get(&s, Some(&b), &format!("/api/v1/blobs/{name}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let j = job(&s, &f).await;
    s.call_as(
        &b,
        "attachment/v1/attach",
        attach(&name, "job", &j["id"], "photo"),
    )
    .await
    .assert_error(404, "BLOB_NOT_FOUND");
    assert_eq!(put(&s, &b, &name, photo.clone()).await.status.as_u16(), 201);
    s.call_as(
        &b,
        "attachment/v1/attach",
        attach(&name, "job", &j["id"], "photo"),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Attached with a caption and the device's time and place.
    let attached = s
        .call(
            "attachment/v1/attach",
            json!({ "idempotencyKey": key(), "sha256": name, "attachedTo": "job", "subjectId": j["id"],
                    "kind": "photo", "caption": "Under the sink",
                    "device": { "deviceTime": "2026-12-01T15:04:05Z",
                                "location": { "lat": 41.88, "lon": -87.63, "accuracyM": 8.0 } } }),
        )
        .await
        .ok();
    assert_eq!(attached["kind"], "photo");
    assert_eq!(attached["jobId"], j["id"]);
    assert_eq!(attached["caption"], "Under the sink");
    assert_eq!(attached["deviceTime"], "2026-12-01T15:04:05Z");
    assert_eq!(attached["mediaType"], "image/png");
    let listed = s
        .call(
            "attachment/v1/list",
            json!({ "attachedTo": "job", "subjectId": j["id"] }),
        )
        .await
        .ok();
    assert_eq!(listed["attachments"].as_array().unwrap().len(), 1);
    s.call(
        "attachment/v1/attach",
        attach(&name, "job", &json!(uuid::Uuid::new_v4()), "photo"),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // Attached before its bytes are up: refused, and the same request (same key) goes through
    // once they are.
    let late = png("uploaded late");
    let early = attach(&sha(&late), "job", &j["id"], "photo");
    s.call("attachment/v1/attach", early.clone())
        .await
        .assert_error(404, "BLOB_NOT_FOUND");
    put(&s, &s.a, &sha(&late), late.clone()).await;
    s.call("attachment/v1/attach", early).await.ok();

    // Bytes lost with the store (a cleared directory) come back with the same upload.
    let object = std::env::temp_dir()
        .join("hestami-blobs")
        .join(&s.a.org)
        .join(&sha(&late)[..2])
        .join(sha(&late));
    std::fs::remove_file(&object).unwrap();
    get(&s, Some(&s.a), &format!("/api/v1/blobs/{}", sha(&late)))
        .await
        .assert_error(500, "INTERNAL");
    assert_eq!(
        put(&s, &s.a, &sha(&late), late.clone())
            .await
            .status
            .as_u16(),
        200
    );
    let back = get(&s, Some(&s.a), &format!("/api/v1/blobs/{}", sha(&late))).await;
    assert_eq!(back.bytes, late);

    // A PDF is a document, not a photo; a signature needs its printed name, and a request
    // refused for its input alone may be corrected under the same key.
    let doc = pdf("permit");
    assert_eq!(
        put(&s, &s.a, &sha(&doc), doc.clone()).await.status.as_u16(),
        201
    );
    s.call(
        "attachment/v1/attach",
        attach(&sha(&doc), "job", &j["id"], "photo"),
    )
    .await
    .assert_error(422, "ATTACHMENT_TYPE_MISMATCH");
    let mut unsigned = attach(&name, "job", &j["id"], "signature");
    let refused = s.call("attachment/v1/attach", unsigned.clone()).await;
    refused.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(refused.json["field_errors"][0]["field"], "signedBy");
    unsigned["signedBy"] = json!("Ada Lovelace");
    let signed = s.call("attachment/v1/attach", unsigned).await.ok();
    assert_eq!(signed["signedBy"], "Ada Lovelace");
}

async fn attachments_follow_a_technicians_scope_and_links_expire_into_nothing(s: TestServer) {
    let f = s.fixture().await;
    let other = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Linus", "trades": ["plumbing"] }),
        )
        .await;
    let other = s.around_the_clock(&other).await;
    let me = Tenant {
        token: s.member(&s.a, "grace@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&me, &f.tech).await;
    let (mine, my_visit) = visit(&s, &f, &f.tech).await;
    let (theirs, _) = visit(&s, &f, &other).await;

    // The office attaches a plan to each job.
    let (plan_mine, plan_theirs) = (pdf("mine"), pdf("theirs"));
    for (bytes, j) in [(&plan_mine, &mine), (&plan_theirs, &theirs)] {
        put(&s, &s.a, &sha(bytes), bytes.clone()).await;
        s.call(
            "attachment/v1/attach",
            attach(&sha(bytes), "job", &j["id"], "document"),
        )
        .await
        .ok();
    }
    // The technician reads what is attached to their work, and nothing else.
    let got = get(&s, Some(&me), &format!("/api/v1/blobs/{}", sha(&plan_mine))).await;
    assert_eq!(got.bytes, plan_mine);
    get(
        &s,
        Some(&me),
        &format!("/api/v1/blobs/{}", sha(&plan_theirs)),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &me,
        "attachment/v1/list",
        json!({ "attachedTo": "job", "subjectId": theirs["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let listed = s
        .call_as(
            &me,
            "attachment/v1/list",
            json!({ "attachedTo": "job", "subjectId": mine["id"] }),
        )
        .await
        .ok();
    assert_eq!(listed["attachments"][0]["kind"], "document");

    // Their photo goes on their visit, never on someone else's job.
    let photo = png("meter");
    assert_eq!(
        put(&s, &me, &sha(&photo), photo.clone())
            .await
            .status
            .as_u16(),
        201
    );
    let on_visit = s
        .call_as(
            &me,
            "attachment/v1/attach",
            attach(&sha(&photo), "appointment", &my_visit["id"], "photo"),
        )
        .await
        .ok();
    assert_eq!(on_visit["jobId"], mine["id"]);
    s.call_as(
        &me,
        "attachment/v1/attach",
        attach(&sha(&photo), "job", &theirs["id"], "photo"),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // Nor can they reach someone else's plan by attaching its name to their own work.
    s.call_as(
        &me,
        "attachment/v1/attach",
        attach(&sha(&plan_theirs), "job", &mine["id"], "document"),
    )
    .await
    .assert_error(404, "BLOB_NOT_FOUND");
    // A viewer may look but not upload.
    let viewer = Tenant {
        token: s.member(&s.a, "viewer@example.com", Role::Viewer).await,
        ..s.a.clone()
    };
    put(&s, &viewer, &sha(&photo), photo.clone())
        .await
        .assert_error(403, "FORBIDDEN");

    // A signed link works without a token, for that blob of that organization only.
    let link = s
        .call_as(
            &me,
            "attachment/v1/downloadLink",
            json!({ "attachmentId": on_visit["id"] }),
        )
        .await
        .ok();
    let url = link["url"].as_str().unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(link["expiresAt"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((13..=15).contains(&minutes), "{minutes}");
    let by_link = get(&s, None, url).await;
    assert_eq!(by_link.status.as_u16(), 200, "{by_link:?}");
    assert_eq!(by_link.bytes, photo);
    let tampered = url.replace("&signature=", "&signature=0");
    get(&s, None, &tampered[..tampered.len() - 1])
        .await
        .assert_error(404, "NOT_FOUND");
    let other_blob = url.replace(&sha(&photo), &sha(&plan_theirs));
    get(&s, None, &other_blob)
        .await
        .assert_error(404, "NOT_FOUND");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let other_org = url.replace(&s.a.org, &b.org);
    get(&s, None, &other_org)
        .await
        .assert_error(404, "NOT_FOUND");
    // An expiry in the past (and one moved into the future) is refused.
    let (base, query) = url.split_once('?').unwrap();
    let parts: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').unwrap())
        .collect();
    let with_expiry = |expires: i64| {
        let q: Vec<String> = parts
            .iter()
            .map(|(k, v)| {
                if *k == "expires" {
                    format!("expires={expires}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!("{base}?{}", q.join("&"))
    };
    let now = chrono::Utc::now().timestamp();
    get(&s, None, &with_expiry(now - 1))
        .await
        .assert_error(404, "NOT_FOUND");
    get(&s, None, &with_expiry(now + 86_400))
        .await
        .assert_error(404, "NOT_FOUND");
    // Without a signature it is no link: a token is needed.
    get(&s, None, &format!("{base}?expires={now}"))
        .await
        .assert_error(401, "UNAUTHENTICATED");
    get(&s, None, &format!("{base}?signature=00"))
        .await
        .assert_error(404, "NOT_FOUND");
    // A technician cannot get a link to what they cannot see.
    let theirs_listed = s
        .call(
            "attachment/v1/list",
            json!({ "attachedTo": "job", "subjectId": theirs["id"] }),
        )
        .await
        .ok();
    s.call_as(
        &me,
        "attachment/v1/downloadLink",
        json!({ "attachmentId": theirs_listed["attachments"][0]["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn a_signature_taken_on_completion_is_on_the_job_and_its_invoice(s: TestServer) {
    let f = s.fixture().await;
    let me = Tenant {
        token: s.member(&s.a, "grace@example.com", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&me, &f.tech).await;
    let (j, v) = visit(&s, &f, &f.tech).await;
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": v["id"], "action": "dispatch" }),
    )
    .await;
    for action in ["start_travel", "arrive", "finish"] {
        s.call_as(
            &me,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": v["id"], "action": action }),
        )
        .await
        .ok();
    }
    let ink = png("A. Lovelace");
    // Completed (offline) before the signature's bytes were uploaded: refused without spending
    // the key; the same request goes through once they are up (below).
    let signed_early = json!({ "idempotencyKey": key(), "jobId": j["id"],
        "signature": { "sha256": sha(&ink), "signedBy": "Ada Lovelace",
                       "device": { "deviceTime": "2026-12-01T17:00:00Z",
                                   "location": { "lat": 41.88, "lon": -87.63 } } } });
    s.call_as(&me, "job/v2/complete", signed_early.clone())
        .await
        .assert_error(404, "BLOB_NOT_FOUND");
    put(&s, &me, &sha(&ink), ink.clone()).await;
    let complete = |signature: Value| json!({ "idempotencyKey": key(), "jobId": j["id"], "signature": signature });
    // A signature needs an image and a printed name; the refusal names the field.
    let nameless = s
        .call_as(
            &me,
            "job/v2/complete",
            complete(json!({ "sha256": sha(&ink), "signedBy": " " })),
        )
        .await;
    nameless.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        nameless.json["field_errors"][0]["field"],
        "signature.signedBy"
    );
    let doc = pdf("not a signature");
    put(&s, &me, &sha(&doc), doc.clone()).await;
    s.call_as(
        &me,
        "job/v2/complete",
        complete(json!({ "sha256": sha(&doc), "signedBy": "Ada Lovelace" })),
    )
    .await
    .assert_error(422, "ATTACHMENT_TYPE_MISMATCH");
    let job_now = s.call("job/v2/get", json!({ "jobId": j["id"] })).await.ok();
    assert_eq!(
        job_now["job"]["status"], "in_progress",
        "a refused completion changes nothing"
    );

    let done = s.call_as(&me, "job/v2/complete", signed_early).await.ok();
    assert_eq!(done["job"]["status"], "completed");
    let on_job = s
        .call(
            "attachment/v1/list",
            json!({ "attachedTo": "job", "subjectId": j["id"] }),
        )
        .await
        .ok();
    let signature = &on_job["attachments"][0];
    assert_eq!(signature["kind"], "signature");
    assert_eq!(signature["signedBy"], "Ada Lovelace");
    assert_eq!(signature["deviceTime"], "2026-12-01T17:00:00Z");
    assert_eq!(signature["location"]["lat"], 41.88);

    let invoice = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": j["id"], "from": { "from": "lines", "lines":
                [{ "description": "Service call", "kind": "service", "unitPrice": "120.00", "quantity": "1" }] } }),
        )
        .await;
    assert!(invoice.get("signature").is_none());
    let shown = s
        .call("invoice/v1/get", json!({ "invoiceId": invoice["id"] }))
        .await
        .ok();
    assert_eq!(shown["signature"]["id"], signature["id"]);
    assert_eq!(shown["signature"]["signedBy"], "Ada Lovelace");
    // The invoice's PDF says who signed (its content streams are plain text).
    let document = s
        .call("invoice/v1/pdf", json!({ "invoiceId": invoice["id"] }))
        .await
        .ok();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(document["contentBase64"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("(Signed by Ada Lovelace on "), "{text}");
    assert!(text.contains(&sha(&ink)[..16]), "{text}");
}

/// A real S3-compatible server (moto, from PyPI) on a free port, with one bucket; stopped when
/// dropped. `None` (the test is skipped with a note) when moto is not installed, unless
/// `HESTAMI_REQUIRE_S3` or `CI` is set: then its absence fails the test.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server(bucket: &str) -> Option<S3Server> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawned = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let required =
        std::env::var_os("HESTAMI_REQUIRE_S3").is_some() || std::env::var_os("CI").is_some();
    let child = match spawned {
        Ok(child) => child,
        Err(e) if !required => {
            eprintln!("skipped: cannot start moto ({e}); pip install 'moto[server]'");
            return None;
        }
        Err(e) => panic!("cannot start moto: {e}"),
    };
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http
            .put(format!("{}/{bucket}", server.endpoint))
            .send()
            .await
            && r.status().is_success()
        {
            return Some(server);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!required, "moto did not start on {}", server.endpoint);
    eprintln!("skipped: moto did not start (pip install 'moto[server]')");
    None
}

async fn blobs_in_s3(backend: support::Backend) {
    let Some(s3) = s3_server("hestami-test").await else {
        return;
    };
    // moto accepts any credentials.
    let store = hestami::store::blobs::BlobStore::s3_with_keys(
        &format!(
            "s3://hestami-test?endpoint={}&region=us-east-1&allowHttp=true",
            s3.endpoint
        ),
        "test-key",
        "test-secret",
    )
    .unwrap();
    let config = hestami::http::ServerConfig {
        blobs: store,
        ..Default::default()
    };
    let Some(s) =
        TestServer::start_with(backend, config, hestami::http::ConnectionLimits::default()).await
    else {
        return;
    };
    let f = s.fixture().await;
    let photo = png("in the bucket");
    let name = sha(&photo);
    assert_eq!(
        put(&s, &s.a, &name, photo.clone()).await.status.as_u16(),
        201
    );
    assert_eq!(
        put(&s, &s.a, &name, photo.clone()).await.status.as_u16(),
        200
    );
    // The object is in the bucket, under the organization's prefix (moto's own view of its
    // state, read without S3 credentials).
    let state = reqwest::get(format!("{}/moto-api/data.json", s3.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let object = format!("{}/{}/{name}", s.a.org, &name[..2]);
    assert!(state.contains(&object), "{object} not in {state}");

    let j = job(&s, &f).await;
    let attached = s
        .call(
            "attachment/v1/attach",
            attach(&name, "job", &j["id"], "photo"),
        )
        .await
        .ok();
    let got = get(&s, Some(&s.a), &format!("/api/v1/blobs/{name}")).await;
    assert_eq!(got.bytes, photo);
    let link = s
        .call(
            "attachment/v1/downloadLink",
            json!({ "attachmentId": attached["id"] }),
        )
        .await
        .ok();
    let by_link = get(&s, None, link["url"].as_str().unwrap()).await;
    assert_eq!(by_link.bytes, photo);
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    get(&s, Some(&b), &format!("/api/v1/blobs/{name}"))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_an_s3_compatible_store_sqlite() {
    blobs_in_s3(support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_an_s3_compatible_store_postgres() {
    blobs_in_s3(support::Backend::Postgres).await;
}

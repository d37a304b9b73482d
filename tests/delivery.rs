//! Delivery, end to end on SQLite and PostgreSQL: the outbox relay sending e-mail (with the
//! estimate's and the invoice's PDF) through a real SMTP server (aiosmtpd, from PyPI), retrying
//! while it is down, dead-lettering and re-driving; and webhooks posted from the change feed to
//! a real HTTP receiver that fails, times out and recovers.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::Duration as Span;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use hestami::store::app::delivery::{RelaySettings, RetryPolicy};
use hestami::store::app::webhooks::WebhookSettings;
use hestami::store::mail::Mailer;
use support::{Backend, Fixture, TestServer, key};

// ---------------------------------------------------------------------------------------------
// A real SMTP server.
// ---------------------------------------------------------------------------------------------

/// aiosmtpd (PyPI) storing what it receives in a maildir; stopped when dropped. `None` (the
/// test is skipped with a note) when it is not installed, unless `HESTAMI_REQUIRE_SMTP` or `CI`
/// is set: then its absence fails the test.
struct SmtpServer {
    child: Option<std::process::Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// A server's place (port and maildir), not yet started.
    fn reserve() -> Self {
        let dir = std::env::temp_dir().join(format!("hestami-mail-{}", uuid::Uuid::new_v4()));
        Self {
            child: None,
            port: free_port(),
            dir,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn required() -> bool {
        std::env::var_os("HESTAMI_REQUIRE_SMTP").is_some() || std::env::var_os("CI").is_some()
    }

    /// Whether aiosmtpd and pypdf are installed (or the test must fail without them).
    fn available() -> bool {
        let ok = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd, pypdf"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok || !Self::required(),
            "aiosmtpd and pypdf are needed: pip install aiosmtpd pypdf"
        );
        if !ok {
            eprintln!("skipped: pip install aiosmtpd pypdf");
        }
        ok
    }

    async fn start(&mut self) {
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                self.dir.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What arrived, as a mail reader sees it (tests/support/read_mail.py: headers, bodies,
    /// the PDF's text as pypdf extracts it).
    fn messages(&self) -> Vec<Value> {
        if !self.dir.join("new").exists() {
            return Vec::new();
        }
        let out = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/read_mail.py"
            ))
            .arg(&self.dir)
            .output()
            .expect("read the maildir");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }
}

/// Retries that fit in a test: 50 ms doubling to 200 ms.
fn quick(give_up_after: Span) -> RetryPolicy {
    RetryPolicy {
        first: Span::milliseconds(50),
        longest: Span::milliseconds(200),
        give_up_after,
    }
}

async fn relaying(backend: Backend, relay: RelaySettings) -> Option<TestServer> {
    TestServer::start_relaying(
        backend,
        hestami::http::ServerConfig::default(),
        hestami::http::ConnectionLimits::default(),
        relay,
    )
    .await
}

/// Runs relay passes until `done` holds (or fails after 15 s).
async fn until<F, Fut>(s: &TestServer, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        s.services.deliver_due().await.unwrap();
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn messages(s: &TestServer, status: Option<&str>) -> Vec<Value> {
    let mut body = json!({});
    if let Some(status) = status {
        body["status"] = json!(status);
    }
    s.call("notification/v1/messages", body).await.ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn all_settled(s: &TestServer) -> bool {
    messages(s, Some("pending")).await.is_empty()
}

/// Takes a requested job through scheduling, assignment and the visit to completed.
async fn complete(s: &TestServer, f: &Fixture, job: &Value) {
    s.schedule_and_assign(job, &f.tech).await;
    s.move_job(job, &support::TO_COMPLETED).await;
}

/// The fixture, with e-mail addresses for the organization and the customer, and Illinois's
/// sales tax on materials.
async fn setup(s: &TestServer) -> Fixture {
    let mut f = s.fixture().await;
    s.mutate(
        "contractor/v1/updateProfile",
        json!({ "contactEmail": "office@org-a.example", "legalName": "Org A Plumbing LLC" }),
    )
    .await;
    f.customer = s
        .mutate(
            "customer/v1/update",
            json!({ "customerId": f.customer["id"], "email": "ada@example.com" }),
        )
        .await;
    s.mutate(
        "pricebook/v1/setTaxRates",
        json!({ "rates": [{ "jurisdiction": { "country": "US", "region": "IL" },
                "name": "Illinois sales tax", "percent": "6.25",
                "taxable": { "service": false, "material": true, "labor": false,
                             "equipment": false } }], "expectedVersion": 0 }),
    )
    .await;
    f
}

/// An estimate of [`lines`] for `customer` at `property`, generated and sent.
async fn generate_and_send(
    s: &TestServer,
    customer: &Value,
    property: &Value,
    option: &str,
) -> Value {
    let estimate = s
        .mutate(
            "estimate/v1/generate",
            json!({ "customerId": customer["id"], "propertyId": property["id"],
                    "options": [{ "name": option, "lines": lines() }],
                    "validUntil": (chrono::Utc::now() + Span::days(14)).to_rfc3339() }),
        )
        .await;
    s.mutate("estimate/v1/send", json!({ "estimateId": estimate["id"] }))
        .await;
    estimate
}

fn lines() -> Value {
    json!([
        { "description": "Water heater install", "kind": "service", "unitPrice": "1249.99", "quantity": "1" },
        { "description": "Copper fitting", "kind": "material", "unitPrice": "3.333", "quantity": "7" },
    ])
}

// ---------------------------------------------------------------------------------------------
// E-mail.
// ---------------------------------------------------------------------------------------------

async fn email_with_documents(backend: Backend) {
    if !SmtpServer::available() {
        return;
    }
    let mut smtp = SmtpServer::reserve();
    let relay = RelaySettings {
        mailer: Some(Mailer::from_url(&smtp.url(), "Hestami <billing@hestami.test>").unwrap()),
        policy: quick(Span::hours(1)),
        ..Default::default()
    };
    let Some(s) = relaying(backend, relay).await else {
        return;
    };
    let f = setup(&s).await;

    // An estimate, sent while the SMTP server is down.
    let estimate = s
        .mutate(
            "estimate/v1/generate",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"],
                    "options": [{ "name": "Standard", "lines": lines() }],
                    "validUntil": (chrono::Utc::now() + Span::days(14)).to_rfc3339() }),
        )
        .await;
    let quote = estimate["options"][0]["quote"].clone();
    // 1249.99 + 7 × 3.333 = 23.331 → 23.33; tax 6.25 % of 23.33 = 1.458 → 1.46.
    assert_eq!(
        [&quote["subtotal"], &quote["taxTotal"], &quote["total"]],
        ["1273.32", "1.46", "1274.78"]
    );
    s.mutate("estimate/v1/send", json!({ "estimateId": estimate["id"] }))
        .await;
    let pending = messages(&s, Some("pending")).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["kind"], "estimate_sent");
    let message_id = pending[0]["id"].as_str().unwrap().to_owned();
    until(&s, "a failed attempt", || async {
        messages(&s, Some("pending")).await[0]["attempts"]
            .as_i64()
            .unwrap()
            >= 2
    })
    .await;
    let failing = &messages(&s, Some("pending")).await[0];
    assert!(
        failing["lastError"].as_str().unwrap().contains("SMTP"),
        "{failing}"
    );
    assert!(smtp.messages().is_empty());

    // The server comes up: the message arrives, once, with its PDF.
    smtp.start().await;
    until(&s, "the estimate's e-mail", || all_settled(&s)).await;
    for _ in 0..3 {
        s.services.deliver_due().await.unwrap();
    }
    let inbox = smtp.messages();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let mail = &inbox[0];
    assert_eq!(
        mail["messageId"],
        format!("<{message_id}@hestami.test>"),
        "the outbox row's id is the Message-ID"
    );
    assert_eq!(mail["to"], "Ada Lovelace <ada@example.com>");
    assert_eq!(mail["from"], "Org A <billing@hestami.test>");
    assert_eq!(mail["replyTo"], "Org A <office@org-a.example>");
    assert_eq!(mail["subject"], "Your estimate from Org A");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("Hello Ada Lovelace"), "{text}");
    assert!(text.contains("Standard: 1274.78 USD"), "{text}");
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("<p>Hello Ada Lovelace,</p>")
    );
    let pdf = &mail["attachments"][0];
    assert_eq!(pdf["contentType"], "application/pdf");
    assert_eq!(
        pdf["filename"],
        format!("estimate-{}-r1.pdf", estimate["id"].as_str().unwrap())
    );
    let pdf_text = pdf["text"].as_str().unwrap();
    for expected in [
        "Org A",
        "Org A Plumbing LLC",
        "office@org-a.example",
        "Ada Lovelace",
        "1 Main St",
        "Water heater install",
        "1249.99",
        "Copper fitting",
        "3.333",
        "23.33",
        "Subtotal",
        "1273.32",
        "Illinois sales tax 6.25% on 23.33",
        "1.46",
        "Total USD",
        "1274.78",
    ] {
        assert!(pdf_text.contains(expected), "{expected:?} in {pdf_text}");
    }
    let delivered = &messages(&s, Some("delivered")).await[0];
    assert_eq!(delivered["recipient"], "ada@example.com");
    assert!(delivered["attempts"].as_i64().unwrap() >= 3, "{delivered}");

    // The same PDF is downloadable.
    let download = s
        .call("estimate/v1/pdf", json!({ "estimateId": estimate["id"] }))
        .await
        .ok();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(download["contentBase64"].as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(download["sizeBytes"], bytes.len());
    assert_eq!(download["sha256"], support::sha(&bytes));

    // The organization's own template for receipts, with an escaped value in its HTML.
    let templates = s
        .mutate(
            "notification/v1/setTemplate",
            json!({ "kind": "payment_receipt", "expectedVersion": 0,
                    "template": { "subject": "Thanks, {{customerName}}: {{amount}} received",
                                  "text": "Invoice {{number}}: {{balance}} left.",
                                  "html": "<b>{{customerName}}</b> & {{organizationName}}" } }),
        )
        .await;
    assert_eq!(templates["version"], 1);
    let receipt = templates["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "payment_receipt")
        .unwrap();
    assert_eq!(receipt["isDefault"], false);
    s.call(
        "notification/v1/setTemplate",
        json!({ "idempotencyKey": key(), "kind": "payment_receipt", "expectedVersion": 1,
                "template": { "subject": "{{secret}}", "text": "x", "html": "x" } }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");

    // An invoice issued, then paid.
    let job = s.job(&f).await;
    complete(&s, &f, &job).await;
    let draft = s
        .mutate(
            "invoice/v1/create",
            json!({ "jobId": job["id"], "from": { "from": "lines", "lines": lines() } }),
        )
        .await;
    let issued = s
        .mutate("invoice/v1/issue", json!({ "invoiceId": draft["id"] }))
        .await;
    until(&s, "the invoice's e-mail", || all_settled(&s)).await;
    s.mutate(
        "invoice/v1/collectPayment",
        json!({ "invoiceId": issued["id"], "amount": "274.78", "method": "cash" }),
    )
    .await;
    until(&s, "the receipt", || all_settled(&s)).await;
    let inbox = smtp.messages();
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    let number = issued["number"].as_str().unwrap();
    assert_eq!(inbox[1]["subject"], format!("Invoice {number} from Org A"));
    let invoice_pdf = inbox[1]["attachments"][0]["text"].as_str().unwrap();
    for expected in [
        format!("Invoice {number}"),
        "Total USD".to_owned(),
        "1274.78".to_owned(),
        "Balance due USD: 1274.78".to_owned(),
    ] {
        assert!(
            invoice_pdf.contains(&expected),
            "{expected:?} in {invoice_pdf}"
        );
    }
    assert_eq!(
        inbox[2]["subject"],
        "Thanks, Ada Lovelace: 274.78 USD received"
    );
    assert_eq!(
        inbox[2]["text"].as_str().unwrap().trim(),
        format!("Invoice {number}: 1000.00 USD left.")
    );
    assert!(
        inbox[2]["html"]
            .as_str()
            .unwrap()
            .contains("<b>Ada Lovelace</b> & Org A")
    );
    let receipt_pdf = inbox[2]["attachments"][0]["text"].as_str().unwrap();
    assert!(
        receipt_pdf.contains("Balance due USD: 1000.00"),
        "{receipt_pdf}"
    );

    // A visit booked, then the crew on its way.
    let job = s.job(&f).await;
    let now = chrono::Utc::now();
    let booked = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": job["id"], "windowStart": (now + Span::hours(1)).to_rfc3339(),
                    "windowEnd": (now + Span::hours(3)).to_rfc3339(), "leadTechnicianId": f.tech["id"] }),
        )
        .await;
    let visit = booked["appointments"][0].clone();
    for action in ["dispatch", "start_travel"] {
        s.mutate(
            "job/v2/moveAppointment",
            json!({ "appointmentId": visit["id"], "action": action }),
        )
        .await;
    }
    until(&s, "the visit's e-mails", || all_settled(&s)).await;
    let inbox = smtp.messages();
    assert_eq!(inbox.len(), 5, "{inbox:?}");
    assert_eq!(inbox[3]["subject"], "Your visit from Org A is booked");
    assert!(inbox[3]["text"].as_str().unwrap().contains(" and "));
    assert_eq!(inbox[4]["subject"], "Org A is on the way");
    assert!(
        inbox[4]["text"]
            .as_str()
            .unwrap()
            .contains("Grace from Org A is on the way"),
        "{}",
        inbox[4]["text"]
    );

    // Another organization sees none of it.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    let theirs = s
        .call_as(&b, "notification/v1/messages", json!({}))
        .await
        .ok();
    assert_eq!(theirs["items"], json!([]));
    s.call_as(
        &b,
        "estimate/v1/pdf",
        json!({ "estimateId": estimate["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "notification/v1/redrive",
        json!({ "idempotencyKey": key(), "messageIds": [message_id] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn dead_letters_and_redrive(backend: Backend) {
    if !SmtpServer::available() {
        return;
    }
    let mut smtp = SmtpServer::reserve();
    // Given up at the first failure.
    let relay = RelaySettings {
        mailer: Some(Mailer::from_url(&smtp.url(), "billing@hestami.test").unwrap()),
        policy: quick(Span::zero()),
        ..Default::default()
    };
    let Some(s) = relaying(backend, relay).await else {
        return;
    };
    let f = setup(&s).await;
    generate_and_send(&s, &f.customer, &f.property, "Standard").await;
    until(&s, "a dead letter", || async {
        messages(&s, Some("dead")).await.len() == 1
    })
    .await;
    let dead = messages(&s, Some("dead")).await[0].clone();
    assert_eq!(dead["attempts"], 1);
    assert!(dead["deadAt"].is_string());

    // A message that is not dead cannot be re-driven; nor can an unknown one.
    s.call(
        "notification/v1/redrive",
        json!({ "idempotencyKey": key(), "messageIds": [uuid::Uuid::new_v4()] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call(
        "notification/v1/redrive",
        json!({ "idempotencyKey": key(), "messageIds": [dead["id"], dead["id"]] }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    // A technician may not.
    let tech = s
        .member(
            &s.a,
            "tech@example.com",
            hestami::core::org::Role::Technician,
        )
        .await;
    let as_tech = support::Tenant {
        token: tech,
        ..s.a.clone()
    };
    s.call_as(
        &as_tech,
        "notification/v1/redrive",
        json!({ "idempotencyKey": key(), "messageIds": [dead["id"]] }),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // The operator re-drives it once the server is back: it arrives, once.
    smtp.start().await;
    let redrive = json!({ "idempotencyKey": key(), "messageIds": [dead["id"]] });
    let redriven = s
        .call("notification/v1/redrive", redrive.clone())
        .await
        .ok();
    assert_eq!(redriven["messages"][0]["status"], "pending");
    // The same request again is the same answer, not a second re-drive.
    assert_eq!(
        s.call("notification/v1/redrive", redrive).await.ok(),
        redriven
    );
    until(&s, "the re-driven e-mail", || all_settled(&s)).await;
    assert_eq!(smtp.messages().len(), 1);
    let delivered = messages(&s, Some("delivered")).await;
    assert_eq!(delivered[0]["attempts"], 2);
    s.call(
        "notification/v1/redrive",
        json!({ "idempotencyKey": key(), "messageIds": [dead["id"]] }),
    )
    .await
    .assert_error(409, "MESSAGE_NOT_DEAD");

    // A customer without an address: dead at once, with the reason.
    let nobody = s
        .mutate("customer/v1/create", json!({ "name": "No Mail" }))
        .await;
    let property = s
        .mutate(
            "customer/v1/addProperty",
            json!({ "customerId": nobody["id"], "address": { "line1": "2 Oak St", "city": "Chicago",
                    "region": "IL", "postalCode": "60601", "country": "US" } }),
        )
        .await;
    generate_and_send(&s, &nobody, &property, "Standard").await;
    until(&s, "a refused message", || async {
        messages(&s, Some("dead")).await.len() == 1
    })
    .await;
    let refused = &messages(&s, Some("dead")).await[0];
    assert_eq!(refused["lastError"], "the customer has no e-mail address");
}

/// Two processes' relays over one database send each message once.
async fn two_relays_send_each_message_once(backend: Backend) {
    if !SmtpServer::available() {
        return;
    }
    let mut smtp = SmtpServer::reserve();
    smtp.start().await;
    let relay = RelaySettings {
        mailer: Some(Mailer::from_url(&smtp.url(), "billing@hestami.test").unwrap()),
        policy: quick(Span::hours(1)),
        ..Default::default()
    };
    let Some(s) = relaying(backend, relay.clone()).await else {
        return;
    };
    let f = setup(&s).await;
    let other = hestami::store::app::Services::new(
        hestami::store::Store::connect(&s.db.app_url, Default::default())
            .await
            .unwrap(),
        hestami::store::engine::EngineConfig {
            executor_id: "second".into(),
            ..Default::default()
        },
    )
    .with_relay(relay);
    let mut ids = Vec::new();
    for k in 0..8 {
        let estimate =
            generate_and_send(&s, &f.customer, &f.property, &format!("Option {k}")).await;
        ids.push(estimate["id"].as_str().unwrap().to_owned());
    }
    for _ in 0..150 {
        let (a, b) = tokio::join!(s.services.deliver_due(), other.deliver_due());
        a.unwrap();
        b.unwrap();
        if all_settled(&s).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all_settled(&s).await);
    let inbox = smtp.messages();
    assert_eq!(inbox.len(), 8, "{inbox:?}");
    let mut message_ids: Vec<&str> = inbox
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    message_ids.dedup();
    assert_eq!(message_ids.len(), 8);
    // One customer's messages arrive in the order they were decided.
    let options: Vec<String> = inbox
        .iter()
        .map(|m| {
            let text = m["text"].as_str().unwrap();
            text[text.find("Option ").unwrap()..][..8].to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..8).map(|k| format!("Option {k}")).collect();
    assert_eq!(options, expected);
}

/// Without a channel, messages wait, pending and untouched; a server started later with one
/// (after `ensure_timers`, which repairs any timer lost) sends them.
async fn messages_wait_for_a_channel(backend: Backend) {
    if !SmtpServer::available() {
        return;
    }
    let Some(s) = relaying(backend, RelaySettings::default()).await else {
        return;
    };
    let f = setup(&s).await;
    generate_and_send(&s, &f.customer, &f.property, "Standard").await;
    // A relay without a channel leaves messages to one that has one: nothing is attempted.
    assert_eq!(s.services.deliver_due().await.unwrap(), 0);
    let waiting = messages(&s, Some("pending")).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["attempts"], 0);
    assert!(waiting[0]["lastError"].is_null(), "{waiting:?}");

    let mut smtp = SmtpServer::reserve();
    smtp.start().await;
    let restarted = hestami::store::app::Services::new(
        hestami::store::Store::connect(&s.db.app_url, Default::default())
            .await
            .unwrap(),
        hestami::store::engine::EngineConfig::default(),
    )
    .with_relay(RelaySettings {
        mailer: Some(Mailer::from_url(&smtp.url(), "billing@hestami.test").unwrap()),
        policy: quick(Span::hours(1)),
        ..Default::default()
    });
    restarted.ensure_timers().await.unwrap();
    assert_eq!(restarted.deliver_due().await.unwrap(), 1);
    assert!(all_settled(&s).await);
    let inbox = smtp.messages();
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        inbox[0]["messageId"],
        format!("<{}@hestami.test>", waiting[0]["id"].as_str().unwrap())
    );
}

/// An SMTP server that accepts the connection and then says nothing: the attempt fails after
/// the mailer's limit and is retried; the relay is not held.
async fn a_stalled_smtp_server_does_not_hold_the_relay(backend: Backend) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let relay = RelaySettings {
        mailer: Some(
            Mailer::from_url(&url, "billing@hestami.test")
                .unwrap()
                .with_timeout(Duration::from_millis(500)),
        ),
        policy: quick(Span::hours(1)),
        ..Default::default()
    };
    let Some(s) = relaying(backend, relay).await else {
        return;
    };
    let f = setup(&s).await;
    generate_and_send(&s, &f.customer, &f.property, "Standard").await;
    let pass = tokio::time::timeout(Duration::from_secs(20), s.services.deliver_due()).await;
    assert!(pass.is_ok(), "the pass waited on a silent server");
    let pending = messages(&s, Some("pending")).await;
    assert_eq!(pending[0]["attempts"], 1, "{pending:?}");
    assert!(
        pending[0]["lastError"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{pending:?}"
    );
    assert!(!held.lock().unwrap().is_empty(), "the relay connected");
}

// ---------------------------------------------------------------------------------------------
// Webhooks.
// ---------------------------------------------------------------------------------------------

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Fail,
    Hang,
    Accept,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    accepted: bool,
}

/// What the receiver's handler shares: how to answer, and what it got.
type Shared = (Arc<Mutex<Mode>>, Arc<Mutex<Vec<Received>>>);

/// A real HTTP server (axum on a loopback port) that fails, hangs past the webhook timeout or
/// accepts, as told.
#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Received>>>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let mode = Arc::new(Mutex::new(Mode::Fail));
        let got = Arc::new(Mutex::new(Vec::new()));
        let state = (mode.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(
                |axum::extract::State((mode, got)): axum::extract::State<Shared>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let mode = *mode.lock().unwrap();
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    got.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: body.to_vec(),
                        accepted: mode == Mode::Accept,
                    });
                    match mode {
                        Mode::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            axum::http::StatusCode::OK
                        }
                        Mode::Accept => axum::http::StatusCode::NO_CONTENT,
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app.with_state(state)).await.unwrap();
        });
        Self { mode, got, url }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.accepted).collect()
    }
}

/// Verifies a Standard Webhooks signature header against `secret`, independently of the
/// server's code: HMAC-SHA256 over `id.timestamp.body` with the base64-decoded secret.
fn signed_by(r: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.signature.split(' ').any(|s| s == expected)
}

fn seq_of(r: &Received) -> i64 {
    serde_json::from_slice::<Value>(&r.body).unwrap()["data"]["seq"]
        .as_i64()
        .unwrap()
}

async fn webhooks_survive_a_receiver_outage(backend: Backend) {
    let receiver = Receiver::start().await;
    let relay = RelaySettings {
        policy: quick(Span::hours(1)),
        webhooks: WebhookSettings {
            allow_loopback: true,
            timeout: Duration::from_millis(500),
            poll: Span::zero(),
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(s) = relaying(backend, relay).await else {
        return;
    };
    let created = s
        .mutate(
            "webhook/v1/create",
            json!({ "url": receiver.url, "eventTypes": ["customer.*"] }),
        )
        .await;
    let subscription = created["subscription"].clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(subscription["active"], true);

    // Changes while the receiver fails: customers (wanted) and a technician (not wanted).
    let mut customers = Vec::new();
    for k in 0..5 {
        customers.push(
            s.mutate(
                "customer/v1/create",
                json!({ "name": format!("Customer {k}") }),
            )
            .await,
        );
        if k == 2 {
            s.mutate(
                "technician/v1/create",
                json!({ "name": "Grace", "trades": ["plumbing"] }),
            )
            .await;
        }
    }
    until(&s, "three failed attempts", || async {
        receiver.got().len() >= 3
    })
    .await;
    // Then it hangs past the timeout, then recovers.
    receiver.set(Mode::Hang);
    let before = receiver.got().len();
    until(&s, "a timed-out attempt", || async {
        receiver.got().len() > before
    })
    .await;
    receiver.set(Mode::Accept);
    until(&s, "every event", || async {
        receiver.accepted().len() >= 5
    })
    .await;
    for _ in 0..5 {
        s.services.deliver_due().await.unwrap();
    }

    // Every customer change once, in feed order, signed; the technician's change not at all.
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 5, "{accepted:?}");
    let seqs: Vec<i64> = accepted.iter().map(seq_of).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (r, customer) in accepted.iter().zip(&customers) {
        assert!(signed_by(r, &secret), "{r:?}");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "customer.created");
        assert_eq!(body["data"]["entityId"], customer["id"]);
        assert_eq!(body["data"]["entityKind"], "customer");
    }
    // Every attempt at the first event carried the same id.
    let first = &accepted[0].id;
    let attempts = receiver.got().iter().filter(|r| &r.id == first).count();
    assert!(attempts >= 5, "{attempts} attempts");
    assert!(first.starts_with("msg_"));

    // The delivery log says what happened.
    let log = s
        .call(
            "webhook/v1/deliveries",
            json!({ "subscriptionId": subscription["id"], "seq": seqs[0] }),
        )
        .await
        .ok();
    let log = log["items"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|d| d["statusCode"] == 500 && d["outcome"] == "retry")
    );
    assert!(
        log.iter()
            .any(|d| d["statusCode"].is_null()
                && d["detail"].as_str().unwrap().contains("no answer"))
    );
    assert_eq!(log.last().unwrap()["outcome"], "delivered");
    assert_eq!(log.last().unwrap()["messageId"], json!(first));
    let state = s
        .call(
            "webhook/v1/get",
            json!({ "subscriptionId": subscription["id"] }),
        )
        .await
        .ok();
    assert_eq!(state["attempts"], 0);
    assert!(state["deliveredThrough"].as_i64().unwrap() >= *seqs.last().unwrap());

    // A new secret: for a day, both signatures.
    let rotated = s
        .mutate(
            "webhook/v1/rotateSecret",
            json!({ "subscriptionId": subscription["id"] }),
        )
        .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    s.mutate("customer/v1/create", json!({ "name": "Customer 5" }))
        .await;
    until(&s, "the event after the rotation", || async {
        receiver.accepted().len() == 6
    })
    .await;
    let last = receiver.accepted().pop().unwrap();
    assert!(signed_by(&last, &new_secret) && signed_by(&last, &secret));

    // Re-delivery from the third event: it and every later one again, same ids, in order.
    s.mutate(
        "webhook/v1/redeliver",
        json!({ "subscriptionId": subscription["id"], "fromSeq": seqs[2] }),
    )
    .await;
    until(&s, "the re-delivered events", || async {
        receiver.accepted().len() == 10
    })
    .await;
    let again: Vec<String> = receiver.accepted()[6..]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let originally: Vec<String> = receiver.accepted()[2..6]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(again, originally);

    // Pausing stops delivery; nothing is posted while paused.
    let paused = s
        .mutate(
            "webhook/v1/update",
            json!({ "subscriptionId": subscription["id"], "active": false }),
        )
        .await;
    assert_eq!(paused["active"], false);
    s.mutate("customer/v1/create", json!({ "name": "Customer 6" }))
        .await;
    for _ in 0..3 {
        s.services.deliver_due().await.unwrap();
    }
    assert_eq!(receiver.accepted().len(), 10);

    // Resumed while its receiver fails, then pointed elsewhere: the new URL starts afresh.
    receiver.set(Mode::Fail);
    s.mutate(
        "webhook/v1/update",
        json!({ "subscriptionId": subscription["id"], "active": true }),
    )
    .await;
    let get = json!({ "subscriptionId": subscription["id"] });
    until(&s, "two failures after resuming", || async {
        s.call("webhook/v1/get", get.clone()).await.ok()["attempts"]
            .as_i64()
            .unwrap()
            >= 2
    })
    .await;
    let moved = s
        .mutate(
            "webhook/v1/update",
            json!({ "subscriptionId": subscription["id"], "url": format!("{}?v=2", receiver.url) }),
        )
        .await;
    assert_eq!(
        [
            &moved["attempts"],
            &moved["failingSince"],
            &moved["lastError"]
        ],
        [&json!(0), &Value::Null, &Value::Null],
        "{moved}"
    );

    // Another organization's ids are not found; a technician may not subscribe.
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "webhook/v1/get",
        json!({ "subscriptionId": subscription["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    s.call_as(
        &b,
        "webhook/v1/redeliver",
        json!({ "idempotencyKey": key(), "subscriptionId": subscription["id"], "fromSeq": 1 }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let tech = s
        .member(
            &s.a,
            "tech@example.com",
            hestami::core::org::Role::Technician,
        )
        .await;
    let as_tech = support::Tenant {
        token: tech,
        ..s.a.clone()
    };
    s.call_as(
        &as_tech,
        "webhook/v1/create",
        json!({ "idempotencyKey": key(), "url": receiver.url, "eventTypes": ["*"] }),
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

/// Addresses are checked again at every connection, by a process whose settings are strict,
/// and a retried `create` is answered from its record even where its URL would now be refused.
async fn webhook_addresses_are_checked_again_when_delivering(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.set(Mode::Accept);
    let lenient = RelaySettings {
        policy: quick(Span::hours(1)),
        webhooks: WebhookSettings {
            allow_loopback: true,
            timeout: Duration::from_millis(500),
            poll: Span::zero(),
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(s) = relaying(backend, lenient).await else {
        return;
    };
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let create =
        json!({ "idempotencyKey": key(), "url": receiver.url, "eventTypes": ["customer.*"] });
    let literal = s.call("webhook/v1/create", create.clone()).await.ok();
    let named = s
        .mutate(
            "webhook/v1/create",
            json!({ "url": by_name, "eventTypes": ["customer.*"] }),
        )
        .await;
    // Another process over the same database, allowing public addresses only.
    let strict = hestami::store::app::Services::new(
        hestami::store::Store::connect(&s.db.app_url, Default::default())
            .await
            .unwrap(),
        hestami::store::engine::EngineConfig {
            executor_id: "strict".into(),
            ..Default::default()
        },
    )
    .with_relay(RelaySettings {
        policy: quick(Span::hours(1)),
        webhooks: WebhookSettings {
            timeout: Duration::from_millis(500),
            poll: Span::zero(),
            ..Default::default()
        },
        ..Default::default()
    });
    s.mutate("customer/v1/create", json!({ "name": "Someone" }))
        .await;
    strict.deliver_due().await.unwrap();
    assert!(
        receiver.got().is_empty(),
        "a strict relay posted to loopback"
    );
    for (created, expected) in [
        (&literal, "127.0.0.1 is not a public address"),
        (&named, "resolves to no public address"),
    ] {
        let state = s
            .call(
                "webhook/v1/get",
                json!({ "subscriptionId": created["subscription"]["id"] }),
            )
            .await
            .ok();
        assert_eq!(state["attempts"], 1, "{state}");
        let error = state["lastError"].as_str().unwrap();
        assert!(error.contains(expected), "{error}");
    }

    // The strict process answers a retry of the first create from its record.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = hestami::http::router(hestami::http::AppState::new(
        strict,
        hestami::http::ServerConfig::default(),
    ));
    tokio::spawn(hestami::http::serve_with(
        listener,
        router,
        hestami::http::ConnectionLimits::default(),
        std::future::pending::<()>(),
    ));
    let replay = s
        .http
        .post(format!("{base}/api/v1/rpc/webhook/v1/create"))
        .bearer_auth(&s.a.token)
        .header("X-Organization-Id", &s.a.org)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["subscription"]["id"], literal["subscription"]["id"]);
    // A new request with that URL is refused there.
    let fresh = s
        .http
        .post(format!("{base}/api/v1/rpc/webhook/v1/create"))
        .bearer_auth(&s.a.token)
        .header("X-Organization-Id", &s.a.org)
        .json(&json!({ "idempotencyKey": key(), "url": receiver.url, "eventTypes": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 400);
}

/// Private, loopback and link-local targets are refused unless the operator allows them; bad
/// input is refused by field, without spending the key.
async fn webhook_targets_and_input(s: TestServer) {
    for (url, code) in [
        ("http://127.0.0.1:9/hooks", "address_not_allowed"),
        ("http://10.0.0.5/hooks", "address_not_allowed"),
        ("http://169.254.169.254/latest", "address_not_allowed"),
        ("http://[::1]/hooks", "address_not_allowed"),
        ("http://localhost/hooks", "address_not_allowed"),
        ("ftp://example.com/hooks", "invalid_url"),
        ("https://user:pw@example.com/hooks", "invalid_url"),
        ("https://nonexistent.invalid/hooks", "unresolvable_host"),
    ] {
        let reply = s
            .call(
                "webhook/v1/create",
                json!({ "idempotencyKey": key(), "url": url, "eventTypes": ["*"] }),
            )
            .await;
        reply.assert_error(400, "VALIDATION_FAILED");
        assert_eq!(reply.json["field_errors"][0]["field"], "url", "{url}");
        assert_eq!(reply.json["field_errors"][0]["code"], code, "{url}");
    }
    let same = key();
    let reply = s
        .call(
            "webhook/v1/create",
            json!({ "idempotencyKey": same, "url": "http://10.0.0.5/x", "eventTypes": ["job", "job.moved"] }),
        )
        .await;
    reply.assert_error(400, "VALIDATION_FAILED");
    let fields: Vec<&str> = reply.json["field_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["eventTypes[0]", "eventTypes[1]"]);
    // The key was not spent: the same key with a good body is a new request.
    let receiver = Receiver::start().await;
    let reply = s
        .call(
            "webhook/v1/create",
            json!({ "idempotencyKey": same, "url": receiver.url, "eventTypes": ["*"] }),
        )
        .await;
    // Still refused here (this server does not allow loopback), by the address this time.
    assert_eq!(reply.json["field_errors"][0]["code"], "address_not_allowed");
}

both!(webhook_targets_and_input);

each_backend!(
    two_relays_send_each_message_once,
    messages_wait_for_a_channel,
    a_stalled_smtp_server_does_not_hold_the_relay,
    email_with_documents,
    dead_letters_and_redrive,
    webhooks_survive_a_receiver_outage,
    webhook_addresses_are_checked_again_when_delivering,
);

//! `hestami`: the command-line tool. Argument parsing and glue only; everything it does is a
//! call into `hestami-store` or `hestami-http`.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

use hestami_core::org::{Currency, OrgKind, Role, TimeZone};
use hestami_core::text::{Email, OrgName};
use hestami_store::app::Services;
use hestami_store::app::delivery::RelaySettings;
use hestami_store::app::payments::{ManualProvider, PaymentProvider, TestProvider};
use hestami_store::app::webhooks::WebhookSettings;
use hestami_store::directory::NewOrganization;
use hestami_store::engine::EngineConfig;
use hestami_store::{Backend, Store, StoreOptions, derive_app_url, redact};

mod demo;
mod inventory;
mod mcp;
mod pricebook;
mod route;

const DEFAULT_DATABASE_URL: &str = "sqlite://hestami.db";

#[derive(Parser, Debug)]
#[command(
    name = "hestami",
    version,
    about = "Hestami Contractor Ops: the back end of a trade contractor's operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DatabaseArgs {
    /// The database, as its owner: `sqlite://PATH` (created if missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub(crate) database_url: String,
}

/// How many connections the server holds and how long it waits for slow clients.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Seconds a client has to send a request's head (request line and headers), also between
    /// requests on a kept-alive connection; then the connection is closed.
    #[arg(long, env = "HESTAMI_HEADER_READ_TIMEOUT", default_value_t = 10)]
    header_read_timeout: u64,
    /// Seconds a client has to send a request's body once its head has arrived; then `408`.
    #[arg(long, env = "HESTAMI_BODY_READ_TIMEOUT", default_value_t = 30)]
    body_read_timeout: u64,
    /// The most connections open at once; one more is answered `503` and closed.
    #[arg(long, env = "HESTAMI_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// The most connections open at once from one client address.
    #[arg(
        long,
        env = "HESTAMI_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    max_connections_per_address: usize,
    /// The most database connections the server holds (its pool).
    #[arg(long, env = "HESTAMI_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: u32,
    /// Requests a second per token: `RATE` (bursts of twice that) or `RATE/BURST`; `0` for no
    /// limit. Over it, `429 RATE_LIMITED` with `Retry-After`.
    #[arg(long, env = "HESTAMI_RATE_LIMIT_TOKEN", default_value = "50/100", value_parser = RateArg::parse)]
    rate_limit_token: RateArg,
    /// Requests a second per organization, whoever calls: `RATE` or `RATE/BURST`; `0` for no
    /// limit.
    #[arg(long, env = "HESTAMI_RATE_LIMIT_ORGANIZATION", default_value = "200/400", value_parser = RateArg::parse)]
    rate_limit_organization: RateArg,
    #[command(flatten)]
    blobs: BlobArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

/// What the outbox relay delivers through, and where webhooks may go.
#[derive(clap::Args, Debug)]
struct DeliveryArgs {
    /// The SMTP server e-mail goes through: `smtps://USER:PASS@HOST:465` (TLS),
    /// `smtp://USER:PASS@HOST:587?tls=required` (STARTTLS) or `smtp://HOST:PORT` (plain, for a
    /// relay on this machine). Without one, messages wait in the outbox (pending) until a server
    /// starts with one.
    #[arg(long, env = "HESTAMI_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The address e-mail is sent from; the organization's name is shown as the sender, and
    /// replies go to its contact address.
    #[arg(
        long,
        env = "HESTAMI_MAIL_FROM",
        default_value = "notifications@localhost"
    )]
    mail_from: String,
    /// Let webhooks reach loopback addresses (a receiver on this machine).
    #[arg(long, env = "HESTAMI_WEBHOOK_ALLOW_LOOPBACK")]
    webhook_allow_loopback: bool,
    /// Let webhooks reach private, link-local and other non-public addresses (an internal
    /// network); by default only public addresses are reached.
    #[arg(long, env = "HESTAMI_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Seconds between two passes of the relay over due outbox messages and webhook
    /// subscriptions.
    #[arg(long, env = "HESTAMI_RELAY_INTERVAL", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    relay_interval: u64,
}

/// A rate limit flag: a rate, or none (`0`).
#[derive(Clone, Copy, Debug)]
struct RateArg(Option<hestami_http::limits::Rate>);

impl RateArg {
    fn parse(raw: &str) -> Result<Self, String> {
        hestami_http::limits::Rate::parse(raw).map(Self)
    }
}

/// Where blobs go, and how large they may be.
#[derive(clap::Args, Debug)]
struct BlobArgs {
    /// Where uploaded photos, documents and signatures are kept: a directory (`file://DIR` or a
    /// plain path, created if missing) or an S3-compatible bucket
    /// (`s3://BUCKET?endpoint=URL&region=R&allowHttp=true`, credentials from the `AWS_*`
    /// environment variables).
    #[arg(long, env = "HESTAMI_BLOB_STORE", default_value = "hestami-blobs")]
    blob_store: String,
    /// The largest blob accepted, in bytes.
    #[arg(long, env = "HESTAMI_MAX_BLOB_BYTES", default_value_t = hestami_core::blob::DEFAULT_MAX_BYTES)]
    max_blob_bytes: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server (migrating the database first).
    Serve {
        #[command(flatten)]
        db: DatabaseArgs,
        /// PostgreSQL only: the URL the server itself connects with, as the unprivileged
        /// `hestami_app` role. Default: DATABASE_URL with the user replaced by `hestami_app`
        /// and no password.
        #[arg(long, env = "HESTAMI_APP_DATABASE_URL", hide_env_values = true)]
        app_database_url: Option<String>,
        /// The address to listen on.
        #[arg(long, env = "HESTAMI_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// This process's executor id in the workflow claim queue. Give each process sharing a
        /// PostgreSQL database its own stable id: pending workflows of the same id are resumed at
        /// once on restart (others when their lease expires). Default: `local` on SQLite, a
        /// per-process id on PostgreSQL.
        #[arg(long, env = "HESTAMI_EXECUTOR_ID")]
        executor_id: Option<String>,
        /// Do not migrate before serving.
        #[arg(long)]
        skip_migrate: bool,
        /// Who takes card and ACH payments: `none` (they are declined; cash, cheque and other
        /// are recorded by hand) or `test` (a deterministic test processor that approves every
        /// charge and refund, for trying the payment flow; it moves no real money).
        #[arg(long, env = "HESTAMI_PAYMENT_PROCESSOR", default_value = "none")]
        payment_processor: PaymentProcessor,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Bring the database schema up to date (and, on PostgreSQL, set up the `hestami_app` role).
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Administration: organizations, members and tokens.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Serve the API as Model Context Protocol tools for AI agents, over stdio: each tool calls
    /// a running server with the given token and organization.
    Mcp(mcp::McpArgs),
    /// Run a job from creation to closed on a throw-away database, through the real server:
    /// estimate, compliance and eligibility refusals, the visit, invoice and payments; print its
    /// timeline.
    Demo,
    /// The pricebook: import a CSV catalogue.
    Pricebook {
        #[command(subcommand)]
        command: pricebook::PricebookCommand,
    },
    /// Inventory: export the stock or its valuation as CSV.
    Inventory {
        #[command(subcommand)]
        command: inventory::InventoryCommand,
    },
    /// Route optimisation: solve a vehicle-routing instance file.
    Route {
        #[command(subcommand)]
        command: route::RouteCommand,
    },
}

/// The card and ACH processors `serve` can run with.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PaymentProcessor {
    /// None: card and ACH are declined.
    None,
    /// The deterministic test processor.
    Test,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an organization, its owner and a token for the owner.
    CreateOrg {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Display name.
        #[arg(long)]
        name: String,
        /// IANA time zone, such as America/Chicago.
        #[arg(long)]
        timezone: String,
        /// ISO 4217 currency, such as USD.
        #[arg(long)]
        currency: String,
        /// The owner's e-mail address.
        #[arg(long)]
        owner_email: String,
        /// contractor or hoa.
        #[arg(long, default_value = "contractor")]
        kind: String,
        /// Print `{"organizationId", "userId", "token"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a member to an organization (creating the user if new), or change their role.
    AddMember {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The organization id.
        #[arg(long)]
        org: uuid::Uuid,
        /// The member's e-mail address.
        #[arg(long)]
        email: String,
        /// owner, admin, dispatcher, office, technician or viewer.
        #[arg(long)]
        role: String,
    },
    /// Issue a new token for a user.
    CreateToken {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_in: Option<u32>,
        /// Print `{"tokenId", "userId", "token", "expiresAt"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token, given the token itself or its id.
    RevokeToken {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The token or its id.
        token: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // One TLS stack (ring) for every client: reqwest is built without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve {
            db,
            app_database_url,
            listen,
            executor_id,
            skip_migrate,
            payment_processor,
            limits,
        } => {
            serve(
                db,
                app_database_url,
                listen,
                executor_id,
                skip_migrate,
                payment_processor,
                limits,
            )
            .await
        }
        Command::Migrate { db } => {
            Store::migrate(&db.database_url)
                .await
                .with_context(|| format!("migrating {}", redact(&db.database_url)))?;
            println!("migrated {}", redact(&db.database_url));
            Ok(())
        }
        Command::Admin { command } => admin(command).await,
        Command::Openapi => {
            print!("{}", hestami_http::openapi::document_json());
            Ok(())
        }
        Command::Mcp(args) => mcp::run(args).await,
        Command::Demo => demo::run().await,
        Command::Pricebook { command } => pricebook::run(command).await,
        Command::Inventory { command } => inventory::run(command).await,
        // The solve is CPU-bound: keep it off the runtime's worker threads.
        Command::Route { command } => tokio::task::block_in_place(|| route::run(command)),
    }
}

async fn serve(
    db: DatabaseArgs,
    app_database_url: Option<String>,
    listen: String,
    executor_id: Option<String>,
    skip_migrate: bool,
    payment_processor: PaymentProcessor,
    limits: LimitArgs,
) -> Result<()> {
    let delivery = &limits.delivery;
    let _telemetry = hestami_http::telemetry::init("hestami").map_err(anyhow::Error::msg)?;
    let owner_url = db.database_url;
    if !skip_migrate {
        Store::migrate(&owner_url)
            .await
            .with_context(|| format!("migrating {}", redact(&owner_url)))?;
    }
    let backend = Backend::of_url(&owner_url)?;
    let app_url = match app_database_url {
        Some(url) => url,
        None => derive_app_url(&owner_url)?,
    };
    let store = Store::connect(
        &app_url,
        StoreOptions {
            max_connections: limits.db_pool_size,
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("connecting to {}", redact(&app_url)))?;
    let executor_id = executor_id.unwrap_or_else(|| match backend {
        Backend::Sqlite => "local".to_owned(),
        Backend::Postgres => format!(
            "pid-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ),
    });
    let processor: std::sync::Arc<dyn PaymentProvider> = match payment_processor {
        PaymentProcessor::None => std::sync::Arc::new(ManualProvider),
        PaymentProcessor::Test => {
            tracing::warn!("card and ACH payments go to the test processor: no real money moves");
            std::sync::Arc::new(TestProvider::new())
        }
    };
    let services = Services::with_processor(
        store,
        EngineConfig {
            executor_id: executor_id.clone(),
            ..EngineConfig::default()
        },
        processor,
    )
    .with_relay(RelaySettings {
        mailer: match &delivery.smtp_url {
            Some(url) => Some(
                hestami_store::mail::Mailer::from_url(url, &delivery.mail_from)
                    .context("the SMTP server (--smtp-url, --mail-from)")?,
            ),
            None => None,
        },
        webhooks: WebhookSettings {
            allow_loopback: delivery.webhook_allow_loopback,
            allow_private: delivery.webhook_allow_private,
            ..WebhookSettings::default()
        },
        ..RelaySettings::default()
    });
    if delivery.smtp_url.is_none() {
        eprintln!("no --smtp-url: e-mail waits in the outbox until a server starts with one");
    }
    let resumed = services
        .engine()
        .recover(true)
        .await
        .context("recovering pending workflows")?;
    let recovery = services
        .engine()
        .spawn_recovery_loop(Duration::from_secs(5));
    // Durable timers (scans, deadlines, outbox messages, webhooks) are rows; this loop only
    // looks for due ones, so a restart or a second process loses or repeats nothing.
    let timers = services.spawn_timer_loop(Duration::from_secs(60));
    let relay = services.spawn_relay_loop(Duration::from_secs(delivery.relay_interval));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, executor_id, resumed, database = %redact(&app_url), "hestami serving");
    eprintln!(
        "hestami listening on http://{address} (database {}, executor {executor_id})",
        redact(&app_url)
    );
    let blobs = hestami_store::blobs::BlobStore::from_url(&limits.blobs.blob_store)?;
    eprintln!("blobs kept in {}", blobs.describe());
    let config = hestami_http::ServerConfig {
        body_read_timeout: Duration::from_secs(limits.body_read_timeout),
        max_blob_bytes: limits.blobs.max_blob_bytes,
        rate_limits: hestami_http::limits::RateLimits {
            per_token: limits.rate_limit_token.0,
            per_organization: limits.rate_limit_organization.0,
        },
        ..hestami_http::ServerConfig::with_blobs(blobs)
    };
    let router = hestami_http::router(hestami_http::AppState::new(services.clone(), config));
    let limits = hestami_http::ConnectionLimits {
        header_read_timeout: Duration::from_secs(limits.header_read_timeout),
        max_connections: limits.max_connections,
        max_connections_per_address: limits.max_connections_per_address,
    };
    hestami_http::serve_with(listener, router, limits, shutdown_signal()).await?;
    recovery.abort();
    timers.abort();
    relay.abort();
    services.store().close().await;
    eprintln!("hestami stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn parsed<T>(what: &str, r: Result<T, hestami_core::Invalid>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

async fn admin_store(db: &DatabaseArgs) -> Result<Store> {
    Store::migrate(&db.database_url)
        .await
        .with_context(|| format!("migrating {}", redact(&db.database_url)))?;
    Store::connect(&db.database_url, StoreOptions::default())
        .await
        .with_context(|| format!("connecting to {}", redact(&db.database_url)))
}

/// Services over the application role's connection (derived from the owner's URL on
/// PostgreSQL), after migrating: what an admin command that runs a workflow uses.
pub(crate) async fn admin_services(db: &DatabaseArgs, executor: &str) -> Result<Services> {
    Store::migrate(&db.database_url)
        .await
        .with_context(|| format!("migrating {}", redact(&db.database_url)))?;
    let app_url = match Backend::of_url(&db.database_url)? {
        Backend::Sqlite => db.database_url.clone(),
        Backend::Postgres => derive_app_url(&db.database_url)?,
    };
    let store = Store::connect(&app_url, StoreOptions::default())
        .await
        .with_context(|| format!("connecting to {}", redact(&app_url)))?;
    Ok(Services::new(
        store,
        EngineConfig {
            executor_id: format!("{executor}-{}", std::process::id()),
            ..EngineConfig::default()
        },
    ))
}

async fn admin(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::CreateOrg {
            db,
            name,
            timezone,
            currency,
            owner_email,
            kind,
            json,
        } => {
            let new = NewOrganization {
                name: parsed("name", OrgName::parse(&name))?,
                kind: parsed("kind", OrgKind::parse(&kind))?,
                time_zone: parsed("timezone", TimeZone::parse(&timezone))?,
                currency: parsed("currency", Currency::parse(&currency))?,
                owner_email: parsed("owner-email", Email::parse(&owner_email))?,
            };
            let store = admin_store(&db).await?;
            let created = store.create_organization(new).await?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!(
                    "organization {}\nowner        {}\ntoken        {}",
                    created.organization_id, created.user_id, created.token
                );
                println!("(the token is shown once; only its hash is stored)");
            }
            Ok(())
        }
        AdminCommand::AddMember {
            db,
            org,
            email,
            role,
        } => {
            let email = parsed("email", Email::parse(&email))?;
            let role = parsed("role", Role::parse(&role))?;
            // The same workflow as `member/v1/invite` and `setRole`, as the operator.
            let services = admin_services(&db, "add-member").await?;
            let caller = hestami_store::app::Caller {
                organization_id: hestami_core::ids::OrganizationId::from_uuid(org),
                user_id: None,
                scope: Default::default(),
            };
            let (member, invite) = services.member_put(&caller, email, role).await?;
            println!("{} is {} of {org}", member.user_id, role.as_str());
            if let Some((code, expires_at)) = invite {
                println!(
                    "invitation code {code} (until {}; auth/v1/acceptInvite sets their password)",
                    expires_at.to_rfc3339()
                );
            }
            Ok(())
        }
        AdminCommand::CreateToken {
            db,
            email,
            expires_in,
            json,
        } => {
            let email = parsed("email", Email::parse(&email))?;
            let store = admin_store(&db).await?;
            let expires = expires_in.map(|d| chrono::Duration::days(i64::from(d)));
            let issued = store
                .create_token(&email, expires, Some("admin create-token"))
                .await?;
            if json {
                println!("{}", serde_json::to_string(&issued)?);
            } else {
                println!(
                    "token    {}\ntoken id {}\nexpires  {}",
                    issued.token,
                    issued.token_id,
                    issued
                        .expires_at
                        .map_or("never".to_owned(), |t| t.to_rfc3339())
                );
            }
            Ok(())
        }
        AdminCommand::RevokeToken { db, token } => {
            let store = admin_store(&db).await?;
            if store.revoke_token(&token).await? {
                println!("revoked");
                Ok(())
            } else {
                bail!("no live token matches")
            }
        }
    }
}

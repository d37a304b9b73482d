//! Photo uploads measured over HTTP, beside the plain file operations they wrap, in the same run
//! on the same disk.
//!
//! For each backend, against the release server (blobs on the local file system, in the
//! temporary directory): `PHOTOS` distinct photos of `MB` MiB each (a PNG signature, then
//! pseudo-random bytes: incompressible, like a JPEG), uploaded one after another on one
//! kept-alive connection with `PUT /api/v1/blobs/{sha256}`; the same photos uploaded again (the
//! idempotent path: the server hashes, finds them, stores nothing); and each downloaded once.
//! Beside them, in the same process: the same bytes written to files (`std::fs::write`), hashed
//! with SHA-256 and written (what an upload must do at least), and copied file to file
//! (`std::fs::copy`).
//!
//! ```sh
//! cargo build --release -p hestami-cli
//! cargo bench --bench uploads     # BACKENDS=postgres,sqlite PHOTOS=100 MB=3
//! ```
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use hestami::store::Store;
use hestami::store::StoreOptions;
use hestami::store::testing::TestDb;
use support::Rng;
use support::env;
use support::server::{Conn, start_server};

fn photo(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    while out.len() < bytes {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(bytes);
    out
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rate(total: Duration, n: usize, bytes: usize) -> String {
    let secs = total.as_secs_f64();
    format!(
        "{:.0} ms ({:.1} ms each, {:.0} MiB/s)",
        secs * 1000.0,
        secs * 1000.0 / n as f64,
        (n * bytes) as f64 / (1024.0 * 1024.0) / secs
    )
}

/// The plain file operations, on the same disk as the server's blobs.
fn floors(photos: &[(String, Vec<u8>)], bytes: usize) -> [(String, String); 3] {
    let dir = std::env::temp_dir().join(format!("hestami-bench-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    for (name, data) in photos {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let write = started.elapsed();
    let copies = dir.join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let started = Instant::now();
    for (name, data) in photos {
        let digest = hex(data);
        assert_eq!(&digest, name);
        std::fs::write(copies.join(format!("{digest}.h")), data).unwrap();
    }
    let hash_write = started.elapsed();
    let started = Instant::now();
    for (name, _) in photos {
        std::fs::copy(dir.join(name), copies.join(name)).unwrap();
    }
    let copy = started.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    let n = photos.len();
    [
        ("fs::write".into(), rate(write, n, bytes)),
        ("SHA-256 + fs::write".into(), rate(hash_write, n, bytes)),
        ("fs::copy".into(), rate(copy, n, bytes)),
    ]
}

async fn bench(db: TestDb, name: &str, photos: &[(String, Vec<u8>)], bytes: usize) {
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let (caller, token) = support::owner(&admin, "Uploads", "uploads@example.com").await;
    let server = start_server(&db.owner_url).await;
    let mut conn = Conn::open(&server.addr).await;
    let auth = format!("Bearer {token}");
    let org = caller.organization_id.to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Organization-Id", org.as_str()),
    ];
    let n = photos.len();
    let mut timed = Vec::new();
    for (what, expected) in [("upload", 201), ("upload again (already stored)", 200)] {
        let started = Instant::now();
        for (sha, data) in photos {
            let (status, body) = conn
                .send(
                    "PUT",
                    &format!("/api/v1/blobs/{sha}"),
                    "application/octet-stream",
                    &headers,
                    data,
                )
                .await;
            assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
        }
        timed.push((what, started.elapsed()));
    }
    let started = Instant::now();
    for (sha, data) in photos {
        let (status, body) = conn
            .get_with(&format!("/api/v1/blobs/{sha}"), &headers)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), data.len());
    }
    timed.push(("download", started.elapsed()));
    for (what, total) in timed {
        println!(
            "| {name} | {what} {n} × {} MiB | {} |",
            bytes / (1024 * 1024),
            rate(total, n, bytes)
        );
    }
}

#[tokio::main]
async fn main() {
    support::server::require_release_binary();
    let (n, mb) = (env("PHOTOS", 100), env("MB", 3));
    let bytes = mb * 1024 * 1024;
    let mut rng = Rng::new(7);
    let photos: Vec<(String, Vec<u8>)> = (0..n)
        .map(|_| {
            let data = photo(&mut rng, bytes);
            (hex(&data), data)
        })
        .collect();
    println!("| backend | what | time |");
    println!("| --- | --- | --- |");
    for (what, time) in floors(&photos, bytes) {
        println!("| floor | {what} {n} × {mb} MiB | {time} |");
    }
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    for backend in backends.split(',') {
        match backend.trim() {
            "postgres" => match TestDb::postgres().await {
                Some(db) => bench(db, "postgres", &photos, bytes).await,
                None => println!("| postgres | skipped: no database | |"),
            },
            "sqlite" => bench(TestDb::sqlite().await.unwrap(), "sqlite", &photos, bytes).await,
            other => panic!("unknown backend {other}"),
        }
    }
}

//! The benchmarks' HTTP side: the release `hestami` binary started as a server on a fresh
//! database, its CLI, and a kept-alive HTTP/1.1 client of a few lines, so that the driver costs
//! the shared CPU as little as it can.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One kept-alive HTTP/1.1 connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub async fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
            host: addr.to_owned(),
        }
    }

    /// Sends a POST and returns the status and the body.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        self.send("POST", path, "application/json", headers, body)
            .await
    }

    /// Sends a request with a body and returns the status and the body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await.unwrap();
        self.read_response().await
    }

    pub async fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        self.get_with(path, &[]).await
    }

    /// Sends a GET with headers.
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        self.read_response().await
    }

    async fn read_response(&mut self) -> (u16, Vec<u8>) {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        (status, body)
    }
}

pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: String,
    /// Where it keeps blobs (removed with it).
    pub blobs: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.blobs);
    }
}

pub fn bin() -> String {
    std::env::var("HESTAMI_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hestami").to_owned()
    })
}

/// Stops the benchmark early when the release binary it measures is not built.
pub fn require_release_binary() {
    assert!(
        std::path::Path::new(&bin()).exists(),
        "{} is missing: cargo build --release -p hestami-cli",
        bin()
    );
}

pub fn cli(url: &str, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("DATABASE_URL", url)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "hestami {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

pub async fn start_server(url: &str) -> Server {
    cli(url, &["migrate"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin())
        .args(["serve", "--skip-migrate", "--listen", &addr])
        .env("DATABASE_URL", url)
        // Uploaded blobs go to the temporary directory, not the checkout.
        .env("HESTAMI_BLOB_STORE", blob_dir(port))
        .env("RUST_LOG", "error")
        // The engine is measured, not the rate limits (which would refuse most of a load run).
        .env("HESTAMI_RATE_LIMIT_TOKEN", "0")
        .env("HESTAMI_RATE_LIMIT_ORGANIZATION", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(stream) = TcpStream::connect(&addr).await {
            drop(stream);
            let mut c = Conn::open(&addr).await;
            if c.get("/ready").await.0 == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        addr,
        blobs: blob_dir(port),
    }
}

/// Where the server on `port` keeps its blobs.
pub fn blob_dir(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hestami-bench-blobs-{port}"))
}

/// The server's statement and transaction counters, if it reports them.
pub async fn db_counters(addr: &str) -> Option<(u64, u64, u64)> {
    let mut c = Conn::open(addr).await;
    let (status, body) = c.get("/metrics/db").await;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    Some((
        v["transactions"].as_u64()?,
        v["writeTransactions"].as_u64()?,
        v["statements"].as_u64()?,
    ))
}

pub fn pg_database(base: &str) -> Option<String> {
    let name = format!("hestami_load_{}", std::process::id());
    let ok = Command::new("psql")
        .args([base, "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .ok()?;
    ok.success().then(|| {
        let (prefix, _) = base.rsplit_once('/').unwrap();
        format!("{prefix}/{name}")
    })
}

pub fn drop_pg_database(base: &str, url: &str) {
    let name = url.rsplit_once('/').unwrap().1;
    let _ = Command::new("psql")
        .args([
            base,
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}

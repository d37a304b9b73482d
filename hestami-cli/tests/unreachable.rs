//! A wrong PostgreSQL address is reported as such, by `migrate` and `serve` alike: the host and
//! port it tried, why it failed, and what to check, each cause once.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hestami");

#[test]
fn a_wrong_postgres_address_names_itself_and_what_to_check() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/hestami");
    for args in [
        vec!["migrate", "--database-url", &url],
        vec!["serve", "--database-url", &url, "--listen", "127.0.0.1:0"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("pg_isready -h 127.0.0.1 -p {port}")),
            "{stderr}"
        );
        assert_eq!(
            stderr.matches("Connection refused").count(),
            1,
            "each cause once: {stderr}"
        );
    }
}

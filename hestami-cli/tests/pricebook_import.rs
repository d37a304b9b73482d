//! `hestami pricebook import` as a user runs it: the sample catalogue shipped in `examples/`
//! imports cleanly, and a file with a refused row still imports the rest, prints the summary
//! and every refusal with its line, and exits non-zero so that a script notices.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hestami");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

/// A fresh SQLite database with one organization: its URL and the organization's id.
fn organization(dir: &tempfile::TempDir) -> (String, String) {
    let db = format!("sqlite://{}", dir.path().join("import.db").display());
    let out = run(&["migrate", "--database-url", &db]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&[
        "admin",
        "create-org",
        "--database-url",
        &db,
        "--name",
        "Import",
        "--timezone",
        "America/Chicago",
        "--currency",
        "USD",
        "--owner-email",
        "import@example.com",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    (db, created["organizationId"].as_str().unwrap().to_owned())
}

#[test]
fn the_sample_catalogue_imports_and_refusals_fail_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (db, org) = organization(&dir);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pricebook.csv");
    let out = run(&[
        "pricebook",
        "import",
        sample,
        "--org",
        &org,
        "--database-url",
        &db,
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("8 rows") && stdout.contains("8 created") && stdout.contains("0 refused"),
        "{stdout}"
    );

    // One good row, one ragged line, one row a rule refuses.
    let file = dir.path().join("mixed.csv");
    std::fs::write(
        &file,
        "kind,name,price,trade\nservice,Gas leak check,99,plumbing\nservice,Half a row\nservice,No trade,50,\n",
    )
    .unwrap();
    let out = run(&[
        "pricebook",
        "import",
        file.to_str().unwrap(),
        "--org",
        &org,
        "--database-url",
        &db,
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused row must fail the command");
    assert!(
        stdout.contains("3 rows") && stdout.contains("1 created") && stdout.contains("2 refused"),
        "{stdout}"
    );
    assert!(stderr.contains("line 3: row: ragged"), "{stderr}");
    assert!(stderr.contains("line 4: trade: required"), "{stderr}");
    assert!(stderr.contains("2 rows refused"), "{stderr}");
}

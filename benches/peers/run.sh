#!/usr/bin/env bash
# Runs the DBOS peers of the job-create benchmark (see README.md beside this script) and prints
# their result lines:
#   PEER <name> <phase> clients=<C> rate=<n>/s p50=<ms>ms p99=<ms>ms
# or `PEER <name> failed` for a peer that could not be built or run; the script goes on either way.
#
# usage: benches/peers/run.sh [base-postgres-url]   (default postgres://postgres@127.0.0.1:5432/test)
# env:   CLIENTS (32), SECONDS (10), PEERS ("dbos-ts dbos-rust"), DBOS_POOL (10, passed to the
#        peers), CARGO_TARGET_DIR (benches/peers/dbos-rust/target)
#
# Each peer gets a fresh database of its own (plus the `<db>_dbos_sys` system database DBOS
# creates next to it); all of them are dropped at the end. Peer logs go to stderr; stdout carries
# only PEER lines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${1:-postgres://postgres@127.0.0.1:5432/test}"
clients="${CLIENTS:-32}"
# SECONDS is a bash special variable that counts up from whatever it started at, so read the value
# this script was given from the environment rather than from the shell.
seconds="$(printenv SECONDS || true)"
seconds="${seconds:-10}"
peers="${PEERS:-dbos-ts dbos-rust}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/dbos-rust/target}"

# Split the base URL into server and query, to name other databases on the same server.
if [[ ! "$base" =~ ^(postgres(ql)?://[^/?]+)(/[^?]*)?(\?.*)?$ ]]; then
  echo "run.sh: not a postgres:// URL: $base" >&2
  exit 2
fi
server="${BASH_REMATCH[1]}"
query="${BASH_REMATCH[4]}"
prefix="peers_$(date +%s)_$$"
url_for() { echo "$server/$1$query"; }

created=()
cleanup() {
  local db
  for db in ${created[@]+"${created[@]}"}; do
    for name in "$db" "${db}_dbos_sys"; do
      psql "$base" -qAt -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 ||
        echo "run.sh: could not drop database $name" >&2
    done
  done
}
trap cleanup EXIT

# Creates database $1 for a peer; it is dropped (with its system database) on exit.
fresh_database() {
  psql "$base" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"" >/dev/null || return 1
  created+=("$1")
}

# run_peer NAME COMMAND...: runs a peer with a time limit, prints its PEER lines, and prints
# `PEER NAME failed` unless it exited 0 having printed both phases.
run_peer() {
  local name=$1 out rc=0
  shift
  out="$(timeout --kill-after=10 $((2 * seconds + 180)) "$@")" || rc=$?
  grep -v '^PEER ' <<<"$out" >&2 || true
  grep "^PEER $name " <<<"$out" || true
  if [[ $rc -ne 0 ]] || ! grep -q "^PEER $name replay " <<<"$out"; then
    echo "run.sh: $name exited with status $rc" >&2
    echo "PEER $name failed"
  fi
}

for peer in $peers; do
  case "$peer" in
    dbos-ts)
      dir="$here/dbos-ts"
      if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "run.sh: node/npm not found" >&2
        echo "PEER dbos-ts failed"
        continue
      fi
      if [[ ! -d "$dir/node_modules" ]] && ! (cd "$dir" && npm ci --no-audit --no-fund >&2); then
        echo "run.sh: npm ci failed in $dir" >&2
        echo "PEER dbos-ts failed"
        continue
      fi
      db="${prefix}_ts"
      if ! fresh_database "$db"; then
        echo "PEER dbos-ts failed"
        continue
      fi
      run_peer dbos-ts node "$dir/main.mjs" "$(url_for "$db")" "$clients" "$seconds"
      ;;
    dbos-rust)
      manifest="$here/dbos-rust/Cargo.toml"
      if ! command -v cargo >/dev/null; then
        echo "run.sh: cargo not found" >&2
        echo "PEER dbos-rust failed"
        continue
      fi
      # Built first and without the run's time limit, so compile time is not charged to the run.
      if ! cargo build --release --manifest-path "$manifest" >&2; then
        echo "run.sh: building the Rust peer failed" >&2
        echo "PEER dbos-rust failed"
        continue
      fi
      db="${prefix}_rust"
      if ! fresh_database "$db"; then
        echo "PEER dbos-rust failed"
        continue
      fi
      run_peer dbos-rust cargo run --quiet --release --manifest-path "$manifest" -- \
        "$(url_for "$db")" "$clients" "$seconds"
      ;;
    *)
      echo "run.sh: unknown peer $peer" >&2
      echo "PEER $peer failed"
      ;;
  esac
done

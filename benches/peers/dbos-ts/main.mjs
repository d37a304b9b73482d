// DBOS Transact (TypeScript) peer for the job-create benchmark. Our code, written for this
// comparison; see ../README.md.
//
// usage: node main.mjs <postgres-url> [clients=32] [seconds=10]
//
// The workflow (its id is the idempotency key, and also the job's id):
//   step 1: transaction on the app database: INSERT INTO peer_jobs
//   step 2: DBOS step: a trivial pure computation (priority from a hash of the summary)
//   step 3: transaction on the app database: INSERT INTO peer_events (job_id, 'created')
// Phase `create` starts it with fresh UUIDs; phase `replay` starts it again with ids that already
// completed, for which DBOS returns the recorded result. One line per phase on stdout:
//   PEER dbos-ts <phase> clients=<C> rate=<n>/s p50=<ms>ms p99=<ms>ms
// DBOS_POOL (env, default 10 = DBOS's own default) sizes both the system-database pool and the
// app-database pool.

import { randomUUID } from 'node:crypto';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { PostgresDataSource } from '@dbos-inc/postgres-datasource';
import postgres from 'postgres';

const NAME = 'dbos-ts';
const [url, clientsArg, secondsArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node main.mjs <postgres-url> [clients=32] [seconds=10]');
  process.exit(2);
}
const CLIENTS = Number(clientsArg ?? 32);
const SECONDS = Number(secondsArg ?? 10);
const POOL = Number(process.env.DBOS_POOL ?? 10);
const ORGS = 100;

// Connection options for the app database, from the URL (the datasource takes options, not a URL).
const u = new URL(url);
const database = decodeURIComponent(u.pathname.slice(1));
const pgOptions = {
  host: u.hostname,
  port: Number(u.port || 5432),
  database,
  username: decodeURIComponent(u.username || 'postgres'),
  password: u.password ? decodeURIComponent(u.password) : undefined,
  max: POOL,
  onnotice: () => {},
};
// The system database: same server, its own database (DBOS creates it if missing).
const sys = new URL(url);
sys.pathname = `/${database}_dbos_sys`;

// Create the benchmark's tables if missing.
async function createTables() {
  const sql = postgres({ ...pgOptions, max: 1 });
  try {
    await sql.unsafe(`
      CREATE TABLE IF NOT EXISTS peer_jobs (
        id uuid PRIMARY KEY,
        org int NOT NULL,
        summary text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS peer_events (
        id bigserial PRIMARY KEY,
        job_id uuid NOT NULL,
        kind text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );`);
  } finally {
    await sql.end();
  }
}

const ds = new PostgresDataSource('app', pgOptions);

// Step 2's pure computation: FNV-1a of the summary, folded to a priority 0..3.
function priorityOf(summary) {
  let h = 0x811c9dc5;
  for (let i = 0; i < summary.length; i++) {
    h ^= summary.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 4;
}

async function createJob(org, summary) {
  const jobId = DBOS.workflowID; // the workflow id doubles as the job id
  await ds.runTransaction(
    async () => {
      await ds.client`INSERT INTO peer_jobs (id, org, summary, created_at)
                      VALUES (${jobId}, ${org}, ${summary}, now())`;
    },
    { name: 'insertJob' },
  );
  const priority = await DBOS.runStep(async () => priorityOf(summary), { name: 'priority' });
  await ds.runTransaction(
    async () => {
      await ds.client`INSERT INTO peer_events (job_id, kind) VALUES (${jobId}, 'created')`;
    },
    { name: 'insertEvent' },
  );
  return { jobId, org, priority };
}
const createJobWorkflow = DBOS.registerWorkflow(createJob, { name: 'createJob' });

// Start the workflow under id `id` and await its result.
function runWorkflow(id, org) {
  return DBOS.withNextWorkflowID(id, () => createJobWorkflow(org, `Job ${id.slice(0, 8)} for org ${org}`));
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// C loops for SECONDS; `next()` gives the (id, org) of the next start.
async function phase(label, next, onDone) {
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const [id, org] = next();
      const t0 = performance.now();
      try {
        const out = await runWorkflow(id, org);
        const ms = performance.now() - t0;
        if (out?.jobId !== id) throw new Error(`unexpected result ${JSON.stringify(out)}`);
        latencies.push(ms);
        onDone?.(id, org);
      } catch (e) {
        if (errors++ < 5) console.error(`${NAME} ${label}: ${e?.stack ?? e}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, loop));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  if (errors > 0) console.error(`${NAME} ${label}: ${errors} errors`);
  console.log(
    `PEER ${NAME} ${label} clients=${CLIENTS} rate=${(latencies.length / elapsed).toFixed(1)}/s ` +
      `p50=${percentile(latencies, 50).toFixed(2)}ms p99=${percentile(latencies, 99).toFixed(2)}ms`,
  );
  return latencies.length;
}

async function main() {
  await createTables();
  DBOS.setConfig({
    name: 'peer-dbos-ts',
    systemDatabaseUrl: sys.toString(),
    systemDatabasePoolSize: POOL,
    logLevel: 'warn',
  });
  await DBOS.launch();
  try {
    const done = [];
    let seq = 0; // global start counter: org = i % 100 over all starts
    const created = await phase(
      'create',
      () => [randomUUID(), seq++ % ORGS],
      (id, org) => done.push([id, org]),
    );
    if (created === 0) throw new Error('no workflow completed in the create phase');
    // Replay: already-completed ids, picked at random.
    await phase('replay', () => done[Math.floor(Math.random() * done.length)]);
  } finally {
    await DBOS.shutdown();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`${NAME}: ${e?.stack ?? e}`);
    process.exit(1);
  },
);

// Generates the SDK's types from the OpenAPI document (never written by hand):
// - src/schema.d.ts: every path, input, output and the error envelope, by openapi-typescript;
// - src/procedures.ts: the procedures whose input takes an idempotencyKey (the mutations), which
//   the client gives a key when the caller does not.
import { readFile, writeFile } from "node:fs/promises";
import openapiTS, { astToString } from "openapi-typescript";

const source = process.argv[2];
if (!source) {
  console.error("usage: node scripts/generate.mjs OPENAPI.json");
  process.exit(2);
}
const document = JSON.parse(await readFile(source, "utf8"));
const ast = await openapiTS(document);
await writeFile(
  new URL("../src/schema.d.ts", import.meta.url),
  `// Generated from ${source} by scripts/generate.mjs; do not edit.\n${astToString(ast)}`,
);

const prefix = "/api/v1/rpc/";
const mutations = [];
for (const [path, item] of Object.entries(document.paths)) {
  if (!path.startsWith(prefix) || !item.post) continue;
  const ref = item.post.requestBody?.content?.["application/json"]?.schema?.$ref ?? "";
  const input = document.components.schemas[ref.replace("#/components/schemas/", "")];
  if (input?.required?.includes("idempotencyKey")) mutations.push(path.slice(prefix.length));
}
mutations.sort();
await writeFile(
  new URL("../src/procedures.ts", import.meta.url),
  `// Generated from ${source} by scripts/generate.mjs; do not edit.\n` +
    `/** The procedures that mutate: their input takes an idempotencyKey. */\n` +
    `export const MUTATIONS: ReadonlySet<string> = new Set(${JSON.stringify(mutations, null, 2)});\n`,
);
console.log(`generated the types of ${Object.keys(document.paths).length} paths; ${mutations.length} mutations`);

// The SDK against a live server (`.ci/sdk` starts one and passes HESTAMI_URL, HESTAMI_TOKEN and
// HESTAMI_ORG): typed reads and mutations, keys given when missing and reused when a call is
// retried, and refusals with their envelope.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Hestami, HestamiError } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite with .ci/sdk`);
  return value;
}

function client(options: { fetch?: typeof fetch } = {}): Hestami {
  return new Hestami({
    baseUrl: env("HESTAMI_URL"),
    token: env("HESTAMI_TOKEN"),
    organizationId: env("HESTAMI_ORG"),
    ...options,
  });
}

test("a read is typed by its procedure", async () => {
  const org = await client().call("org/v1/get", {});
  assert.equal(org.id, env("HESTAMI_ORG"));
  assert.equal(typeof org.name, "string");
});

test("a mutation without a key gets one, and the record is created", async () => {
  const hestami = client();
  const customer = await hestami.call("customer/v1/create", { name: "Grace Hopper" });
  assert.equal(customer.name, "Grace Hopper");
  const read = await hestami.call("customer/v1/get", { customerId: customer.id });
  assert.equal(read.id, customer.id);
});

test("a call whose answer is lost is sent again with the same key, and runs once", async () => {
  let tries = 0;
  const keys: string[] = [];
  // The first answer is lost on the way back: the server acted, the client never heard.
  const losingFetch: typeof fetch = async (url, init) => {
    tries += 1;
    keys.push(JSON.parse(String(init?.body)).idempotencyKey);
    const response = await fetch(url, init);
    if (tries === 1) {
      await response.arrayBuffer();
      throw new TypeError("network connection lost");
    }
    return response;
  };
  const name = `Lost answer ${crypto.randomUUID()}`;
  const created = await client({ fetch: losingFetch }).call("customer/v1/create", { name });
  assert.equal(tries, 2);
  assert.equal(keys[0], keys[1], "the retry carries the first try's key");
  const page = await client().call("customer/v1/list", { limit: 200 });
  const named = page.items.filter((c) => c.name === name);
  assert.equal(named.length, 1, "the customer exists once");
  assert.equal(named[0].id, created.id);
});

test("a key given by the caller is used, and a replay answers the first outcome", async () => {
  const idempotencyKey = crypto.randomUUID();
  const first = await client().call("customer/v1/create", { idempotencyKey, name: "Ada" });
  const again = await client().call("customer/v1/create", { idempotencyKey, name: "Ada" });
  assert.equal(again.id, first.id);
});

test("a refusal carries the envelope: its status, code and fields", async () => {
  const hestami = client();
  await assert.rejects(
    hestami.call("customer/v1/get", { customerId: crypto.randomUUID() }),
    (e: unknown) => e instanceof HestamiError && e.status === 404 && e.code === "NOT_FOUND",
  );
  await assert.rejects(
    hestami.call("customer/v1/create", { name: " " }),
    (e: unknown) =>
      e instanceof HestamiError &&
      e.status === 400 &&
      e.code === "VALIDATION_FAILED" &&
      e.fieldErrors[0]?.field === "name",
  );
  const stranger = new Hestami({ baseUrl: env("HESTAMI_URL"), token: "not-a-token" });
  await assert.rejects(
    stranger.call("org/v1/get", {}),
    (e: unknown) => e instanceof HestamiError && e.status === 401,
  );
});

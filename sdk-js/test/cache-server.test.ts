/**
 * The result cache and signed receipts against a real wasmwiz-server, over
 * both transports. Each test uses its own key (cache entries are per account).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  Code,
  WasmWizError,
  createClient,
  verifyReceipt,
  type RunOptions,
  type TransportKind,
  type WasmWizClient,
} from "../src/node.js";
import { guest, startServer, type TestServer } from "./helpers/server.js";

const TRANSPORTS: TransportKind[] = ["grpc", "grpc-web"];
const ECHO = guest("echo");

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

/** A client of a brand-new account. */
async function freshClient(transport: TransportKind): Promise<WasmWizClient> {
  const apiKey = await server.createKey(`cache-${randomUUID()}@test.local`, "free");
  return createClient({ baseUrl: server.baseUrl, apiKey, transport });
}

/** Stdin no other test sends, so the first run is always a miss. */
const uniqueStdin = () => `cache ${randomUUID()}\n`;

for (const transport of TRANSPORTS) {
  describe(`result cache (${transport})`, () => {
    it("answers a second run with cache: use from the first", async () => {
      const client = await freshClient(transport);
      const stdin = uniqueStdin();
      const first = await client.run({ module: ECHO, stdin, cache: "use" }).result();
      const second = await client.run({ module: ECHO, stdin, cache: "use" }).result();
      assert.equal(first.resultCacheHit, false);
      assert.equal(first.cachedFrom, undefined);
      assert.equal(second.resultCacheHit, true);
      assert.equal(second.cachedFrom, first.executionId);
      assert.equal(second.stdoutText, stdin);
    });

    it("never hits without cache", async () => {
      const client = await freshClient(transport);
      const stdin = uniqueStdin();
      await client.run({ module: ECHO, stdin, cache: "use" }).result();
      const again = await client.run({ module: ECHO, stdin }).result();
      assert.equal(again.resultCacheHit, false);
    });

    it("runs again with cache: refresh and replaces the entry", async () => {
      const client = await freshClient(transport);
      const stdin = uniqueStdin();
      await client.run({ module: ECHO, stdin, cache: "use" }).result();
      const refreshed = await client.run({ module: ECHO, stdin, cache: "refresh" }).result();
      const after = await client.run({ module: ECHO, stdin, cache: "use" }).result();
      assert.equal(refreshed.resultCacheHit, false);
      assert.equal(after.cachedFrom, refreshed.executionId);
    });

    it("reports cache hits of batch cases", async () => {
      const client = await freshClient(transport);
      const cases = [{ stdin: uniqueStdin() }, { stdin: uniqueStdin() }];
      const first = await client.runBatch({ module: ECHO, cases, cache: "use" }).result();
      const second = await client.runBatch({ module: ECHO, cases, cache: "use" }).result();
      assert.deepEqual(first.map((c) => c.resultCacheHit), [false, false]);
      assert.deepEqual(second.map((c) => c.cachedFrom), first.map((c) => c.executionId));
    });

    it("counts cache hits and fuel saved in usage", async () => {
      const client = await freshClient(transport);
      const stdin = uniqueStdin();
      const first = await client.run({ module: ECHO, stdin, cache: "use" }).result();
      await client.run({ module: ECHO, stdin, cache: "use" }).result();
      const usage = await client.account.getUsage();
      assert.equal(usage.cacheHits, 1n);
      assert.equal(usage.fuelSaved, first.finished.fuelConsumed);
    });
  });

  describe(`receipts (${transport})`, () => {
    it("has no receipt unless asked", async () => {
      const client = await freshClient(transport);
      const r = await client.run({ module: ECHO, stdin: "x" }).result();
      assert.equal(r.receipt, undefined);
    });

    it("verifies a run's receipt offline with the key from getServerInfo", async () => {
      const client = await freshClient(transport);
      const r = await client.run({ module: ECHO, stdin: "signed\n", receipt: true }).result();
      assert.ok(r.receipt);
      const info = await client.getServerInfo();
      const key = info.receiptKeys.find((k) => k.keyId === r.receipt!.keyId);
      assert.ok(key, "getServerInfo lists the receipt's key");
      const verified = await verifyReceipt(r.receipt, key.publicKey);
      await verified.checkStdout(r.stdout);
      assert.equal(verified.statement.executionId, r.executionId);
    });

    it("verifies each batch case's receipt", async () => {
      const client = await freshClient(transport);
      const batch = await client.runBatch({ module: ECHO, cases: [{ stdin: "p" }, { stdin: "q" }], receipt: true }).result();
      const info = await client.getServerInfo();
      for (const c of batch) {
        assert.ok(c.receipt);
        const key = info.receiptKeys.find((k) => k.keyId === c.receipt!.keyId)!;
        await (await verifyReceipt(c.receipt, key.publicKey)).checkStdout(c.stdout);
      }
    });

    it("answers getServerInfo without a key", async () => {
      const anonymous = createClient({ baseUrl: server.baseUrl, transport });
      const info = await anonymous.getServerInfo();
      assert.ok(info.serverVersion);
      assert.equal(info.receiptKeys[0]?.current, true);
      assert.equal(info.receiptKeys[0]?.publicKey.length, 32);
    });
  });
}

describe("cache with streamed stdin", () => {
  it("is refused before anything is sent, naming the cache field", async () => {
    const client = createClient({ baseUrl: server.baseUrl, apiKey: server.freeKey, transport: "grpc" });
    async function* stdin() {
      yield "a";
    }
    const err = await client
      .execute({ module: ECHO, stdin: stdin(), cache: "use" })
      .result()
      .then(
        () => assert.fail("expected a refusal"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.local, true);
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ["cache"]);
    assert.match(err.message, /streamed stdin cannot be part of the result cache's key/);
  });
});

describe("an unknown cache mode", () => {
  it("is refused before anything is sent, naming the cache field", async () => {
    const client = createClient({ baseUrl: server.baseUrl, apiKey: server.freeKey, transport: "grpc-web" });
    const options = { module: ECHO, stdin: "x", cache: "always" } as unknown as RunOptions;
    const err = await client
      .run(options)
      .result()
      .then(
        () => assert.fail("expected a refusal"),
        (e: unknown) => e,
      );
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.local, true);
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ["cache"]);
  });
});

/**
 * Detached executions against a real server, over both transports: every
 * call is unary or server-streaming, so gRPC-web (browsers) has them all.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, Outcome, WasmWizError, createClient, toText, type RunEvent, type TransportKind, type WasmWizClient } from "../src/node.js";
import { createConnection, createServer, type Server as NetServer, type Socket } from "node:net";
import { guest, startServer, type TestServer } from "./helpers/server.js";

const TRANSPORTS: TransportKind[] = ["grpc", "grpc-web"];

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

let keys = 0;
/** A client of a brand-new account (its own list of executions). */
async function freshClient(transport: TransportKind): Promise<WasmWizClient> {
  const apiKey = await server.createKey(`jobs-${transport}-${++keys}@test.local`, "unlimited");
  return createClient({ baseUrl: server.baseUrl, apiKey, transport });
}

for (const transport of TRANSPORTS) {
  describe(`detached executions over ${transport}`, () => {
    let client: WasmWizClient;
    before(() => {
      client = createClient({ baseUrl: server.baseUrl, apiKey: server.adminKey, transport });
    });

    it("submit() answers with an id and result() waits for the output", async () => {
      const job = await client.submit({ module: guest("echo"), stdin: "detached hello" });
      assert.match(job.executionId, /.+/);
      const result = await job.result();
      assert.equal(result.outcome, Outcome.SUCCESS);
      assert.equal(result.stdoutText, "detached hello");
    });

    it("events() go from started to finished, in order", async () => {
      const job = await client.submit({ module: guest("progress"), args: ["3"] });
      const events: RunEvent[] = [];
      for await (const ev of job.events()) events.push(ev);
      assert.equal(events[0]?.type, "started");
      assert.equal(events[events.length - 1]?.type, "finished");
      const stdout = events.map((ev) => (ev.type === "stdout" ? toText(ev.data) : "")).join("");
      assert.equal(stdout, "tick 0\ntick 1\ntick 2\ndone\n");
    });

    it("a handle rebuilt from the id gets the stored result", async () => {
      const submitted = await client.submit({ module: guest("echo"), stdin: "kept" });
      await submitted.result();
      const info = await client.getExecution(submitted.executionId);
      assert.equal(info.stateName, "FINISHED");
      assert.equal(toText(info.stdout), "kept");
      assert.equal(info.finished?.outcome, Outcome.SUCCESS);
      assert.equal(info.attemptExecutionIds.length, 1);
      assert.equal((await client.execution(submitted.executionId).result()).stdoutText, "kept");
    });

    it("listExecutions() shows the account's runs newest first, filtered by state", async () => {
      const own = await freshClient(transport);
      const first = await own.submit({ module: guest("hello") });
      await first.result();
      const second = await own.submit({ module: guest("hello") });
      await second.result();
      const all = await own.listExecutions();
      assert.deepEqual(
        all.executions.map((e) => e.executionId),
        [second.executionId, first.executionId],
      );
      assert.equal(all.executions[0]?.outcomeName, "SUCCESS");
      assert.ok(all.executions[0]!.createdAt.getTime() > 0);
      const page = await own.listExecutions({ state: "FINISHED", pageSize: 1 });
      assert.deepEqual(page.executions.map((e) => e.executionId), [second.executionId]);
      assert.notEqual(page.nextPageToken, "");
      const queued = await own.listExecutions({ state: "QUEUED" });
      assert.deepEqual(queued.executions, []);
    });

    it("a page size above the server's maximum is INVALID_ARGUMENT on page_size", async () => {
      const err = await client.listExecutions({ pageSize: 501 }).then(
        () => assert.fail("accepted"),
        (e: unknown) => e as WasmWizError,
      );
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.fieldViolations[0]?.field, "page_size");
    });

    it("another account's execution is NOT_FOUND", async () => {
      const job = await client.submit({ module: guest("hello") });
      const other = createClient({ baseUrl: server.baseUrl, apiKey: server.freeKey, transport });
      const err = await other.getExecution(job.executionId).then(
        () => assert.fail("visible to another account"),
        (e: unknown) => e as WasmWizError,
      );
      assert.equal(err.code, Code.NotFound);
    });

    it("cancel() stops a running execution and result() rejects with CANCELLED", async () => {
      const job = await client.submit({ module: guest("loop"), limits: { timeoutMs: 30_000 } });
      assert.equal(await job.cancel(), "CANCELLED");
      const err = await job.result().then(
        () => assert.fail("a cancelled execution gave a result"),
        (e: unknown) => e as WasmWizError,
      );
      assert.equal(err.code, Code.Canceled);
      assert.equal((await job.status()).stateName, "CANCELLED");
    });

    it("submitBatch() makes one detached execution per case, in case order", async () => {
      const batch = await client.submitBatch({ module: guest("echo"), cases: [{ stdin: "a" }, { stdin: "b" }] });
      assert.match(batch.batchId, /.+/);
      const outputs = await Promise.all(batch.executions.map(async (job) => (await job.result()).stdoutText));
      assert.deepEqual(outputs, ["a", "b"]);
    });

    it("a webhook URL before the account has a secret is INVALID_ARGUMENT on webhook_url", async () => {
      const own = await freshClient(transport);
      const err = await own.submit({ module: guest("hello"), webhookUrl: "https://example.com/hook" }).then(
        () => assert.fail("accepted"),
        (e: unknown) => e as WasmWizError,
      );
      assert.equal(err.code, Code.InvalidArgument);
      assert.equal(err.fieldViolations[0]?.field, "webhook_url");
    });
  });
}

/** A TCP proxy to the server whose open connections can all be reset at once (a dropped link). */
class CuttableProxy {
  readonly #listener: NetServer;
  #open: Socket[] = [];
  connections = 0;

  constructor(upstreamPort: number) {
    this.#listener = createServer((down) => {
      const up = createConnection({ host: "127.0.0.1", port: upstreamPort });
      this.connections += 1;
      this.#open.push(down, up);
      down.pipe(up).on("error", () => undefined);
      up.pipe(down).on("error", () => undefined);
      down.on("error", () => up.destroy());
      up.on("error", () => down.destroy());
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.#listener.listen(0, "127.0.0.1", r));
    const address = this.#listener.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return `http://127.0.0.1:${address.port}`;
  }

  cut(): void {
    for (const s of this.#open.splice(0)) s.resetAndDestroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.#listener.close(() => r()));
  }
}

for (const transport of TRANSPORTS) {
  it(`events() over ${transport} continue after a dropped connection, without repeats`, async () => {
    const proxy = new CuttableProxy(Number(new URL(server.baseUrl).port));
    try {
      const url = await proxy.listen();
      const direct = createClient({ baseUrl: server.baseUrl, apiKey: server.adminKey, transport });
      const job = await direct.submit({ module: guest("progress"), args: ["10"] });
      const viaProxy = createClient({ baseUrl: url, apiKey: server.adminKey, transport });
      const events: RunEvent[] = [];
      for await (const ev of viaProxy.execution(job.executionId).events()) {
        events.push(ev);
        if (events.length === 2) proxy.cut(); // after started and tick 0
      }
      const stdout = events.map((ev) => (ev.type === "stdout" ? toText(ev.data) : "")).join("");
      assert.equal(stdout, [...Array(10).keys()].map((i) => `tick ${i}\n`).join("") + "done\n");
      assert.equal(events.filter((ev) => ev.type === "started").length, 1);
      assert.equal(events[events.length - 1]?.type, "finished");
      assert.ok(proxy.connections >= 2, "it reconnected");
    } finally {
      await proxy.close();
    }
  });
}

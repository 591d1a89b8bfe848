/**
 * Detached executions against a real server, over both transports: every
 * call is unary or server-streaming, so gRPC-web (browsers) has them all.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, Outcome, WasmWizError, createClient, toText, type RunEvent, type TransportKind, type WasmWizClient } from "../src/node.js";
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

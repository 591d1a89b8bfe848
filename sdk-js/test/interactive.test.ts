/**
 * Interactive sessions against a real server, over both transports: gRPC
 * (`Execute` with `stream_stdin` + `interactive`) and gRPC-web (`Run` with
 * `interactive` + `WriteStdin`).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, Outcome, WasmWizError, createClient, toText, type InteractiveSession, type RunEvent, type TransportKind, type WasmWizClient } from "../src/node.js";
import { guest, startServer, type TestServer } from "./helpers/server.js";

const TRANSPORTS: TransportKind[] = ["grpc", "grpc-web"];

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

/** Reads the session's stdout until it contains `want`; returns everything read. */
async function readUntil(events: AsyncIterator<RunEvent>, want: string): Promise<string> {
  let text = "";
  while (!text.includes(want)) {
    const next = await events.next();
    if (next.done) assert.fail(`the run ended before printing ${JSON.stringify(want)}; got ${JSON.stringify(text)}`);
    if (next.value.type === "stdout") text += toText(next.value.data);
  }
  return text;
}

/** Drains what is left of the events. */
async function drain(events: AsyncIterator<RunEvent>): Promise<void> {
  for (;;) if ((await events.next()).done) return;
}

for (const transport of TRANSPORTS) {
  describe(`interactive over ${transport}`, () => {
    let client: WasmWizClient;
    before(() => {
      client = createClient({ baseUrl: server.baseUrl, apiKey: server.adminKey, transport });
    });

    it("answers a line written after the guest started, before stdin ends", async () => {
      const session: InteractiveSession = client.interactive({ module: guest("calc") });
      const events = session[Symbol.asyncIterator]();
      await readUntil(events, "> ");
      await session.write("1+2\n");
      const answer = await readUntil(events, "= 3\n");
      assert.match(answer, /= 3\n/);
      await session.close();
      await drain(events);
      const result = await session.result();
      assert.equal(result.outcome, Outcome.SUCCESS);
      assert.match(result.stdoutText, /bye\n$/);
    });

    it("delivers writes made without waiting in the order they were made", async () => {
      const session = client.interactive({ module: guest("calc") });
      const writes: Promise<void>[] = [];
      for (let i = 1; i <= 20; i++) writes.push(session.write(`${i}*10\n`));
      writes.push(session.close());
      await Promise.all(writes);
      const result = await session.result();
      const answers = [...result.stdoutText.matchAll(/= (\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(answers, Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
    });

    it("gives the execution id of the run", async () => {
      const session = client.interactive({ module: guest("calc") });
      const id = await session.executionId;
      await session.close();
      const result = await session.result();
      assert.equal(id, result.executionId);
      assert.notEqual(id, "");
    });

    it("cancel() stops a guest waiting for input", async () => {
      const session = client.interactive({ module: guest("calc") });
      await session.executionId;
      session.cancel();
      const err = await session.result().then(
        () => assert.fail("a cancelled session must not finish"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WasmWizError);
      assert.equal(err.code, Code.Canceled);
    });

    it("refuses a write after close() without sending it", async () => {
      const session = client.interactive({ module: guest("calc") });
      await session.close();
      const err = await session.write("1\n").then(
        () => assert.fail("a write after close must fail"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WasmWizError);
      assert.equal(err.code, Code.FailedPrecondition);
      await session.result();
    });

    it("a write to a session whose guest exited fails", async () => {
      const session = client.interactive({ module: guest("calc") });
      await session.write("quit\n");
      const result = await session.result();
      assert.match(result.stdoutText, /bye/);
      const err = await session.write("1\n").then(
        () => assert.fail("a write after the end must fail"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WasmWizError);
      assert.equal(err.code, Code.FailedPrecondition);
    });
  });
}

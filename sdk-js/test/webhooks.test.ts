/**
 * `verifyWebhook` alone, and against real deliveries: a server that may send
 * webhooks to 127.0.0.1 over http, and examples/js/webhook-receiver.mjs
 * (through the built package) as the receiver.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { createInterface } from "node:readline";
import { WebhookSignatureError, createClient, signWebhook, verifyWebhook, type WasmWizClient } from "../src/node.js";
import { EXAMPLES_JS_DIR, guest, linkSdkIntoExamples, sleep, startServer, type TestServer } from "./helpers/server.js";

const SECRET = "whsec_" + "ab".repeat(32);
const BODY = '{"type":"execution.ended","execution_id":"e1"}';
const NOW = 1_700_000_000;

describe("verifyWebhook", () => {
  it("a good signature gives the parsed body", () => {
    assert.deepEqual(verifyWebhook(SECRET, signWebhook(SECRET, BODY, NOW), BODY, { nowSec: NOW }), {
      type: "execution.ended",
      execution_id: "e1",
    });
  });

  it("the signature is HMAC-SHA256 of `<t>.<body>` under the secret", () => {
    const want = createHmac("sha256", "whsec_k").update("42.{}").digest("hex");
    assert.equal(signWebhook("whsec_k", "{}", 42), `t=42,v1=${want}`);
  });

  it("a tampered body is refused", () => {
    const header = signWebhook(SECRET, BODY, NOW);
    assert.throws(() => verifyWebhook(SECRET, header, BODY.replace("e1", "e2"), { nowSec: NOW }), /does not match/);
  });

  it("another secret is refused", () => {
    const header = signWebhook("whsec_" + "cd".repeat(32), BODY, NOW);
    assert.throws(() => verifyWebhook(SECRET, header, BODY, { nowSec: NOW }), WebhookSignatureError);
  });

  it("a timestamp older than the tolerance is refused", () => {
    const header = signWebhook(SECRET, BODY, NOW - 301);
    assert.throws(() => verifyWebhook(SECRET, header, BODY, { nowSec: NOW }), /replayed/);
    assert.equal(verifyWebhook(SECRET, header, BODY, { nowSec: NOW, toleranceSec: 600 })["execution_id"], "e1");
  });

  it("one matching signature among several is enough", () => {
    const good = signWebhook(SECRET, BODY, NOW).split(",")[1];
    assert.ok(verifyWebhook(SECRET, `t=${NOW},v1=${"0".repeat(64)},v1=zz,${good}`, BODY, { nowSec: NOW }));
  });

  for (const [header, said] of [
    [undefined, /missing/],
    ["", /missing/],
    ["v1=abc", /t=<unix seconds>/],
    ["t=abc,v1=00", /t=<unix seconds>/],
    [`t=${NOW}`, /no v1/],
    [`t=${NOW},garbage,v1=00`, /key=value/],
    ["t=1," + "v1=00,".repeat(300), /longer than/],
  ] as const) {
    it(`a malformed header is refused: ${JSON.stringify(header)?.slice(0, 30)}`, () => {
      assert.throws(() => verifyWebhook(SECRET, header, BODY, { nowSec: NOW }), (e: unknown) => {
        assert.ok(e instanceof WebhookSignatureError);
        assert.match(e.message, said);
        return true;
      });
    });
  }
});

/** examples/js/webhook-receiver.mjs, running: its verified deliveries, one JSON line each. */
class Receiver {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  url = "";

  constructor(secret: string) {
    this.child = spawn(process.execPath, ["webhook-receiver.mjs", "0", "1"], {
      cwd: EXAMPLES_JS_DIR,
      env: { ...process.env, WASMWIZ_WEBHOOK_SECRET: secret },
      stdio: ["ignore", "pipe", "pipe"],
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => this.lines.push(line));
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
  }

  async ready(): Promise<void> {
    const first = await this.#line(0);
    const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(first);
    assert.ok(m, first);
    this.url = `${m[1]}/hook`;
  }

  async event(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.#line(1)) as Record<string, unknown>;
  }

  async #line(index: number): Promise<string> {
    for (let waited = 0; waited < 30_000; waited += 50) {
      const line = this.lines[index];
      if (line !== undefined) return line;
      await sleep(50);
    }
    throw new Error(`the receiver printed no line ${index} in 30 s; stderr: ${this.stderr}`);
  }

  stop(): void {
    this.child.kill();
  }
}

describe("webhooks from a real server", () => {
  let server: TestServer;
  let client: WasmWizClient;

  before(async () => {
    linkSdkIntoExamples();
    server = await startServer(["--webhook-allow-http=true", "--webhook-allow-private=true"]);
  });

  after(async () => {
    await server?.stop();
  });

  /** The execution's webhook attempts once there is one (recorded after the receiver answers). */
  async function attempts(executionId: string) {
    for (let waited = 0; waited < 30_000; waited += 100) {
      const info = await client.getExecution(executionId);
      if (info.webhookAttempts.length) return info.webhookAttempts;
      await sleep(100);
    }
    throw new Error("no webhook attempt in 30 s");
  }

  it("a delivery verifies under the secret from rotateWebhookSecret()", async () => {
    client = createClient({ baseUrl: server.baseUrl, apiKey: await server.createKey("hooks1@test.local", "free") });
    const secret = await client.account.rotateWebhookSecret();
    assert.match(secret, /^whsec_[0-9a-f]{64}$/);
    const receiver = new Receiver(secret);
    try {
      await receiver.ready();
      const job = await client.submit({ module: guest("exitcode"), args: ["3"], webhookUrl: receiver.url });
      const event = await receiver.event();
      assert.equal(event["type"], "execution.ended");
      assert.equal(event["execution_id"], job.executionId);
      assert.equal(event["outcome"], "OUTCOME_EXIT_NONZERO");
      assert.equal(event["exit_code"], 3);
      assert.deepEqual((await attempts(job.executionId)).map((a) => a.httpStatus), [204]);
    } finally {
      receiver.stop();
    }
  });

  it("a secret replaced by rotation no longer verifies (the receiver answers 400)", async () => {
    client = createClient({ baseUrl: server.baseUrl, apiKey: await server.createKey("hooks2@test.local", "free") });
    const old = await client.account.rotateWebhookSecret();
    await client.account.rotateWebhookSecret();
    const receiver = new Receiver(old);
    try {
      await receiver.ready();
      const job = await client.submit({ module: guest("hello"), webhookUrl: receiver.url });
      await job.result();
      assert.equal((await attempts(job.executionId))[0]?.httpStatus, 400);
      assert.match(receiver.stderr, /does not match/);
    } finally {
      receiver.stop();
    }
  });
});

/**
 * Unit tests of the SDK's own logic over an in-memory Connect router (no
 * server needed): event collection, early exit, error conversion with
 * details, retryAfter, the upload dedup path per transport.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createRouterTransport } from "@connectrpc/connect";
import { StdinFeed } from "../src/interactive.js";
import { createHash } from "node:crypto";
import {
  Code,
  Outcome,
  WasmWizError,
  createClientWithTransport,
  describeError,
  formatWait,
  parseRateLimit,
  sha256Hex,
  type TransportKind,
} from "../src/node.js";
import { ExecutionService, FinishedSchema, type RunRequest } from "../src/gen/wasmwiz/v1/execution_pb.js";
import { ModuleService, ModuleInfoSchema } from "../src/gen/wasmwiz/v1/module_pb.js";
import { AccountService } from "../src/gen/wasmwiz/v1/account_pb.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "../src/gen/google/rpc/error_details_pb.js";
import { paddedModule } from "./helpers/server.js";

const enc = new TextEncoder();

function fakeClient(kind: TransportKind = "grpc", calls: string[] = [], stored = new Set<string>()) {
  const transport = createRouterTransport(({ service }) => {
    service(ExecutionService, {
      async *run(req: RunRequest, ctx) {
        calls.push(`run:${ctx.requestHeader.get("authorization") ?? ""}`);
        if (req.source.case === "moduleSha256" && req.source.value === "missing") {
          throw new ConnectError("no such module", Code.NotFound, undefined, [
            { desc: ResourceInfoSchema, value: { resourceType: "module", resourceName: "missing" } },
          ]);
        }
        yield { event: { case: "started", value: { moduleSha256: "abc", executionId: "id-1" } } };
        yield { event: { case: "stdout", value: enc.encode("one ") } };
        yield { event: { case: "stderr", value: enc.encode("warn") } };
        yield { event: { case: "stdout", value: enc.encode("two") } };
        if (req.args[0] === "nofinish") return;
        yield {
          event: { case: "finished", value: create(FinishedSchema, { outcome: Outcome.EXIT_NONZERO, exitCode: 4, fuelConsumed: 99n }) },
        };
      },
      async *execute() {
        // unused
      },
      async *runBatch(req) {
        for (let i = req.cases.length - 1; i >= 0; i--) {
          yield { caseIndex: i, name: req.cases[i]!.name, stdout: req.cases[i]!.stdin, finished: { outcome: Outcome.SUCCESS } };
        }
      },
    });
    service(ModuleService, {
      async getModule(req) {
        calls.push("getModule");
        if (!stored.has(req.sha256)) throw new ConnectError("unknown module", Code.NotFound);
        return { sha256: req.sha256, size: 1n };
      },
      async uploadModule(reqs) {
        let size = 0n;
        let chunks = 0;
        const h = createHash("sha256");
        for await (const r of reqs) {
          if (r.msg.case === "start") size = r.msg.value.size;
          if (r.msg.case === "chunk") {
            chunks++;
            h.update(r.msg.value);
          }
        }
        calls.push(`uploadModule:${chunks}`);
        const sha = h.digest("hex");
        stored.add(sha);
        return create(ModuleInfoSchema, { sha256: sha, size });
      },
      async putModule(req) {
        calls.push("putModule");
        const sha = createHash("sha256").update(req.module).digest("hex");
        stored.add(sha);
        return { sha256: sha, size: BigInt(req.module.length) };
      },
      async listModules() {
        return {};
      },
      async deleteModule() {
        return {};
      },
    });
    service(AccountService, {
      async whoAmI(_req, ctx) {
        const auth = ctx.requestHeader.get("authorization");
        if (auth === "Bearer small") {
          calls.push("whoAmI");
          return { email: "me@x", tier: "small", limits: { tier: "small", maxModuleBytes: BigInt(2 << 20) } };
        }
        if (auth !== "Bearer good") throw new ConnectError("bad key", Code.Unauthenticated);
        return { email: "me@x", tier: "free" };
      },
      async getUsage() {
        throw new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" }, [
          { desc: RetryInfoSchema, value: { retryDelay: { seconds: 12n, nanos: 500_000_000 } } },
          { desc: QuotaFailureSchema, value: { violations: [{ subject: "user", description: "rate limit of 10 executions per minute exceeded; retry in 12 s" }] } },
        ]);
      },
      async createMyApiKey() {
        throw new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" });
      },
      async listMyApiKeys() {
        throw new ConnectError("bad", Code.InvalidArgument, undefined, [
          { desc: BadRequestSchema, value: { fieldViolations: [{ field: "module", description: "no _start export" }] } },
        ]);
      },
      async revokeMyApiKey() {
        return {};
      },
    });
  });
  return createClientWithTransport(transport, kind, { baseUrl: "http://fake", apiKey: "good" });
}

describe("streams", () => {
  it("iterating yields typed events and result() collects them", async () => {
    const calls: string[] = [];
    const run = fakeClient("grpc", calls).run({ module: new Uint8Array([0]) });
    const types: string[] = [];
    for await (const ev of run) types.push(ev.type);
    assert.deepEqual(types, ["started", "stdout", "stderr", "stdout", "finished"]);
    const r = await run.result();
    assert.equal(r.stdoutText, "one two");
    assert.equal(r.stderrText, "warn");
    assert.equal(r.outcomeName, "EXIT_NONZERO");
    assert.equal(r.exitCode, 4);
    assert.equal(r.ok, false);
    assert.equal(r.moduleSha256, "abc");
    assert.equal(r.finished.fuelConsumed, 99n);
    assert.deepEqual(calls, ["run:Bearer good"], "API key sent as a bearer token");
  });

  it("result() without iterating", async () => {
    const r = await fakeClient().run({ moduleSha256: "x" }).result();
    assert.equal(r.stdoutText, "one two");
  });

  it("a stream can be iterated only once", async () => {
    const run = fakeClient().run({ moduleSha256: "x" });
    await run.result();
    assert.throws(() => run[Symbol.asyncIterator](), /only once/);
  });

  it("a stream without finished is an error", async () => {
    const err = await fakeClient()
      .run({ moduleSha256: "x", args: ["nofinish"] })
      .result()
      .catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.Internal);
  });

  it("breaking out early rejects result() with CANCELLED", async () => {
    const run = fakeClient().run({ moduleSha256: "x" });
    for await (const ev of run) if (ev.type === "stdout") break;
    await assert.rejects(run.result(), (e: unknown) => e instanceof WasmWizError && e.code === Code.Canceled);
  });

  it("server errors in a stream become WasmWizErrors with details", async () => {
    const err = await fakeClient()
      .run({ moduleSha256: "missing" })
      .result()
      .catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.details.resourceInfo?.resourceName, "missing");
    assert.match(describeError(err).detail, /module missing/);
  });

  it("batch results come sorted by case", async () => {
    const results = await fakeClient()
      .runBatch({ module: new Uint8Array([0]), cases: [{ stdin: "a", name: "A" }, { stdin: "b" }, { stdin: "c" }] })
      .result();
    assert.deepEqual(
      results.map((r) => [r.caseIndex, r.stdoutText]),
      [
        [0, "a"],
        [1, "b"],
        [2, "c"],
      ],
    );
    assert.equal(results[0]!.name, "A");
  });

  it("giving both or neither module source is refused", async () => {
    const c = fakeClient();
    await assert.rejects(c.run({ module: new Uint8Array(1), moduleSha256: "x" } as never).result(), (e: unknown) => e instanceof WasmWizError && e.code === Code.InvalidArgument);
  });
});

describe("errors", () => {
  it("UNAUTHENTICATED", async () => {
    const c = fakeClient().withApiKey("bad");
    const err = await c.account.whoAmI().catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.Unauthenticated);
    assert.equal(err.codeName, "UNAUTHENTICATED");
    assert.equal(err.rawMessage, "bad key");
    assert.equal(err.message, "UNAUTHENTICATED: bad key");
    assert.equal((await fakeClient().account.whoAmI()).email, "me@x");
  });

  it("RetryInfo wins over retry-after; QuotaFailure parsed", async () => {
    const err = await fakeClient().account.getUsage().catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.ResourceExhausted);
    assert.equal(err.retryAfter, 12.5);
    assert.equal(err.details.quotaFailure?.violations[0]?.subject, "user");
    const words = describeError(err);
    assert.equal(words.title, "Rate limited");
    assert.equal(words.detail, "Rate limit of 10 executions per minute exceeded. Try again in 13 s.");
  });

  it("retry-after header alone", async () => {
    const err = await fakeClient().account.createMyApiKey().catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.retryAfter, 7);
  });

  it("BadRequest field violations", async () => {
    const err = await fakeClient().account.listMyApiKeys().catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.deepEqual(err.fieldViolations, [{ field: "module", description: "no _start export" }]);
    assert.deepEqual(describeError(err), { title: "Invalid module", detail: "module: no _start export" });
  });

  it("from() keeps WasmWizErrors and wraps anything else", () => {
    const e = new WasmWizError(Code.Unavailable, "draining", { retryAfter: 3 });
    assert.equal(WasmWizError.from(e), e);
    assert.equal(WasmWizError.from(new Error("boom")).code, Code.Unknown);
    assert.equal(describeError(e).detail, "draining. Try again in 3 s.");
  });

  it("formatWait", () => {
    assert.equal(formatWait(0.2), "1 s");
    assert.equal(formatWait(59), "59 s");
    assert.equal(formatWait(125), "2 min 5 s");
    assert.equal(formatWait(7200), "2 h");
  });
});

describe("upload", () => {
  it("gRPC: checks the hash, streams 1 MiB chunks, then skips known hashes", async () => {
    const calls: string[] = [];
    const c = fakeClient("grpc", calls);
    const mod = paddedModule(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 3 * 1024 * 1024);
    const first = await c.upload(mod);
    assert.equal(first.uploaded, true);
    assert.equal(first.sha256, createHash("sha256").update(mod).digest("hex"));
    const second = await c.upload(mod);
    assert.equal(second.uploaded, false);
    assert.equal(second.alreadyExisted, true);
    assert.deepEqual(calls, ["getModule", "uploadModule:4", "getModule"]);
  });

  it("gRPC-web: one PutModule", async () => {
    const calls: string[] = [];
    const c = fakeClient("grpc-web", calls);
    const r = await c.upload(enc.encode("module bytes"));
    assert.equal(r.uploaded, true);
    assert.deepEqual(calls, ["getModule", "putModule"]);
  });

  it("execute() needs the grpc transport", async () => {
    const err = await fakeClient("grpc-web")
      .execute({ module: new Uint8Array(1) })
      .result()
      .catch((e: unknown) => e);
    assert.ok(err instanceof WasmWizError);
    assert.equal(err.code, Code.Unimplemented);
  });
});

describe("helpers", () => {
  it("sha256Hex matches node:crypto", async () => {
    const b = enc.encode("abc");
    assert.equal(await sha256Hex(b), createHash("sha256").update(b).digest("hex"));
  });

  it("parseRateLimit", () => {
    assert.deepEqual(parseRateLimit(new Headers({ "ratelimit-limit": "10", "ratelimit-remaining": "3", "ratelimit-reset": "42" })), {
      limit: 10,
      remaining: 3,
      reset: 42,
    });
    assert.equal(parseRateLimit(new Headers()), undefined);
  });
});

describe("sizes checked before bytes move", () => {
  const big = () => paddedModule(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 3 << 20);

  for (const kind of ["grpc", "grpc-web"] as TransportKind[]) {
    it(`a module above the tier is refused without sending it (${kind})`, async () => {
      const calls: string[] = [];
      const client = fakeClient(kind, calls).withApiKey("small");
      const module = big();
      const refusals = [
        await client.run({ module }).result().catch((e: unknown) => e),
        await client.runBatch({ module, cases: [{}] }).result().catch((e: unknown) => e),
        await client.upload(module).catch((e: unknown) => e),
      ];
      for (const e of refusals) {
        assert.ok(e instanceof WasmWizError, String(e));
        assert.equal(e.code, Code.InvalidArgument);
        assert.equal(e.local, true);
        assert.equal(e.limit?.field, "module");
        assert.equal(e.limit?.maximum, 2 << 20);
        assert.match(e.message, /^INVALID_ARGUMENT: module 3 MiB is above the small tier's 2 MiB/);
      }
      assert.deepEqual(calls, ["whoAmI"], "one WhoAmI for the client, no module bytes sent");
    });
  }

  it("a module up to 1 MiB is sent without asking WhoAmI", async () => {
    const calls: string[] = [];
    await fakeClient("grpc", calls).withApiKey("small").run({ module: new Uint8Array([0]) }).result();
    assert.ok(!calls.includes("whoAmI"), calls.join(","));
  });
});

describe("limit errors in the SDK's terms", () => {
  const limitError = (field: string, requested: number, maximum: number, unit: string, tier: string) =>
    WasmWizError.from(
      new ConnectError(`${field} of ${requested} is above the ${tier} tier's maximum of ${maximum}`, Code.InvalidArgument, undefined, [
        { desc: BadRequestSchema, value: { fieldViolations: [{ field, description: `the maximum is ${maximum}` }] } },
        {
          desc: ErrorInfoSchema,
          value: {
            reason: "LIMIT_EXCEEDED",
            domain: "wasmwiz",
            metadata: { field, requested: String(requested), maximum: String(maximum), unit, tier },
          },
        },
      ]),
    );

  it("memory names the option and human units, keeping the raw details", () => {
    const e = limitError("limits.memory_bytes", 2 ** 31, 2 ** 30, "bytes", "pro");
    assert.equal(e.message, "INVALID_ARGUMENT: limits.memoryBytes 2 GiB is above the pro tier's 1 GiB");
    assert.equal(e.rawMessage, "limits.memory_bytes of 2147483648 is above the pro tier's maximum of 1073741824");
    assert.deepEqual(
      [e.limit?.field, e.limit?.requested, e.limit?.maximum, e.limit?.unit, e.limit?.tier],
      ["limits.memory_bytes", 2 ** 31, 2 ** 30, "bytes", "pro"],
    );
    assert.equal(e.fieldViolations[0]?.field, "limits.memory_bytes");
    assert.equal(describeError(e).detail, "limits.memoryBytes 2 GiB is above the pro tier's 1 GiB.");
  });

  it("time, fuel and counts read in their own units", () => {
    assert.match(limitError("limits.timeout_ms", 60000, 5000, "ms", "free").message, /limits\.timeoutMs 60 s is above the free tier's 5 s$/);
    assert.match(limitError("limits.fuel", 1e13, 1e12, "fuel", "free").message, /limits\.fuel 10_000_000_000_000 is above the free tier's 1_000_000_000_000$/);
    assert.match(limitError("args", 301, 256, "count", "free").message, /args 301 items is above the free tier's 256 items/);
    assert.match(limitError("message", 3 << 19, 1 << 20, "bytes", "").message, /request 1\.5 MiB is above the server's 1 MiB$/);
  });

  it("stored modules and api keys are quotas, not rate limits", () => {
    const quota = (subject: string) =>
      WasmWizError.from(
        new ConnectError("full", Code.ResourceExhausted, undefined, [
          { desc: QuotaFailureSchema, value: { violations: [{ subject, description: "full" }] } },
        ]),
      );
    for (const subject of ["stored modules", "stored module bytes", "api keys"]) assert.equal(quota(subject).isQuotaExceeded, true, subject);
    for (const subject of ["uploads per minute", "concurrent uploads", "executions per minute"]) {
      assert.equal(quota(subject).isQuotaExceeded, false, subject);
    }
    assert.deepEqual(quota("concurrent uploads").quotaSubjects, ["concurrent uploads"]);
    assert.equal(describeError(quota("api keys")).title, "Too many API keys");
    assert.equal(describeError(quota("stored modules")).title, "Storage full");
  });

  it("an idle upload is told apart from the caller's deadline", () => {
    const idle = WasmWizError.from(
      new ConnectError("no upload message arrived for 30 s", Code.DeadlineExceeded, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "UPLOAD_IDLE", domain: "wasmwiz", metadata: { timeout_ms: "30000" } } },
      ]),
    );
    assert.equal(idle.isUploadIdle, true);
    assert.equal(WasmWizError.from(new ConnectError("deadline", Code.DeadlineExceeded)).isUploadIdle, false);
    assert.equal(describeError(idle).title, "Upload stalled");
  });
});

describe("the Execute stdin feed", () => {
  it("a write the request stream has not taken fails once the run ends", async () => {
    const feed = new StdinFeed();
    const pending = feed.push(new TextEncoder().encode("1\n"), false);
    const gone = new WasmWizError(Code.FailedPrecondition, "the run has ended");
    feed.end(gone);
    await assert.rejects(pending, (e: unknown) => e === gone);
  });

  it("a write after the run ended fails without being queued", async () => {
    const feed = new StdinFeed();
    feed.end(new WasmWizError(Code.FailedPrecondition, "the run has ended"));
    await assert.rejects(feed.push(new Uint8Array(1), false), WasmWizError);
  });

  it("a write taken by the request stream resolves", async () => {
    const feed = new StdinFeed();
    const written = feed.push(new TextEncoder().encode("x"), true);
    const taken: string[] = [];
    for await (const item of feed) taken.push(new TextDecoder().decode(item.data));
    await written;
    assert.deepEqual(taken, ["x"]);
  });
});

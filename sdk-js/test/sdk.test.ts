/**
 * SDK tests against a real wasmwiz-server, over both transports: gRPC
 * (HTTP/2) and gRPC-web (HTTP/1.1). Every RPC, errors with their details,
 * cancellation, and a 30 MB upload.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  Code,
  Outcome,
  Verdict,
  WasmWizError,
  createClient,
  describeError,
  timestampDate,
  type RunEvent,
  type TransportKind,
  type WasmWizClient,
} from "../src/node.js";
import { guest, paddedModule, sleep, startServer, type TestServer } from "./helpers/server.js";

const TRANSPORTS: TransportKind[] = ["grpc", "grpc-web"];
const HELLO = "Hello, WasmWiz!\n";

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Awaits `p` and returns the WasmWizError it rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown> | (() => Promise<unknown>)): Promise<WasmWizError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    assert.ok(e instanceof WasmWizError, `expected a WasmWizError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

/** A hand-written module whose `_start` imports `env.f` (not WASI). */
function moduleWithForeignImport(): Uint8Array {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
    0x02, 0x09, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x01, 0x66, 0x00, 0x00, // import env.f
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x01, // export _start = func 1
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // body: end
  ]);
}

/** A queue usable as an async iterable of stdin chunks. */
function pushable<T>() {
  const items: T[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(v: T) {
      items.push(v);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      for (;;) {
        if (items.length) {
          yield items.shift()!;
          continue;
        }
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
  };
}

describe("server fixture", () => {
  it("health check needs no key", async () => {
    const anon = createClient({ baseUrl: server.baseUrl });
    assert.equal(await anon.health(), true);
  });
});

for (const kind of TRANSPORTS) {
  describe(`SDK over ${kind}`, () => {
    let admin: WasmWizClient;
    let free: WasmWizClient;

    before(() => {
      admin = createClient({ baseUrl: server.baseUrl, apiKey: server.adminKey, transport: kind });
      free = admin.withApiKey(server.freeKey);
      assert.equal(admin.transport, kind);
    });

    describe("run", () => {
      it("hello: started, stdout, finished, in order, typed", async () => {
        const run = admin.run({ module: guest("hello") });
        const events: RunEvent[] = [];
        for await (const ev of run) events.push(ev);
        assert.equal(events[0]?.type, "started");
        assert.equal(events.at(-1)?.type, "finished");
        const res = await run.result();
        assert.equal(res.stdoutText, HELLO);
        assert.equal(res.outcome, Outcome.SUCCESS);
        assert.equal(res.outcomeName, "SUCCESS");
        assert.equal(res.exitCode, 0);
        assert.equal(res.ok, true);
        assert.equal(res.moduleSha256, sha256(guest("hello")));
        assert.ok(res.finished.fuelConsumed > 0n, "fuel consumed");
        assert.ok(res.finished.durationUs > 0n, "duration");
        assert.ok(res.finished.memoryPeakBytes > 0n, "memory peak");
        assert.equal(res.finished.stdoutBytes, BigInt(HELLO.length));
        assert.ok(res.started.limits, "effective limits");
        assert.ok(res.started.limits!.fuel > 0n);
        assert.match(res.executionId, /^[0-9a-f-]{36}$/);
      });

      it("result() alone collects everything", async () => {
        const res = await admin.run({ module: guest("echo"), stdin: "ping\npong\n" }).result();
        assert.equal(res.stdoutText, "ping\npong\n");
      });

      it("args, env and program name", async () => {
        const res = await admin
          .run({ module: guest("argsenv"), args: ["a", "b c"], env: { X: "1", GREETING: "hi there" }, programName: "prog" })
          .result();
        const lines = res.stdoutText.trim().split("\n");
        assert.deepEqual(lines.slice(0, 3), ["argv[0]=prog", "argv[1]=a", "argv[2]=b c"]);
        assert.deepEqual(lines.slice(3).sort(), ["env:GREETING=hi there", "env:X=1"]);
      });

      it("non-zero exit, trap, out of fuel, stderr", async () => {
        const ex = await admin.run({ module: guest("exitcode"), args: ["3"] }).result();
        assert.equal(ex.outcome, Outcome.EXIT_NONZERO);
        assert.equal(ex.exitCode, 3);
        assert.equal(ex.stdoutText, "exiting with 3\n");

        const trap = await admin.run({ module: guest("trap") }).result();
        assert.equal(trap.outcome, Outcome.TRAP);
        assert.equal(trap.finished.trapKind, "unreachable");
        assert.equal(trap.exitCode, -1);

        const loop = await admin.run({ module: guest("loop"), limits: { fuel: 1_000_000 } }).result();
        assert.equal(loop.outcome, Outcome.OUT_OF_FUEL);
        assert.equal(loop.finished.fuelConsumed, 1_000_000n);

        const se = await admin.run({ module: guest("stderr") }).result();
        assert.equal(se.stdoutText, "to stdout\n");
        assert.equal(se.stderrText, "to stderr\n");
      });

      it("timeout limit ends a run with OUTCOME_TIMEOUT", async () => {
        const res = await admin.run({ module: guest("loop"), limits: { timeoutMs: 300 } }).result();
        assert.equal(res.outcome, Outcome.TIMEOUT);
      });

      it("expected stdout gives a verdict", async () => {
        const ok = await admin.run({ module: guest("echo"), stdin: "42\n", expectedStdout: "42\n" }).result();
        assert.equal(ok.finished.verdict, Verdict.ACCEPTED);
        const wrong = await admin.run({ module: guest("echo"), stdin: "42\n", expectedStdout: "43\n" }).result();
        assert.equal(wrong.finished.verdict, Verdict.WRONG_ANSWER);
      });

      it("is deterministic: same seed, same output and fuel", async () => {
        const a = await admin.run({ module: guest("clockrand"), randomSeed: 7 }).result();
        const b = await admin.run({ module: guest("clockrand"), randomSeed: 7 }).result();
        const c = await admin.run({ module: guest("clockrand"), randomSeed: 8 }).result();
        assert.equal(a.stdoutText, b.stdoutText);
        assert.equal(a.finished.fuelConsumed, b.finished.fuelConsumed);
        assert.notEqual(a.stdoutText.split("random=")[1], c.stdoutText.split("random=")[1]);
      });

      it("streams output as the guest writes it", async () => {
        const times: { type: string; at: number }[] = [];
        for await (const ev of admin.run({ module: guest("progress"), args: ["3"] })) {
          times.push({ type: ev.type, at: Date.now() });
        }
        const stdout = times.filter((t) => t.type === "stdout");
        assert.ok(stdout.length >= 2, `expected several stdout events, got ${stdout.length}`);
        assert.ok(times.at(-1)!.at >= stdout[0]!.at, "finished after the first output");
      });

      it("keepModule stores the module so it runs again by sha256", async () => {
        const mod = paddedModule(guest("hello"), 16, `keep-${kind}`);
        const first = await admin.run({ module: mod, keepModule: true }).result();
        assert.equal(first.moduleSha256, sha256(mod));
        const again = await admin.run({ moduleSha256: first.moduleSha256 }).result();
        assert.equal(again.stdoutText, HELLO);
      });

      it("rate-limit headers are reported on metered tiers", async () => {
        const res = await free.run({ module: guest("hello") }).result();
        assert.ok(res.rateLimit, "ratelimit-* headers present");
        assert.equal(res.rateLimit!.limit, 10);
        assert.ok(res.rateLimit!.remaining <= 9);
      });
    });

    describe("cancellation", () => {
      it("an AbortSignal stops a running guest", async () => {
        const ac = new AbortController();
        const run = admin.run({ module: guest("loop"), limits: { timeoutMs: 60_000 } }, { signal: ac.signal });
        const t0 = Date.now();
        const err = await rejection(async () => {
          for await (const ev of run) {
            if (ev.type === "started") setTimeout(() => ac.abort(), 200);
          }
        });
        assert.equal(err.code, Code.Canceled);
        assert.ok(Date.now() - t0 < 10_000, "cancelled promptly");
        await assert.rejects(run.result(), (e: unknown) => e instanceof WasmWizError && e.code === Code.Canceled);
        // The server records the cancelled execution.
        let cancelled = 0n;
        for (let i = 0; i < 40 && cancelled === 0n; i++) {
          const usage = await admin.account.getUsage({ days: 1 });
          cancelled = usage.byOutcome["OUTCOME_CANCELLED"] ?? 0n;
          if (cancelled === 0n) await sleep(250);
        }
        assert.ok(cancelled > 0n, "server recorded OUTCOME_CANCELLED");
      });

      it("an already-aborted signal fails at once", async () => {
        const err = await rejection(admin.run({ module: guest("hello") }, { signal: AbortSignal.abort() }).result());
        assert.equal(err.code, Code.Canceled);
      });

      it("leaving the loop early cancels the call", async () => {
        const run = admin.run({ module: guest("progress"), args: ["50"] });
        for await (const ev of run) if (ev.type === "stdout") break;
        const err = await rejection(run.result());
        assert.equal(err.code, Code.Canceled);
      });
    });

    describe("execute (client streaming)", () => {
      if (kind === "grpc-web") {
        it("is refused clearly over gRPC-web", async () => {
          const err = await rejection(admin.execute({ module: guest("echo"), stdin: "x" }).result());
          assert.equal(err.code, Code.Unimplemented);
          assert.match(err.message, /grpc/);
        });
        return;
      }

      it("streams the module in chunks with whole stdin", async () => {
        const res = await admin.execute({ module: guest("echo"), stdin: "chunked\n", chunkSize: 100 }).result();
        assert.equal(res.stdoutText, "chunked\n");
        assert.equal(res.outcome, Outcome.SUCCESS);
      });

      it("streams stdin interactively while the guest runs", async () => {
        const stdin = pushable<string>();
        stdin.push("ping\n");
        const run = admin.execute({ module: guest("echo"), stdin });
        let echoed = "";
        const timer = setTimeout(() => stdin.end(), 15_000); // never hang
        for await (const ev of run) {
          if (ev.type === "stdout") {
            echoed += new TextDecoder().decode(ev.data);
            if (echoed === "ping\n") {
              stdin.push("pong\n");
            } else if (echoed === "ping\npong\n") {
              stdin.end();
            }
          }
        }
        clearTimeout(timer);
        const res = await run.result();
        assert.equal(res.stdoutText, "ping\npong\n", "each line echoed before stdin ended");
      });

      it("runs a stored module by sha256", async () => {
        const up = await admin.upload(guest("echo"));
        const res = await admin.execute({ moduleSha256: up.sha256, stdin: ["a", "b", "c"] }).result();
        assert.equal(res.stdoutText, "abc");
      });
    });

    describe("runBatch", () => {
      it("runs every case and reports verdicts", async () => {
        const batch = admin.runBatch({
          module: guest("echo"),
          cases: [
            { stdin: "a", expectedStdout: "a", name: "first" },
            { stdin: "b", expectedStdout: "x", name: "second" },
            { stdin: "c", name: "third" },
          ],
        });
        const seen: number[] = [];
        for await (const c of batch) seen.push(c.caseIndex);
        assert.deepEqual([...seen].sort(), [0, 1, 2]);
        const results = await batch.result();
        assert.deepEqual(
          results.map((r) => [r.caseIndex, r.name, r.stdoutText, r.verdict]),
          [
            [0, "first", "a", Verdict.ACCEPTED],
            [1, "second", "b", Verdict.WRONG_ANSWER],
            [2, "third", "c", Verdict.UNSPECIFIED],
          ],
        );
        assert.ok(results.every((r) => r.ok && r.moduleSha256 === sha256(guest("echo"))));
        assert.deepEqual(
          results.map((r) => r.verdictName),
          ["ACCEPTED", "WRONG_ANSWER", "UNSPECIFIED"],
        );
      });

      it("runs a stored module by sha256 with per-case args", async () => {
        const up = await admin.upload(guest("exitcode"));
        const results = await admin
          .runBatch({ moduleSha256: up.sha256, cases: [{ args: ["0"] }, { args: ["5"] }] })
          .result();
        assert.deepEqual(
          results.map((r) => [r.outcome, r.exitCode]),
          [
            [Outcome.SUCCESS, 0],
            [Outcome.EXIT_NONZERO, 5],
          ],
        );
      });
    });

    describe("modules", () => {
      it("upload skips known hashes; get, list, delete", async () => {
        const mod = paddedModule(guest("hello"), 64, `mod-${kind}`);
        const sha = sha256(mod);
        const up = await admin.upload(mod);
        assert.equal(up.sha256, sha);
        assert.equal(up.uploaded, true);
        assert.equal(up.alreadyExisted, false);
        assert.equal(up.size, BigInt(mod.length));

        const again = await admin.upload(mod);
        assert.equal(again.uploaded, false, "second upload skipped");
        assert.equal(again.alreadyExisted, true);

        const forced = await admin.upload(mod, { force: true });
        assert.equal(forced.uploaded, true);
        assert.equal(forced.alreadyExisted, true, "server says it already had it");

        const info = await admin.modules.get(sha);
        assert.equal(info.sha256, sha);
        assert.ok(info.exports.some((e) => e.name === "_start" && e.kind === "func"));
        assert.ok(info.imports.every((i) => i.module === "wasi_snapshot_preview1"));
        assert.ok(info.createdAt && timestampDate(info.createdAt).getTime() > 0);

        const page = await admin.modules.list({ pageSize: 1000 });
        assert.ok(page.modules.some((m) => m.sha256 === sha));
        const all: string[] = [];
        for await (const m of admin.modules.listAll({ pageSize: 2 })) all.push(m.sha256);
        assert.ok(all.includes(sha));
        assert.equal(new Set(all).size, all.length, "no duplicates across pages");

        const res = await admin.run({ moduleSha256: sha }).result();
        assert.equal(res.stdoutText, HELLO);

        await admin.modules.delete(sha);
        const err = await rejection(admin.modules.get(sha));
        assert.equal(err.code, Code.NotFound);
        const err2 = await rejection(admin.run({ moduleSha256: sha }).result());
        assert.equal(err2.code, Code.NotFound);
        assert.ok(err2.details.resourceInfo, "ResourceInfo detail");
        assert.match(err2.details.resourceInfo!.resourceName, new RegExp(sha));
      });

      it("uploads a 30 MB module and runs it", { timeout: 240_000 }, async () => {
        const big = paddedModule(guest("hello"), 30 * 1024 * 1024, `big-${kind}`);
        const sha = sha256(big);
        const up = await admin.upload(big);
        assert.equal(up.uploaded, true);
        assert.equal(up.sha256, sha);
        assert.equal(up.size, BigInt(big.length));
        const res = await admin.run({ moduleSha256: sha }).result();
        assert.equal(res.stdoutText, HELLO);
        const again = await admin.upload(big);
        assert.equal(again.uploaded, false);
        await admin.modules.delete(sha);
      });
    });

    describe("account", () => {
      it("whoAmI: tier, limits, allowance", async () => {
        const me = await admin.account.whoAmI();
        assert.equal(me.email, "admin@test.local");
        assert.equal(me.tier, "unlimited");
        assert.equal(me.admin, true);
        assert.ok(me.limits?.unmetered);
        const f = await free.account.whoAmI();
        assert.equal(f.tier, "free");
        assert.equal(f.admin, false);
        assert.equal(f.limits?.perMinute, 10n);
        assert.equal(f.limits?.perDay, 500n);
        assert.ok(f.remainingThisMinute <= 10n);
        assert.ok(f.remainingToday <= 500n);
        assert.match(f.keyId, /.+/);
      });

      it("getUsage: totals and a daily series ending today", async () => {
        const usage = await admin.account.getUsage({ days: 7 });
        assert.equal(usage.daily.length, 7);
        const today = new Date().toISOString().slice(0, 10);
        assert.equal(usage.daily.at(-1)!.date, today);
        assert.ok(usage.executions > 0n);
        assert.ok(usage.fuelConsumed > 0n);
        assert.ok((usage.byOutcome["OUTCOME_SUCCESS"] ?? 0n) > 0n);
        const sum = usage.daily.reduce((s, d) => s + d.executions, 0n);
        assert.equal(sum, usage.executions);
      });

      it("create, list and revoke my own keys", async () => {
        const created = await free.account.createMyApiKey({ label: `laptop-${kind}` });
        assert.match(created.key, /^wwz_/);
        const mine = free.withApiKey(created.key);
        const me = await mine.account.whoAmI();
        assert.equal(me.email, "free@test.local");
        assert.equal(me.keyId, created.keyId);

        const keys = await free.account.listMyApiKeys();
        const k = keys.find((x) => x.keyId === created.keyId);
        assert.ok(k, "new key listed");
        assert.equal(k!.label, `laptop-${kind}`);
        assert.ok(keys.every((x) => x.email === "free@test.local"));

        await free.account.revokeMyApiKey(created.keyId);
        let code: Code | undefined;
        for (let i = 0; i < 40; i++) {
          try {
            await mine.account.whoAmI();
          } catch (e) {
            code = (e as WasmWizError).code;
            break;
          }
          await sleep(250);
        }
        assert.equal(code, Code.Unauthenticated, "revoked key refused within 10 s");
        const after = await free.account.listMyApiKeys();
        assert.ok(after.find((x) => x.keyId === created.keyId)?.revokedAt, "revoked_at set");
      });
    });

    describe("admin", () => {
      it("users, tiers, keys and usage", async () => {
        const email = `someone-${kind}@test.local`;
        const u = await admin.admin.createUser({ email, tier: "basic" });
        assert.equal(u.user?.email, email);
        assert.equal(u.user?.tier, "basic");
        const t = await admin.admin.setTier({ email, tier: "pro" });
        assert.equal(t.user?.tier, "pro");

        const k = await admin.admin.createApiKey({ email, label: "ci" });
        assert.match(k.key, /^wwz_/);
        const them = admin.withApiKey(k.key);
        const who = await them.account.whoAmI();
        assert.equal(who.email, email);
        assert.equal(who.tier, "pro");
        await them.run({ module: guest("hello") }).result();

        const listed = await admin.admin.listApiKeys({ email });
        assert.ok(listed.some((x) => x.keyId === k.keyId && x.label === "ci"));
        const everyone = await admin.admin.listApiKeys();
        assert.ok(everyone.some((x) => x.email === "admin@test.local"));

        const usage = await admin.admin.getUsage({ email, days: 1 });
        assert.equal(usage.executions, 1n);
        const total = await admin.admin.getUsage({ days: 1 });
        assert.ok(total.executions > usage.executions);

        await admin.admin.revokeApiKey(k.keyId);
        let refused = false;
        for (let i = 0; i < 40 && !refused; i++) {
          refused = await them.account.whoAmI().then(
            () => false,
            (e: WasmWizError) => e.code === Code.Unauthenticated,
          );
          if (!refused) await sleep(250);
        }
        assert.ok(refused, "revoked key refused");
      });

      it("a user key gets PERMISSION_DENIED with ErrorInfo", async () => {
        const err = await rejection(free.admin.listApiKeys());
        assert.equal(err.code, Code.PermissionDenied);
        assert.equal(err.codeName, "PERMISSION_DENIED");
        assert.ok(err.details.errorInfo, "ErrorInfo detail");
        assert.equal(describeError(err).title, "Not allowed with this key");
      });
    });

    describe("errors", () => {
      it("bad or missing key: UNAUTHENTICATED", async () => {
        const bad = admin.withApiKey("wwz_nope_notasecret");
        const e1 = await rejection(bad.account.whoAmI());
        assert.equal(e1.code, Code.Unauthenticated);
        const e2 = await rejection(bad.run({ module: guest("hello") }).result());
        assert.equal(e2.code, Code.Unauthenticated);
        const e3 = await rejection(admin.withApiKey(undefined).account.whoAmI());
        assert.equal(e3.code, Code.Unauthenticated);
        assert.equal(describeError(e3).title, "The API key was not accepted");
      });

      it("invalid modules: INVALID_ARGUMENT with BadRequest on `module`", async () => {
        const notWasm = await rejection(admin.run({ module: new TextEncoder().encode("not wasm at all") }).result());
        assert.equal(notWasm.code, Code.InvalidArgument);
        assert.equal(notWasm.fieldViolations[0]?.field, "module");
        assert.ok(notWasm.fieldViolations[0]!.description.length > 0);
        assert.equal(describeError(notWasm).title, "Invalid module");

        const foreign = await rejection(admin.run({ module: moduleWithForeignImport() }).result());
        assert.equal(foreign.code, Code.InvalidArgument);
        assert.equal(foreign.fieldViolations[0]?.field, "module");
        assert.match(foreign.fieldViolations.map((v) => v.description).join(" "), /env/);

        const noStart = await rejection(admin.upload(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])));
        assert.equal(noStart.code, Code.InvalidArgument);
        assert.equal(noStart.fieldViolations[0]?.field, "module");
      });

      it("limits above the tier maximum: BadRequest naming the field and maximum", async () => {
        const client = admin.withApiKey(await server.createKey(`limits-${kind}@test.local`, "free"));
        const err = await rejection(client.run({ module: guest("hello"), limits: { fuel: 10n ** 13n } }).result());
        assert.equal(err.code, Code.InvalidArgument);
        const v = err.fieldViolations.find((x) => x.field === "limits.fuel");
        assert.ok(v, `a violation on limits.fuel, got ${JSON.stringify(err.fieldViolations)}`);
        assert.match(v!.description, /1000000000000|10\^12|1e12/);
      });

      it("a limit error names the option in human units", async () => {
        const client = admin.withApiKey(await server.createKey(`memory-${kind}@test.local`, "pro"));
        const err = await rejection(client.run({ module: guest("hello"), limits: { memoryBytes: 2n << 30n } }).result());
        assert.equal(err.message, "INVALID_ARGUMENT: limits.memoryBytes 2 GiB is above the pro tier's 1 GiB");
        assert.deepEqual([err.limit?.field, err.limit?.maximum, err.limit?.tier], ["limits.memory_bytes", 2 ** 30, "pro"]);
        assert.equal(err.local, false);
      });

      it("a module above the tier is refused before it is sent", async () => {
        const client = admin.withApiKey(await server.createKey(`module-size-${kind}@test.local`, "free"));
        const module = paddedModule(guest("hello"), 11 << 20);
        for (const call of [() => client.run({ module }).result(), () => client.upload(module)]) {
          const err = await rejection(call);
          assert.equal(err.local, true, "refused by the SDK, not the server");
          assert.equal(err.limit?.field, "module");
          assert.match(err.message, /is above the free tier's 10 MiB/);
        }
      });

      it("whoAmI shows what the account stores and the tier's storage limits", async () => {
        const client = admin.withApiKey(await server.createKey(`stored-${kind}@test.local`, "free"));
        const before = await client.account.whoAmI();
        assert.deepEqual([before.storedModules, before.storedBytes], [0n, 0n]);
        const up = await client.upload(guest("hello"));
        const me = await client.account.whoAmI();
        assert.deepEqual([me.storedModules, me.storedBytes], [1n, up.size]);
        assert.deepEqual([me.limits?.maxStoredModules, me.limits?.maxArgs, me.limits?.maxApiKeys], [50n, 256, 100]);
        assert.equal(me.keyExpiresAt, undefined);
      });

      it("listAll counts exports, and lists them with details", async () => {
        const client = admin.withApiKey(await server.createKey(`details-${kind}@test.local`, "free"));
        const up = await client.upload(guest("hello"));
        const plain = [];
        for await (const m of client.modules.listAll()) plain.push(m);
        const detailed = [];
        for await (const m of client.modules.listAll({ details: true })) detailed.push(m);
        assert.equal(plain[0]?.exports.length, 0);
        assert.equal(plain[0]?.exportCount, up.info.exports.length);
        assert.equal(detailed[0]?.exports.length, up.info.exports.length);
      });

      it("a self-made key names its parent", async () => {
        const client = admin.withApiKey(await server.createKey(`parent-${kind}@test.local`, "free"));
        const me = await client.account.whoAmI();
        const made = await client.account.createMyApiKey({ label: "child" });
        assert.equal(made.parentKeyId, me.keyId);
        const listed = (await client.account.listMyApiKeys()).find((k) => k.keyId === made.keyId);
        assert.equal(listed?.parentKeyId, me.keyId);
      });

      it("unknown module sha256: NOT_FOUND with ResourceInfo", async () => {
        const err = await rejection(admin.run({ moduleSha256: "0".repeat(64) }).result());
        assert.equal(err.code, Code.NotFound);
        assert.ok(err.details.resourceInfo);
      });

      it("rate limit: RESOURCE_EXHAUSTED with retryAfter and QuotaFailure", async () => {
        const client = admin.withApiKey(await server.createKey(`ratelimit-${kind}@test.local`, "free"));
        let ok = 0;
        let err: WasmWizError | undefined;
        for (let i = 0; i < 30 && !err; i++) {
          try {
            await client.run({ module: guest("hello") }).result();
            ok++;
          } catch (e) {
            err = WasmWizError.from(e);
          }
        }
        assert.ok(err, "the limit was hit");
        assert.ok(ok >= 10, `at least 10 runs admitted first, got ${ok}`);
        assert.equal(err!.code, Code.ResourceExhausted);
        assert.ok(err!.retryAfter !== undefined && err!.retryAfter > 0 && err!.retryAfter <= 60, `retryAfter ${err!.retryAfter}`);
        assert.ok(err!.details.retryInfo, "RetryInfo detail");
        assert.ok(err!.details.quotaFailure, "QuotaFailure detail");
        assert.ok(err!.metadata.get("retry-after"), "retry-after metadata");
        const words = describeError(err);
        assert.equal(words.title, "Rate limited");
        assert.match(words.detail, /Try again in \d+/);
        // Unary calls are not executions: WhoAmI still works and shows nothing left.
        const me = await client.account.whoAmI();
        assert.equal(me.remainingThisMinute, 0n);
      });

      it("client-side misuse is reported before any call", async () => {
        const err = await rejection(admin.run({} as never).result());
        assert.equal(err.code, Code.InvalidArgument);
      });
    });
  });
}

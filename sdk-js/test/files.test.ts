/**
 * Files in and out without a server: what `run`, `execute` and `runBatch`
 * send for `files`/`collect` (over an in-memory Connect router that records
 * the requests), the checks made before sending, putting collected pieces
 * back together, and `filesFromDir`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, Outcome, WasmWizError, createClientWithTransport, filesFromDir, type WasmWizClient } from "../src/node.js";
import {
  ExecutionService,
  FinishedSchema,
  type ExecuteRequest,
  type RunBatchRequest,
  type RunRequest,
} from "../src/gen/wasmwiz/v1/execution_pb.js";

const MiB = 1024 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();
const MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

interface Seen {
  run?: RunRequest;
  execute: ExecuteRequest[];
  batch?: RunBatchRequest;
}

const finished = () => ({ case: "finished" as const, value: create(FinishedSchema, { outcome: Outcome.SUCCESS }) });
const piece = (path: string, data: string) => ({ path, kind: { case: "file" as const, value: enc.encode(data) } });

/** A client over a router that records requests and answers with collected-file pieces. */
function recordingClient(seen: Seen): WasmWizClient {
  const transport = createRouterTransport(({ service }) => {
    service(ExecutionService, {
      async *run(req) {
        seen.run = req;
        yield { event: { case: "file", value: piece("out/a.txt", "he") } };
        yield { event: { case: "file", value: piece("out/a.txt", "llo") } };
        yield { event: { case: "file", value: piece("out/b.txt", "") } };
        yield { event: finished() };
      },
      async *execute(reqs) {
        for await (const r of reqs) seen.execute.push(r);
        yield { event: finished() };
      },
      async *runBatch(req) {
        seen.batch = req;
        // Cases run concurrently: their pieces interleave.
        yield { caseIndex: 1, file: piece("out", "one-") };
        yield { caseIndex: 0, file: piece("out", "zero") };
        yield { caseIndex: 1, file: piece("out", "more") };
        yield { caseIndex: 1, finished: finished().value };
        yield { caseIndex: 0, finished: finished().value };
        yield { caseIndex: 2, finished: finished().value };
      },
    });
  });
  return createClientWithTransport(transport, "grpc", { baseUrl: "http://fake", apiKey: "k" });
}

async function rejection(p: Promise<unknown>): Promise<WasmWizError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WasmWizError, `expected a WasmWizError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

describe("files in a Run request", () => {
  it("a Record of files goes inline, in path order, with the collect patterns", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE, files: { "z.txt": "last", "a.bin": new Uint8Array([1, 2]) }, collect: ["**"] }).result();
    const fs = seen.run!.fs!;
    assert.deepEqual(
      fs.entries.map((e) => [e.path, e.kind.case]),
      [
        ["a.bin", "file"],
        ["z.txt", "file"],
      ],
    );
    assert.equal(dec.decode(fs.entries[1]!.kind.value as Uint8Array), "last");
    assert.deepEqual(fs.collect, ["**"]);
  });

  it("a Map of files is taken too", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE, files: new Map([["in/x", "x"]]) }).result();
    assert.deepEqual(seen.run!.fs!.entries.map((e) => e.path), ["in/x"]);
  });

  it("no files and no collect: no filesystem at all", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE }).result();
    assert.equal(seen.run!.fs, undefined);
  });

  it("collect alone gives an empty filesystem", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE, collect: ["out/*"] }).result();
    assert.deepEqual(seen.run!.fs!.entries, []);
    assert.deepEqual(seen.run!.fs!.collect, ["out/*"]);
  });

  it("limits.fsBytes is sent", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE, files: {}, limits: { fsBytes: 4096 } }).result();
    assert.equal(seen.run!.limits!.fsBytes, 4096n);
  });
});

describe("checks before sending", () => {
  for (const [path, problem] of [
    ["/etc/passwd", "relative"],
    ["../secret", "'..'"],
    ["in/../../x", "'..'"],
    ["./a", "'.'"],
    ["a//b", "empty segments"],
    ["a/", "empty segments"],
    ["", "empty"],
  ] as const) {
    it(`the path ${JSON.stringify(path)} is refused locally`, async () => {
      const seen: Seen = { execute: [] };
      const err = await rejection(recordingClient(seen).run({ module: MODULE, files: { [path]: "x" } }).result());
      assert.equal(err.code, Code.InvalidArgument);
      assert.ok(err.local);
      assert.ok(err.message.includes(problem), err.message);
      assert.deepEqual(err.fieldViolations.map((v) => v.field), ["fs"]);
      assert.equal(seen.run, undefined, "nothing was sent");
    });
  }

  it("files over limits.fsBytes are refused locally with the figures", async () => {
    const seen: Seen = { execute: [] };
    const run = recordingClient(seen).run({ module: MODULE, files: { a: "x".repeat(600), b: "y".repeat(600) }, limits: { fsBytes: 1024 } });
    const err = await rejection(run.result());
    assert.ok(err.local);
    assert.equal(err.limit?.field, "fs");
    assert.equal(err.limit?.requested, 1200);
    assert.equal(err.limit?.maximum, 1024);
    assert.equal(err.message, "INVALID_ARGUMENT: the files hold 1.2 KiB, above limits.fsBytes 1 KiB (checked before uploading)");
    assert.equal(seen.run, undefined);
  });

  it("symlink targets count against limits.fsBytes, as the server counts them", async () => {
    const seen: Seen = { execute: [] };
    const files = [{ path: "a", file: "x".repeat(10) }, { path: "l", symlink: "aaaaa" }, { path: "d", directory: true as const }];
    const err = await rejection(recordingClient(seen).run({ module: MODULE, files, limits: { fsBytes: 14 } }).result());
    assert.equal(err.limit?.requested, 15);
  });

  it("files exactly at limits.fsBytes are sent", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).run({ module: MODULE, files: { a: "x".repeat(1024) }, limits: { fsBytes: 1024 } }).result();
    assert.equal(seen.run!.fs!.entries.length, 1);
  });

  it("a batch case is checked together with the batch files it keeps", async () => {
    const seen: Seen = { execute: [] };
    const client = recordingClient(seen);
    const shared = { a: "x".repeat(600), b: "y".repeat(600) };
    const ok = client.runBatch({ module: MODULE, files: shared, limits: { fsBytes: 1300 }, cases: [{ files: { b: "z".repeat(100) } }] });
    await ok.result();
    assert.deepEqual(seen.batch!.cases[0]!.fs!.entries.map((e) => e.path), ["b"]);
    const tooBig = client.runBatch({ module: MODULE, files: shared, limits: { fsBytes: 1300 }, cases: [{}, { files: { c: "z".repeat(200) } }] });
    const err = await rejection(tooBig.result());
    assert.equal(err.limit?.field, "cases[1].fs");
  });
});

describe("files in an Execute stream", () => {
  it("start names the patterns; entries follow the module as pieces of at most 1 MiB, then fs_eof", async () => {
    const seen: Seen = { execute: [] };
    const big = new Uint8Array(2.5 * MiB).map((_, i) => i % 251);
    await recordingClient(seen)
      .execute({ module: MODULE, stdin: "whole", files: [{ path: "big.bin", file: big }, { path: "empty", file: "" }, { path: "d", directory: true }, { path: "l", symlink: "big.bin" }], collect: ["out/*"] })
      .result();
    const msgs = seen.execute.map((r) => r.msg);
    assert.equal(msgs[0]!.case, "start");
    const start = msgs[0]!.value as Extract<ExecuteRequest["msg"], { case: "start" }>["value"];
    assert.deepEqual(start.fs!.collect, ["out/*"]);
    assert.deepEqual(start.fs!.entries, []);
    assert.equal(dec.decode(start.stdin), "whole");
    assert.equal(start.streamStdin, false);
    const rest = msgs.slice(1).map((m) => (m.case === "fsChunk" ? `${m.value.path}:${m.value.kind.case}:${m.value.kind.case === "file" ? m.value.kind.value.length : ""}` : m.case));
    assert.deepEqual(rest, ["moduleChunk", "big.bin:file:1048576", "big.bin:file:1048576", "big.bin:file:524288", "d:directory:", "empty:file:0", "l:symlink:", "fsEof"]);
    const sent = msgs.filter((m) => m.case === "fsChunk" && m.value.path === "big.bin").map((m) => (m.value as { kind: { value: Uint8Array } }).kind.value);
    assert.deepEqual(Buffer.concat(sent), Buffer.from(big));
  });

  it("streamed stdin comes after fs_eof", async () => {
    const seen: Seen = { execute: [] };
    await recordingClient(seen).execute({ module: MODULE, stdin: ["a", "b"], files: { f: "x" } }).result();
    assert.deepEqual(seen.execute.slice(2).map((r) => r.msg.case), ["fsChunk", "fsEof", "stdinChunk", "stdinChunk", "stdinEof"]);
  });
});

describe("collected files", () => {
  it("pieces are put back together in path order, and each arrives as a file event", async () => {
    const run = recordingClient({ execute: [] }).run({ module: MODULE, collect: ["out/*"] });
    const events: string[] = [];
    for await (const ev of run) if (ev.type === "file") events.push(`${ev.path}:${dec.decode(ev.data)}`);
    assert.deepEqual(events, ["out/a.txt:he", "out/a.txt:llo", "out/b.txt:"]);
    const r = await run.result();
    assert.deepEqual([...r.files.keys()], ["out/a.txt", "out/b.txt"]);
    assert.equal(dec.decode(r.files.get("out/a.txt")), "hello");
    assert.equal(r.files.get("out/b.txt")!.length, 0);
  });

  it("batch files stay with their case when cases interleave", async () => {
    const cases = await recordingClient({ execute: [] }).runBatch({ module: MODULE, cases: [{}, {}, {}] }).result();
    assert.deepEqual(
      cases.map((c) => [c.caseIndex, [...c.files].map(([p, d]) => `${p}:${dec.decode(d)}`)]),
      [
        [0, ["out:zero"]],
        [1, ["out:one-more"]],
        [2, []],
      ],
    );
  });
});

describe("filesFromDir", () => {
  it("keeps files, symlinks (not followed) and empty directories, at a prefix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmwiz-files-"));
    try {
      mkdirSync(join(dir, "a"));
      writeFileSync(join(dir, "a", "one.txt"), "one\n");
      mkdirSync(join(dir, "empty"));
      symlinkSync("a/one.txt", join(dir, "link"));
      symlinkSync(tmpdir(), join(dir, "escape"));
      const entries = await filesFromDir(dir, { prefix: "input" });
      assert.deepEqual(
        entries.map((e) => [e.path, e.file !== undefined ? dec.decode(typeof e.file === "string" ? enc.encode(e.file) : e.file) : e.symlink ?? "dir"]),
        [
          ["input/a/one.txt", "one\n"],
          ["input/empty", "dir"],
          ["input/escape", tmpdir()],
          ["input/link", "a/one.txt"],
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an empty directory at a prefix is that directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmwiz-files-"));
    try {
      assert.deepEqual(await filesFromDir(dir, { prefix: "out" }), [{ path: "out", directory: true }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

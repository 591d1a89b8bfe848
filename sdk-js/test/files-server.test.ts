/**
 * Files in and out against a real wasmwiz-server: `run` (gRPC and gRPC-web)
 * with the tree inline, `execute` streaming a tree larger than one message,
 * `filesFromDir`, batch cases with their own files, and the server's own
 * refusal of a tree past the tier. Guests: `fsreport` counts lines and words
 * of every input/*.txt into out/report.txt; `fscopy SRC DST` copies a file.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, WasmWizError, createClient, filesFromDir, type TransportKind, type WasmWizClient } from "../src/node.js";
import { guest, startServer, type TestServer } from "./helpers/server.js";

const MiB = 1024 * 1024;
const dec = new TextDecoder();
const INPUTS = { "input/a.txt": "one two\nthree\n", "input/b.txt": "x\n", "input/notes.md": "skipped\n" };
const REPORT = "a.txt 2 3\nb.txt 1 1\ntotal 3 4\n";

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

function client(transport: TransportKind = "grpc", apiKey = server.adminKey): WasmWizClient {
  return createClient({ baseUrl: server.baseUrl, apiKey, transport });
}

/** Deterministic bytes that do not compress to nothing. */
function noise(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe("files against the server", () => {
  for (const transport of ["grpc", "grpc-web"] as const) {
    it(`run sends the files and gets the report back (${transport})`, async () => {
      const r = await client(transport).run({ module: guest("fsreport"), files: INPUTS, collect: ["out/*"] }).result();
      assert.equal(r.outcomeName, "SUCCESS", r.stderrText);
      assert.equal(r.stdoutText, "wrote out/report.txt (2 files)\n");
      assert.deepEqual([...r.files.keys()], ["out/report.txt"]);
      assert.equal(dec.decode(r.files.get("out/report.txt")), REPORT);
    });
  }

  it("without files the guest has no filesystem", async () => {
    const r = await client().run({ module: guest("fsreport") }).result();
    assert.equal(r.exitCode, 1);
    assert.match(r.stderrText, /^fsreport: \/input: /);
    assert.equal(r.files.size, 0);
  });

  it("execute streams a file larger than one message, and it comes back whole", async () => {
    const data = noise(2 * MiB + MiB / 2);
    const r = await client()
      .execute({ module: guest("fscopy"), args: ["in/big.bin", "in/copy.bin"], files: { "in/big.bin": data }, collect: ["**"], limits: { maxOutputBytes: 8 * MiB } })
      .result();
    assert.equal(r.outcomeName, "SUCCESS", r.stderrText);
    assert.equal(r.stdoutText, `copied ${data.length} bytes\n`);
    assert.deepEqual([...r.files.keys()], ["in/copy.bin"], "the unchanged input does not come back");
    assert.deepEqual(r.files.get("in/copy.bin"), data);
  });

  it("collected files arrive as pieces of at most 1 MiB, in order, before finished", async () => {
    const data = noise(2 * MiB + 1000);
    const seen: string[] = [];
    const pieces: Uint8Array[] = [];
    const stream = client().execute({ module: guest("fscopy"), args: ["in/data", "in/copy"], files: { "in/data": data }, collect: ["in/copy"], limits: { maxOutputBytes: 8 * MiB } });
    for await (const ev of stream) {
      seen.push(ev.type === "file" ? `file:${ev.path}:${ev.data.length}` : ev.type);
      if (ev.type === "file") pieces.push(ev.data);
    }
    assert.deepEqual(seen.slice(-4), [`file:in/copy:${MiB}`, `file:in/copy:${MiB}`, "file:in/copy:1000", "finished"]);
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(data));
  });

  it("execute takes a local directory with a symlink and an empty dir", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmwiz-js-files-"));
    try {
      writeFileSync(join(dir, "a.txt"), "alpha beta\n");
      mkdirSync(join(dir, "empty"));
      symlinkSync("a.txt", join(dir, "same.txt"));
      const files = await filesFromDir(dir, { prefix: "input" });
      const r = await client().execute({ module: guest("fsreport"), files, collect: ["out/*"] }).result();
      assert.equal(r.outcomeName, "SUCCESS", r.stderrText);
      assert.equal(dec.decode(r.files.get("out/report.txt")), "a.txt 1 2\nsame.txt 1 2\ntotal 2 4\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("each batch case gets its own files", async () => {
    const cases = await client()
      .runBatch({
        module: guest("fsreport"),
        files: { "input/a.txt": "a\n" },
        collect: ["out/*"],
        cases: [{ name: "more", files: { "input/b.txt": "b c\n" } }, { name: "shared only" }],
      })
      .result();
    assert.deepEqual(
      cases.map((c) => [c.name, dec.decode(c.files.get("out/report.txt"))]),
      [
        ["more", "a.txt 1 1\nb.txt 1 2\ntotal 2 3\n"],
        ["shared only", "a.txt 1 1\ntotal 1 1\n"],
      ],
    );
  });

  it("files past the tier's fs_bytes are refused by the server, in the SDK's words", async () => {
    const key = await server.createKey(`fs-${Date.now()}@test.local`, "free");
    try {
      await client("grpc", key).execute({ module: guest("fsreport"), files: { "input/big.txt": new Uint8Array(17 * MiB) } }).result();
      assert.fail("expected a refusal");
    } catch (e) {
      assert.ok(e instanceof WasmWizError, String(e));
      assert.equal(e.code, Code.InvalidArgument);
      assert.equal(e.local, false);
      assert.equal(e.limit?.field, "fs");
      assert.equal(e.limit?.maximum, 16 * MiB);
      assert.match(e.message, /^INVALID_ARGUMENT: the files hold 17 MiB, above limits\.fsBytes 16 MiB/);
    }
  });
});

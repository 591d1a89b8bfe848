/**
 * The Node example (examples/js/node-example.mjs) runs against a real server
 * through the built package, as a user would run it.
 */
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { EXAMPLES_JS_DIR, GUESTS_DIR, linkSdkIntoExamples, startServer, type TestServer } from "./helpers/server.js";

const execFileP = promisify(execFile);
let server: TestServer;

before(async () => {
  linkSdkIntoExamples();
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

it("examples/js/node-example.mjs streams a run and reports it", async () => {
  const { stdout, stderr } = await execFileP(process.execPath, ["node-example.mjs"], {
    cwd: EXAMPLES_JS_DIR,
    env: { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey },
    timeout: 60_000,
  });
  assert.equal(stdout, "Hello from the Node example!\n");
  assert.match(stderr, /# admin@test\.local \(unlimited\)/);
  assert.match(stderr, /# module [0-9a-f]{64} \(\d+ bytes, uploaded\)/);
  assert.match(stderr, /# SUCCESS, exit 0, fuel \d+/);
  assert.match(stderr, /# case same: SUCCESS, verdict accepted/);
  assert.match(stderr, /# case differs: SUCCESS, verdict wrong answer/);
});

it("node-example exits with the guest's exit code and explains errors", async () => {
  const env = { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey };
  const exit = await execFileP(process.execPath, ["node-example.mjs", join(GUESTS_DIR, "exitcode.wasm"), "4"], { cwd: EXAMPLES_JS_DIR, env }).then(
    () => 0,
    (e: { code: number }) => e.code,
  );
  assert.equal(exit, 4);
  const bad = await execFileP(process.execPath, ["node-example.mjs"], {
    cwd: EXAMPLES_JS_DIR,
    env: { ...env, WASMWIZ_API_KEY: "wwz_bad_key" },
  }).then(
    () => ({ code: 0, stderr: "" }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /UNAUTHENTICATED/);
});

it("node-example runs its batch on echo.wasm whatever module it ran", async () => {
  const env = { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey };
  const { stdout, stderr } = await execFileP(process.execPath, ["node-example.mjs", join(GUESTS_DIR, "argsenv.wasm"), "a"], {
    cwd: EXAMPLES_JS_DIR,
    env,
    timeout: 60_000,
  });
  assert.match(stdout, /^argv\[1\]=a$/m);
  assert.match(stderr, /# case same: SUCCESS, verdict accepted/);
  assert.match(stderr, /# case differs: SUCCESS, verdict wrong answer/);
});

it("node-example reports a missing module file in one line", async () => {
  const env = { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey };
  const missing = join(GUESTS_DIR, "no-such-module.wasm");
  const failed = await execFileP(process.execPath, ["node-example.mjs", missing], { cwd: EXAMPLES_JS_DIR, env }).then(
    () => ({ code: 0, stderr: "" }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(failed.code, 2);
  const lines = failed.stderr.trim().split("\n").filter((l) => !l.startsWith("# "));
  assert.deepEqual(lines, [`node-example: cannot read ${missing}: no such file`]);
});

it("`npm install` in examples/js is configured to write no lockfile", async () => {
  const { stdout } = await execFileP("npm", ["config", "get", "package-lock"], { cwd: EXAMPLES_JS_DIR });
  assert.equal(stdout.trim(), "false");
});

it("examples/js/files-example.mjs prints the report of its sample files", async () => {
  const { stdout } = await execFileP(process.execPath, ["files-example.mjs"], {
    cwd: EXAMPLES_JS_DIR,
    env: { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey },
    timeout: 60_000,
  });
  assert.equal(stdout, "== out/report.txt\npoem.txt 2 7\ntodo.txt 2 6\ntotal 4 13\n");
});

it("files-example sends a directory and saves what came back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wasmwiz-files-example-"));
  try {
    writeFileSync(join(dir, "one.txt"), "a b c\n");
    await execFileP(process.execPath, ["files-example.mjs", dir, join(dir, "got")], {
      cwd: EXAMPLES_JS_DIR,
      env: { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey },
      timeout: 60_000,
    });
    assert.equal(readFileSync(join(dir, "got", "out", "report.txt"), "utf8"), "one.txt 1 3\ntotal 1 3\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("examples/js/receipt-example.mjs hits the cache and verifies the receipt", async () => {
  const { stdout } = await execFileP(process.execPath, ["receipt-example.mjs", `example ${process.pid}\n`], {
    cwd: EXAMPLES_JS_DIR,
    env: { ...process.env, WASMWIZ_URL: server.baseUrl, WASMWIZ_API_KEY: server.adminKey },
    timeout: 60_000,
  });
  const lines = stdout.split("\n");
  assert.match(lines[0]!, /^first run: cache hit false, fuel \d+$/);
  assert.match(lines[1]!, /^second run: cache hit true, from \S+$/);
  assert.match(lines[2]!, /^receipt verified: execution \S+, key [0-9a-f]{16}$/);
});

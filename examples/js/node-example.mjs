#!/usr/bin/env node
// WasmWiz from Node: store a module, stream a run, run a batch, read the account.
//
//   cd sdk-js && npm ci && npm run build            # build the SDK once
//   cd ../examples/js && npm install                 # links @wasmwiz/sdk
//   WASMWIZ_URL=http://127.0.0.1:8080 WASMWIZ_API_KEY=wwz_... node node-example.mjs [module.wasm] [args...]
//
// Without a module it runs ../guests/echo.wasm. Exits with the guest's exit code.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Code, WasmWizError, createClient } from "@wasmwiz/sdk";

const baseUrl = process.env.WASMWIZ_URL ?? "http://127.0.0.1:8080";
const apiKey = process.env.WASMWIZ_API_KEY;
if (!apiKey) {
  console.error("set WASMWIZ_API_KEY (a fresh server prints an admin key on its first start)");
  process.exit(2);
}
const [path = fileURLToPath(new URL("../guests/echo.wasm", import.meta.url)), ...args] = process.argv.slice(2);

// gRPC over HTTP/2; use transport: "grpc-web" to go through gRPC-web proxies.
const client = createClient({ baseUrl, apiKey, transport: "grpc" });

try {
  const me = await client.account.whoAmI();
  console.error(`# ${me.email} (${me.tier}); ${me.limits?.unmetered ? "unmetered" : `${me.remainingThisMinute} runs left this minute`}`);

  // 1. Store the module: content-addressed, so a known hash is not sent again.
  const bytes = await readFile(path);
  const up = await client.upload(bytes);
  console.error(`# module ${up.sha256} (${up.size} bytes, ${up.uploaded ? "uploaded" : "already stored"})`);

  // 2. Run it by hash and stream its output as it is written. The signal
  //    cancels the run (and stops the guest on the server) after 30 s.
  const run = client.run(
    { moduleSha256: up.sha256, args, stdin: "Hello from the Node example!\n", limits: { timeoutMs: 10_000 } },
    { signal: AbortSignal.timeout(30_000) },
  );
  for await (const ev of run) {
    if (ev.type === "stdout") process.stdout.write(ev.data);
    else if (ev.type === "stderr") process.stderr.write(ev.data);
  }
  const result = await run.result();
  const f = result.finished;
  console.error(
    `# ${result.outcomeName}, exit ${result.exitCode}, fuel ${f.fuelConsumed}, ${Number(f.durationUs) / 1000} ms, peak memory ${f.memoryPeakBytes} B`,
  );

  // 3. Many inputs, one compile: a batch with expected outputs.
  const cases = await client
    .runBatch({ moduleSha256: up.sha256, cases: [{ stdin: "a", expectedStdout: "a", name: "same" }, { stdin: "b", expectedStdout: "c", name: "differs" }] })
    .result();
  for (const c of cases) console.error(`# case ${c.name}: ${c.outcomeName}, verdict ${c.verdict === 1 ? "accepted" : c.verdict === 2 ? "wrong answer" : "-"}`);

  process.exitCode = result.exitCode < 0 ? 1 : result.exitCode;
} catch (e) {
  if (e instanceof WasmWizError) {
    // Errors carry the gRPC code and the parsed details.
    if (e.code === Code.ResourceExhausted) console.error(`rate limited: retry in ${e.retryAfter} s`);
    else if (e.code === Code.InvalidArgument) console.error(`invalid: ${e.fieldViolations.map((v) => `${v.field}: ${v.description}`).join("; ")}`);
    else console.error(e.message);
    process.exitCode = 1;
  } else {
    throw e;
  }
}

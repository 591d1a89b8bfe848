#!/usr/bin/env node
// WasmWiz from Node: store a module, stream a run, run a batch, read the account.
//
//   cd sdk-js && npm ci && npm run build            # build the SDK once
//   cd ../examples/js && npm install                 # links @wasmwiz/sdk (.npmrc: no lockfile)
//   WASMWIZ_URL=http://127.0.0.1:8080 WASMWIZ_API_KEY=wwz_... node node-example.mjs [module.wasm] [args...]
//
// Without a module it runs ../guests/echo.wasm. Exits with the guest's exit
// code, 1 when a call failed, 2 when the module file does not exist.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Code, WasmWizError, createClient } from "@wasmwiz/sdk";

const baseUrl = process.env.WASMWIZ_URL ?? "http://127.0.0.1:8080";
const apiKey = process.env.WASMWIZ_API_KEY;
if (!apiKey) {
  console.error("set WASMWIZ_API_KEY (a fresh server prints an admin key on its first start)");
  process.exit(2);
}
const echoPath = fileURLToPath(new URL("../guests/echo.wasm", import.meta.url));
const [path = echoPath, ...args] = process.argv.slice(2);

/** The file's bytes; a missing file ends the program with one line, not a stack trace. */
async function readModule(file) {
  try {
    return await readFile(file);
  } catch (e) {
    if (e?.code !== "ENOENT" && e?.code !== "EISDIR") throw e;
    console.error(`node-example: cannot read ${file}: ${e.code === "ENOENT" ? "no such file" : "a directory"}`);
    process.exit(2);
  }
}

// What the batch's verdicts mean, by name (not by their numbers on the wire).
const VERDICT_WORDS = { ACCEPTED: "accepted", WRONG_ANSWER: "wrong answer", UNSPECIFIED: "-" };

// gRPC over HTTP/2; use transport: "grpc-web" to go through gRPC-web proxies.
const client = createClient({ baseUrl, apiKey, transport: "grpc" });

try {
  const me = await client.account.whoAmI();
  console.error(`# ${me.email} (${me.tier}); ${me.limits?.unmetered ? "unmetered" : `${me.remainingThisMinute} runs left this minute`}`);

  // 1. Store the module: content-addressed, so a known hash is not sent again.
  const bytes = await readModule(path);
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

  // 3. Many inputs, one compile: a batch with expected outputs. The cases are
  //    echo's (stdout is stdin), so the batch runs echo.wasm whatever ran above.
  const echo = path === echoPath ? up : await client.upload(await readModule(echoPath));
  const cases = await client
    .runBatch({ moduleSha256: echo.sha256, cases: [{ stdin: "a", expectedStdout: "a", name: "same" }, { stdin: "b", expectedStdout: "c", name: "differs" }] })
    .result();
  for (const c of cases) console.error(`# case ${c.name}: ${c.outcomeName}, verdict ${VERDICT_WORDS[c.verdictName]}`);

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

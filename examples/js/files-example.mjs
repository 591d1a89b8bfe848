#!/usr/bin/env node
// WasmWiz from Node: send a local directory's files to a guest, get back the ones it writes.
//
//   cd sdk-js && npm ci && npm run build            # build the SDK once
//   cd ../examples/js && npm install                 # links @wasmwiz/sdk (.npmrc: no lockfile)
//   WASMWIZ_URL=http://127.0.0.1:8080 WASMWIZ_API_KEY=wwz_... node files-example.mjs [DIR] [OUT_DIR]
//
// Puts DIR's files (default: two small built-in text files) at input/ in the
// guest's in-memory filesystem, runs ../guests/fsreport.wasm (it counts lines
// and words of each input/*.txt into out/report.txt), collects out/* and
// prints it, or saves it under OUT_DIR. Exits 1 when a call failed.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { WasmWizError, createClient, filesFromDir } from "@wasmwiz/sdk";

const baseUrl = process.env.WASMWIZ_URL ?? "http://127.0.0.1:8080";
const apiKey = process.env.WASMWIZ_API_KEY;
if (!apiKey) {
  console.error("set WASMWIZ_API_KEY (a fresh server prints an admin key on its first start)");
  process.exit(2);
}
const [dir, outDir] = process.argv.slice(2);
const module = await readFile(fileURLToPath(new URL("../guests/fsreport.wasm", import.meta.url)));

// A Record (or a Map) of path → contents, or the entries filesFromDir reads
// (files, symlinks kept as links, empty directories).
const files = dir
  ? await filesFromDir(dir, { prefix: "input" })
  : { "input/poem.txt": "The fog comes\non little cat feet.\n", "input/todo.txt": "write the report\nread it back\n" };

const client = createClient({ baseUrl, apiKey, transport: "grpc" });
try {
  // execute() streams the files after the module in 1 MiB pieces, so the
  // tree may be larger than one message; run() sends everything in one.
  const result = await client.execute({ module, files, collect: ["out/*"], limits: { fsBytes: 64 * 1024 * 1024 } }).result();
  if (!result.ok) {
    process.stderr.write(result.stderrText);
    process.exit(1);
  }
  for (const [path, data] of result.files) {
    if (outDir) {
      const target = join(outDir, path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, data);
      console.log(`saved ${target} (${data.length} bytes)`);
    } else {
      console.log(`== ${path}`);
      process.stdout.write(new TextDecoder().decode(data));
    }
  }
} catch (e) {
  // A bad path or too many bytes is refused before anything is sent (e.local).
  console.error(e instanceof WasmWizError ? `request failed: ${e.message}` : e);
  process.exit(1);
}

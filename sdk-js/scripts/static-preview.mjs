#!/usr/bin/env node
// Serves the built playground (../server/assets/playground) and the example
// guests with the server's security headers, without any API behind it: for
// layout checks while no server binary is at hand.
// Usage: node scripts/static-preview.mjs [PORT]
import { createServer } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const assets = join(root, "server", "assets", "playground");
const types = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8", wasm: "application/wasm" };
const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  let file;
  if (url.pathname === "/") file = join(assets, "index.html");
  else if (url.pathname === "/playground.js" || url.pathname === "/playground.css") file = join(assets, url.pathname.slice(1));
  else if (/^\/examples\/[a-z]+\.wasm$/.test(url.pathname)) file = join(root, "examples", "guests", url.pathname.slice("/examples/".length));
  if (!file || !existsSync(file)) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, {
    "content-type": types[file.split(".").pop()] ?? "application/octet-stream",
    "content-security-policy":
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
  });
  res.end(readFileSync(file));
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`preview on http://127.0.0.1:${server.address().port}/`);
});

#!/usr/bin/env node
// WasmWiz from Node: run twice with the result cache, then verify the receipt offline.
//
//   cd sdk-js && npm ci && npm run build            # build the SDK once
//   cd ../examples/js && npm install                 # links @wasmwiz/sdk
//   WASMWIZ_URL=http://127.0.0.1:8080 WASMWIZ_API_KEY=wwz_... node receipt-example.mjs [stdin-text]
//
// The first run executes ../guests/echo.wasm and asks for a receipt; the
// second, with the same inputs, comes from the result cache (the module does
// not run again) and carries the first run's receipt, which is then checked
// with the public key from getServerInfo() (WebCrypto Ed25519, no server call).
import { readFile } from "node:fs/promises";
import { createClient, verifyReceipt } from "@wasmwiz/sdk";

const client = createClient({
  baseUrl: process.env.WASMWIZ_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.WASMWIZ_API_KEY,
});
const module = await readFile(new URL("../guests/echo.wasm", import.meta.url));
const stdin = process.argv[2] ?? "cached hello\n";

const first = await client.run({ module, stdin, cache: "use", receipt: true }).result();
const again = await client.run({ module, stdin, cache: "use", receipt: true }).result();
console.log(`first run: cache hit ${first.resultCacheHit}, fuel ${first.finished.fuelConsumed}`);
console.log(`second run: cache hit ${again.resultCacheHit}, from ${again.cachedFrom}`);

const info = await client.getServerInfo(); // needs no key
const key = info.receiptKeys.find((k) => k.keyId === again.receipt?.keyId);
if (!again.receipt || !key) {
  console.error("no receipt, or the server lists no key for it");
  process.exit(1);
}
const verified = await verifyReceipt(again.receipt, key.publicKey);
await verified.checkStdout(again.stdout); // throws ReceiptError on a mismatch
console.log(`receipt verified: execution ${verified.statement.executionId}, key ${key.keyId}`);

#!/usr/bin/env node
// Receive WasmWiz webhooks and check their signatures (node:http, no framework).
//
//   cd sdk-js && npm ci && npm run build            # build the SDK once
//   cd ../examples/js && npm install                 # links @wasmwiz/sdk
//   WASMWIZ_WEBHOOK_SECRET=whsec_... node webhook-receiver.mjs [port] [count]
//
// Listens on 127.0.0.1:port (default 8787; 0 picks a free port) and prints
// "listening on http://127.0.0.1:N" once ready. Each POST whose
// Wasmwiz-Signature verifies under the secret (from
// client.account.rotateWebhookSecret()) is printed as one JSON line and
// answered 204; a bad, old or missing signature gets 400 and is not printed;
// a body above 1 MiB gets 413. Exits after `count` verified deliveries
// (default: never). Point a run at it with
// client.submit({ module, webhookUrl: "http://127.0.0.1:N/hook" }); the server
// must allow plain http and loopback (webhook_allow_http and
// webhook_allow_private: for local receivers only).
import { createServer } from "node:http";
import { WEBHOOK_SIGNATURE_HEADER, WebhookSignatureError, verifyWebhook } from "@wasmwiz/sdk";

/** A delivery's body is a small JSON summary; anything far larger is refused unread. */
const MAX_BODY_BYTES = 1024 * 1024;

const secret = process.env.WASMWIZ_WEBHOOK_SECRET ?? "";
if (!secret.startsWith("whsec_")) {
  console.error("set WASMWIZ_WEBHOOK_SECRET to the account's whsec_... secret");
  process.exit(2);
}
const port = Number(process.argv[2] ?? 8787);
const count = Number(process.argv[3] ?? 0);
let delivered = 0;

/** The request body, at most MAX_BODY_BYTES; undefined when it is larger. */
async function readBody(req) {
  const parts = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

const server = createServer(async (req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) {
    res.writeHead(413).end();
    req.destroy();
    return;
  }
  const body = await readBody(req);
  if (body === undefined) {
    res.writeHead(413).end();
    return;
  }
  let event;
  try {
    event = verifyWebhook(secret, req.headers[WEBHOOK_SIGNATURE_HEADER], body);
  } catch (e) {
    if (!(e instanceof WebhookSignatureError)) throw e;
    console.error(`webhook-receiver: 400 ${e.message}`);
    res.writeHead(400, { "content-type": "text/plain" }).end(e.message);
    return;
  }
  console.log(JSON.stringify(event));
  res.writeHead(204).end(() => {
    delivered += 1;
    if (count && delivered >= count) server.close();
  });
});
server.requestTimeout = 10_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

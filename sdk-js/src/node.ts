/**
 * Node entry point of `@wasmwiz/sdk` (Node 20+). `createClient` speaks gRPC
 * over HTTP/2 (h2c for `http://`, TLS for `https://`) by default, or gRPC-web
 * over HTTP/1.1 with `transport: "grpc-web"`.
 *
 * ```ts
 * import { createClient } from "@wasmwiz/sdk";
 * const client = createClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.WASMWIZ_API_KEY });
 * const result = await client.run({ module: await readFile("hello.wasm") }).result();
 * ```
 *
 * @module
 */
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Interceptor } from "@connectrpc/connect";
import { createClientWithTransport, type ClientOptions, type WasmWizClient } from "./client.js";
import { SDK_VERSION } from "./index.js";

export * from "./index.js";
export { filesFromDir, type FilesFromDirOptions } from "./node-files.js";
export {
  verifyWebhook,
  signWebhook,
  WebhookSignatureError,
  WEBHOOK_SIGNATURE_HEADER,
  DEFAULT_WEBHOOK_TOLERANCE_SEC,
  type VerifyWebhookOptions,
} from "./webhooks.js";

const userAgent: Interceptor = (next) => (req) => {
  req.header.set("user-agent", `wasmwiz-sdk-js/${SDK_VERSION} (node ${process.versions.node})`);
  return next(req);
};

/** Creates a WasmWiz client for Node (default transport: `"grpc"`). */
export function createClient(options: ClientOptions): WasmWizClient {
  const kind = options.transport ?? "grpc";
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl, interceptors: [userAgent] })
      : createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [userAgent] });
  return createClientWithTransport(transport, kind, { ...options, baseUrl });
}

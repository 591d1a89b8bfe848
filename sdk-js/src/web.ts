/**
 * Browser entry point of `@wasmwiz/sdk`. `createClient` speaks gRPC-web over
 * `fetch` (tonic-web on the server speaks gRPC-web, not the Connect
 * protocol). Browsers cannot stream requests, so `execute()` is unavailable
 * and `upload()` sends one `PutModule`.
 *
 * ```ts
 * import { createClient } from "@wasmwiz/sdk";
 * const client = createClient({ baseUrl: location.origin, apiKey });
 * for await (const ev of client.run({ moduleSha256 })) { ... }
 * ```
 *
 * @module
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createClientWithTransport, type ClientOptions, type WasmWizClient } from "./client.js";

export * from "./index.js";

/** Creates a WasmWiz client for browsers (transport: `"grpc-web"`). */
export function createClient(options: ClientOptions): WasmWizClient {
  const kind = options.transport ?? "grpc-web";
  if (kind !== "grpc-web") {
    throw new Error('browsers speak only gRPC-web: use transport "grpc-web" (or the Node entry point for "grpc")');
  }
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  return createClientWithTransport(createGrpcWebTransport({ baseUrl }), kind, { ...options, baseUrl });
}

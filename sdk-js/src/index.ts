/**
 * `@wasmwiz/sdk`: the WasmWiz client for Node and browsers.
 *
 * # Layout
 * - `node.ts` / `web.ts`: the entry points; each exports `createClient`, which
 *   builds the Connect transport for its platform (gRPC over HTTP/2 or
 *   gRPC-web on Node; gRPC-web in browsers) and everything below.
 * - `client.ts`: the transport-independent client (`run`, `execute`,
 *   `runBatch`, `upload`, `modules`, `account`, `admin`, `health`); adds the
 *   API key to every call and turns streams into async iterables that collect.
 * - `detached.ts`: the handle of a detached execution (`submit()`): its
 *   events (reconnecting without repeats), result, state and cancellation.
 *   `webhooks.ts` (Node only) verifies webhook signatures.
 * - `files.ts`: the guest's input tree (`files`, `collect`): path checks,
 *   size check, `fs_chunk` pieces, and putting collected files back together.
 *   `node-files.ts` (Node only) reads a local directory (`filesFromDir`).
 * - `errors.ts`: `WasmWizError`, made in one place from Connect errors, with
 *   the gRPC code, the decoded google.rpc details and `retryAfter`.
 * - `gen/`: protobuf-es v2 messages and service descriptors generated from
 *   `../proto` (and vendored google.rpc / grpc.health protos) by
 *   `npm run generate`.
 *
 * Data flow: `createClient` → Connect transport → generated service clients
 * → `client.ts` wrappers → your code (events, results, `WasmWizError`s).
 *
 * @module
 */
export * from "./client.js";
export type { InteractiveSession } from "./interactive.js";
export {
  DetachedExecution,
  WATCH_RECONNECTS,
  executionStateName,
  type ExecutionInfo,
  type ExecutionListing,
  type ExecutionStateName,
  type WebhookDelivery,
} from "./detached.js";
export * from "./errors.js";
export * from "./receipt.js";
export { CachePolicy, type Receipt, type EngineIdentity } from "./gen/wasmwiz/v1/receipt_pb.js";
export type { GetServerInfoResponse, ReceiptKey } from "./gen/wasmwiz/v1/server_pb.js";
export type { ReceiptStatement, FileDigest } from "./gen/wasmwiz/v1/receipt_statement_pb.js";
export {
  PIECE_SIZE,
  FileCollector,
  pathProblem,
  type FileContents,
  type FileEntry,
  type FilesInit,
} from "./files.js";
export {
  Outcome,
  OutcomeSchema,
  Verdict,
  VerdictSchema,
  ExecutionState,
  type Finished,
  type Started,
  type Limits,
  type ExecuteEvent,
  type BatchEvent,
} from "./gen/wasmwiz/v1/execution_pb.js";
export type { ModuleInfo, ModuleImport, ModuleExport, ListModulesResponse } from "./gen/wasmwiz/v1/module_pb.js";
export type {
  WhoAmIResponse,
  TierLimits,
  GetUsageResponse,
  DailyUsage,
  ApiKeyInfo,
  User,
  CreateMyApiKeyResponse,
} from "./gen/wasmwiz/v1/account_pb.js";
export type { CreateApiKeyResponse, CreateUserResponse, SetTierResponse } from "./gen/wasmwiz/v1/admin_pb.js";
export type {
  BadRequest,
  RetryInfo,
  QuotaFailure,
  ResourceInfo,
  ErrorInfo,
} from "./gen/google/rpc/error_details_pb.js";
export { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";

/** The SDK's version. */
export const SDK_VERSION = "0.1.0";

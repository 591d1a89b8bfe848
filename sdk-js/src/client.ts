/**
 * The transport-independent WasmWiz client. `createClient` in `node.ts` and
 * `web.ts` builds a Connect transport (gRPC over HTTP/2 on Node, gRPC-web in
 * browsers) and hands it to {@link createClientWithTransport}; every call goes
 * through one place that adds the API key and converts errors to
 * {@link WasmWizError}.
 *
 * @module
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient as createConnectClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { Code, WasmWizError, badCacheMode, moduleTooLarge, streamedStdinCached } from "./errors.js";
import {
  FileCollector,
  checkTotal,
  entryPieces,
  filesystemInit,
  inputFs,
  totalBytes,
  PIECE_SIZE,
  type FilesInit,
  type InputFs,
} from "./files.js";
import {
  ExecutionService,
  FinishedSchema,
  Outcome,
  StartedSchema,
  Verdict,
  type ExecuteRequestSchema,
  type LimitsSchema,
  type RunBatchRequestSchema,
  type RunRequestSchema,
  type BatchEvent,
  type ExecuteEvent,
  type ExecutionState,
  type Finished,
  type Limits,
  type Started,
} from "./gen/wasmwiz/v1/execution_pb.js";
import {
  ModuleService,
  type ModuleInfo,
  type ListModulesRequestSchema,
  type ListModulesResponse,
  type DeleteModuleResponse,
} from "./gen/wasmwiz/v1/module_pb.js";
import {
  AccountService,
  type ApiKeyInfo,
  type CreateMyApiKeyRequestSchema,
  type CreateMyApiKeyResponse,
  type GetUsageRequestSchema,
  type GetUsageResponse,
  type TierLimits,
  type WhoAmIResponse,
} from "./gen/wasmwiz/v1/account_pb.js";
import {
  AdminService,
  type CreateApiKeyRequestSchema,
  type CreateApiKeyResponse,
  type CreateUserRequestSchema,
  type CreateUserResponse,
  type ListApiKeysRequestSchema,
  type SetTierRequestSchema,
  type SetTierResponse,
} from "./gen/wasmwiz/v1/admin_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import { CachePolicy, type Receipt } from "./gen/wasmwiz/v1/receipt_pb.js";
import { ServerService, type GetServerInfoResponse } from "./gen/wasmwiz/v1/server_pb.js";
import { Session, StdinFeed, type InteractiveSession } from "./interactive.js";
import {
  DetachedExecution,
  executionListing,
  executionStateOf,
  type DetachedCalls,
  type ExecutionInfo,
  type ExecutionListing,
  type ExecutionStateName,
} from "./detached.js";

/** Which wire protocol a client speaks. */
export type TransportKind = "grpc" | "grpc-web";

/** Options of `createClient`. */
export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080` (in a browser usually `location.origin`). */
  baseUrl: string;
  /** The API key (`wwz_<id>_<secret>`), sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /**
   * `"grpc"`: gRPC over HTTP/2 (Node only; client streaming available).
   * `"grpc-web"`: gRPC-web (browsers, and Node over HTTP/1.1). Default:
   * `"grpc"` on Node, `"grpc-web"` in browsers.
   */
  transport?: TransportKind;
  /** A deadline applied to every unary call (not to runs), in milliseconds. */
  timeoutMs?: number;
  /** Extra headers sent with every call. */
  headers?: Record<string, string>;
}

/** Per-call options: cancellation, deadline, extra headers, metadata hooks. */
export type WasmWizCallOptions = Pick<CallOptions, "signal" | "timeoutMs" | "headers" | "onHeader" | "onTrailer">;

/** Bytes or text (encoded as UTF-8). */
export type BytesLike = Uint8Array | string;

/** Limits in a request; omitted or 0 fields mean the tier's default. */
export interface LimitsInit {
  /** Fuel budget (wasmi fuel units). */
  fuel?: number | bigint;
  /** Linear memory ceiling in bytes. */
  memoryBytes?: number | bigint;
  /** Wall-clock timeout in milliseconds. */
  timeoutMs?: number | bigint;
  /** stdout + stderr ceiling in bytes (collected files count towards it too). */
  maxOutputBytes?: number | bigint;
  /**
   * Bytes of file contents the guest's filesystem may hold, input files
   * included (default: the tier's maximum). A guest write past it fails with
   * ENOSPC; input files over it are refused, before sending when given here.
   */
  fsBytes?: number | bigint;
  /**
   * Interactive runs: the longest wait for input in milliseconds (default
   * and maximum: the tier's `maxIdleTimeoutMs`); past it the run ends with
   * `OUTCOME_TIMEOUT`.
   */
  idleTimeoutMs?: number | bigint;
}

/** The module to run: its bytes, or the sha256 of a module stored before. */
export type ModuleSource = { module: Uint8Array; moduleSha256?: never } | { moduleSha256: string; module?: never };

/**
 * The result cache policy: `"use"` answers from the cache when the same
 * inputs ran before for this account (else runs and stores the result);
 * `"refresh"` runs and replaces what the cache holds. Unset: off.
 */
export type CacheMode = "use" | "refresh";

/** `cache` as the `CachePolicy` the server takes. */
function cachePolicy(cache: CacheMode | undefined): CachePolicy {
  switch (cache) {
    case undefined:
      return CachePolicy.UNSPECIFIED;
    case "use":
      return CachePolicy.USE;
    case "refresh":
      return CachePolicy.REFRESH;
    default:
      throw badCacheMode(cache);
  }
}

/** The result cache and receipt options of run, execute and runBatch. */
export interface CacheOptions {
  /**
   * The result cache policy (see {@link CacheMode}); a hit sets
   * `resultCacheHit` and `cachedFrom`. Needs stdin given whole: with
   * streamed stdin `execute()` refuses it before sending anything.
   */
  cache?: CacheMode;
  /**
   * Ask for a signed receipt of each execution (`result.receipt`); check it
   * offline with `verifyReceipt` and a key from `getServerInfo()`.
   */
  receipt?: boolean;
}

/** What to run and how (the fields of `RunRequest`, friendlier typed). */
export type RunOptions = ModuleSource & CacheOptions & {
  /** The guest's whole stdin. */
  stdin?: BytesLike;
  /** argv[1..]. */
  args?: string[];
  /** argv[0]; the server's default is `main.wasm`. */
  programName?: string;
  /** The guest's environment, exactly. */
  env?: Record<string, string>;
  limits?: LimitsInit;
  /** Seed of the guest's `random_get` PRNG. */
  randomSeed?: number | bigint;
  /** When given, `finished.verdict` tells whether stdout equals it. */
  expectedStdout?: BytesLike;
  /** With inline `module` bytes: also store the module so it can be run by sha256. */
  keepModule?: boolean;
  /**
   * The guest's input files: path (relative, `/`-separated) → contents, as
   * an object or a `Map`, or a list of entries (also directories and
   * symlinks; `filesFromDir` on Node). Given (even empty), the guest gets a
   * writable in-memory `/`. Paths, and the total against `limits.fsBytes`
   * when given, are checked before anything is sent.
   */
  files?: FilesInit;
  /**
   * Glob patterns (`"out/*.png"`, `"**"`) of the files to get back in
   * `result.files`: each regular file that matches and was created or
   * changed. Gives the guest a filesystem too.
   */
  collect?: string[];
};

/** Options of {@link WasmWizClient.execute}: like {@link RunOptions}, but stdin may be a stream. */
export type ExecuteOptions = Omit<RunOptions, "stdin"> & {
  /** The whole stdin, or an (async) iterable of chunks streamed while the guest runs. */
  stdin?: BytesLike | AsyncIterable<BytesLike> | Iterable<BytesLike>;
  /** Size of the module chunks sent (default 1 MiB). */
  chunkSize?: number;
};

/** `Omit` applied to each member of a union (keeps `ModuleSource` exclusive). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * What {@link WasmWizClient.interactive} runs: like {@link RunOptions}
 * without the result cache or an expected stdout (a person types the input).
 */
export type InteractiveOptions = DistributiveOmit<RunOptions, "cache" | "expectedStdout"> & {
  /** Size of the module chunks sent over gRPC (default 1 MiB). */
  chunkSize?: number;
};

/** One event of a run, as it arrives. */
export type RunEvent =
  | { type: "started"; started: Started }
  | { type: "stdout"; data: Uint8Array }
  | { type: "stderr"; data: Uint8Array }
  /** One piece (≤ 1 MiB) of a collected file; a bigger file comes as consecutive pieces of the same path. */
  | { type: "file"; path: string; data: Uint8Array }
  | { type: "finished"; finished: Finished };

/** Rate-limit state from the response headers (absent for unmetered tiers). */
export interface RateLimitInfo {
  /** Executions allowed per window. */
  limit: number;
  /** Executions left in the current window. */
  remaining: number;
  /** Seconds until the window resets. */
  reset: number;
}

/** The outcome names without prefix: `"SUCCESS"`, `"TRAP"`, `"OUT_OF_FUEL"`, ... */
export type OutcomeName = keyof typeof Outcome;

/** The verdict names without prefix: `"UNSPECIFIED"`, `"ACCEPTED"`, `"WRONG_ANSWER"`. */
export type VerdictName = keyof typeof Verdict;

/** Everything a run produced, collected. */
export interface RunResult {
  started: Started;
  finished: Finished;
  /** The module's sha256 (run it again with `{ moduleSha256 }`). */
  moduleSha256: string;
  /** The usage record's id. */
  executionId: string;
  outcome: Outcome;
  /** E.g. `"SUCCESS"`, `"EXIT_NONZERO"`, `"TRAP"`. */
  outcomeName: OutcomeName;
  /** The guest's exit code; -1 when it did not exit. */
  exitCode: number;
  /** True when the guest exited with code 0. */
  ok: boolean;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** stdout decoded as UTF-8. */
  stdoutText: string;
  /** stderr decoded as UTF-8. */
  stderrText: string;
  /** Rate-limit state after this run (when the server sent it). */
  rateLimit?: RateLimitInfo;
  /** The collected files (`collect`), path → contents, in path order. */
  files: Map<string, Uint8Array>;
  /** True when the result was replayed from the result cache (`cache: "use"`): the module did not run again. */
  resultCacheHit: boolean;
  /** With `resultCacheHit`: the `executionId` of the original run. */
  cachedFrom?: string;
  /** The signed receipt (`receipt: true`); a cache hit carries the original run's. */
  receipt?: Receipt;
}

/** One case of a batch, finished. */
export interface BatchCaseResult {
  caseIndex: number;
  name: string;
  finished: Finished;
  outcome: Outcome;
  outcomeName: OutcomeName;
  exitCode: number;
  ok: boolean;
  /** `VERDICT_ACCEPTED`, `VERDICT_WRONG_ANSWER`, or unspecified without `expectedStdout`. */
  verdict: Verdict;
  /** The verdict by name, e.g. `"ACCEPTED"`, `"WRONG_ANSWER"` (`"UNSPECIFIED"` without `expectedStdout`). */
  verdictName: VerdictName;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutText: string;
  stderrText: string;
  executionId: string;
  moduleSha256: string;
  /** The case's collected files, path → contents, in path order. */
  files: Map<string, Uint8Array>;
  /** True when this case was answered from the result cache. */
  resultCacheHit: boolean;
  /** With `resultCacheHit`: the execution id of the original run. */
  cachedFrom?: string;
  /** The case's signed receipt (`receipt: true`). */
  receipt?: Receipt;
}

/** One case of a batch. */
export interface BatchCaseInit {
  stdin?: BytesLike;
  args?: string[];
  expectedStdout?: BytesLike;
  /** A label echoed back in the case's result. */
  name?: string;
  /**
   * Files of this case only, laid over the batch's `files` (replacing
   * entries with the same path). Gives the case a filesystem even when the
   * batch has none.
   */
  files?: FilesInit;
  /** More glob patterns of files to get back, for this case only. */
  collect?: string[];
}

/** What {@link WasmWizClient.runBatch} runs: one module, many cases. */
export type RunBatchOptions = ModuleSource & CacheOptions & {
  cases: BatchCaseInit[];
  /** Limits of each case. */
  limits?: LimitsInit;
  programName?: string;
  env?: Record<string, string>;
  randomSeed?: number | bigint;
  /** The tree every case starts from (each case gets its own copy). */
  files?: FilesInit;
  /** Glob patterns of files every case sends back (in each case's `files`). */
  collect?: string[];
};

/** What {@link WasmWizClient.submit} queues: a run (stdin whole), and where to POST its end. */
export type SubmitOptions = RunOptions & {
  /**
   * Where the server POSTs a signed JSON summary when the execution ends
   * (`https://`; check it with `verifyWebhook`). The account needs a secret
   * first: `client.account.rotateWebhookSecret()`.
   */
  webhookUrl?: string;
};

/** What {@link WasmWizClient.submitBatch} queues: a batch whose every case runs detached. */
export type SubmitBatchOptions = RunBatchOptions & {
  /** Fires per case, then once more (`"batch.ended"`) when the last case has ended. */
  webhookUrl?: string;
};

/** What {@link WasmWizClient.submitBatch} answers. */
export interface SubmittedBatch {
  batchId: string;
  /** One handle per case, in case order. */
  executions: DetachedExecution[];
}

/** Which page of {@link WasmWizClient.listExecutions}. */
export interface ListExecutionsOptions {
  /** Only executions in this state (default: all). */
  state?: ExecutionState | ExecutionStateName;
  /** At most this many (default 50, at most 500). */
  pageSize?: number;
  /** From a previous page's `nextPageToken`. */
  pageToken?: string;
}

/** One page of {@link WasmWizClient.listExecutions}, newest first. */
export interface ExecutionsPage {
  executions: ExecutionListing[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** What {@link WasmWizClient.upload} did. */
export interface UploadResult {
  sha256: string;
  size: bigint;
  /** True when the account already had the module (nothing or nothing new stored). */
  alreadyExisted: boolean;
  /** False when the upload was skipped because the server already had the hash. */
  uploaded: boolean;
  info: ModuleInfo;
}

/** Options of {@link WasmWizClient.upload}. */
export interface UploadOptions extends WasmWizCallOptions {
  /** Skip the `GetModule` check and always send the bytes. */
  force?: boolean;
  /** Chunk size of the client stream (default 1 MiB; gRPC transport only). */
  chunkSize?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes text as UTF-8; bytes pass through. */
export function toBytes(b: BytesLike): Uint8Array {
  return typeof b === "string" ? encoder.encode(b) : b;
}

/** Decodes UTF-8 (invalid sequences become U+FFFD). */
export function toText(b: Uint8Array): string {
  return decoder.decode(b);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function big(v: number | bigint | undefined): bigint {
  if (v === undefined) return 0n;
  if (typeof v === "bigint") return v;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`not a non-negative number: ${v}`);
  return BigInt(Math.floor(v));
}

function limitsInit(l: LimitsInit | undefined): MessageInitShape<typeof LimitsSchema> | undefined {
  if (!l) return undefined;
  return {
    fuel: big(l.fuel),
    memoryBytes: big(l.memoryBytes),
    timeoutMs: big(l.timeoutMs),
    maxOutputBytes: big(l.maxOutputBytes),
    fsBytes: big(l.fsBytes),
    idleTimeoutMs: big(l.idleTimeoutMs),
  };
}

/** `limits.fsBytes` as a number, when given (the local size check's maximum). */
function fsBytesOf(l: LimitsInit | undefined): number | undefined {
  return l?.fsBytes === undefined || l.fsBytes === 0 || l.fsBytes === 0n ? undefined : Number(l.fsBytes);
}

function outcomeName(o: Outcome): OutcomeName {
  return (Outcome[o] ?? "UNSPECIFIED") as OutcomeName;
}

function verdictName(v: Verdict): VerdictName {
  return (Verdict[v] ?? "UNSPECIFIED") as VerdictName;
}

/** Reads `ratelimit-limit/remaining/reset` from response headers. */
export function parseRateLimit(headers: Headers): RateLimitInfo | undefined {
  const limit = headers.get("ratelimit-limit");
  const remaining = headers.get("ratelimit-remaining");
  const reset = headers.get("ratelimit-reset");
  if (limit === null || remaining === null) return undefined;
  const num = (s: string | null) => (s === null ? 0 : Number.parseInt(s, 10) || 0);
  return { limit: num(limit), remaining: num(remaining), reset: num(reset) };
}

/** The lowercase hex sha256 of `bytes`, or undefined where WebCrypto is missing (insecure browser contexts). */
export async function sha256Hex(bytes: Uint8Array): Promise<string | undefined> {
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!subtle) return undefined;
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/**
 * A stream of events that also collects them. Iterate it once with
 * `for await`, or call `result()` to collect everything (or both: iterate,
 * then `await result()`).
 */
export class CollectingStream<E, R> implements AsyncIterable<E> {
  #open: () => AsyncIterable<unknown>;
  #step: (raw: unknown) => E | undefined;
  #finish: () => R;
  #consumed = false;
  #settled = false;
  #resolve!: (r: R) => void;
  #reject!: (e: WasmWizError) => void;
  readonly #result: Promise<R>;

  /** @internal */
  constructor(open: () => AsyncIterable<unknown>, step: (raw: unknown) => E | undefined, finish: () => R) {
    this.#open = open;
    this.#step = step;
    this.#finish = finish;
    this.#result = new Promise<R>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#result.catch(() => undefined); // never an unhandled rejection
  }

  [Symbol.asyncIterator](): AsyncIterator<E> {
    if (this.#consumed) throw new Error("a WasmWiz stream can be iterated only once; use result()");
    this.#consumed = true;
    return this.#iterate();
  }

  /** Resolves with everything collected once the stream ends; rejects with a {@link WasmWizError}. */
  result(): Promise<R> {
    if (!this.#consumed) {
      this.#consumed = true;
      void (async () => {
        for await (const _ of this.#iterate()) {
          // collecting
        }
      })().catch(() => undefined);
    }
    return this.#result;
  }

  async *#iterate(): AsyncGenerator<E> {
    try {
      for await (const raw of this.#open()) {
        const ev = this.#step(raw);
        if (ev !== undefined) yield ev;
      }
      const r = this.#finish();
      this.#settled = true;
      this.#resolve(r);
    } catch (e) {
      const err = WasmWizError.from(e);
      this.#settled = true;
      this.#reject(err);
      throw err;
    } finally {
      if (!this.#settled) {
        this.#settled = true;
        this.#reject(new WasmWizError(Code.Canceled, "the stream was left before it ended"));
      }
    }
  }
}

/** A run in progress: async-iterate its {@link RunEvent}s, or `await run.result()`. */
export type RunStream = CollectingStream<RunEvent, RunResult>;
/** A batch in progress: async-iterate case results as they finish, or `await batch.result()` (sorted by case). */
export type BatchStream = CollectingStream<BatchCaseResult, BatchCaseResult[]>;

function runCollector(open: () => AsyncIterable<ExecuteEvent>, rate: { info?: RateLimitInfo }): RunStream {
  let started: Started | undefined;
  let finished: Finished | undefined;
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const files = new FileCollector();
  return new CollectingStream<RunEvent, RunResult>(
    open,
    (raw) => {
      const ev = (raw as ExecuteEvent).event;
      switch (ev.case) {
        case "started":
          started = ev.value;
          return { type: "started", started: ev.value };
        case "stdout":
          out.push(ev.value);
          return { type: "stdout", data: ev.value };
        case "stderr":
          err.push(ev.value);
          return { type: "stderr", data: ev.value };
        case "file": {
          const data = ev.value.kind.case === "file" ? ev.value.kind.value : new Uint8Array(0);
          files.add(ev.value.path, data);
          return { type: "file", path: ev.value.path, data };
        }
        case "finished":
          finished = ev.value;
          return { type: "finished", finished: ev.value };
        default:
          return undefined;
      }
    },
    () => {
      if (!finished) throw new WasmWizError(Code.Internal, "the run's stream ended without a finished event");
      const stdout = concat(out);
      const stderr = concat(err);
      const s = started ?? (create(StartedSchema));
      return {
        started: s,
        finished,
        moduleSha256: s.moduleSha256,
        executionId: s.executionId,
        outcome: finished.outcome,
        outcomeName: outcomeName(finished.outcome),
        exitCode: finished.exitCode,
        ok: finished.outcome === Outcome.SUCCESS,
        stdout,
        stderr,
        stdoutText: toText(stdout),
        stderrText: toText(stderr),
        ...(rate.info ? { rateLimit: rate.info } : {}),
        files: files.build(),
        resultCacheHit: s.resultCacheHit,
        ...(s.resultCacheHit ? { cachedFrom: s.cachedFrom } : {}),
        ...(finished.receipt ? { receipt: finished.receipt } : {}),
      };
    },
  );
}

function batchCollector(open: () => AsyncIterable<BatchEvent>): BatchStream {
  const results: BatchCaseResult[] = [];
  // Cases run concurrently: each case's file pieces come before its finished event.
  const files = new Map<number, FileCollector>();
  return new CollectingStream<BatchCaseResult, BatchCaseResult[]>(
    open,
    (raw) => {
      const ev = raw as BatchEvent;
      if (ev.file) {
        let collector = files.get(ev.caseIndex);
        if (!collector) files.set(ev.caseIndex, (collector = new FileCollector()));
        collector.add(ev.file.path, ev.file.kind.case === "file" ? ev.file.kind.value : new Uint8Array(0));
        return undefined;
      }
      const caseFiles = files.get(ev.caseIndex)?.build() ?? new Map<string, Uint8Array>();
      files.delete(ev.caseIndex);
      const finished = ev.finished ?? create(FinishedSchema);
      const r: BatchCaseResult = {
        caseIndex: ev.caseIndex,
        name: ev.name,
        finished,
        outcome: finished.outcome,
        outcomeName: outcomeName(finished.outcome),
        exitCode: finished.exitCode,
        ok: finished.outcome === Outcome.SUCCESS,
        verdict: finished.verdict,
        verdictName: verdictName(finished.verdict),
        stdout: ev.stdout,
        stderr: ev.stderr,
        stdoutText: toText(ev.stdout),
        stderrText: toText(ev.stderr),
        executionId: ev.executionId,
        moduleSha256: ev.moduleSha256,
        files: caseFiles,
        resultCacheHit: ev.resultCacheHit,
        ...(ev.resultCacheHit ? { cachedFrom: ev.cachedFrom } : {}),
        ...(finished.receipt ? { receipt: finished.receipt } : {}),
      };
      results.push(r);
      return r;
    },
    () => [...results].sort((a, b) => a.caseIndex - b.caseIndex),
  );
}

/** Stored modules (content-addressed by sha256, per account). */
export interface ModulesApi {
  /** What the server knows of a module (NOT_FOUND when this account has none with this hash). */
  get(sha256: string, options?: WasmWizCallOptions): Promise<ModuleInfo>;
  /** One page of modules, newest first. */
  list(request?: MessageInitShape<typeof ListModulesRequestSchema>, options?: WasmWizCallOptions): Promise<ListModulesResponse>;
  /**
   * Every module, page after page. Each has `importCount` and `exportCount`;
   * `details: true` also fills `imports` and `exports` (larger pages).
   */
  listAll(options?: WasmWizCallOptions & { pageSize?: number; details?: boolean }): AsyncIterable<ModuleInfo>;
  /** Removes the module from this account. */
  delete(sha256: string, options?: WasmWizCallOptions): Promise<DeleteModuleResponse>;
}

/** The caller's own account. */
export interface AccountApi {
  /** Email, tier, tier limits and what is left of this minute's and today's allowance. */
  whoAmI(options?: WasmWizCallOptions): Promise<WhoAmIResponse>;
  /** Totals and a per-day series (oldest first) of the caller's usage. */
  getUsage(request?: MessageInitShape<typeof GetUsageRequestSchema>, options?: WasmWizCallOptions): Promise<GetUsageResponse>;
  /** A new key for the caller (same user, tier, admin flag); the secret is returned once. */
  createMyApiKey(request?: MessageInitShape<typeof CreateMyApiKeyRequestSchema>, options?: WasmWizCallOptions): Promise<CreateMyApiKeyResponse>;
  listMyApiKeys(options?: WasmWizCallOptions): Promise<ApiKeyInfo[]>;
  revokeMyApiKey(keyId: string, options?: WasmWizCallOptions): Promise<void>;
  /**
   * A new secret (`whsec_...`) that signs this account's webhooks; the old
   * one stops. Returned only this once: give it to your receiver.
   */
  rotateWebhookSecret(options?: WasmWizCallOptions): Promise<string>;
}

/** Operator calls (admin keys only; PERMISSION_DENIED otherwise). */
export interface AdminApi {
  createUser(request: MessageInitShape<typeof CreateUserRequestSchema>, options?: WasmWizCallOptions): Promise<CreateUserResponse>;
  setTier(request: MessageInitShape<typeof SetTierRequestSchema>, options?: WasmWizCallOptions): Promise<SetTierResponse>;
  /** Creates a key (and the user when unknown); the secret is returned once. */
  createApiKey(request: MessageInitShape<typeof CreateApiKeyRequestSchema>, options?: WasmWizCallOptions): Promise<CreateApiKeyResponse>;
  listApiKeys(request?: MessageInitShape<typeof ListApiKeysRequestSchema>, options?: WasmWizCallOptions): Promise<ApiKeyInfo[]>;
  revokeApiKey(keyId: string, options?: WasmWizCallOptions): Promise<void>;
  /** Usage of one user (`email`) or of everyone (empty email). */
  getUsage(request?: MessageInitShape<typeof GetUsageRequestSchema>, options?: WasmWizCallOptions): Promise<GetUsageResponse>;
}

/** The generated Connect clients, for anything the friendly API does not cover. */
export interface RawClients {
  execution: Client<typeof ExecutionService>;
  modules: Client<typeof ModuleService>;
  account: Client<typeof AccountService>;
  admin: Client<typeof AdminService>;
  health: Client<typeof Health>;
  server: Client<typeof ServerService>;
}

/** A WasmWiz client. Create one with `createClient` and reuse it (it shares connections). */
export interface WasmWizClient {
  /** The transport this client speaks. */
  readonly transport: TransportKind;
  readonly baseUrl: string;
  /**
   * Runs a module (`Run`: everything in one message) and streams its events.
   *
   * ```ts
   * const run = client.run({ module: bytes, stdin: "hi" });
   * for await (const ev of run) if (ev.type === "stdout") process.stdout.write(ev.data);
   * const { outcomeName, exitCode, finished } = await run.result();
   *
   * const report = await client.run({ module, files: { "input/a.txt": "a b\n" }, collect: ["out/*"] }).result();
   * console.log(new TextDecoder().decode(report.files.get("out/report.txt")));
   * ```
   * The whole request is one message: big input files go better over `execute()`.
   * Abort with `{ signal }` (the server stops the guest).
   */
  run(options: RunOptions, callOptions?: WasmWizCallOptions): RunStream;
  /**
   * Runs a module over the client-streaming `Execute` RPC: the module goes in
   * chunks, then the input `files` as `fs_chunk` pieces of at most 1 MiB (so
   * they may be larger than one message), and stdin may be streamed while
   * the guest runs. Needs the `"grpc"` transport (gRPC-web cannot stream
   * requests).
   */
  execute(options: ExecuteOptions, callOptions?: WasmWizCallOptions): RunStream;
  /**
   * Starts an interactive run: the guest's stdin stays open, fed by
   * `session.write()` until `session.close()` (EOF); output events arrive as
   * the guest writes them. Over gRPC-web it is `Run` with `interactive` plus
   * one `WriteStdin` per write; over gRPC it is `Execute` with
   * `stream_stdin` and `interactive`. Writes reach the guest in call order.
   *
   * ```ts
   * const session = client.interactive({ module: calc });
   * await session.write("1+2\n");
   * await session.close();
   * for await (const ev of session) if (ev.type === "stdout") console.log(toText(ev.data));
   * ```
   */
  interactive(options: InteractiveOptions, callOptions?: WasmWizCallOptions): InteractiveSession;
  /** One module, many cases, compiled once; results stream as each case finishes. */
  runBatch(options: RunBatchOptions, callOptions?: WasmWizCallOptions): BatchStream;
  /**
   * Queues a run on the server (`SubmitExecution`) and resolves once it is
   * durably queued; collect it later by id, even from another process.
   * The server checks it as `run()` would, at submit.
   *
   * ```ts
   * const job = await client.submit({ module, stdin: "hi", webhookUrl: "https://ci.example/hook" });
   * console.log(job.executionId);
   * const { stdoutText } = await job.result();
   * ```
   */
  submit(options: SubmitOptions, callOptions?: WasmWizCallOptions): Promise<DetachedExecution>;
  /** Queues a batch (`SubmitBatch`): each case becomes a detached execution. */
  submitBatch(options: SubmitBatchOptions, callOptions?: WasmWizCallOptions): Promise<SubmittedBatch>;
  /** The handle of an execution submitted before (no call is made). */
  execution(executionId: string): DetachedExecution;
  /** Shortcut for `client.execution(id).get()`: state, attempts, webhook attempts and output. */
  getExecution(executionId: string, options?: WasmWizCallOptions): Promise<ExecutionInfo>;
  /** One page of the account's detached executions, newest first. */
  listExecutions(request?: ListExecutionsOptions, options?: WasmWizCallOptions): Promise<ExecutionsPage>;
  /**
   * Stores a module for this account and returns its info. Skips the bytes
   * when the server already has the hash (`uploaded: false`). Streams chunks
   * over gRPC (`UploadModule`); sends one `PutModule` over gRPC-web.
   */
  upload(module: Uint8Array, options?: UploadOptions): Promise<UploadResult>;
  readonly modules: ModulesApi;
  readonly account: AccountApi;
  readonly admin: AdminApi;
  /**
   * The server's version, engine and the public keys that verify receipts
   * (`ServerService.GetServerInfo`; no key needed).
   *
   * ```ts
   * const info = await client.getServerInfo();
   * const key = info.receiptKeys.find((k) => k.keyId === result.receipt!.keyId)!;
   * const verified = await verifyReceipt(result.receipt!, key.publicKey);
   * ```
   */
  getServerInfo(options?: WasmWizCallOptions): Promise<GetServerInfoResponse>;
  /** `grpc.health.v1.Health/Check` (no key needed): true when SERVING. */
  health(service?: string, options?: WasmWizCallOptions): Promise<boolean>;
  /** The same client (same connections) with another API key. */
  withApiKey(apiKey: string | undefined): WasmWizClient;
  readonly raw: RawClients;
}

const DEFAULT_CHUNK = 1024 * 1024;

/**
 * Modules up to this size are sent without checking them against the tier
 * first: every tier takes them, and the check costs one `WhoAmI`.
 */
export const SIZE_CHECK_THRESHOLD = 1024 * 1024;

async function* chunksOf(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += size) yield bytes.subarray(off, Math.min(bytes.length, off + size));
}

function isAsyncIterable(x: unknown): x is AsyncIterable<BytesLike> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}

function isIterableOfChunks(x: unknown): x is Iterable<BytesLike> {
  return typeof x === "object" && x !== null && !(x instanceof Uint8Array) && Symbol.iterator in x;
}

/**
 * Builds a client on a Connect transport you made yourself (`kind` tells
 * which protocol it speaks). `createClient` from `@wasmwiz/sdk` is the usual
 * way in.
 */
export function createClientWithTransport(transport: Transport, kind: TransportKind, options: ClientOptions): WasmWizClient {
  const raw: RawClients = {
    execution: createConnectClient(ExecutionService, transport),
    modules: createConnectClient(ModuleService, transport),
    account: createConnectClient(AccountService, transport),
    admin: createConnectClient(AdminService, transport),
    health: createConnectClient(Health, transport),
    server: createConnectClient(ServerService, transport),
  };
  return buildClient(raw, kind, options);
}

function buildClient(raw: RawClients, kind: TransportKind, options: ClientOptions): WasmWizClient {
  const baseHeaders: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.apiKey) baseHeaders["authorization"] = `Bearer ${options.apiKey}`;

  /** Call options with the key and extra headers added; the unary deadline when asked. */
  const co = (o: WasmWizCallOptions | undefined, unary: boolean): CallOptions => {
    const headers = new Headers(baseHeaders);
    if (o?.headers) new Headers(o.headers).forEach((v, k) => headers.set(k, v));
    const timeoutMs = o?.timeoutMs ?? (unary ? options.timeoutMs : undefined);
    return {
      ...(o?.signal ? { signal: o.signal } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(o?.onHeader ? { onHeader: o.onHeader } : {}),
      ...(o?.onTrailer ? { onTrailer: o.onTrailer } : {}),
      headers,
    };
  };

  /** The single choke point for unary calls. */
  const unary = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw WasmWizError.from(e);
    }
  };

  /** Call options for a streaming call that also record rate-limit headers. */
  const streamOptions = (o: WasmWizCallOptions | undefined, rate: { info?: RateLimitInfo }): CallOptions => {
    const base = co(o, false);
    return {
      ...base,
      onHeader: (h: Headers) => {
        rate.info = parseRateLimit(h);
        o?.onHeader?.(h);
      },
    };
  };

  const runRequestInit = (r: RunOptions | ExecuteOptions) => ({
    args: r.args ?? [],
    programName: r.programName ?? "",
    env: r.env ?? {},
    limits: limitsInit(r.limits),
    randomSeed: big(r.randomSeed),
    ...(r.expectedStdout !== undefined ? { expectedStdout: toBytes(r.expectedStdout) } : {}),
    keepModule: r.keepModule ?? false,
    cache: cachePolicy(r.cache),
    receipt: r.receipt ?? false,
  });

  /** The tier's limits from one `WhoAmI`, kept for this client's life (retried after a failure). */
  let tierLimits: Promise<TierLimits | undefined> | undefined;
  /**
   * Refuses a module above the tier's `maxModuleBytes` before any of its
   * bytes are sent; modules up to {@link SIZE_CHECK_THRESHOLD} are not checked.
   */
  const checkModuleSize = async (module: Uint8Array | undefined, o: WasmWizCallOptions | undefined) => {
    if (module === undefined || module.length <= SIZE_CHECK_THRESHOLD) return;
    tierLimits ??= unary(() => raw.account.whoAmI({}, co(o, true))).then((me) => me.limits);
    let limits: TierLimits | undefined;
    try {
      limits = await tierLimits;
    } catch (e) {
      tierLimits = undefined;
      throw e;
    }
    const max = Number(limits?.maxModuleBytes ?? 0n);
    if (limits && max > 0 && module.length > max) throw moduleTooLarge(module.length, max, limits.tier);
  };

  /** `open`, after the module's size was checked against the tier. */
  const sizeChecked =
    <T>(module: Uint8Array | undefined, o: WasmWizCallOptions | undefined, open: () => AsyncIterable<T>) =>
    (): AsyncIterable<T> =>
      (async function* () {
        await checkModuleSize(module, o);
        yield* open();
      })();

  /** A batch case's own tree, checked with the batch's files it keeps against `limits.fsBytes`. */
  const caseFs = (c: BatchCaseInit, index: number, shared: InputFs | undefined, maxBytes: number | undefined) => {
    const field = `cases[${index}].fs`;
    const own = inputFs(c.files, c.collect, undefined, field);
    if (!own) return undefined;
    const replaced = new Set(own.entries.map((e) => e.path));
    const kept = shared ? totalBytes(shared.entries.filter((e) => !replaced.has(e.path))) : 0;
    checkTotal(kept + totalBytes(own.entries), maxBytes, field);
    return filesystemInit(own);
  };

  const checkSource = (r: { module?: Uint8Array; moduleSha256?: string }) => {
    if ((r.module === undefined) === (r.moduleSha256 === undefined)) {
      throw new WasmWizError(Code.InvalidArgument, "give exactly one of `module` (bytes) and `moduleSha256`");
    }
  };

  /** A whole `RunRequest` (stdin and files inline), checked. */
  const runRequest = (r: RunOptions): MessageInitShape<typeof RunRequestSchema> => {
    checkSource(r);
    const fs = inputFs(r.files, r.collect, fsBytesOf(r.limits));
    return {
      source: r.module !== undefined ? { case: "module", value: r.module } : { case: "moduleSha256", value: r.moduleSha256! },
      stdin: r.stdin !== undefined ? toBytes(r.stdin) : new Uint8Array(0),
      ...runRequestInit(r),
      ...(fs ? { fs: filesystemInit(fs) } : {}),
    };
  };

  /** A whole `RunBatchRequest`, its cases' files checked. */
  const batchRequest = (r: RunBatchOptions): MessageInitShape<typeof RunBatchRequestSchema> => {
    checkSource(r);
    const maxBytes = fsBytesOf(r.limits);
    const fs = inputFs(r.files, r.collect, maxBytes);
    return {
      source: r.module !== undefined ? { case: "module", value: r.module } : { case: "moduleSha256", value: r.moduleSha256! },
      cases: r.cases.map((c, index) => {
        const own = caseFs(c, index, fs, maxBytes);
        return {
          stdin: c.stdin !== undefined ? toBytes(c.stdin) : new Uint8Array(0),
          args: c.args ?? [],
          name: c.name ?? "",
          ...(c.expectedStdout !== undefined ? { expectedStdout: toBytes(c.expectedStdout) } : {}),
          ...(own ? { fs: own } : {}),
        };
      }),
      ...(fs ? { fs: filesystemInit(fs) } : {}),
      limits: limitsInit(r.limits),
      programName: r.programName ?? "",
      env: r.env ?? {},
      randomSeed: big(r.randomSeed),
      cache: cachePolicy(r.cache),
      receipt: r.receipt ?? false,
    };
  };

  /** What a {@link DetachedExecution} calls, through this client's key and error conversion. */
  const detachedCalls: DetachedCalls = {
    watch: (executionId, o) => raw.execution.watchExecution({ executionId }, co(o, false)),
    collect: (open) => runCollector(open, {}),
    getPage: (executionId, pageToken, o) => unary(() => raw.execution.getExecution({ executionId, pageToken }, co(o, true))),
    cancel: (executionId, o) => unary(async () => (await raw.execution.cancelExecution({ executionId }, co(o, true))).state),
  };

  const client: WasmWizClient = {
    transport: kind,
    baseUrl: options.baseUrl,
    raw,

    run(r, o) {
      const rate: { info?: RateLimitInfo } = {};
      return runCollector(sizeChecked(r.module, o, () => raw.execution.run(runRequest(r), streamOptions(o, rate))), rate);
    },

    execute(r, o) {
      const rate: { info?: RateLimitInfo } = {};
      return runCollector(sizeChecked(r.module, o, () => {
        if (kind !== "grpc") {
          throw new WasmWizError(
            Code.Unimplemented,
            "execute() streams the request and needs the \"grpc\" transport; use run() over gRPC-web",
          );
        }
        checkSource(r);
        const chunk = r.chunkSize ?? DEFAULT_CHUNK;
        const streamed = isAsyncIterable(r.stdin) || isIterableOfChunks(r.stdin);
        if (streamed && r.cache !== undefined) throw streamedStdinCached();
        const fs = inputFs(r.files, r.collect, fsBytesOf(r.limits));
        async function* requests(): AsyncGenerator<MessageInitShape<typeof ExecuteRequestSchema>> {
          yield {
            msg: {
              case: "start",
              value: {
                source:
                  r.module !== undefined
                    ? { case: "moduleSize", value: BigInt(r.module.length) }
                    : { case: "moduleSha256", value: r.moduleSha256! },
                stdin: !streamed && r.stdin !== undefined ? toBytes(r.stdin as BytesLike) : new Uint8Array(0),
                streamStdin: streamed,
                ...runRequestInit(r),
                // The entries follow the module as fs_chunk pieces.
                ...(fs ? { fs: { collect: fs.collect } } : {}),
              },
            },
          };
          if (r.module !== undefined) {
            for await (const c of chunksOf(r.module, chunk)) yield { msg: { case: "moduleChunk", value: c } };
          }
          if (fs) {
            for (const piece of entryPieces(fs.entries, Math.min(chunk, PIECE_SIZE))) yield { msg: { case: "fsChunk", value: piece } };
            yield { msg: { case: "fsEof", value: true } };
          }
          if (streamed) {
            for await (const c of r.stdin as AsyncIterable<BytesLike>) {
              const b = toBytes(c);
              if (b.length) yield { msg: { case: "stdinChunk", value: b } };
            }
            yield { msg: { case: "stdinEof", value: true } };
          }
        }
        return raw.execution.execute(requests(), streamOptions(o, rate));
      }), rate);
    },

    interactive(r, o) {
      const abort = new AbortController();
      const userSignal = o?.signal;
      if (userSignal) {
        if (userSignal.aborted) abort.abort();
        else userSignal.addEventListener("abort", () => abort.abort(), { once: true });
      }
      const callOptions: WasmWizCallOptions = { ...(o ?? {}), signal: abort.signal };
      const rate: { info?: RateLimitInfo } = {};
      const initialStdin = r.stdin !== undefined ? toBytes(r.stdin) : new Uint8Array(0);
      if (kind === "grpc-web") {
        const stream = runCollector(sizeChecked(r.module, callOptions, () => {
          checkSource(r);
          const fs = inputFs(r.files, r.collect, fsBytesOf(r.limits));
          return raw.execution.run(
            {
              source: r.module !== undefined ? { case: "module", value: r.module } : { case: "moduleSha256", value: r.moduleSha256! },
              stdin: initialStdin,
              ...runRequestInit(r),
              interactive: true,
              ...(fs ? { fs: filesystemInit(fs) } : {}),
            },
            streamOptions(callOptions, rate),
          );
        }), rate);
        return new Session(stream, abort, async (executionId, data, eof) => {
          await raw.execution.writeStdin({ executionId, data, eof }, co({ ...(o?.headers ? { headers: o.headers } : {}) }, true));
        });
      }
      const feed = new StdinFeed();
      const stream = runCollector(sizeChecked(r.module, callOptions, () => {
        checkSource(r);
        const chunk = r.chunkSize ?? DEFAULT_CHUNK;
        const fs = inputFs(r.files, r.collect, fsBytesOf(r.limits));
        async function* requests(): AsyncGenerator<MessageInitShape<typeof ExecuteRequestSchema>> {
          yield {
            msg: {
              case: "start",
              value: {
                source:
                  r.module !== undefined
                    ? { case: "moduleSize", value: BigInt(r.module.length) }
                    : { case: "moduleSha256", value: r.moduleSha256! },
                stdin: new Uint8Array(0),
                streamStdin: true,
                interactive: true,
                ...runRequestInit(r),
                ...(fs ? { fs: { collect: fs.collect } } : {}),
              },
            },
          };
          if (r.module !== undefined) {
            for await (const c of chunksOf(r.module, chunk)) yield { msg: { case: "moduleChunk", value: c } };
          }
          if (fs) {
            for (const piece of entryPieces(fs.entries, Math.min(chunk, PIECE_SIZE))) yield { msg: { case: "fsChunk", value: piece } };
            yield { msg: { case: "fsEof", value: true } };
          }
          if (initialStdin.length) yield { msg: { case: "stdinChunk", value: initialStdin } };
          for await (const piece of feed) {
            if (piece.data.length) yield { msg: { case: "stdinChunk", value: piece.data } };
            if (piece.eof) yield { msg: { case: "stdinEof", value: true } };
          }
        }
        return raw.execution.execute(requests(), streamOptions(callOptions, rate));
      }), rate);
      return new Session(
        stream,
        abort,
        (_id, data, eof) => feed.push(data, eof),
        (error) => feed.end(error),
      );
    },

    runBatch(r, o) {
      return batchCollector(sizeChecked(r.module, o, () => raw.execution.runBatch(batchRequest(r), co(o, false))));
    },

    async submit(r, o) {
      await checkModuleSize(r.module, o);
      const run = runRequest(r);
      const response = await unary(() =>
        raw.execution.submitExecution({ run, webhookUrl: r.webhookUrl ?? "" }, co(o, true)),
      );
      return new DetachedExecution(response.executionId, detachedCalls);
    },

    async submitBatch(r, o) {
      await checkModuleSize(r.module, o);
      const batch = batchRequest(r);
      const response = await unary(() =>
        raw.execution.submitBatch({ batch, webhookUrl: r.webhookUrl ?? "" }, co(o, true)),
      );
      return {
        batchId: response.batchId,
        executions: response.executionIds.map((id) => new DetachedExecution(id, detachedCalls)),
      };
    },

    execution(executionId) {
      if (!executionId) throw new WasmWizError(Code.InvalidArgument, "executionId must not be empty", { local: true });
      return new DetachedExecution(executionId, detachedCalls);
    },

    getExecution(executionId, o) {
      return client.execution(executionId).get(o);
    },

    async listExecutions(req, o) {
      const page = await unary(() =>
        raw.execution.listExecutions(
          { state: executionStateOf(req?.state), pageSize: req?.pageSize ?? 0, pageToken: req?.pageToken ?? "" },
          co(o, true),
        ),
      );
      return { executions: page.executions.map(executionListing), nextPageToken: page.nextPageToken };
    },

    async upload(module, o) {
      await checkModuleSize(module, o);
      const sha = await sha256Hex(module);
      if (sha && !o?.force) {
        try {
          const info = await raw.modules.getModule({ sha256: sha }, co(o, true));
          return { sha256: info.sha256 || sha, size: info.size, alreadyExisted: true, uploaded: false, info };
        } catch (e) {
          const err = WasmWizError.from(e);
          if (err.code !== Code.NotFound) throw err;
        }
      }
      const info = await unary(async () => {
        if (kind === "grpc") {
          const chunk = o?.chunkSize ?? DEFAULT_CHUNK;
          async function* requests() {
            yield {
              msg: { case: "start" as const, value: { size: BigInt(module.length), ...(sha ? { sha256: sha } : {}) } },
            };
            for await (const c of chunksOf(module, chunk)) yield { msg: { case: "chunk" as const, value: c } };
          }
          return raw.modules.uploadModule(requests(), co(o, false));
        }
        return raw.modules.putModule({ module, ...(sha ? { sha256: sha } : {}) }, co(o, false));
      });
      return { sha256: info.sha256, size: info.size, alreadyExisted: info.alreadyExisted, uploaded: true, info };
    },

    modules: {
      get: (sha256, o) => unary(() => raw.modules.getModule({ sha256 }, co(o, true))),
      list: (req, o) => unary(() => raw.modules.listModules(req ?? {}, co(o, true))),
      async *listAll(o) {
        let pageToken = "";
        do {
          const page = await unary(() =>
            raw.modules.listModules({ pageSize: o?.pageSize ?? 0, pageToken, includeDetails: o?.details ?? false }, co(o, true)),
          );
          yield* page.modules;
          pageToken = page.nextPageToken;
        } while (pageToken);
      },
      delete: (sha256, o) => unary(() => raw.modules.deleteModule({ sha256 }, co(o, true))),
    },

    account: {
      whoAmI: (o) => unary(() => raw.account.whoAmI({}, co(o, true))),
      getUsage: (req, o) => unary(() => raw.account.getUsage(req ?? {}, co(o, true))),
      createMyApiKey: (req, o) => unary(() => raw.account.createMyApiKey(req ?? {}, co(o, true))),
      listMyApiKeys: (o) => unary(async () => (await raw.account.listMyApiKeys({}, co(o, true))).keys),
      revokeMyApiKey: (keyId, o) =>
        unary(async () => {
          await raw.account.revokeMyApiKey({ keyId }, co(o, true));
        }),
      rotateWebhookSecret: (o) => unary(async () => (await raw.account.rotateWebhookSecret({}, co(o, true))).secret),
    },

    admin: {
      createUser: (req, o) => unary(() => raw.admin.createUser(req, co(o, true))),
      setTier: (req, o) => unary(() => raw.admin.setTier(req, co(o, true))),
      createApiKey: (req, o) => unary(() => raw.admin.createApiKey(req, co(o, true))),
      listApiKeys: (req, o) => unary(async () => (await raw.admin.listApiKeys(req ?? {}, co(o, true))).keys),
      revokeApiKey: (keyId, o) =>
        unary(async () => {
          await raw.admin.revokeApiKey({ keyId }, co(o, true));
        }),
      getUsage: (req, o) => unary(() => raw.admin.getUsage(req ?? {}, co(o, true))),
    },

    getServerInfo: (o) => unary(() => raw.server.getServerInfo({}, co(o, true))),

    health: (service, o) =>
      unary(async () => {
        const r = await raw.health.check({ service: service ?? "" }, co(o, true));
        return r.status === HealthCheckResponse_ServingStatus.SERVING;
      }),

    withApiKey(apiKey) {
      return buildClient(raw, kind, { ...options, apiKey: apiKey ?? "" });
    },
  };
  return client;
}

/**
 * Detached executions: the handle `client.submit()` returns, and what
 * `GetExecution` / `ListExecutions` answer, friendlier typed. The calls
 * themselves go through the client's one choke point (`client.ts` hands
 * them in as {@link DetachedCalls}), so the key, deadlines and error
 * conversion are the same as everywhere else.
 *
 * @module
 */
import { Code, WasmWizError } from "./errors.js";
import { FileCollector } from "./files.js";
import {
  ExecutionState,
  Outcome,
  type ExecuteEvent,
  type ExecutionSummary,
  type Finished,
  type GetExecutionResponse,
} from "./gen/wasmwiz/v1/execution_pb.js";
import type { OutcomeName, RunResult, RunStream, WasmWizCallOptions } from "./client.js";

/** The state names without prefix: `"QUEUED"`, `"RUNNING"`, `"FINISHED"`, `"CANCELLED"`. */
export type ExecutionStateName = Exclude<keyof typeof ExecutionState, "UNSPECIFIED">;

/**
 * Reconnections {@link DetachedExecution.events} makes in a row without a
 * new event before it gives up (the wait doubles from 100 ms to 2 s).
 */
export const WATCH_RECONNECTS = 5;

/** One detached execution as listed (`ListExecutions`), with names and dates. */
export interface ExecutionListing {
  executionId: string;
  state: ExecutionState;
  stateName: ExecutionStateName | "UNSPECIFIED";
  moduleSha256: string;
  createdAt: Date;
  updatedAt: Date;
  /** How many times a replica began it (2: a replica died mid-run). */
  attempts: number;
  /** How it ended, once it has (`UNSPECIFIED` before). */
  outcome: Outcome;
  outcomeName: OutcomeName;
}

/** One POST of an execution's webhook. */
export interface WebhookDelivery {
  at: Date;
  /** The receiver's HTTP status; 0 when there was no answer. */
  httpStatus: number;
  /** Why it failed; empty on a 2xx. */
  error: string;
}

/** Everything the server holds of a detached execution (every page of output joined). */
export interface ExecutionInfo extends ExecutionListing {
  /** How it ended, once it has a result. */
  finished?: Finished;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Collected files, path → contents. */
  files: Map<string, Uint8Array>;
  /** Set when it ended without a result (its request was refused when a replica began it). */
  error: string;
  /** The usage record id of each attempt, in order (the last produced the result). */
  attemptExecutionIds: string[];
  webhookAttempts: WebhookDelivery[];
}

/** The calls a handle makes, bound by the client (key, deadline, errors). */
export interface DetachedCalls {
  watch(executionId: string, options: WasmWizCallOptions | undefined): AsyncIterable<ExecuteEvent>;
  collect(open: () => AsyncIterable<ExecuteEvent>): RunStream;
  getPage(executionId: string, pageToken: string, options: WasmWizCallOptions | undefined): Promise<GetExecutionResponse>;
  cancel(executionId: string, options: WasmWizCallOptions | undefined): Promise<ExecutionState>;
}

function outcomeName(o: Outcome): OutcomeName {
  return (Outcome[o] ?? "UNSPECIFIED") as OutcomeName;
}

/** `ExecutionState` by name. */
export function executionStateName(state: ExecutionState): ExecutionStateName | "UNSPECIFIED" {
  return (ExecutionState[state] ?? "UNSPECIFIED") as ExecutionStateName | "UNSPECIFIED";
}

/** A state given by name or number, as the server takes it (undefined: every state). */
export function executionStateOf(state: ExecutionState | ExecutionStateName | undefined): ExecutionState {
  if (state === undefined) return ExecutionState.UNSPECIFIED;
  if (typeof state === "number") return state;
  const value = (ExecutionState as unknown as Record<string, ExecutionState | undefined>)[state];
  if (value === undefined || value === ExecutionState.UNSPECIFIED) {
    throw new WasmWizError(
      Code.InvalidArgument,
      `not an execution state: ${JSON.stringify(state)} (use QUEUED, RUNNING, FINISHED or CANCELLED)`,
      { local: true },
    );
  }
  return value;
}

/** A listed execution with names and dates. */
export function executionListing(s: ExecutionSummary | undefined): ExecutionListing {
  const state = s?.state ?? ExecutionState.UNSPECIFIED;
  const outcome = s?.outcome ?? Outcome.UNSPECIFIED;
  return {
    executionId: s?.executionId ?? "",
    state,
    stateName: executionStateName(state),
    moduleSha256: s?.moduleSha256 ?? "",
    createdAt: new Date(Number(s?.createdAtMs ?? 0n)),
    updatedAt: new Date(Number(s?.updatedAtMs ?? 0n)),
    attempts: s?.attempts ?? 0,
    outcome,
    outcomeName: outcomeName(outcome),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Node's errors of a connection that went away (Connect reports a reset as ABORTED). */
const DROPPED = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ERR_HTTP2_STREAM_ERROR", "ERR_HTTP2_SESSION_ERROR"]);

/** True when the call failed because the connection dropped, not because the server said no. */
export function droppedConnection(err: WasmWizError): boolean {
  if (err.code === Code.Unavailable) return true;
  if (err.code !== Code.Aborted) return false;
  for (let cause: unknown = err.cause, depth = 0; cause && depth < 5; depth += 1) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && DROPPED.has(code)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The events of `open()`, reconnecting when the connection drops
 * (`UNAVAILABLE`, or a reset, see {@link droppedConnection}): the server replays from the start, so the events already
 * yielded are skipped and none is seen twice.
 */
export async function* reconnecting(
  open: () => AsyncIterable<ExecuteEvent>,
  signal: AbortSignal | undefined,
): AsyncGenerator<ExecuteEvent> {
  let delivered = 0;
  let failures = 0;
  for (;;) {
    let seen = 0;
    try {
      for await (const event of open()) {
        seen += 1;
        if (seen <= delivered) continue; // replayed: yielded before the reconnection
        delivered += 1;
        failures = 0;
        yield event;
      }
      return;
    } catch (e) {
      const err = WasmWizError.from(e);
      if (!droppedConnection(err) || failures >= WATCH_RECONNECTS || signal?.aborted) throw err;
      await sleep(Math.min(100 * 2 ** failures, 2000));
      failures += 1;
    }
  }
}

/**
 * A detached execution, by id. It runs on the server whether or not anyone
 * watches: keep `executionId`, rebuild the handle later with
 * `client.execution(id)`, and collect the result then.
 *
 * ```ts
 * const job = await client.submit({ module, stdin: "hi" });
 * for await (const ev of job.events()) if (ev.type === "stdout") process.stdout.write(ev.data);
 * const result = await job.result();
 * ```
 */
export class DetachedExecution {
  readonly executionId: string;
  readonly #calls: DetachedCalls;

  /** @internal */
  constructor(executionId: string, calls: DetachedCalls) {
    this.executionId = executionId;
    this.#calls = calls;
  }

  /**
   * Every event, from `started`: what already happened, then the rest as it
   * happens, until `finished` (or the cancellation). A dropped connection is
   * reconnected ({@link WATCH_RECONNECTS} times in a row at most) without
   * repeating events. Iterate it, or `await events().result()`.
   */
  events(options?: WasmWizCallOptions): RunStream {
    return this.#calls.collect(() =>
      reconnecting(() => this.#calls.watch(this.executionId, options), options?.signal),
    );
  }

  /**
   * Waits for the execution to finish and resolves with its result
   * (`executionId` there is the execution's id). Rejects with `CANCELLED` when it was cancelled, or with the error
   * that refused its request when a replica began it.
   */
  async result(options?: WasmWizCallOptions): Promise<RunResult> {
    try {
      return await this.events(options).result();
    } catch (e) {
      const err = WasmWizError.from(e);
      if (err.code !== Code.Internal) throw err;
      const info = await this.get(options);
      if (info.state === ExecutionState.CANCELLED) {
        throw new WasmWizError(Code.Canceled, `execution ${this.executionId} was cancelled`, { cause: err });
      }
      throw err;
    }
  }

  /** State, attempts, webhook attempts and all output now (follows `GetExecution`'s ~4 MiB pages). */
  async get(options?: WasmWizCallOptions): Promise<ExecutionInfo> {
    const pages: GetExecutionResponse[] = [];
    const files = new FileCollector();
    let pageToken = "";
    do {
      const page = await this.#calls.getPage(this.executionId, pageToken, options);
      pages.push(page);
      for (const entry of page.files) files.add(entry.path, entry.kind.case === "file" ? entry.kind.value : new Uint8Array(0));
      pageToken = page.nextPageToken;
    } while (pageToken);
    const last = pages[pages.length - 1]!;
    return {
      ...executionListing(last.execution),
      ...(last.finished ? { finished: last.finished } : {}),
      stdout: concat(pages.map((p) => p.stdout)),
      stderr: concat(pages.map((p) => p.stderr)),
      files: files.build(),
      error: last.error,
      attemptExecutionIds: [...last.attemptExecutionIds],
      webhookAttempts: last.webhookAttempts.map((a) => ({
        at: new Date(Number(a.atMs)),
        httpStatus: a.httpStatus,
        error: a.error,
      })),
    };
  }

  /** Its state, attempts and outcome (one `GetExecution` page; the output is not kept). */
  async status(options?: WasmWizCallOptions): Promise<ExecutionListing> {
    return executionListing((await this.#calls.getPage(this.executionId, "", options)).execution);
  }

  /**
   * Cancels it: a queued one at once, a running one within a lease renewal.
   * Resolves with the state after: `CANCELLED`, or `FINISHED` when it had
   * already ended.
   */
  async cancel(options?: WasmWizCallOptions): Promise<ExecutionStateName | "UNSPECIFIED"> {
    return executionStateName(await this.#calls.cancel(this.executionId, options));
  }
}

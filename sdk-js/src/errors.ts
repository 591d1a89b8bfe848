/**
 * Errors: every failed call of the SDK throws a {@link WasmWizError}, made in
 * one place ({@link WasmWizError.from}) from Connect's `ConnectError`. It
 * carries the gRPC status code, the server's message, the google.rpc details
 * decoded from `grpc-status-details-bin` (BadRequest, RetryInfo, QuotaFailure,
 * ResourceInfo, ErrorInfo, ...) and `retryAfter` in seconds.
 *
 * What a guest program does (non-zero exit, trap, out of fuel, timeout) is not
 * an error: it is reported in the run's `Finished` event.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  DebugInfoSchema,
  ErrorInfoSchema,
  HelpSchema,
  LocalizedMessageSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
  type BadRequest,
  type BadRequest_FieldViolation,
  type DebugInfo,
  type ErrorInfo,
  type Help,
  type LocalizedMessage,
  type PreconditionFailure,
  type QuotaFailure,
  type RequestInfo,
  type ResourceInfo,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** The canonical gRPC status code names, indexed by code number. */
export const GRPC_CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A gRPC status code name such as `"RESOURCE_EXHAUSTED"`. */
export type GrpcCodeName = (typeof GRPC_CODE_NAMES)[number];

/** The gRPC name of a status code (`Code.NotFound` → `"NOT_FOUND"`). */
export function grpcCodeName(code: Code | number): GrpcCodeName {
  return GRPC_CODE_NAMES[code] ?? "UNKNOWN";
}

/**
 * The google.rpc error details the server attached to an error
 * (`grpc-status-details-bin`), decoded. Each is present only when sent.
 */
export interface ErrorDetails {
  /** INVALID_ARGUMENT: which request field is wrong and why. */
  badRequest?: BadRequest;
  /** RESOURCE_EXHAUSTED / UNAVAILABLE: how long to wait before retrying. */
  retryInfo?: RetryInfo;
  /** RESOURCE_EXHAUSTED: which quota (per minute, per day) was hit. */
  quotaFailure?: QuotaFailure;
  /** NOT_FOUND: which resource (e.g. a module sha256) is unknown. */
  resourceInfo?: ResourceInfo;
  /** PERMISSION_DENIED and others: a machine-readable reason. */
  errorInfo?: ErrorInfo;
  preconditionFailure?: PreconditionFailure;
  requestInfo?: RequestInfo;
  debugInfo?: DebugInfo;
  help?: Help;
  localizedMessage?: LocalizedMessage;
}

/** One BadRequest field violation, flattened. */
export interface FieldViolation {
  /** The request field, e.g. `module` or `limits.fuel`. */
  field: string;
  /** Why it was refused (e.g. the tier's maximum). */
  description: string;
}

/** The ErrorInfo reason of a request past one of its tier's maxima. */
export const LIMIT_EXCEEDED = "LIMIT_EXCEEDED";
/** The ErrorInfo reason of an upload the server abandoned for idling. */
export const UPLOAD_IDLE = "UPLOAD_IDLE";
/** The domain of the server's ErrorInfo reasons. */
export const ERROR_DOMAIN = "wasmwiz";

/** QuotaFailure subjects that waiting does not cure: delete modules or revoke a key first. */
export const STANDING_QUOTAS: readonly string[] = ["stored modules", "stored module bytes", "api keys"];

/** API fields as this SDK's options name them. */
const OPTION_NAMES: Record<string, string> = {
  "limits.memory_bytes": "limits.memoryBytes",
  "limits.fuel": "limits.fuel",
  "limits.timeout_ms": "limits.timeoutMs",
  "limits.max_output_bytes": "limits.maxOutputBytes",
  "limits.fs_bytes": "limits.fsBytes",
  module_size: "module",
  size: "module",
  message: "request",
};

/** `2 GiB`, `1.5 MiB`, `512 bytes`: sizes in the units a person reads. */
export function humanBytes(bytes: number): string {
  for (const [shift, unit] of [
    [30, "GiB"],
    [20, "MiB"],
    [10, "KiB"],
  ] as const) {
    const size = 2 ** shift;
    if (bytes >= size) return `${(bytes / size).toFixed(1).replace(/\.0$/, "")} ${unit}`;
  }
  return `${bytes} bytes`;
}

function amount(value: number, unit: string): string {
  switch (unit) {
    case "bytes":
      return humanBytes(value);
    case "ms":
      return `${value / 1000} s`;
    case "fuel":
      return value.toLocaleString("en-US").replaceAll(",", "_");
    case "count":
      return `${value} items`;
    default:
      return `${value} ${unit}`;
  }
}

/**
 * A request past one of its tier's maxima, from the server's
 * `LIMIT_EXCEEDED` ErrorInfo (or the SDK's own check of a module's size
 * before uploading it).
 */
export interface LimitExceeded {
  /** The API field (`limits.memory_bytes`, `stdin`, `module`, `args`, `env`, `message`, `cases[2].stdin`). */
  field: string;
  /** The option of this SDK that set it (`limits.memoryBytes`, `stdin`, `module`, `request`...). */
  option: string;
  /** What the request asked for, in `unit`. */
  requested: number;
  /** The tier's maximum, in `unit`. */
  maximum: number;
  /** `"bytes"`, `"fuel"`, `"ms"` or `"count"`. */
  unit: string;
  /** The tier whose maximum it is (`""` when the server's). */
  tier: string;
  /** The refusal in the caller's terms and human units: `limits.memoryBytes 2 GiB is above the pro tier's 1 GiB`. */
  message: string;
}

/** The limit an ErrorInfo describes, or undefined when it is not one. */
export function limitOf(info: ErrorInfo | undefined): LimitExceeded | undefined {
  if (!info || info.reason !== LIMIT_EXCEEDED) return undefined;
  const m = info.metadata;
  const requested = Number(m["requested"]);
  const maximum = Number(m["maximum"]);
  if (m["field"] === undefined || !Number.isFinite(requested) || !Number.isFinite(maximum)) return undefined;
  return makeLimit(m["field"], requested, maximum, m["unit"] ?? "", m["tier"] ?? "");
}

/** A {@link LimitExceeded} with its option and message filled in. */
export function makeLimit(field: string, requested: number, maximum: number, unit: string, tier: string): LimitExceeded {
  const option = OPTION_NAMES[field] ?? field;
  const whose = tier ? `the ${tier} tier's` : "the server's";
  let message = `${option} ${amount(requested, unit)} is above ${whose} ${amount(maximum, unit)}`;
  if (field === "args" || field === "env" || field.endsWith(".args")) message += " (args and env together, argv[0] included)";
  if (field === "fs" || field.endsWith(".fs")) {
    // An input tree: the bytes in force are `limits.fsBytes` (by default the tier's maximum).
    message =
      unit === "count"
        ? `the files are ${requested} entries (parent directories included), above ${whose} ${maximum}`
        : `the files hold ${amount(requested, unit)}, above limits.fsBytes ${amount(maximum, unit)}`;
  }
  return { field, option, requested, maximum, unit, tier, message };
}

/**
 * The error the SDK throws, without sending anything, for input files above
 * `limits.fsBytes`: it reads like the server's refusal (BadRequest on `fs`
 * plus a LIMIT_EXCEEDED ErrorInfo) but has `local: true`.
 */
export function filesTooLarge(total: number, maximum: number, field = "fs", tier = ""): WasmWizError {
  const limit = makeLimit(field, total, maximum, "bytes", tier);
  const details: ErrorDetails = {
    badRequest: create(BadRequestSchema, { fieldViolations: [{ field, description: limit.message }] }),
    errorInfo: create(ErrorInfoSchema, {
      reason: LIMIT_EXCEEDED,
      domain: ERROR_DOMAIN,
      metadata: { field, requested: String(total), maximum: String(maximum), unit: "bytes", tier },
    }),
  };
  return new WasmWizError(Code.InvalidArgument, `${limit.message} (checked before uploading)`, { details, local: true });
}

/**
 * The error the SDK throws, without sending anything, for `cache` with
 * streamed stdin: stdin that has not arrived cannot be part of the result
 * cache's key (the server refuses it the same way, BadRequest on `cache`).
 */
export function streamedStdinCached(): WasmWizError {
  const said =
    "streamed stdin cannot be part of the result cache's key: give stdin whole (bytes or a string), or leave cache unset";
  const details: ErrorDetails = {
    badRequest: create(BadRequestSchema, { fieldViolations: [{ field: "cache", description: said }] }),
  };
  return new WasmWizError(Code.InvalidArgument, `${said} (checked before sending)`, { details, local: true });
}

/** The error the SDK throws, without sending anything, for a `cache` that is not a policy (JS callers are not type-checked). */
export function badCacheMode(cache: unknown): WasmWizError {
  const said = `cache must be "use", "refresh" or unset, not ${JSON.stringify(cache)}`;
  const details: ErrorDetails = {
    badRequest: create(BadRequestSchema, { fieldViolations: [{ field: "cache", description: said }] }),
  };
  return new WasmWizError(Code.InvalidArgument, `${said} (checked before sending)`, { details, local: true });
}

/** The error the SDK throws, without sending anything, for a path the guest's filesystem cannot hold. */
export function badFilePath(path: string, problem: string, field = "fs"): WasmWizError {
  const said = `path ${JSON.stringify(path)}: ${problem}`;
  const details: ErrorDetails = {
    badRequest: create(BadRequestSchema, { fieldViolations: [{ field, description: said }] }),
  };
  return new WasmWizError(Code.InvalidArgument, `${said} (checked before uploading)`, { details, local: true });
}

/**
 * The error the SDK throws, without sending anything, for a module above the
 * tier's `maxModuleBytes`: it reads like the server's refusal (BadRequest on
 * `module` plus a LIMIT_EXCEEDED ErrorInfo) but has `local: true`.
 */
export function moduleTooLarge(size: number, maximum: number, tier: string): WasmWizError {
  const details: ErrorDetails = {
    badRequest: create(BadRequestSchema, {
      fieldViolations: [{ field: "module", description: `the maximum is ${maximum}; this module has ${size}` }],
    }),
    errorInfo: create(ErrorInfoSchema, {
      reason: LIMIT_EXCEEDED,
      domain: ERROR_DOMAIN,
      metadata: { field: "module", requested: String(size), maximum: String(maximum), unit: "bytes", tier },
    }),
  };
  const limit = makeLimit("module", size, maximum, "bytes", tier);
  return new WasmWizError(Code.InvalidArgument, `${limit.message} (checked before uploading)`, { details, local: true });
}

/**
 * A failed WasmWiz call: the gRPC status code, the server's message and the
 * parsed error details.
 *
 * ```ts
 * try { await client.account.whoAmI(); }
 * catch (e) {
 *   if (e instanceof WasmWizError && e.code === Code.ResourceExhausted) {
 *     await sleep(e.retryAfter! * 1000);
 *   }
 * }
 * ```
 */
export class WasmWizError extends Error {
  override name = "WasmWizError";
  /** The gRPC status code (Connect's `Code` enum has the gRPC numbers). */
  readonly code: Code;
  /** The code's gRPC name, e.g. `"UNAUTHENTICATED"`. */
  readonly codeName: GrpcCodeName;
  /** The server's message, without the code prefix. */
  readonly rawMessage: string;
  /** The decoded google.rpc details. */
  readonly details: ErrorDetails;
  /**
   * Seconds to wait before retrying (RESOURCE_EXHAUSTED, UNAVAILABLE): from
   * RetryInfo, else from the `retry-after` metadata; undefined when neither
   * was sent.
   */
  readonly retryAfter: number | undefined;
  /** Response headers and trailers of the failed call. */
  readonly metadata: Headers;
  override readonly cause: unknown;
  /**
   * The tier maximum the request passed, when that is why it was refused;
   * `message` then words it with this SDK's option and human units.
   */
  readonly limit: LimitExceeded | undefined;
  /** True when the SDK refused the call itself, before sending anything. */
  readonly local: boolean;

  constructor(
    code: Code,
    message: string,
    init: { details?: ErrorDetails; metadata?: HeadersInit; cause?: unknown; retryAfter?: number; local?: boolean } = {},
  ) {
    const codeName = grpcCodeName(code);
    const limit = limitOf(init.details?.errorInfo);
    const said = limit && !message.includes(limit.message) ? limit.message : message;
    super(said ? `${codeName}: ${said}` : codeName);
    this.code = code;
    this.codeName = codeName;
    this.rawMessage = message;
    this.limit = limit;
    this.local = init.local ?? false;
    this.details = init.details ?? {};
    this.metadata = new Headers(init.metadata);
    this.cause = init.cause;
    this.retryAfter = init.retryAfter ?? retryAfterOf(this.details, this.metadata);
  }

  /** BadRequest's field violations (empty when none were sent). */
  get fieldViolations(): FieldViolation[] {
    return (this.details.badRequest?.fieldViolations ?? []).map((v: BadRequest_FieldViolation) => ({
      field: v.field,
      description: v.description,
    }));
  }

  /** The QuotaFailure subjects (`executions per minute`, `stored modules`, `api keys`...). */
  get quotaSubjects(): string[] {
    return (this.details.quotaFailure?.violations ?? []).map((v) => v.subject);
  }

  /**
   * RESOURCE_EXHAUSTED for a standing allowance (stored modules or bytes,
   * live API keys): waiting does not help, so do not retry it.
   */
  get isQuotaExceeded(): boolean {
    return this.code === Code.ResourceExhausted && this.quotaSubjects.some((s) => STANDING_QUOTAS.includes(s));
  }

  /** DEADLINE_EXCEEDED because the server abandoned an upload that sent nothing for the tier's `uploadIdleTimeoutMs`. */
  get isUploadIdle(): boolean {
    return this.code === Code.DeadlineExceeded && this.details.errorInfo?.reason === UPLOAD_IDLE;
  }

  /**
   * Converts anything thrown by a call into a WasmWizError (a WasmWizError is
   * returned as is). This is the SDK's single error choke point.
   */
  static from(reason: unknown): WasmWizError {
    if (reason instanceof WasmWizError) return reason;
    const ce = ConnectError.from(reason);
    const details: ErrorDetails = {};
    const take = <T>(list: T[]): T | undefined => list[0];
    try {
      details.badRequest = take(ce.findDetails(BadRequestSchema));
      details.retryInfo = take(ce.findDetails(RetryInfoSchema));
      details.quotaFailure = take(ce.findDetails(QuotaFailureSchema));
      details.resourceInfo = take(ce.findDetails(ResourceInfoSchema));
      details.errorInfo = take(ce.findDetails(ErrorInfoSchema));
      details.preconditionFailure = take(ce.findDetails(PreconditionFailureSchema));
      details.requestInfo = take(ce.findDetails(RequestInfoSchema));
      details.debugInfo = take(ce.findDetails(DebugInfoSchema));
      details.help = take(ce.findDetails(HelpSchema));
      details.localizedMessage = take(ce.findDetails(LocalizedMessageSchema));
    } catch {
      // Undecodable details: keep the code and message.
    }
    for (const k of Object.keys(details) as (keyof ErrorDetails)[]) {
      if (details[k] === undefined) delete details[k];
    }
    return new WasmWizError(ce.code, ce.rawMessage, { details, metadata: ce.metadata, cause: reason });
  }
}

/** True when `e` is a {@link WasmWizError} (optionally with this code). */
export function isWasmWizError(e: unknown, code?: Code): e is WasmWizError {
  return e instanceof WasmWizError && (code === undefined || e.code === code);
}

function retryAfterOf(details: ErrorDetails, metadata: Headers): number | undefined {
  const delay = details.retryInfo?.retryDelay;
  if (delay) return durationMs(delay) / 1000;
  const header = metadata.get("retry-after");
  if (header !== null && header.trim() !== "") {
    const n = Number(header.trim());
    if (Number.isFinite(n)) return n;
    const when = Date.parse(header);
    if (!Number.isNaN(when)) return Math.max(0, Math.ceil((when - Date.now()) / 1000));
  }
  return undefined;
}

/** Formats seconds for people: `42 s`, `3 min 5 s`, `2 h 10 min`. */
export function formatWait(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
}

function capitalize(s: string): string {
  const t = s.trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** Ends `s` with a full stop unless it already ends with punctuation. */
function sentence(s: string): string {
  const t = s.trim();
  return t === "" || /[.!?…]$/.test(t) ? t : `${t}.`;
}

/**
 * Explains an error in words for a person (used by the playground): what went
 * wrong and what to do about it.
 */
export function describeError(error: unknown): { title: string; detail: string } {
  const e = WasmWizError.from(error);
  const violations = e.fieldViolations.map((v) => (v.field ? `${v.field}: ${v.description}` : v.description));
  const server = e.rawMessage ? e.rawMessage : "";
  switch (e.code) {
    case Code.Unauthenticated:
      return {
        title: "The API key was not accepted",
        detail:
          "It is missing, mistyped, unknown, expired or revoked. Paste a valid key (a fresh server prints an admin key on its first start; `wasmwiz-server admin create-key` makes more).",
      };
    case Code.PermissionDenied:
      return {
        title: "Not allowed with this key",
        detail: server || "This call needs an admin key.",
      };
    case Code.ResourceExhausted: {
      // The wait is appended below, so drop a "retry in N s" the server may have written itself.
      const quota =
        e.details.quotaFailure?.violations
          .map((v) => capitalize((v.description || v.subject).replace(/[;,.]?\s*(please\s+)?(retry|try again)\b.*$/i, "")))
          .filter(Boolean) ?? [];
      const wait = e.retryAfter !== undefined ? ` Try again in ${formatWait(e.retryAfter)}.` : "";
      if (e.isQuotaExceeded) {
        return {
          title: e.quotaSubjects.includes("api keys") ? "Too many API keys" : "Storage full",
          detail: sentence(quota.length ? quota.join("; ") : server),
        };
      }
      return {
        title: "Rate limited",
        detail: sentence(quota.length ? quota.join("; ") : server || "This account used up its allowance") + wait,
      };
    }
    case Code.InvalidArgument: {
      if (e.limit) {
        const isModule = e.limit.option === "module";
        const isFiles = e.limit.field === "fs" || e.limit.field.endsWith(".fs");
        return {
          title: isModule ? "Module too large" : isFiles ? "Files too large" : "Above this tier's limit",
          detail: sentence(e.local ? `${e.limit.message} (checked before uploading)` : e.limit.message),
        };
      }
      const isModule = e.fieldViolations.some((v) => v.field === "module" || v.field.startsWith("module"));
      return {
        title: isModule ? "Invalid module" : "Invalid request",
        detail: violations.length ? violations.join("; ") : server,
      };
    }
    case Code.NotFound:
      return {
        title: "Not found",
        detail: e.details.resourceInfo
          ? `No ${e.details.resourceInfo.resourceType || "resource"} ${e.details.resourceInfo.resourceName} on this account${e.details.resourceInfo.description ? `: ${e.details.resourceInfo.description}` : "."}`
          : server,
      };
    case Code.Unavailable: {
      const wait = e.retryAfter !== undefined ? ` Try again in ${formatWait(e.retryAfter)}.` : "";
      return { title: "Server unavailable", detail: sentence(server || "The server is busy or shutting down") + wait };
    }
    case Code.Canceled:
      return { title: "Cancelled", detail: server || "The run was cancelled." };
    case Code.DeadlineExceeded:
      if (e.isUploadIdle) return { title: "Upload stalled", detail: server };
      return { title: "Timed out", detail: server || "The call took too long." };
    default:
      return { title: `Error (${e.codeName})`, detail: server || "Something went wrong." };
  }
}

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

  constructor(
    code: Code,
    message: string,
    init: { details?: ErrorDetails; metadata?: HeadersInit; cause?: unknown; retryAfter?: number } = {},
  ) {
    const codeName = grpcCodeName(code);
    super(message ? `${codeName}: ${message}` : codeName);
    this.code = code;
    this.codeName = codeName;
    this.rawMessage = message;
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
      return {
        title: "Rate limited",
        detail: sentence(quota.length ? quota.join("; ") : server || "This account used up its allowance") + wait,
      };
    }
    case Code.InvalidArgument: {
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
      return { title: "Timed out", detail: server || "The call took too long." };
    default:
      return { title: `Error (${e.codeName})`, detail: server || "Something went wrong." };
  }
}

/**
 * Checks the signature of a WasmWiz webhook before its body is trusted
 * (Node only: `node:crypto`). The server sends
 * `Wasmwiz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
 * keyed by the account's secret (`whsec_...`, from
 * `client.account.rotateWebhookSecret()`).
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** The header that carries the signature (HTTP header names are case-insensitive). */
export const WEBHOOK_SIGNATURE_HEADER = "wasmwiz-signature";
/** A header longer than this is refused unread (one `t` and a few `v1`). */
export const MAX_SIGNATURE_HEADER_LENGTH = 1024;
/** Default seconds a delivery's timestamp may be away from now. */
export const DEFAULT_WEBHOOK_TOLERANCE_SEC = 300;

/** The webhook's signature header is missing, malformed, wrong or too old. */
export class WebhookSignatureError extends Error {
  override name = "WebhookSignatureError";
}

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** Seconds the timestamp may differ from now (default 300). */
  toleranceSec?: number;
  /** The current time in unix seconds (default: now). */
  nowSec?: number;
}

function mac(secret: string, t: string, body: Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${t}.`).update(body).digest();
}

/** The header value the server would send for `body` (for tests and local tools). */
export function signWebhook(secret: string, body: Uint8Array | string, timestampSec = Math.floor(Date.now() / 1000)): string {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return `t=${timestampSec},v1=${mac(secret, String(timestampSec), bytes).toString("hex")}`;
}

function parse(header: string): { t: string; signatures: string[] } {
  if (header.length > MAX_SIGNATURE_HEADER_LENGTH) {
    throw new WebhookSignatureError(`the signature header is longer than ${MAX_SIGNATURE_HEADER_LENGTH} bytes`);
  }
  let t: string | undefined;
  const signatures: string[] = [];
  for (const raw of header.split(",")) {
    const part = raw.trim();
    const eq = part.indexOf("=");
    if (eq < 0) throw new WebhookSignatureError(`malformed signature header: ${JSON.stringify(part)} is not key=value`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === "t") t = value;
    else if (key === "v1") signatures.push(value);
  }
  if (t === undefined || !/^\d+$/.test(t)) throw new WebhookSignatureError("the signature header has no valid t=<unix seconds>");
  if (!signatures.length) throw new WebhookSignatureError("the signature header has no v1= signature");
  return { t, signatures };
}

/**
 * Checks a delivery's signature over the raw body (as received, not
 * re-encoded JSON), in constant time, and refuses a timestamp more than
 * `toleranceSec` from now (a replayed old delivery). Returns the parsed
 * JSON body (`type`: `"execution.ended"` or `"batch.ended"`).
 *
 * ```ts
 * const event = verifyWebhook(secret, req.headers["wasmwiz-signature"], body);
 * console.log(event.execution_id, event.outcome);
 * ```
 *
 * @throws {WebhookSignatureError} missing or malformed header, old timestamp, or no matching signature.
 */
export function verifyWebhook(
  secret: string,
  header: string | string[] | null | undefined,
  body: Uint8Array | string,
  options: VerifyWebhookOptions = {},
): Record<string, unknown> {
  if (Array.isArray(header)) {
    if (header.length !== 1) throw new WebhookSignatureError("expected exactly one signature header");
    header = header[0];
  }
  if (!header) throw new WebhookSignatureError("the Wasmwiz-Signature header is missing");
  const { t, signatures } = parse(header);
  const tolerance = options.toleranceSec ?? DEFAULT_WEBHOOK_TOLERANCE_SEC;
  const now = options.nowSec ?? Date.now() / 1000;
  const skew = Math.abs(now - Number(t));
  if (skew > tolerance) {
    throw new WebhookSignatureError(
      `the signature's timestamp is ${Math.round(skew)} s away from now (at most ${tolerance} s): a replayed or delayed delivery`,
    );
  }
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  const expected = mac(secret, t, bytes);
  let matched = false;
  for (const candidate of signatures) {
    const given = /^[0-9a-f]{64}$/i.test(candidate) ? Buffer.from(candidate, "hex") : Buffer.alloc(expected.length);
    // Every candidate is compared (no early exit); a malformed one compares as zeros.
    matched = timingSafeEqual(expected, given) || matched;
  }
  if (!matched) throw new WebhookSignatureError("the signature does not match the body under this secret");
  return JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
}

/**
 * Share links: the playground's inputs in the URL fragment (`#share=…`,
 * base64url of JSON), so they never reach a server log. The API key is never
 * part of them.
 */

/** What a share link carries. Limits are kept as typed (e.g. fuel "1e9"). */
export interface SharedInputs {
  example: string;
  stdin?: string;
  args?: string[];
  env?: Record<string, string>;
  limits?: Partial<Record<"fuel" | "timeoutMs" | "memoryMiB" | "outputKiB" | "fsKiB" | "seed", string>>;
}

const PREFIX = "#share=";
/** Links longer than this are refused: browsers and chat tools cut long URLs. */
export const MAX_SHARE_CHARS = 32 * 1024;

function toBase64Url(text: string): string {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(b64: string): string {
  const bin = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** `href` with its fragment replaced by the inputs. */
export function shareUrl(href: string, inputs: SharedInputs): string {
  const url = new URL(href);
  url.hash = PREFIX.slice(1) + toBase64Url(JSON.stringify(inputs));
  const out = url.toString();
  if (out.length > MAX_SHARE_CHARS) {
    throw new Error(`The share link would be ${out.length} characters; shorten stdin (at most ${MAX_SHARE_CHARS}).`);
  }
  return out;
}

function strings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

function stringMap(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}

/** The inputs of a `#share=` fragment; `undefined` for any other fragment or a malformed one. */
export function readShared(hash: string): SharedInputs | undefined {
  if (!hash.startsWith(PREFIX)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(fromBase64Url(hash.slice(PREFIX.length)));
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (typeof d["example"] !== "string") return undefined;
  return {
    example: d["example"],
    ...(typeof d["stdin"] === "string" ? { stdin: d["stdin"] } : {}),
    ...(strings(d["args"]) ? { args: d["args"] } : {}),
    ...(stringMap(d["env"]) ? { env: d["env"] } : {}),
    ...(stringMap(d["limits"]) ? { limits: d["limits"] } : {}),
  };
}

/**
 * Offline verification of WasmWiz execution receipts, on WebCrypto alone
 * (Node 20+, current browsers).
 *
 * A receipt (`Finished.receipt`) is an Ed25519 signature over the bytes of a
 * serialized `ReceiptStatement`. `verifyReceipt` checks it with the server's
 * public key (`GetServerInfo` lists them) and returns the statement with
 * methods that check output you hold against its digests. No server is
 * contacted.
 *
 * ```ts
 * const verified = await verifyReceipt(finished.receipt!, publicKeyHex);
 * await verified.checkStdout(stdoutBytes);
 * console.log(verified.statement.executionId, verified.statement.fuelConsumed);
 * ```
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ReceiptSchema, type Receipt } from "./gen/wasmwiz/v1/receipt_pb.js";
import { ReceiptStatementSchema, type ReceiptStatement } from "./gen/wasmwiz/v1/receipt_statement_pb.js";

/** A receipt, or output checked against it, did not verify. */
export class ReceiptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReceiptError";
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(data: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource)));
}

/** The id receipts name a key by: the first 16 hex digits of its sha256. */
export async function receiptKeyId(publicKey: Uint8Array): Promise<string> {
  return (await sha256(publicKey)).slice(0, 16);
}

/** 32 raw bytes, or 64 hex digits, as the 32 bytes of an Ed25519 key. */
export function parsePublicKey(key: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof key === "string") {
    const text = key.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new ReceiptError("the public key is not 64 hex digits");
    bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  } else {
    bytes = key;
  }
  if (bytes.length !== 32) throw new ReceiptError(`an Ed25519 public key has 32 bytes, not ${bytes.length}`);
  return bytes;
}

/** A receipt whose signature checked out, with its statement. */
export interface VerifiedReceipt {
  statement: ReceiptStatement;
  keyId: string;
  /** Rejects with `ReceiptError` unless `stdout` is the run's whole stdout. */
  checkStdout(stdout: Uint8Array): Promise<void>;
  /** Rejects with `ReceiptError` unless `stderr` is the run's whole stderr. */
  checkStderr(stderr: Uint8Array): Promise<void>;
  /** Rejects with `ReceiptError` unless `contents` is collected file `path`. */
  checkFile(path: string, contents: Uint8Array): Promise<void>;
  /** Rejects with `ReceiptError` unless `module` has the stated sha256. */
  checkModule(module: Uint8Array): Promise<void>;
}

async function check(what: string, stated: string, data: Uint8Array): Promise<void> {
  const actual = await sha256(data);
  if (actual !== stated) {
    throw new ReceiptError(`${what} does not match the receipt: its sha256 is ${actual}, the receipt states ${stated}`);
  }
}

/**
 * Checks `receipt` (a `Receipt` message or its serialized bytes) with
 * `publicKey` and decodes its statement (the signed bytes, as received).
 */
export async function verifyReceipt(
  receipt: Receipt | Uint8Array,
  publicKey: Uint8Array | string,
): Promise<VerifiedReceipt> {
  let message: Receipt;
  if (receipt instanceof Uint8Array) {
    try {
      message = fromBinary(ReceiptSchema, receipt);
    } catch (error) {
      throw new ReceiptError(`not a receipt: ${String(error)}`);
    }
  } else {
    message = receipt;
  }
  const raw = parsePublicKey(publicKey);
  const keyId = await receiptKeyId(raw);
  if (message.keyId && message.keyId !== keyId) {
    throw new ReceiptError(`the receipt was signed by key ${message.keyId}, but the public key given has id ${keyId}`);
  }
  const key = await crypto.subtle.importKey("raw", raw as BufferSource, { name: "Ed25519" }, false, ["verify"]);
  const valid = await crypto.subtle.verify(
    { name: "Ed25519" },
    key,
    message.signature as BufferSource,
    message.statement as BufferSource,
  );
  if (!valid) {
    throw new ReceiptError(
      "the signature does not match the statement: the receipt was altered or not signed by this key",
    );
  }
  let statement: ReceiptStatement;
  try {
    statement = fromBinary(ReceiptStatementSchema, message.statement);
  } catch (error) {
    throw new ReceiptError(`the statement is not a ReceiptStatement: ${String(error)}`);
  }
  return {
    statement,
    keyId,
    checkStdout: (stdout) => check("stdout", statement.stdoutSha256, stdout),
    checkStderr: (stderr) => check("stderr", statement.stderrSha256, stderr),
    checkModule: (module) => check("module", statement.moduleSha256, module),
    checkFile: async (path, contents) => {
      const file = statement.files.find((f) => f.path === path);
      if (!file) throw new ReceiptError(`the receipt lists no collected file ${path}`);
      await check(`file ${path}`, file.sha256, contents);
    },
  };
}

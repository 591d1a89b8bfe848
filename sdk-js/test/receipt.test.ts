/**
 * Receipt verification on WebCrypto, against statements signed here (no
 * server needed).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { ReceiptError, receiptKeyId, verifyReceipt } from "../src/node.js";
import { ReceiptSchema } from "../src/gen/wasmwiz/v1/receipt_pb.js";
import { ReceiptStatementSchema, FileDigestSchema } from "../src/gen/wasmwiz/v1/receipt_statement_pb.js";

const sha = (data: string) => createHash("sha256").update(data).digest("hex");
const bytes = (text: string) => new TextEncoder().encode(text);

function statement(fuel = 10n) {
  return create(ReceiptStatementSchema, {
    version: 1,
    stdoutSha256: sha("out"),
    stderrSha256: sha(""),
    files: [create(FileDigestSchema, { path: "out/a", sha256: sha("A"), size: 1n })],
    fuelConsumed: fuel,
  });
}

async function signed(signedFuel = 10n, statedFuel = signedFuel) {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const signedBytes = toBinary(ReceiptStatementSchema, statement(signedFuel));
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, signedBytes));
  const receipt = create(ReceiptSchema, {
    statement: toBinary(ReceiptStatementSchema, statement(statedFuel)),
    signature,
    keyId: await receiptKeyId(publicKey),
  });
  return { receipt, publicKey };
}

describe("verifyReceipt", () => {
  it("verifies a signed receipt and checks its outputs", async () => {
    const { receipt, publicKey } = await signed();
    const verified = await verifyReceipt(toBinary(ReceiptSchema, receipt), publicKey);
    assert.equal(verified.statement.fuelConsumed, 10n);
    await verified.checkStdout(bytes("out"));
    await verified.checkStderr(bytes(""));
    await verified.checkFile("out/a", bytes("A"));
  });

  it("rejects stdout with a changed byte", async () => {
    const { receipt, publicKey } = await signed();
    const verified = await verifyReceipt(receipt, publicKey);
    await assert.rejects(verified.checkStdout(bytes("Out")), /stdout does not match/);
  });

  it("rejects a statement changed after signing", async () => {
    const { receipt, publicKey } = await signed(10n, 11n);
    await assert.rejects(verifyReceipt(receipt, publicKey), (e: unknown) => {
      assert.ok(e instanceof ReceiptError);
      assert.match(e.message, /signature does not match/);
      return true;
    });
  });

  it("names the key when another one is given", async () => {
    const { receipt } = await signed();
    const other = await signed();
    await assert.rejects(verifyReceipt(receipt, other.publicKey), /signed by key/);
  });

  it("accepts the public key as hex", async () => {
    const { receipt, publicKey } = await signed();
    const hexKey = Buffer.from(publicKey).toString("hex");
    assert.equal((await verifyReceipt(receipt, hexKey)).keyId, await receiptKeyId(publicKey));
  });
});

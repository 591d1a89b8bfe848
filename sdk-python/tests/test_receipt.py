"""Receipt verification: offline against locally signed statements, and a
receipt a real server signed."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from conftest import Server, guest
from wasmwiz import receipt
from wasmwiz._gen.wasmwiz.v1 import (
    execution_pb2,
    execution_pb2_grpc,
    receipt_pb2,
    receipt_statement_pb2,
    server_pb2,
    server_pb2_grpc,
)


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _signed(statement: receipt_statement_pb2.ReceiptStatement) -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(bytes([4]) * 32)
    data = statement.SerializeToString()
    signed = receipt_pb2.Receipt(
        statement=data, signature=key.sign(data), key_id=receipt.key_id(_public(key))
    )
    return signed.SerializeToString(), _public(key)


def _statement() -> receipt_statement_pb2.ReceiptStatement:
    return receipt_statement_pb2.ReceiptStatement(
        version=1,
        stdout_sha256=hashlib.sha256(b"out").hexdigest(),
        stderr_sha256=hashlib.sha256(b"").hexdigest(),
        files=[
            receipt_statement_pb2.FileDigest(
                path="out/a", sha256=hashlib.sha256(b"A").hexdigest(), size=1
            )
        ],
        fuel_consumed=10,
    )


def test_a_signed_receipt_verifies_and_its_outputs_check() -> None:
    data, public = _signed(_statement())
    verified = receipt.verify(data, public.hex())
    assert verified.statement == _statement()
    verified.check_stdout(b"out")
    verified.check_stderr(b"")
    verified.check_file("out/a", b"A")


def test_a_changed_byte_of_stdout_does_not_check() -> None:
    data, public = _signed(_statement())
    with pytest.raises(receipt.ReceiptError, match="stdout does not match"):
        receipt.verify(data, public).check_stdout(b"Out")


def test_a_changed_statement_fails_the_signature() -> None:
    data, public = _signed(_statement())
    signed = receipt_pb2.Receipt.FromString(data)
    changed = _statement()
    changed.fuel_consumed = 11
    signed.statement = changed.SerializeToString()
    with pytest.raises(receipt.ReceiptError, match="signature does not match"):
        receipt.verify(signed, public)


def test_another_key_is_named() -> None:
    data, _ = _signed(_statement())
    other = _public(Ed25519PrivateKey.from_private_bytes(bytes([5]) * 32))
    with pytest.raises(receipt.ReceiptError, match="signed by key"):
        receipt.verify(data, other)


def test_a_receipt_from_the_server_verifies_with_its_listed_key(server: Server) -> None:
    key = server.new_key("free")
    target = server.url.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        info = server_pb2_grpc.ServerServiceStub(channel).GetServerInfo(
            server_pb2.GetServerInfoRequest()
        )
        events = execution_pb2_grpc.ExecutionServiceStub(channel).Run(
            execution_pb2.RunRequest(module=guest("hello").read_bytes(), receipt=True),
            metadata=[("authorization", f"Bearer {key}")],
        )
        stdout, signed = b"", None
        for event in events:
            if event.HasField("stdout"):
                stdout += event.stdout
            if event.HasField("finished"):
                signed = event.finished.receipt
    assert signed is not None
    listed = {k.key_id: k.public_key for k in info.receipt_keys}
    verified = receipt.verify(signed, listed[signed.key_id])
    verified.check_stdout(stdout)
    assert verified.statement.stdout_sha256 == hashlib.sha256(b"Hello, WasmWiz!\n").hexdigest()

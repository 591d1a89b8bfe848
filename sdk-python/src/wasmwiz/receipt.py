"""Offline verification of WasmWiz execution receipts.

A receipt (``Finished.receipt``) is an Ed25519 signature over the bytes of a
serialized ``ReceiptStatement``. :func:`verify` checks it with the server's
public key (``GetServerInfo`` lists them) and returns the statement; the
:class:`Verified` methods check output you hold against its digests. No
server is contacted. Needs the ``cryptography`` package
(``pip install 'wasmwiz[receipts]'``).

Example::

    from wasmwiz import receipt
    verified = receipt.verify(open("receipt.bin", "rb").read(), public_key_hex)
    verified.check_stdout(open("out.txt", "rb").read())
    print(verified.statement.execution_id, verified.statement.fuel_consumed)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Union

from google.protobuf.message import DecodeError

from ._gen.wasmwiz.v1 import receipt_pb2, receipt_statement_pb2

__all__ = ["ReceiptError", "Verified", "key_id", "parse_public_key", "verify"]

ReceiptLike = Union[bytes, "receipt_pb2.Receipt"]
KeyLike = Union[bytes, str]


class ReceiptError(Exception):
    """A receipt, or output checked against it, did not verify."""


def key_id(public_key: bytes) -> str:
    """The id receipts name a key by: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def parse_public_key(key: KeyLike) -> bytes:
    """32 raw bytes, or 64 hex digits, as the 32 bytes of an Ed25519 key."""
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key.strip())
        except ValueError:
            raise ReceiptError("the public key is not 64 hex digits") from None
    if len(key) != 32:
        raise ReceiptError(f"an Ed25519 public key has 32 bytes, not {len(key)}")
    return bytes(key)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Verified:
    """A receipt whose signature checked out."""

    statement: receipt_statement_pb2.ReceiptStatement
    key_id: str

    def _check(self, what: str, stated: str, data: bytes) -> None:
        actual = _sha256(data)
        if actual != stated:
            raise ReceiptError(
                f"{what} does not match the receipt: its sha256 is {actual}, "
                f"the receipt states {stated}"
            )

    def check_stdout(self, stdout: bytes) -> None:
        """Raises :class:`ReceiptError` unless ``stdout`` is the run's whole stdout."""
        self._check("stdout", self.statement.stdout_sha256, stdout)

    def check_stderr(self, stderr: bytes) -> None:
        """Raises :class:`ReceiptError` unless ``stderr`` is the run's whole stderr."""
        self._check("stderr", self.statement.stderr_sha256, stderr)

    def check_file(self, path: str, contents: bytes) -> None:
        """Raises :class:`ReceiptError` unless ``contents`` is collected file ``path``."""
        for file in self.statement.files:
            if file.path == path:
                self._check(f"file {path}", file.sha256, contents)
                return
        raise ReceiptError(f"the receipt lists no collected file {path}")

    def check_module(self, module: bytes) -> None:
        """Raises :class:`ReceiptError` unless ``module`` has the stated sha256."""
        self._check("module", self.statement.module_sha256, module)


def verify(receipt: ReceiptLike, public_key: KeyLike) -> Verified:
    """Checks a receipt's signature and returns its decoded statement.

    ``receipt`` is a ``Receipt`` message or its serialized bytes;
    ``public_key`` is 32 raw bytes or 64 hex digits.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(receipt, (bytes, bytearray)):
        message = receipt_pb2.Receipt()
        try:
            message.ParseFromString(bytes(receipt))
        except DecodeError as error:
            raise ReceiptError(f"not a receipt: {error}") from None
        receipt = message
    raw = parse_public_key(public_key)
    given = key_id(raw)
    if receipt.key_id and receipt.key_id != given:
        raise ReceiptError(
            f"the receipt was signed by key {receipt.key_id}, "
            f"but the public key given has id {given}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(receipt.signature, receipt.statement)
    except InvalidSignature:
        raise ReceiptError(
            "the signature does not match the statement: the receipt was altered "
            "or not signed by this key"
        ) from None
    statement = receipt_statement_pb2.ReceiptStatement()
    try:
        statement.ParseFromString(receipt.statement)
    except DecodeError as error:
        raise ReceiptError(f"the statement is not a ReceiptStatement: {error}") from None
    return Verified(statement=statement, key_id=given)

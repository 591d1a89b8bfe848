"""An upload the server refuses part way, with the blocking client only.

The server refuses an upload past the tier's size as soon as it reads the
``start`` message, while the client is still sending. grpc.aio reports a
write that loses that race as INTERNAL ("Internal error from Core") and
drops the server's status, so the asyncio client cannot promise
``InvalidModule`` here; grpcio's sync API always delivers the status.
"""

from __future__ import annotations

import pytest

import wasmwiz
from conftest import Server, guest, padded_module

MiB = 1024 * 1024


def test_upload_refused_over_tier_size(server: Server) -> None:
    data = padded_module(guest("hello").read_bytes(), 11 * MiB, b"pad-free")
    with server.client(server.new_key("free"), timeout=120) as client:  # free: 10 MiB modules
        with pytest.raises(wasmwiz.InvalidArgument) as info:
            client.upload(data)
    assert info.value.violations
    assert isinstance(info.value, wasmwiz.InvalidModule), info.value.violations

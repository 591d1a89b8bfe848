# Generated from test_upload_async.py by scripts/unasync.py. DO NOT EDIT:
# change test_upload_async.py and run sdk-python/scripts/unasync.py.
"""Chunked uploads of big modules, with progress and the dedup skip.

Written once, for the asyncio client; ``tests/test_upload_sync.py`` is
generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from pathlib import Path

import pytest

from conftest import Server, guest, padded_module

MiB = 1024 * 1024
#: Part of every padding name, so that the two clients' tests upload different modules.
KIND = b"Client"


@dataclasses.dataclass(frozen=True)
class BigModule:
    path: Path
    size: int
    sha256: str


@pytest.fixture(scope="module")
def big_module(tmp_path_factory: pytest.TempPathFactory) -> BigModule:
    """hello.wasm plus a 30 MiB custom section: runs like hello, another hash."""
    path = tmp_path_factory.mktemp("big") / "big.wasm"
    data = padded_module(guest("hello").read_bytes(), 30 * MiB, b"pad-" + KIND)
    path.write_bytes(data)
    return BigModule(path, len(data), hashlib.sha256(data).hexdigest())


def test_upload_30mb_with_progress_then_dedup(server: Server, big_module: BigModule) -> None:
    size, digest = big_module.size, big_module.sha256
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            calls.append((done, total))

    with server.client(timeout=300) as client:
        info = client.upload(big_module.path, progress=progress)
        assert info.sha256 == digest
        assert info.size == size
        assert not info.already_existed
        assert "_start" in {e.name for e in info.exports}
        # Progress: from 0, growing in chunks of at most 1 MiB, up to the total.
        dones = [done for done, _ in calls]
        assert all(total == size for _, total in calls)
        assert dones[0] == 0
        assert dones[-1] == size
        assert dones == sorted(dones)
        assert len(dones) >= 31
        assert max(b - a for a, b in zip(dones, dones[1:])) <= MiB

        # Second time: the server has the hash, so nothing is sent.
        calls.clear()
        again = client.upload(big_module.path, progress=progress)
        assert again.already_existed
        assert again.sha256 == digest
        assert calls == [(size, size)]

        # Run it by hash, and by path (goes through the same dedup check).
        assert client.run(digest).stdout == b"Hello, WasmWiz!\n"
        by_path = client.run(big_module.path)
        assert by_path.stdout == b"Hello, WasmWiz!\n"
        assert by_path.module_sha256 == digest
        assert client.modules.get(digest).size == size


def test_upload_bytes_with_progress_then_dedup(server: Server) -> None:
    data = padded_module(guest("hello").read_bytes(), 5 * MiB, b"pad-bytes-" + KIND)
    calls: list[tuple[int, int]] = []
    with server.client(timeout=120) as client:
        info = client.upload(data, progress=lambda d, t: calls.append((d, t)))
        assert not info.already_existed
        assert info.size == len(data)
        assert calls[0] == (0, len(data))
        assert calls[-1] == (len(data), len(data))
        assert len(calls) == 7  # 0, then 6 chunks of <= 1 MiB
        calls.clear()
        again = client.modules.upload(data, progress=lambda d, t: calls.append((d, t)))
        assert again.already_existed
        assert calls == [(len(data), len(data))]
        result = client.run(info)
        assert result.stdout == b"Hello, WasmWiz!\n"


def test_run_big_bytes_uploads_first(server: Server) -> None:
    data = padded_module(guest("hello").read_bytes(), 3 * MiB, b"pad-run-" + KIND)
    digest = hashlib.sha256(data).hexdigest()
    with server.client(server.new_key("basic"), timeout=120) as client:
        assert not client.modules.exists(digest)
        result = client.run(data)  # above the 1 MiB inline limit: uploaded, then run by hash
        assert result.ok
        assert result.module_sha256 == digest
        assert client.modules.exists(digest)


def test_progress_callback_error_is_raised(server: Server) -> None:
    data = padded_module(guest("hello").read_bytes(), 2 * MiB, b"pad-raise-" + KIND)

    def progress(done: int, total: int) -> None:
        if done >= MiB:
            raise RuntimeError("stop the upload")

    with server.client(timeout=60) as client:
        with pytest.raises(RuntimeError, match="stop the upload"):
            client.upload(data, progress=progress)
        assert not client.modules.exists(hashlib.sha256(data).hexdigest())

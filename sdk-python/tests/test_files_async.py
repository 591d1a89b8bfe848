"""Files in and out of executions, against the real server.

Written once, for the asyncio client; ``tests/test_files_sync.py`` is
generated from this file by ``scripts/unasync.py``. The guests:
``fsreport`` counts lines and words of every ``input/*.txt`` into
``out/report.txt``; ``fscopy SRC DST`` copies one file.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import wasmwiz
from conftest import Server, guest

MiB = 1024 * 1024
INPUTS = {"input/a.txt": "one two\nthree\n", "input/b.txt": "x\n", "input/notes.md": "skipped\n"}
REPORT = b"a.txt 2 3\nb.txt 1 1\ntotal 3 4\n"


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_input_files_in_and_the_report_out(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("fsreport"), files=INPUTS, collect=["out/*"])
    assert result.ok, result.error_text
    assert result.stdout == b"wrote out/report.txt (2 files)\n"
    assert result.files == {"out/report.txt": REPORT}


async def test_unchanged_input_files_are_not_collected(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("fsreport"), files=INPUTS, collect=["**"])
    assert list(result.files) == ["out/report.txt"]


async def test_without_files_the_guest_has_no_filesystem(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("fsreport"))
    assert result.exit_code == 1
    assert result.stderr.startswith(b"fsreport: /input: ")
    assert result.files == {}


async def test_a_file_larger_than_a_message_goes_in_and_comes_back_whole(
    aclient: wasmwiz.AsyncClient,
) -> None:
    data = noise(2 * MiB + MiB // 2, 1)  # streamed in as 3 fs_chunks, back as 3 pieces
    result = await aclient.run(
        guest("fscopy"),
        args=["in/big.bin", "in/copy.bin"],
        files={"in/big.bin": data},
        collect=["**"],
        limits={"max_output": "8MiB"},
    )
    assert result.ok, result.error_text
    assert result.stdout == f"copied {len(data)} bytes\n".encode()
    assert result.files == {"in/copy.bin": data}  # the unchanged input does not come back


async def test_stream_yields_file_pieces_of_at_most_1_mib_before_finished(
    aclient: wasmwiz.AsyncClient,
) -> None:
    data = noise(2 * MiB + 1000, 3)
    kinds: list[str] = []
    pieces: list[wasmwiz.FilePiece] = []
    async with aclient.stream(
        guest("fscopy"),
        args=["in/data", "in/copy"],
        files={"in/data": data},
        collect=["in/copy"],
        limits={"max_output": "8MiB"},
    ) as events:
        async for event in events:
            kinds.append(type(event).__name__)
            if isinstance(event, wasmwiz.FilePiece):
                pieces.append(event)
    assert kinds[-4:] == ["FilePiece", "FilePiece", "FilePiece", "Finished"]
    assert [(p.path, len(p.data)) for p in pieces] == [
        ("in/copy", MiB),
        ("in/copy", MiB),
        ("in/copy", 1000),
    ]
    assert b"".join(p.data for p in pieces) == data


async def test_streamed_stdin_follows_the_files(aclient: wasmwiz.AsyncClient) -> None:
    async def stdin() -> AsyncIterator[bytes]:
        yield b"ignored "
        yield b"by fsreport"

    result = await aclient.run(guest("fsreport"), stdin=stdin(), files=INPUTS, collect=["out/*"])
    assert result.ok, result.error_text
    assert result.files == {"out/report.txt": REPORT}


async def test_a_local_directory_with_a_symlink_and_an_empty_dir(
    aclient: wasmwiz.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("alpha beta\n")
    (tmp_path / "empty").mkdir()
    os.symlink("a.txt", tmp_path / "same.txt")
    files = wasmwiz.files_from_dir(tmp_path, prefix="input")
    result = await aclient.run(guest("fsreport"), files=files, collect=["out/*"])
    assert result.ok, result.error_text
    # The symlink is listed and read through: the guest sees two .txt files.
    assert result.files["out/report.txt"] == b"a.txt 1 2\nsame.txt 1 2\ntotal 2 4\n"


async def test_each_batch_case_gets_its_own_files(aclient: wasmwiz.AsyncClient) -> None:
    batch = await aclient.run_batch(
        guest("fsreport"),
        [
            {"name": "more", "files": {"input/b.txt": "b c\n"}},
            wasmwiz.BatchCase(name="shared only"),
        ],
        files={"input/a.txt": "a\n"},
        collect=["out/*"],
    )
    assert batch.ok, [case.error_text for case in batch]
    assert batch[0].files == {"out/report.txt": b"a.txt 1 1\nb.txt 1 2\ntotal 2 3\n"}
    assert batch[1].files == {"out/report.txt": b"a.txt 1 1\ntotal 1 1\n"}


async def test_a_guest_write_past_fs_bytes_fails_in_the_guest(
    aclient: wasmwiz.AsyncClient,
) -> None:
    data = noise(3000, 2)
    result = await aclient.run(
        guest("fscopy"),
        args=["in/data", "in/copy"],
        files={"in/data": data},
        collect=["out/*"],
        limits={"fs_bytes": 4000},
    )
    assert result.exit_code == 1
    assert b"No space left on device" in result.stderr or b"ENOSPC" in result.stderr


async def test_files_over_the_tiers_fs_bytes_are_refused_by_the_server(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as free:
        with pytest.raises(wasmwiz.InvalidArgument) as caught:
            await free.run(guest("fsreport"), files={"input/big.txt": bytes(17 * MiB)})
    err = caught.value
    assert err.rpc_error is not None
    assert "fs" in [v.field for v in err.violations]
    assert err.limit is not None
    assert err.limit.field == "fs"
    assert err.limit.maximum == 16 * MiB
    assert str(err).startswith("INVALID_ARGUMENT: the files hold 17 MiB, above fs_bytes 16 MiB")


async def test_fs_bytes_above_the_tiers_maximum_is_refused(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as free:
        with pytest.raises(wasmwiz.InvalidArgument) as caught:
            await free.run(guest("fsreport"), files={}, limits={"fs_bytes": "1GiB"})
    assert caught.value.limit is not None
    assert caught.value.limit.field == "limits.fs_bytes"
    assert caught.value.limit.option == "fs_bytes"

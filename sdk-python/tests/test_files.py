"""Files in and out, without a server: the input tree, its checks, its messages, reassembly."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import pytest

import wasmwiz
from wasmwiz import _common
from wasmwiz._proto import execution_pb2
from wasmwiz._types import FilePiece, Finished, Outcome, Verdict, _BatchAssembler, _ResultBuilder

MiB = 1024 * 1024
SOURCE = _common.Source(data=b"\x00asm\x01\x00\x00\x00", size=8)


def run_request(fs: Optional[_common.InputFs]) -> execution_pb2.RunRequest:
    return _common.run_request(
        SOURCE,
        stdin=b"",
        args=(),
        env=None,
        limits=None,
        seed=None,
        expected_stdout=None,
        program_name=None,
        keep_module=False,
        fs=fs,
    )


def kinds(entries: list[execution_pb2.FsEntry]) -> list[tuple[str, str]]:
    return [(entry.path, str(entry.WhichOneof("kind"))) for entry in entries]


def finished_proto() -> execution_pb2.Finished:
    return execution_pb2.Finished(outcome=execution_pb2.OUTCOME_SUCCESS)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "relative"),
        ("../secret", "'..'"),
        ("in/../../secret", "'..'"),
        ("./a", "'.'"),
        ("a//b", "empty segments"),
        ("a/", "empty segments"),
        ("", "empty"),
        ("a\0b", "NUL"),
    ],
)
def test_a_bad_path_is_refused_before_sending(path: str, problem: str) -> None:
    with pytest.raises(wasmwiz.InvalidArgument, match=re.escape(problem)) as caught:
        wasmwiz.Filesystem({path: b"x"})
    assert caught.value.rpc_error is None
    assert [v.field for v in caught.value.violations] == ["fs"]
    assert "checked before uploading" in str(caught.value)


def test_a_nested_relative_path_is_kept() -> None:
    fs = wasmwiz.Filesystem({"input/deep/a.txt": "alpha"})
    assert fs.paths == ["input/deep/a.txt"]


def test_a_bad_path_in_a_batch_case_is_refused() -> None:
    with pytest.raises(wasmwiz.InvalidArgument, match=re.escape("'..'")):
        _common.batch_case({"files": {"../x": b""}})


# --------------------------------------------------------------------------- sizes


def test_files_over_fs_bytes_are_refused_before_sending() -> None:
    with pytest.raises(wasmwiz.InvalidArgument) as caught:
        _common.input_fs({"a": b"x" * 600, "b": b"y" * 600}, [], {"fs_bytes": "1KiB"})
    err = caught.value
    assert err.rpc_error is None
    assert err.violations[0].field == "fs"
    assert err.violations[0].description == "the files hold 1.2 KiB, above fs_bytes 1 KiB"
    assert err.limit == wasmwiz.LimitExceeded("fs", 1200, 1024, "bytes")
    assert str(err) == (
        "INVALID_ARGUMENT: the files hold 1.2 KiB, above fs_bytes 1 KiB (checked before uploading)"
    )


def test_files_exactly_at_fs_bytes_pass() -> None:
    fs = _common.input_fs({"a": b"x" * 1024}, [], {"fs_bytes": 1024})
    assert fs is not None
    assert fs.total_bytes == 1024


def test_a_case_is_checked_with_the_batch_files_it_keeps() -> None:
    shared = _common.input_fs({"a": b"x" * 600, "b": b"y" * 600}, [], {"fs_bytes": 1300})
    # Replacing "b" with 100 bytes keeps the case at 700 bytes...
    kept = _common.batch_case({"files": {"b": b"z" * 100}}, 0, shared, 1300)
    assert [e.path for e in kept.fs.entries] == ["b"]
    # ...adding 200 more bytes takes it to 1400.
    with pytest.raises(wasmwiz.InvalidArgument) as caught:
        _common.batch_case({"files": {"c": b"z" * 200}}, 3, shared, 1300)
    assert caught.value.violations[0].field == "cases[3].fs"


def test_limits_carry_fs_bytes() -> None:
    limits = wasmwiz.Limits(fs_bytes="16MiB")
    assert limits.to_proto().fs_bytes == 16 * MiB
    assert wasmwiz.Limits.from_proto(limits.to_proto()) == limits
    assert wasmwiz.Limits.coerce({"fs_bytes": 5}) == wasmwiz.Limits(fs_bytes=5)


# --------------------------------------------------------------------------- local trees


def test_files_from_dir_keeps_files_symlinks_and_empty_dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.txt").write_text("one\n")
    (tmp_path / "empty").mkdir()
    os.symlink("a/one.txt", tmp_path / "link")
    fs = wasmwiz.files_from_dir(tmp_path, prefix="input")
    entries = fs.to_entries()
    assert kinds(entries) == [
        ("input/a/one.txt", "file"),
        ("input/empty", "directory"),
        ("input/link", "symlink"),
    ]
    assert entries[0].file == b"one\n"
    assert entries[2].symlink == "a/one.txt"


def test_files_from_dir_does_not_follow_a_symlinked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(outside, tree / "escape")
    fs = wasmwiz.files_from_dir(tree)
    assert kinds(fs.to_entries()) == [("escape", "symlink")]


def test_files_from_an_empty_dir_at_a_prefix_is_that_directory(tmp_path: Path) -> None:
    fs = wasmwiz.files_from_dir(tmp_path, prefix="out")
    assert kinds(fs.to_entries()) == [("out", "directory")]


def test_files_from_dir_reads_file_contents_when_sent(tmp_path: Path) -> None:
    (tmp_path / "late.txt").write_text("before")
    fs = wasmwiz.files_from_dir(tmp_path)
    (tmp_path / "late.txt").write_text("after!")
    assert fs.to_entries()[0].file == b"after!"


# --------------------------------------------------------------------------- messages


def test_no_files_and_no_collect_means_no_filesystem() -> None:
    assert _common.input_fs(None, [], None) is None
    assert not run_request(None).HasField("fs")


def test_collect_alone_gives_an_empty_filesystem() -> None:
    request = run_request(_common.input_fs(None, ["out/*"], None))
    assert request.HasField("fs")
    assert list(request.fs.entries) == []
    assert list(request.fs.collect) == ["out/*"]


def test_empty_files_still_give_a_filesystem() -> None:
    assert run_request(_common.input_fs({}, [], None)).HasField("fs")


def test_a_lone_string_is_not_a_list_of_patterns() -> None:
    with pytest.raises(TypeError, match="sequence of glob patterns"):
        _common.input_fs(None, "out/*", None)


def test_run_request_carries_the_files_inline_in_path_order() -> None:
    fs = _common.input_fs({"z.txt": "last", "a.txt": b"first"}, ["**"], None)
    request = run_request(fs)
    assert [(e.path, e.file) for e in request.fs.entries] == [
        ("a.txt", b"first"),
        ("z.txt", b"last"),
    ]
    assert list(request.fs.collect) == ["**"]


def test_a_big_file_is_streamed_in_pieces_of_at_most_1_mib() -> None:
    data = bytes(range(256)) * (10 * MiB // 256 // 4)  # 2.5 MiB
    fs = _common.input_fs({"big.bin": data, "empty": b""}, [], None)
    assert fs is not None
    assert _common.streams_files(fs)
    requests = list(_common.fs_requests(fs, MiB))
    chunks = [r.fs_chunk for r in requests[:-1]]
    assert [(c.path, len(c.file)) for c in chunks] == [
        ("big.bin", MiB),
        ("big.bin", MiB),
        ("big.bin", MiB // 2),
        ("empty", 0),
    ]
    assert b"".join(c.file for c in chunks[:3]) == data
    assert requests[-1].WhichOneof("msg") == "fs_eof"


def test_small_files_are_not_streamed() -> None:
    assert not _common.streams_files(_common.input_fs({"a": b"x" * MiB}, [], None))


def test_execute_start_names_the_patterns_and_leaves_the_entries_to_the_chunks() -> None:
    fs = _common.input_fs({"a": b"x"}, ["out/*"], None)
    head = list(
        _common.execute_head(
            SOURCE,
            stdin=b"whole",
            args=(),
            env=None,
            limits=None,
            seed=None,
            expected_stdout=None,
            program_name=None,
            keep_module=False,
            chunk_size=MiB,
            fs=fs,
        )
    )
    start = head[0].start
    assert start.HasField("fs")
    assert list(start.fs.collect) == ["out/*"]
    assert list(start.fs.entries) == []
    assert start.stdin == b"whole"
    assert not start.stream_stdin
    assert [r.WhichOneof("msg") for r in head[1:]] == ["module_chunk"]


# --------------------------------------------------------------------------- results


def test_collected_pieces_are_put_back_together_in_order() -> None:
    builder = _ResultBuilder()
    for event in (
        FilePiece("out/a.bin", b"12"),
        FilePiece("out/a.bin", b"34"),
        FilePiece("out/b.txt", b""),
        Finished(Outcome.SUCCESS, 0, "", "", 1, 0.0, 0, 0, 0, False, Verdict.UNSPECIFIED),
    ):
        builder.add(event)
    assert builder.build().files == {"out/a.bin": b"1234", "out/b.txt": b""}


def test_file_events_become_file_pieces() -> None:
    event = execution_pb2.ExecuteEvent(file=execution_pb2.FsEntry(path="p", file=b"d"))
    assert wasmwiz._types._event_from_proto(event) == FilePiece("p", b"d")


def test_batch_files_stay_with_their_case_when_cases_interleave() -> None:
    assemble = _BatchAssembler()

    def piece(case: int, path: str, data: bytes) -> Optional[wasmwiz.CaseResult]:
        file = execution_pb2.FsEntry(path=path, file=data)
        return assemble(execution_pb2.BatchEvent(case_index=case, file=file))

    assert piece(1, "out", b"one-") is None
    assert piece(0, "out", b"zero") is None
    assert piece(1, "out", b"more") is None
    first = assemble(execution_pb2.BatchEvent(case_index=1, finished=finished_proto()))
    second = assemble(execution_pb2.BatchEvent(case_index=0, finished=finished_proto()))
    third = assemble(execution_pb2.BatchEvent(case_index=2, finished=finished_proto()))
    assert first is not None
    assert second is not None
    assert third is not None
    assert first.files == {"out": b"one-more"}
    assert second.files == {"out": b"zero"}
    assert third.files == {}


@pytest.mark.parametrize(
    ("limit", "said"),
    [
        (
            wasmwiz.LimitExceeded("fs", 20 * MiB, 16 * MiB, "bytes", "free"),
            "the files hold 20 MiB, above fs_bytes 16 MiB",
        ),
        (
            wasmwiz.LimitExceeded("cases[2].fs", 5000, 4096, "count", "free"),
            "the files are 5000 entries (parent directories included), above the free tier's 4096",
        ),
    ],
)
def test_a_server_refused_tree_is_worded_in_files(limit: wasmwiz.LimitExceeded, said: str) -> None:
    assert limit.message == said


def test_symlink_targets_count_against_fs_bytes_as_the_server_counts() -> None:
    fs = wasmwiz.Filesystem({"a": b"x" * 10}).add_symlink("l", "a" * 5).add_dir("d")
    assert fs.total_bytes == 15
    with pytest.raises(wasmwiz.InvalidArgument):
        _common.input_fs(fs, [], {"fs_bytes": 14})

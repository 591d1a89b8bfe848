"""scripts/unasync.py: the substitutions that write the sync client, and its --check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import SDK_DIR


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SDK_DIR / "scripts" / "unasync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unasync = _load()


def _body(text: str) -> str:
    """The output without the generated-file header."""
    return "".join(text.splitlines(True)[2:])


def test_coroutines_become_functions() -> None:
    out = unasync.unasync("async def f() -> None:\n    await g()\n", "x.py")
    assert _body(out) == "def f() -> None:\n    g()\n"


def test_header_marks_the_file_generated() -> None:
    out = unasync.unasync("x = 1\n", "aio.py")
    assert out.startswith("# Generated from aio.py by scripts/unasync.py. DO NOT EDIT:")


def test_async_names_map_to_sync_names() -> None:
    source = "async with AsyncClient() as c:\n    async for e in c.stream():\n        pass\n"
    assert _body(unasync.unasync(source, "x.py")) == (
        "with Client() as c:\n    for e in c.stream():\n        pass\n"
    )


def test_awaitable_annotations_are_unwrapped() -> None:
    out = unasync.unasync("f: Callable[[], Awaitable[tuple[int, str]]]\n", "x.py")
    assert _body(out) == "f: Callable[[], tuple[int, str]]\n"


def test_parenthesised_awaits_lose_their_parentheses_only_when_redundant() -> None:
    out = unasync.unasync("a = (await c.who()).tier\nb = len(await c.list())\n", "x.py")
    assert _body(out) == "a = c.who().tier\nb = len(c.list())\n"


def test_grpc_aio_becomes_grpc() -> None:
    out = unasync.unasync(
        "import grpc\nimport grpc.aio\nch = grpc.aio.insecure_channel(a)\n", "x.py"
    )
    assert _body(out) == "import grpc\nch = grpc.insecure_channel(a)\n"


def test_check_fails_on_drift_and_passes_once_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aio.py").write_text('"""Doc."""\n\n\nasync def f() -> None:\n    await g()\n')
    (tmp_path / "client.py").write_text("# edited by hand\n")
    monkeypatch.setattr(unasync, "SDK_DIR", tmp_path)
    monkeypatch.setattr(unasync, "FILES", [("aio.py", "client.py")])
    monkeypatch.setattr(sys, "argv", ["unasync.py", "--check"])
    assert unasync.main() == 1
    assert (tmp_path / "client.py").read_text() == "# edited by hand\n"
    monkeypatch.setattr(sys, "argv", ["unasync.py"])
    assert unasync.main() == 0
    monkeypatch.setattr(sys, "argv", ["unasync.py", "--check"])
    assert unasync.main() == 0
    assert "def f() -> None:\n    g()\n" in (tmp_path / "client.py").read_text()

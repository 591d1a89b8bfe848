#!/usr/bin/env python3
"""Write the blocking client (and its tests) from the asyncio ones.

The asyncio client ``src/wasmwiz/aio.py`` is the one hand-written client;
``src/wasmwiz/client.py`` is generated from it by token substitution (the
approach of httpcore's ``scripts/unasync.py``): ``async def`` -> ``def``,
``await`` dropped, ``AsyncIterator`` -> ``Iterator``, ``grpc.aio`` -> ``grpc``,
``AsyncClient`` -> ``Client``, ``_async_io`` -> ``_sync_io`` ... The few places
where grpc's sync and asyncio APIs differ in more than a keyword live in
``_async_io`` / ``_sync_io``, which have the same names. The tests are
generated the same way (``tests/test_*async.py`` -> ``tests/test_*sync.py``).

The output is formatted with ruff (the pinned dev dependency), so it is
byte-for-byte reproducible.

    scripts/unasync.py           # rewrite the generated files
    scripts/unasync.py --check   # exit 1 when they differ from what would be written
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parents[1]

#: (hand-written asyncio source, generated sync file), relative to sdk-python/.
FILES = [
    ("src/wasmwiz/aio.py", "src/wasmwiz/client.py"),
    ("tests/test_async.py", "tests/test_sync.py"),
    ("tests/test_errors_async.py", "tests/test_errors_sync.py"),
    ("tests/test_upload_async.py", "tests/test_upload_sync.py"),
    ("tests/test_files_async.py", "tests/test_files_sync.py"),
    ("tests/test_cache_async.py", "tests/test_cache_sync.py"),
    ("tests/test_interactive_async.py", "tests/test_interactive_sync.py"),
    ("tests/test_jobs_async.py", "tests/test_jobs_sync.py"),
]

#: Word-bounded names: asyncio name -> sync name.
NAMES = {
    # Python's async protocol.
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "StopAsyncIteration": "StopIteration",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aclose": "close",
    "aclosing": "closing",
    # The SDK's own pairs.
    "_async_io": "_sync_io",
    "AsyncClient": "Client",
    "AsyncExecutionStream": "ExecutionStream",
    "AsyncBatchStream": "BatchStream",
    "AsyncInteractiveSession": "InteractiveSession",
    "AsyncDetachedExecution": "DetachedExecution",
    "AsyncModules": "Modules",
    "AsyncAccount": "Account",
    "AsyncAdmin": "Admin",
    "_AsyncServerStream": "_ServerStream",
    "AsyncStdinLike": "StdinLike",
    "CapturingAsyncIterator": "CapturingIterator",
    # Tests: fixtures and the asyncio primitives they wait on.
    "aclient": "client",
    "await_event": "wait_event",
    "asyncio.Event": "threading.Event",
    "asyncio.sleep": "time.sleep",
}

#: Phrases of docstrings and comments that only hold for one of the two.
PHRASES = {
    "The asyncio client, :class:`AsyncClient` (over ``grpc.aio``).": (
        "The blocking client, :class:`Client`."
    ),
    "This file is the one hand-written client: ``scripts/unasync.py`` writes the\n"
    "blocking :class:`wasmwiz.Client` (``client.py``) from it, so both": (
        "This file is generated from the asyncio client (``aio.py``) by\n"
        "``scripts/unasync.py``, so both"
    ),
    "Not a coroutine: the call\n        starts on the first iteration.": (
        "The call starts on the first\n        iteration."
    ),
    "(on the event loop)": "(from a gRPC thread)",
    "Asyncio WasmWiz client; use it from one event loop;": "WasmWiz client; thread-safe;",
    "; with the asyncio client also an async\n                iterable)": ")",
}

#: Regular expressions applied after the names.
PATTERNS = [
    (re.compile(r"\basync (def|for|with)\b"), r"\1"),
    # (await f(x)).y -> f(x).y
    (re.compile(r"(?<![\w)\]])\(await ([\w.]+\((?:[^()]|\([^()]*\))*\))\)"), r"\1"),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\bgrpc\.aio\b"), "grpc"),
    (re.compile(r"^import grpc\n(?=import grpc\n)", re.M), ""),
    # Awaitable[X] -> X (X may hold one level of brackets).
    (re.compile(r"\bAwaitable\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"), r"\1"),
]

_IMPORT = re.compile(r"^from (\S+) import (\(\n(?:.*\n)*?\)|.*)$", re.M)


def _tidy_imports(text: str) -> str:
    """Drop the names a substitution made duplicate or unused from ``from x import ...`` lines."""

    def rewrite(match: re.Match[str]) -> str:
        module, names = match.group(1), match.group(2)
        if module == "__future__":
            return match.group(0)
        rest = text[: match.start()] + text[match.end() :]
        kept: list[str] = []
        for raw in names.strip("()").replace("\n", " ").split(","):
            name = raw.strip()
            if not name or name in kept:
                continue
            used_as = name.split(" as ")[-1]
            if re.search(rf"\b{re.escape(used_as)}\b", rest):
                kept.append(name)
        if not kept:
            return ""
        return f"from {module} import {', '.join(kept)}"

    return _IMPORT.sub(rewrite, text)


def unasync(source: str, origin: str) -> str:
    """The sync version of ``source`` (not yet formatted)."""
    text = source
    for old, new in PHRASES.items():
        text = text.replace(old, new)
    for old, new in NAMES.items():
        text = re.sub(rf"(?<!\w){re.escape(old)}\b", new, text)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    if "threading." in text and not re.search(r"^import threading$", text, re.M):
        text = re.sub(r"^import asyncio$", "import threading", text, count=1, flags=re.M)
    if "time." in text and not re.search(r"^import time$", text, re.M):
        text = re.sub(r"^import asyncio$", "import time", text, count=1, flags=re.M)
    if not re.search(r"\basyncio\.", text):
        text = re.sub(r"^import asyncio\n", "", text, flags=re.M)
    text = _tidy_imports(text)
    header = (
        f"# Generated from {origin} by scripts/unasync.py. DO NOT EDIT:\n"
        f"# change {origin} and run sdk-python/scripts/unasync.py.\n"
    )
    return header + text


#: The fixes a substitution can make necessary (see :func:`formatted`).
_RUFF_FIXES = ["check", "--fix", "--unsafe-fixes", "--select", "I,F401,UP028", "--exit-zero", "-q"]


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ruff")
    if found:
        return [found]
    return [sys.executable, "-m", "ruff"]


def formatted(text: str, path: Path) -> str:
    """``text`` as ``ruff check --fix`` and ``ruff format`` leave it.

    The fixes are those a substitution can make necessary: unsorted or
    unused imports, and ``for x in y: yield x`` (``yield from`` once sync).
    """
    name = ["--stdin-filename", str(path)]
    for args in (_RUFF_FIXES, ["format"]):
        out = subprocess.run(
            [*_ruff(), *args, *name, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            cwd=SDK_DIR,
        )
        if out.returncode != 0:
            raise SystemExit(f"unasync.py: ruff {args[0]} failed on {path}:\n{out.stderr}")
        text = out.stdout
    return text


def main() -> int:
    """Write (or with ``--check`` compare) every generated file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail on drift, write nothing")
    check = parser.parse_args().check
    drifted = []
    for source_name, target_name in FILES:
        source, target = SDK_DIR / source_name, SDK_DIR / target_name
        want = formatted(unasync(source.read_text(), Path(source_name).name), target)
        have = target.read_text() if target.exists() else ""
        if want == have:
            continue
        if check:
            drifted.append(target_name)
            diff = difflib.unified_diff(
                have.splitlines(True), want.splitlines(True), target_name, "generated"
            )
            sys.stderr.writelines(list(diff)[:80])
        else:
            target.write_text(want)
            print(f"unasync.py: wrote {target_name}")
    if drifted:
        print(
            f"unasync.py: DRIFT: {', '.join(drifted)} differ from what scripts/unasync.py "
            "writes; run it and commit the result.",
            file=sys.stderr,
        )
        return 1
    if check:
        print(f"unasync.py: {len(FILES)} generated files match their asyncio sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run a module against a file of test cases, as a CI step.

Usage::

    python examples/python/ci_batch.py MODULE CASES.json [--junit REPORT.xml]

CASES.json is a list of cases, each with a ``name`` and any of ``stdin``,
``args`` and ``expected_stdout`` (strings)::

    [{"name": "ten", "stdin": "10\\n", "expected_stdout": "55\\n"}]

All cases run in one ``RunBatch`` call (the module is compiled once). Prints
one line per case and a summary; ``--junit`` also writes a JUnit XML report
that CI systems display, always: when the request itself fails, every case
is reported as an error that did not run. Exit codes are the ``wasmwiz``
CLI's: 0 every case passed, 107 a case failed, 108 authentication, 109 rate
limited, 110 an invalid request or usage, 111 connection, 112 anything else.
The server comes from ``WASMWIZ_URL``
(default ``http://127.0.0.1:8080``) and the key from ``WASMWIZ_API_KEY``;
rate limits are waited out (``retry=True``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import wasmwiz


def load_cases(path: Path) -> list[wasmwiz.BatchCase]:
    """Read the cases file."""
    raw: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return [
        wasmwiz.BatchCase(
            stdin=case.get("stdin", ""),
            args=case.get("args", ()),
            expected_stdout=case.get("expected_stdout"),
            name=case.get("name", f"case {index}"),
        )
        for index, case in enumerate(raw)
    ]


# The `wasmwiz` CLI's exit codes (sdk-rust/README.md), so CI scripts read both alike.
EXIT_FAILED = 107
EXIT_AUTH = 108
EXIT_RATE_LIMITED = 109
EXIT_USAGE = 110
EXIT_CONNECTION = 111
EXIT_OTHER = 112


def exit_code_of(err: wasmwiz.WasmWizError) -> int:
    """The CLI's exit code for a request that failed."""
    if isinstance(err, (wasmwiz.Unauthenticated, wasmwiz.PermissionDenied)):
        return EXIT_AUTH
    if isinstance(err, wasmwiz.RateLimited):
        return EXIT_RATE_LIMITED
    if isinstance(err, (wasmwiz.InvalidArgument, wasmwiz.NotFound)):
        return EXIT_USAGE
    if isinstance(err, wasmwiz.Unavailable):
        return EXIT_CONNECTION
    return EXIT_OTHER


def first_difference(expected: bytes, actual: bytes) -> str:
    """The first line where `actual` differs from `expected`, with both sizes."""
    want, got = expected.splitlines(keepends=True), actual.splitlines(keepends=True)
    for number in range(max(len(want), len(got))):
        line_want = want[number] if number < len(want) else b""
        line_got = got[number] if number < len(got) else b""
        if line_want != line_got:
            return (
                f"line {number + 1} differs: expected {line_want[:200]!r}, got {line_got[:200]!r} "
                f"(expected {len(expected)} bytes, got {len(actual)} bytes)"
            )
    return f"expected {len(expected)} bytes, got {len(actual)} bytes"


def describe(case: wasmwiz.CaseResult, expected: bytes | None) -> str:
    """Why a case failed, in one line."""
    if case.outcome is not wasmwiz.Outcome.SUCCESS:
        why = case.trap_kind or case.message or f"exit code {case.exit_code}"
        return f"{case.outcome.name}: {why}"
    return "wrong answer: " + first_difference(expected or b"", case.stdout)


def expected_bytes(case: wasmwiz.BatchCase) -> bytes | None:
    """A case's expected stdout as bytes."""
    value = case.expected_stdout
    return value.encode() if isinstance(value, str) else value


def write_junit(
    path: Path,
    suite: str,
    cases: list[wasmwiz.BatchCase],
    batch: wasmwiz.BatchResult | None,
    error: str | None = None,
) -> None:
    """Write a JUnit XML report: every case, those that did not run as errors."""
    results = list(batch) if batch is not None else []
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(not case.ok for case in results)),
        errors=str(len(cases) - len(results)),
        time=f"{sum(case.duration for case in results):.6f}",
    )
    for index, case in enumerate(cases):
        if index >= len(results):
            element = ET.SubElement(root, "testcase", classname=suite, name=case.name)
            ET.SubElement(
                element, "error", type="NOT_RUN", message=f"not run: {error or 'no result'}"
            )
            continue
        result = results[index]
        element = ET.SubElement(
            root, "testcase", classname=suite, name=result.name, time=f"{result.duration:.6f}"
        )
        if not result.ok:
            failure = ET.SubElement(
                element, "failure", message=describe(result, expected_bytes(case))
            )
            failure.text = result.stdout.decode(errors="replace")
        if result.stderr:
            ET.SubElement(element, "system-err").text = result.stderr.decode(errors="replace")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main(argv: list[str]) -> int:
    """Run the batch described by ``argv``."""
    parser = argparse.ArgumentParser(description="Run test cases against a WebAssembly module.")
    parser.add_argument("module", help="a .wasm path or the sha256 of a stored module")
    parser.add_argument("cases", type=Path, help="JSON file with the test cases")
    parser.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    parser.add_argument("--fuel", default="1e10", help="fuel per case (default 1e10)")
    parser.add_argument("--timeout", default="5s", help="time limit per case (default 5s)")
    options = parser.parse_args(argv[1:])

    cases = load_cases(options.cases)
    suite = Path(options.module).stem
    url = os.environ.get("WASMWIZ_URL", "http://127.0.0.1:8080")
    try:
        with wasmwiz.Client(url, timeout=600, retry=True) as client:
            batch = client.run_batch(
                options.module,
                cases,
                limits=wasmwiz.Limits(fuel=options.fuel, timeout=options.timeout),
            )
    except wasmwiz.WasmWizError as err:
        print(f"request failed: {err}", file=sys.stderr)
        if options.junit:
            write_junit(options.junit, suite, cases, None, error=str(err))
        return exit_code_of(err)

    for case, result in zip(cases, batch):
        status = "PASS" if result.ok else "FAIL"
        line = (
            f"{status}  {result.name}  ({result.duration * 1000:.1f} ms, "
            f"fuel {result.fuel_consumed})"
        )
        print(line if result.ok else f"{line}\n      {describe(result, expected_bytes(case))}")
    print(f"{len(batch.passed)}/{len(batch)} cases passed")
    if options.junit:
        write_junit(options.junit, suite, cases, batch)
    return 0 if batch.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))

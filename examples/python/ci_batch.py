#!/usr/bin/env python3
"""Run a module against a file of test cases, as a CI step.

Usage::

    python examples/python/ci_batch.py MODULE CASES.json [--junit REPORT.xml]

CASES.json is a list of cases, each with a ``name`` and any of ``stdin``,
``args`` and ``expected_stdout`` (strings)::

    [{"name": "ten", "stdin": "10\\n", "expected_stdout": "55\\n"}]

All cases run in one ``RunBatch`` call (the module is compiled once). Prints
one line per case and a summary; ``--junit`` also writes a JUnit XML report
that CI systems display. Exits 0 when every case passed, 1 when one failed,
2 when the request itself failed. The server comes from ``WASMWIZ_URL``
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


def describe(case: wasmwiz.CaseResult) -> str:
    """Why a case failed, in one line."""
    if case.outcome is not wasmwiz.Outcome.SUCCESS:
        why = case.trap_kind or case.message or f"exit code {case.exit_code}"
        return f"{case.outcome.name}: {why}"
    return f"wrong answer: got {case.stdout[:200]!r}"


def write_junit(path: Path, suite: str, batch: wasmwiz.BatchResult) -> None:
    """Write a JUnit XML report of the batch."""
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(batch)),
        failures=str(len(batch.failed)),
        time=f"{sum(case.duration for case in batch):.6f}",
    )
    for case in batch:
        element = ET.SubElement(
            root, "testcase", classname=suite, name=case.name, time=f"{case.duration:.6f}"
        )
        if not case.ok:
            failure = ET.SubElement(element, "failure", message=describe(case))
            failure.text = case.stdout.decode(errors="replace")
        if case.stderr:
            ET.SubElement(element, "system-err").text = case.stderr.decode(errors="replace")
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
        return 2

    for case in batch:
        status = "PASS" if case.ok else "FAIL"
        line = f"{status}  {case.name}  ({case.duration * 1000:.1f} ms, fuel {case.fuel_consumed})"
        print(line if case.ok else f"{line}\n      {describe(case)}")
    print(f"{len(batch.passed)}/{len(batch)} cases passed")
    if options.junit:
        write_junit(options.junit, Path(options.module).stem, batch)
    return 0 if batch.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The README quick start and examples/python/ run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import pytest

from conftest import EXAMPLES, GUESTS, REPO, SDK_DIR, Server


def _env(server: Server, key: Optional[str] = None) -> dict[str, str]:
    env = dict(os.environ)
    env["WASMWIZ_URL"] = server.url
    env["WASMWIZ_API_KEY"] = key or server.admin_key
    return env


def _run(
    server: Server, *args: str, python: str = sys.executable, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(server),
        timeout=300,
        check=False,
    )


def quick_start_code() -> str:
    readme = (SDK_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the quick start"
    return match.group(1)


def _check_quick_start(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stderr
    assert "SUCCESS Hello, WasmWiz!" in out.stdout
    assert "tick 0\ntick 1\ntick 2\ndone\n" in out.stdout
    assert "refused: module" in out.stdout


def test_readme_quick_start(server: Server) -> None:
    _check_quick_start(_run(server, "-c", quick_start_code()))


def _interpreters() -> list[str]:
    found = [sys.executable]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(str(p) for p in pyenv.glob("3.9.*/bin/python3.9"))[-1:]
    return found


@pytest.mark.skipif(
    bool(os.environ.get("WASMWIZ_SKIP_INSTALL_TEST")), reason="WASMWIZ_SKIP_INSTALL_TEST is set"
)
@pytest.mark.parametrize("python", _interpreters())
def test_pip_install_into_fresh_venv(server: Server, tmp_path: Path, python: str) -> None:
    """`pip install ./sdk-python` in a new venv, then the quick start with that Python."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "./sdk-python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    _check_quick_start(_run(server, "-c", quick_start_code(), python=str(venv / "bin" / "python")))


def test_example_run_module(server: Server) -> None:
    out = _run(server, str(EXAMPLES / "run_module.py"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello, WasmWiz!\n"
    assert "[SUCCESS] exit=0" in out.stderr
    echo = _run(server, str(EXAMPLES / "run_module.py"), str(GUESTS / "echo.wasm"), stdin=b"piped")
    assert echo.stdout == "piped"
    exited = _run(server, str(EXAMPLES / "run_module.py"), str(GUESTS / "exitcode.wasm"), "4")
    assert exited.returncode == 4
    trapped = _run(server, str(EXAMPLES / "run_module.py"), str(GUESTS / "trap.wasm"))
    assert trapped.returncode == 1
    assert "[TRAP (unreachable)]" in trapped.stderr


@pytest.mark.parametrize("mode", [[], ["--async"]])
def test_example_stream_output(server: Server, mode: list[str]) -> None:
    out = _run(
        server, str(EXAMPLES / "stream_output.py"), *mode, str(GUESTS / "progress.wasm"), "2"
    )
    assert out.returncode == 0, out.stderr
    assert re.findall(r"stdout: (.*)", out.stdout) == ["tick 0", "tick 1", "done"]
    assert "started execution" in out.stderr
    assert "finished: SUCCESS" in out.stderr


def test_example_ci_batch(server: Server, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    out = _run(
        server,
        str(EXAMPLES / "ci_batch.py"),
        str(GUESTS / "fib.wasm"),
        str(EXAMPLES / "fib_cases.json"),
        "--junit",
        str(report),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5/5 cases passed" in out.stdout
    suite = ET.parse(report).getroot()
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "0"

    failing = tmp_path / "cases.json"
    failing.write_text(
        json.dumps(
            [
                {"name": "right", "stdin": "2\n", "expected_stdout": "1\n"},
                {"name": "wrong", "stdin": "3\n", "expected_stdout": "3\n"},
            ]
        )
    )
    bad = _run(server, str(EXAMPLES / "ci_batch.py"), str(GUESTS / "fib.wasm"), str(failing))
    assert bad.returncode == 107  # the CLI's code for failed cases
    assert "FAIL  wrong" in bad.stdout
    assert "1/2 cases passed" in bad.stdout


def test_example_ci_batch_shows_the_first_differing_line(server: Server, tmp_path: Path) -> None:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"name": "wrong", "stdin": "3\n", "expected_stdout": "3\n"}]))
    out = _run(server, str(EXAMPLES / "ci_batch.py"), str(GUESTS / "fib.wasm"), str(cases))
    assert "wrong answer: line 1 differs: expected b'3\\n', got b'2\\n'" in out.stdout, out.stdout


def test_example_ci_batch_writes_junit_when_the_request_fails(
    server: Server, tmp_path: Path
) -> None:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"name": "a", "stdin": "2\n"}, {"name": "b", "stdin": "3\n"}]))
    report = tmp_path / "report.xml"
    out = _run(
        server,
        str(EXAMPLES / "ci_batch.py"),
        "0" * 64,  # a module sha256 nobody stored
        str(cases),
        "--junit",
        str(report),
    )
    assert out.returncode == 110, out.stdout + out.stderr  # the CLI's code for a bad request
    suite = ET.parse(report).getroot()
    assert suite.get("tests") == "2"
    assert suite.get("errors") == "2"
    assert [e.get("type") for e in suite.iter("error")] == ["NOT_RUN", "NOT_RUN"]


def test_example_concurrent_runs(server: Server) -> None:
    out = _run(server, str(EXAMPLES / "concurrent_runs.py"), "10")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("10/10 correct")


def test_example_files_report_prints_the_collected_report(server: Server) -> None:
    out = _run(server, str(EXAMPLES / "files_report.py"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "== out/report.txt\npoem.txt 2 7\ntodo.txt 2 6\ntotal 4 13\n"


def test_example_files_report_saves_what_came_back(server: Server, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "one.txt").write_text("a b c\n")
    out = _run(server, str(EXAMPLES / "files_report.py"), str(src), str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "got" / "out" / "report.txt").read_text() == "one.txt 1 3\ntotal 1 3\n"


def test_readme_files_example(server: Server) -> None:
    readme = (SDK_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Files in and out", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the files section"
    out = _run(server, "-c", match.group(1))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a.txt 2 3\nb.txt 1 1\ntotal 3 4\n\n"


def test_readme_cache_and_receipt_example(server: Server) -> None:
    readme = (SDK_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Result cache and receipts", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the result cache section"
    out = _run(server, "-c", match.group(1))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "False True True\nTrue\n"


def test_example_cached_receipt_verifies_the_cached_runs_receipt(server: Server) -> None:
    out = _run(server, str(EXAMPLES / "cached_receipt.py"), f"example {os.getpid()}\n")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("first run: cache hit False, fuel ")
    assert lines[1].startswith("second run: cache hit True, from ")
    assert lines[2].startswith("receipt verified: execution ")

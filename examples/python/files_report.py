#!/usr/bin/env python3
"""Send a local directory's files to a guest and save the files it writes.

Usage::

    python examples/python/files_report.py [DIR] [OUT_DIR]

Puts every file under DIR (default: two small built-in text files) at
``input/`` in the guest's in-memory filesystem, runs
``examples/guests/fsreport.wasm`` (it counts lines and words of each
``input/*.txt`` into ``out/report.txt``), collects ``out/*`` and writes what
comes back under OUT_DIR (default: print it). The server comes from
``WASMWIZ_URL`` (default ``http://127.0.0.1:8080``) and the key from
``WASMWIZ_API_KEY``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import wasmwiz

GUESTS = Path(__file__).resolve().parent.parent / "guests"
SAMPLE = {
    "input/poem.txt": "The fog comes\non little cat feet.\n",
    "input/todo.txt": "write the report\nread it back\n",
}


def main(argv: list[str]) -> int:
    """Run fsreport over the files and print or save its report."""
    files: wasmwiz.FilesLike = (
        wasmwiz.files_from_dir(argv[1], prefix="input") if len(argv) > 1 else SAMPLE
    )
    url = os.environ.get("WASMWIZ_URL", "http://127.0.0.1:8080")
    try:
        with wasmwiz.Client(url, timeout=60, retry=True) as client:
            result = client.run(
                GUESTS / "fsreport.wasm",
                files=files,
                collect=["out/*"],
                limits={"fs_bytes": "64MiB"},
            )
    except wasmwiz.WasmWizError as err:  # a bad path or too many bytes, checked before sending
        print(f"request failed: {err}", file=sys.stderr)
        return 2
    if not result.ok:
        sys.stderr.buffer.write(result.stderr)
        return 1
    for path, data in result.files.items():
        if len(argv) > 2:
            target = Path(argv[2]) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            print(f"saved {target} ({len(data)} bytes)")
        else:
            print(f"== {path}")
            sys.stdout.write(data.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Test fixtures: the real ``wasmwiz-server`` binary on a free loopback port.

The server binary is found as ``$WASMWIZ_SERVER_BIN``, else
``$CARGO_TARGET_DIR/debug/wasmwiz-server``, else ``<repo>/target/debug/wasmwiz-server``;
it must already be built. Each server gets a temporary data directory; keys
are made with ``wasmwiz-server admin create-key``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Optional

import pytest

import wasmwiz

SDK_DIR = Path(__file__).resolve().parents[1]
REPO = SDK_DIR.parent
GUESTS = REPO / "examples" / "guests"
EXAMPLES = REPO / "examples" / "python"

_LISTENING = re.compile(r"listening on (https?)://([0-9.]+):(\d+)")
_START_TIMEOUT = 90.0


def server_binary() -> Path:
    explicit = os.environ.get("WASMWIZ_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "debug" / "wasmwiz-server"
    return REPO / "target" / "debug" / "wasmwiz-server"


class ServerProcess:
    """One ``wasmwiz-server serve`` process with its own data directory."""

    def __init__(self, binary: Path, data_dir: Path, config: Optional[str] = None) -> None:
        self.binary = binary
        self.config = config
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "server.log"
        self.proc: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self._lines: list[str] = []
        self._ready = threading.Event()

    def create_key(self, email: str, tier: str, *, admin: bool = False) -> str:
        cmd = [
            str(self.binary),
            "admin",
            "create-key",
            "--email",
            email,
            "--tier",
            tier,
            "--data-dir",
            str(self.data_dir),
        ]
        if admin:
            cmd.append("--admin")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
            )
        lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        if not lines or not lines[-1].startswith("wwz_"):
            raise RuntimeError(f"create-key printed no key on its last line:\n{out.stdout}")
        return lines[-1]

    def start(self) -> str:
        log = self.log_path.open("a")
        cmd = [
            str(self.binary),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config is not None:
            config_path = self.data_dir / "wasmwiz.toml"
            config_path.write_text(self.config)
            cmd += ["--config", str(config_path)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._drain, args=(self.proc, log), daemon=True).start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"wasmwiz-server did not report 'listening on' (exit {self.proc.returncode}).\n"
                    f"log:\n{self.log_tail()}"
                )
        return self.url

    def _drain(self, proc: subprocess.Popen[str], log: object) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line)
            log.write(line)  # type: ignore[attr-defined]
            log.flush()  # type: ignore[attr-defined]
            if not self._ready.is_set():
                match = _LISTENING.search(line)
                if match:
                    self.url = f"{match.group(1)}://{match.group(2)}:{match.group(3)}"
                    self._ready.set()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@dataclasses.dataclass
class Server:
    url: str
    admin_key: str
    free_key: str
    process: ServerProcess

    def new_key(self, tier: str = "free", *, admin: bool = False) -> str:
        """A key of a brand-new user (fresh rate-limit state)."""
        return self.process.create_key(
            f"{tier}-{uuid.uuid4().hex[:12]}@test.local", tier, admin=admin
        )

    def client(self, key: Optional[str] = None, **kwargs: object) -> wasmwiz.Client:
        return wasmwiz.Client(self.url, api_key=key or self.admin_key, **kwargs)  # type: ignore[arg-type]

    def aclient(self, key: Optional[str] = None, **kwargs: object) -> wasmwiz.AsyncClient:
        return wasmwiz.AsyncClient(self.url, api_key=key or self.admin_key, **kwargs)  # type: ignore[arg-type]


def start_server(data_dir: Path, config: Optional[str] = None) -> Server:
    """Start a server on a free port; ``config`` is the text of a TOML config file."""
    binary = server_binary()
    if not binary.exists():
        pytest.fail(
            f"server binary not found at {binary}: build it first "
            "(cargo build -p wasmwiz-server) or set WASMWIZ_SERVER_BIN",
            pytrace=False,
        )
    process = ServerProcess(binary, data_dir, config)
    admin_key = process.create_key("admin@test.local", "unlimited", admin=True)
    free_key = process.create_key("free@test.local", "free")
    url = process.start()
    return Server(url, admin_key, free_key, process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's server (unlimited admin key + free key)."""
    srv = start_server(tmp_path_factory.mktemp("wasmwiz-data"))
    yield srv
    srv.process.stop()


@pytest.fixture
def client(server: Server) -> Iterator[wasmwiz.Client]:
    """A sync client with the unlimited admin key."""
    with server.client() as c:
        yield c


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[wasmwiz.AsyncClient]:
    """An asyncio client with the unlimited admin key."""
    async with server.aclient() as c:
        yield c


def guest(name: str) -> Path:
    path = GUESTS / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"guest module missing: {path}", pytrace=False)
    return path


# --------------------------------------------------------------------------- modules by hand


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def padded_module(base: bytes, pad: int, name: bytes = b"pad") -> bytes:
    """``base`` plus one custom section of ``pad`` filler bytes (runs exactly like ``base``)."""
    payload = _leb128(len(name)) + name + bytes(pad)
    return base + b"\x00" + _leb128(len(payload)) + payload


def _section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + _leb128(len(body)) + body


WASM_HEADER = b"\x00asm\x01\x00\x00\x00"
#: A valid module without ``_start``.
EMPTY_MODULE = WASM_HEADER
#: A valid command module whose ``_start`` imports ``env.f`` (outside WASI).
ENV_IMPORT_MODULE = (
    WASM_HEADER
    + _section(1, b"\x01\x60\x00\x00")  # one type: () -> ()
    + _section(2, b"\x01\x03env\x01f\x00\x00")  # import env.f : type 0
    + _section(3, b"\x01\x00")  # one function of type 0
    + _section(7, b"\x01\x06_start\x00\x01")  # export _start = func 1
    + _section(10, b"\x01\x02\x00\x0b")  # its body: end
)


# --------------------------------------------------------------------------- waiting in tests
# test_sync.py is generated from test_async.py (scripts/unasync.py maps
# ``await_event`` to ``wait_event``): the same wait, for each kind of event.


async def await_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event``; fail the test after ``timeout`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"the event was not set within {timeout}s") from None


def wait_event(event: threading.Event, timeout: float) -> None:
    """Wait for ``event``; fail the test after ``timeout`` seconds."""
    if not event.wait(timeout):
        raise TimeoutError(f"the event was not set within {timeout}s")

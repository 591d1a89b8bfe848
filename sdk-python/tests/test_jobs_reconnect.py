"""``DetachedExecution.events()`` across a dropped connection, through a real TCP proxy.

The proxy sits between the client and the real server; cutting every
connection mid-watch is what a network drop looks like to the client.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

import wasmwiz
from conftest import Server, guest


class CuttableProxy:
    """A TCP proxy to ``upstream`` whose open connections can all be cut at once."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._open += [downstream, upstream]
                self.connections += 1
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every open connection (RST, as a dropped link shows up)."""
        with self._lock:
            doomed, self._open = self._open, []
        for s in doomed:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # shutdown wakes the pump blocked in recv (close alone would not).
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@pytest.fixture
def proxy(server: Server) -> Iterator[CuttableProxy]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    p = CuttableProxy((host, int(port)))
    yield p
    p.close()


def test_events_continue_after_a_dropped_connection_without_repeats(
    server: Server, proxy: CuttableProxy
) -> None:
    with server.client() as direct, wasmwiz.Client(proxy.url, api_key=server.admin_key) as client:
        job = direct.submit(guest("progress"), args=["10"])
        events = client.execution(job.execution_id).events()
        seen = [next(events), next(events)]  # Started, tick 0
        proxy.cut()
        seen += list(events)
    stdout = b"".join(e.data for e in seen if isinstance(e, wasmwiz.Stdout))
    assert stdout == b"".join(b"tick %d\n" % i for i in range(10)) + b"done\n"
    assert [type(e) for e in seen].count(wasmwiz.Started) == 1
    assert isinstance(seen[-1], wasmwiz.Finished)
    assert proxy.connections >= 2  # it did reconnect

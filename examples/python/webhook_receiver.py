#!/usr/bin/env python3
"""Receive WasmWiz webhooks and check their signatures (standard library only).

Usage::

    WASMWIZ_WEBHOOK_SECRET=whsec_... python examples/python/webhook_receiver.py [PORT] [COUNT]

Listens on 127.0.0.1:PORT (default 8787; 0 picks a free port) and prints
``listening on http://127.0.0.1:N`` once ready. Each POST whose
``Wasmwiz-Signature`` verifies under the secret (from
``client.account.rotate_webhook_secret()``) is printed as one JSON line and
answered 204; a bad, old or missing signature gets 400 and is not printed,
a body above 1 MiB 413; a connection idle for 10 s is closed. Exits after
COUNT verified deliveries (default: never). Submit a run whose webhook comes here with
``client.submit(module, webhook_url="http://127.0.0.1:N/hook")`` (the server
must allow plain http and loopback: ``webhook_allow_http`` and
``webhook_allow_private``, for local receivers only).
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading

import wasmwiz

#: A delivery's body is a small JSON summary; refuse anything far larger unread.
MAX_BODY_BYTES = 1024 * 1024


def make_handler(
    secret: str, on_event: threading.Semaphore
) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler that verifies each delivery under ``secret``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        #: Seconds a connection may sit idle (a slow sender cannot hold a thread).
        timeout = 10

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.send_error(411, "a Content-Length is required")
                return
            if not 0 <= length <= MAX_BODY_BYTES:
                self.send_error(413, f"at most {MAX_BODY_BYTES} bytes")
                return
            body = self.rfile.read(length)
            header = self.headers.get(wasmwiz.webhooks.HEADER)
            try:
                event = wasmwiz.webhooks.verify(secret, header, body)
            except wasmwiz.webhooks.InvalidSignature as err:
                self.send_error(400, str(err))
                return
            print(json.dumps(event, sort_keys=True), flush=True)
            self.send_response(204)
            self.end_headers()
            on_event.release()

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"webhook_receiver: {format % args}\n")

    return Handler


def main(argv: list[str]) -> int:
    """Serve until COUNT deliveries verified (or forever)."""
    secret = os.environ.get("WASMWIZ_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        print("set WASMWIZ_WEBHOOK_SECRET to the account's whsec_... secret", file=sys.stderr)
        return 2
    port = int(argv[1]) if len(argv) > 1 else 8787
    count = int(argv[2]) if len(argv) > 2 else 0
    delivered = threading.Semaphore(0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), make_handler(secret, delivered))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        if count:
            for _ in range(count):
                delivered.acquire()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

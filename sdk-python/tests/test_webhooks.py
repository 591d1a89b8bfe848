"""``wasmwiz.webhooks.verify``, alone and against deliveries of the real server."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import pytest

import wasmwiz
from conftest import EXAMPLES, REPO, Server, guest, start_server
from wasmwiz.webhooks import InvalidSignature, sign, verify

SECRET = "whsec_" + "ab" * 32
BODY = b'{"type":"execution.ended","execution_id":"e1"}'
NOW = 1_700_000_000


def test_a_good_signature_gives_the_parsed_body() -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify(SECRET, header, BODY, now=NOW) == {
        "type": "execution.ended",
        "execution_id": "e1",
    }


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    want = hmac.new(b"whsec_k", b"42.{}", hashlib.sha256).hexdigest()
    assert sign("whsec_k", b"{}", 42) == f"t=42,v1={want}"


def test_a_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(SECRET, header, BODY.replace(b"e1", b"e2"), now=NOW)


def test_another_secret_is_refused() -> None:
    header = sign("whsec_" + "cd" * 32, BODY, NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(SECRET, header, BODY, now=NOW)


def test_a_timestamp_older_than_the_tolerance_is_refused() -> None:
    header = sign(SECRET, BODY, NOW - 301)
    with pytest.raises(InvalidSignature, match="replayed"):
        verify(SECRET, header, BODY, now=NOW)
    assert verify(SECRET, header, BODY, tolerance=600, now=NOW)["execution_id"] == "e1"


def test_one_matching_signature_among_several_is_enough() -> None:
    good = sign(SECRET, BODY, NOW).split(",")[1]
    assert verify(SECRET, f"t={NOW},v1={'0' * 64},{good}", BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "t=<unix seconds>"),
        ("t=abc,v1=00", "t=<unix seconds>"),
        (f"t={NOW}", "no v1"),
        (f"t={NOW},garbage,v1=00", "key=value"),
        ("t=1," + "v1=00," * 300, "longer than"),
    ],
)
def test_a_malformed_header_is_refused(header: object, said: str) -> None:
    with pytest.raises(InvalidSignature, match=said):
        verify(SECRET, header, BODY, now=NOW)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real deliveries

#: Webhooks may go to the receiver on 127.0.0.1 over plain http (test only).
_LOCAL_WEBHOOKS = "webhook_allow_http = true\nwebhook_allow_private = true\n"


@pytest.fixture(scope="module")
def webhook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("webhooks"), _LOCAL_WEBHOOKS)
    yield srv
    srv.process.stop()


class Receiver:
    """examples/python/webhook_receiver.py, running: its verified deliveries, line by line."""

    def __init__(self, secret: str, count: int) -> None:
        env = dict(os.environ, WASMWIZ_WEBHOOK_SECRET=secret)
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "webhook_receiver.py"), "0", str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        first = self.lines.get(timeout=30)
        assert first.startswith("listening on "), first
        self.url = first.removeprefix("listening on ").strip() + "/hook"

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def next_event(self, timeout: float = 30) -> dict[str, object]:
        event: dict[str, object] = json.loads(self.lines.get(timeout=timeout))
        return event

    def stop(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err


def test_a_delivery_verifies_with_the_rotated_secret(webhook_server: Server) -> None:
    with webhook_server.client(webhook_server.new_key("free")) as client:
        secret = client.account.rotate_webhook_secret()
        receiver = Receiver(secret, count=1)
        try:
            job = client.submit(guest("exitcode"), args=["3"], webhook_url=receiver.url)
            event = receiver.next_event()
            attempts = _first_webhook_attempts(client, job.execution_id)
        finally:
            stderr = receiver.stop()
    assert secret.startswith("whsec_")
    assert event["type"] == "execution.ended"
    assert event["execution_id"] == job.execution_id
    assert event["outcome"] == "OUTCOME_EXIT_NONZERO"
    assert event["exit_code"] == 3
    assert "400" not in stderr
    assert [attempt.http_status for attempt in attempts] == [204]


def test_a_secret_replaced_by_rotation_no_longer_verifies(webhook_server: Server) -> None:
    with webhook_server.client(webhook_server.new_key("free")) as client:
        old = client.account.rotate_webhook_secret()
        client.account.rotate_webhook_secret()
        receiver = Receiver(old, count=1)
        try:
            job = client.submit(guest("hello"), webhook_url=receiver.url)
            job.result()
            attempts = _first_webhook_attempts(client, job.execution_id)
        finally:
            stderr = receiver.stop()
    assert attempts[0].http_status == 400
    assert "does not match" in stderr


def _first_webhook_attempts(
    client: wasmwiz.Client, execution_id: str
) -> tuple[wasmwiz.WebhookAttempt, ...]:
    """The webhook attempts once there is one (recorded after the receiver answers)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attempts = tuple(client.get_execution(execution_id).webhook_attempts)
        if attempts:
            return attempts
        time.sleep(0.1)
    raise TimeoutError("no webhook attempt within 30 s")

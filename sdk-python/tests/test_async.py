"""Every public call of the clients, against the real server.

Written once, for the asyncio client; ``tests/test_sync.py`` is generated
from this file by ``scripts/unasync.py`` and runs the same tests against the
blocking client.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

import wasmwiz
from conftest import Server, await_event, guest

HELLO = b"Hello, WasmWiz!\n"


# --------------------------------------------------------------------------- run


async def test_run_hello_by_path(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("hello"))
    assert result.stdout == HELLO
    assert result.text == HELLO.decode()
    assert result.outcome is wasmwiz.Outcome.SUCCESS
    assert result.exit_code == 0
    assert result.ok
    assert result.fuel_consumed > 0
    assert result.duration > 0
    assert result.memory_peak > 0
    assert result.verdict is wasmwiz.Verdict.UNSPECIFIED
    assert result.execution_id
    assert result.module_sha256 == hashlib.sha256(guest("hello").read_bytes()).hexdigest()
    assert result.limits is not None
    assert result.limits.fuel  # effective limits are filled in


async def test_run_module_as_bytes_str_path_and_sha(aclient: wasmwiz.AsyncClient) -> None:
    data = guest("hello").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    kept = await aclient.run(data, keep_module=True)
    assert kept.stdout == HELLO
    assert await aclient.modules.exists(digest)
    stored = await aclient.modules.get(digest)
    for module in (str(guest("hello")), digest, "sha256:" + digest, stored):
        result = await aclient.run(module)
        assert result.stdout == HELLO, module
        assert result.module_sha256 == digest


async def test_run_limits_as_object(aclient: wasmwiz.AsyncClient) -> None:
    data = guest("echo").read_bytes()
    echoed = await aclient.run(
        data, stdin="limits", limits=wasmwiz.Limits(fuel="1e9", memory="64MiB", timeout=2.5)
    )
    assert echoed.stdout == b"limits"
    assert echoed.limits is not None
    assert echoed.limits.memory == 64 * 1024 * 1024


async def test_run_stdin_args_env(aclient: wasmwiz.AsyncClient) -> None:
    echoed = await aclient.run(guest("echo"), stdin=b"\x00binary\xffstdin")
    assert echoed.stdout == b"\x00binary\xffstdin"
    text = await aclient.run(guest("echo"), stdin="héllo")
    assert text.stdout == "héllo".encode()
    result = await aclient.run(
        guest("argsenv"), args=["one", "two words"], env={"K": "V", "X": "y=z"}, program_name="prog"
    )
    assert result.text.splitlines() == [
        "argv[0]=prog",
        "argv[1]=one",
        "argv[2]=two words",
        "env:K=V",
        "env:X=y=z",
    ]


async def test_run_stderr_and_exit_code(aclient: wasmwiz.AsyncClient) -> None:
    both = await aclient.run(guest("stderr"))
    assert both.stdout == b"to stdout\n"
    assert both.stderr == b"to stderr\n"
    assert both.error_text == "to stderr\n"
    exited = await aclient.run(guest("exitcode"), args=["3"])
    assert exited.outcome is wasmwiz.Outcome.EXIT_NONZERO
    assert exited.exit_code == 3
    assert not exited.ok


async def test_run_trap(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("trap"))
    assert result.outcome is wasmwiz.Outcome.TRAP
    assert result.trap_kind == "unreachable"
    assert result.exit_code == -1


async def test_run_limits_fuel_and_timeout(aclient: wasmwiz.AsyncClient) -> None:
    fuel = await aclient.run(guest("loop"), limits=wasmwiz.Limits(fuel=100_000))
    assert fuel.outcome is wasmwiz.Outcome.OUT_OF_FUEL
    assert fuel.fuel_consumed == 100_000
    assert fuel.exit_code == -1
    timed = await aclient.run(guest("loop"), limits={"timeout": "300ms"})
    assert timed.outcome is wasmwiz.Outcome.TIMEOUT
    assert timed.limits is not None
    assert timed.limits.timeout == pytest.approx(0.3)
    assert 0.2 < timed.duration < 10


async def test_run_limits_memory_and_output(aclient: wasmwiz.AsyncClient) -> None:
    hog = await aclient.run(guest("memhog"), args=["64"], limits={"memory": "16MiB"})
    assert hog.limits is not None
    assert hog.limits.memory == 16 * 1024 * 1024
    assert hog.exit_code != 0 or hog.outcome is wasmwiz.Outcome.MEMORY_LIMIT
    assert hog.memory_peak <= 16 * 1024 * 1024
    roomy = await aclient.run(guest("memhog"), args=["8"], limits={"memory": "64MiB"})
    assert roomy.ok
    assert roomy.stdout == b"allocated 8 MiB\n"
    cut = await aclient.run(guest("hello"), limits={"max_output": 5})
    assert cut.outcome is wasmwiz.Outcome.OUTPUT_LIMIT
    assert cut.stdout == b"Hello"
    assert cut.output_truncated


async def test_run_expected_stdout_verdict(aclient: wasmwiz.AsyncClient) -> None:
    good = await aclient.run(guest("hello"), expected_stdout=HELLO)
    assert good.verdict is wasmwiz.Verdict.ACCEPTED
    assert good.accepted
    assert good.ok
    bad = await aclient.run(guest("hello"), expected_stdout="Goodbye\n")
    assert bad.verdict is wasmwiz.Verdict.WRONG_ANSWER
    assert bad.outcome is wasmwiz.Outcome.SUCCESS
    assert not bad.ok


async def test_run_is_deterministic_with_seed(aclient: wasmwiz.AsyncClient) -> None:
    first = await aclient.run(guest("clockrand"), seed=42)
    again = await aclient.run(guest("clockrand"), seed=42)
    other = await aclient.run(guest("clockrand"), seed=43)
    assert first.ok
    assert first.stdout == again.stdout
    assert first.fuel_consumed == again.fuel_consumed
    assert first.stdout != other.stdout
    assert b"random=" in first.stdout


async def test_run_reports_rate_limit_headers(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as free:
        result = await free.run(guest("hello"))
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 10
    assert result.rate_limit.remaining is not None
    assert result.rate_limit.remaining < 10


# --------------------------------------------------------------------------- stream


async def test_stream_events_arrive_in_order_and_live(aclient: wasmwiz.AsyncClient) -> None:
    arrivals: list[tuple[float, wasmwiz.Event]] = []
    async with aclient.stream(guest("progress"), args=["3"]) as events:
        async for event in events:
            arrivals.append((time.monotonic(), event))
        result = await events.result()
    kinds = [type(event) for _, event in arrivals]
    assert kinds[0] is wasmwiz.Started
    assert kinds[-1] is wasmwiz.Finished
    assert kinds.count(wasmwiz.Finished) == 1
    first_stdout = kinds.index(wasmwiz.Stdout)
    assert first_stdout < kinds.index(wasmwiz.Finished)
    stdout = b"".join(e.data for _, e in arrivals if isinstance(e, wasmwiz.Stdout))
    assert stdout == b"tick 0\ntick 1\ntick 2\ndone\n"
    assert result.stdout == stdout
    assert result.ok
    # Output is streamed while the guest still runs (CPU work follows each tick).
    assert kinds.count(wasmwiz.Stdout) >= 2
    assert arrivals[-1][0] - arrivals[first_stdout][0] > 0.05
    started = arrivals[0][1]
    assert isinstance(started, wasmwiz.Started)
    assert started.execution_id == result.execution_id
    assert (
        events.rate_limit is None or events.rate_limit.limit is None or events.rate_limit.limit > 0
    )


async def test_stream_cancel_early(aclient: wasmwiz.AsyncClient) -> None:
    stream = aclient.stream(guest("loop"), limits={"timeout": 30})
    async with stream:
        first = await stream.__anext__()
        assert isinstance(first, wasmwiz.Started)
    # Leaving the block cancelled the call: no more events.
    assert [event async for event in stream] == []


# --------------------------------------------------------------------------- batches

FIB_CASES = [
    wasmwiz.BatchCase(stdin="10\n", expected_stdout="55\n", name="ten"),
    {"stdin": b"20\n", "expected_stdout": b"6765\n", "name": "twenty"},
    wasmwiz.BatchCase(stdin="5\n", expected_stdout="6\n", name="wrong"),
    wasmwiz.BatchCase(stdin="nope\n", name="bad input"),
]


async def test_run_batch(aclient: wasmwiz.AsyncClient) -> None:
    batch = await aclient.run_batch(guest("fib"), FIB_CASES, limits={"fuel": "1e10"})
    assert len(batch) == 4
    assert [case.index for case in batch] == [0, 1, 2, 3]
    assert [case.name for case in batch] == ["ten", "twenty", "wrong", "bad input"]
    assert batch[0].verdict is wasmwiz.Verdict.ACCEPTED
    assert batch[1].stdout == b"6765\n"
    assert batch[2].verdict is wasmwiz.Verdict.WRONG_ANSWER
    assert batch[2].stdout == b"5\n"
    assert batch[3].verdict is wasmwiz.Verdict.UNSPECIFIED
    assert batch[3].exit_code == 1
    assert batch[3].stderr
    assert not batch.ok
    assert [case.name for case in batch.failed] == ["wrong", "bad input"]
    assert [case.name for case in batch.passed] == ["ten", "twenty"]
    assert all(case.execution_id for case in batch)
    assert len({case.execution_id for case in batch}) == 4
    assert batch[0].module_sha256 == hashlib.sha256(guest("fib").read_bytes()).hexdigest()


async def test_stream_batch(aclient: wasmwiz.AsyncClient) -> None:
    seen = [case async for case in aclient.stream_batch(guest("fib"), FIB_CASES[:2])]
    assert sorted(case.index for case in seen) == [0, 1]
    assert all(case.accepted for case in seen)


# --------------------------------------------------------------------------- modules


async def test_modules_put_get_list_delete(server: Server, tmp_path: Path) -> None:
    # A fresh user, so that the list is exactly what this test stored.
    async with server.aclient(server.new_key("basic")) as client:
        hello = guest("hello").read_bytes()
        variant = hello + b"\x00\x05\x04mine"  # one more custom section: another hash
        digest = hashlib.sha256(variant).hexdigest()
        assert not await client.modules.exists(digest)
        put = await client.modules.put(variant)
        assert put.sha256 == digest
        assert put.size == len(variant)
        assert not put.already_existed
        assert {("wasi_snapshot_preview1", "fd_write")} <= {(i.module, i.name) for i in put.imports}
        assert "_start" in {e.name for e in put.exports}
        again = await client.modules.put(variant)
        assert again.already_existed
        got = await client.modules.get(digest)
        assert got.size == len(variant)
        assert got.created_at is not None
        assert await client.modules.exists(digest)
        path = tmp_path / "other.wasm"
        path.write_bytes(hello)
        await client.modules.upload(path)
        listed = await client.modules.list()
        assert {m.sha256 for m in listed} == {digest, hashlib.sha256(hello).hexdigest()}
        assert len(await client.modules.list(limit=1)) == 1
        paged = [m.sha256 async for m in client.modules.iter(page_size=1)]
        assert paged == [m.sha256 for m in listed]
        assert (await client.run(digest)).stdout == HELLO
        await client.modules.delete(digest)
        assert not await client.modules.exists(digest)
        with pytest.raises(wasmwiz.NotFound):
            await client.modules.get(digest)
        with pytest.raises(wasmwiz.NotFound):
            await client.modules.delete(digest)


# --------------------------------------------------------------------------- account


async def test_account_whoami_and_usage(server: Server, aclient: wasmwiz.AsyncClient) -> None:
    me = await aclient.whoami()
    assert me.email == "admin@test.local"
    assert me.tier == "unlimited"
    assert me.admin
    assert me.key_id
    assert server.admin_key.startswith(f"wwz_{me.key_id}_")
    assert me.limits.unmetered
    assert me.limits.max_module_bytes == 256 * 1024 * 1024
    assert await aclient.account.whoami() == me
    async with server.aclient(server.free_key) as free:
        fme = await free.account.whoami()
    assert fme.tier == "free"
    assert not fme.admin
    assert fme.limits.per_minute == 10
    assert fme.limits.per_day == 500
    assert fme.limits.max_fuel == 10**12
    assert fme.limits.max_timeout == 5.0
    assert fme.limits.max_memory_bytes == 128 * 1024 * 1024
    assert 0 <= fme.remaining_this_minute <= 10
    await aclient.run(guest("hello"))
    usage = await aclient.account.usage()
    assert usage.executions >= 1
    assert usage.fuel_consumed > 0
    assert usage.daily
    assert usage.daily[-1].executions >= 1
    assert sum(usage.by_outcome.values()) == usage.executions
    assert usage.by_outcome.get("OUTCOME_SUCCESS", 0) >= 1
    week = await aclient.account.usage(days=7)
    assert len(week.daily) == 7


async def test_account_usage_of_a_fresh_user(server: Server) -> None:
    async with server.aclient(server.new_key("basic")) as client:
        me = await client.whoami()
        assert me.tier == "basic"
        assert not me.admin
        assert me.limits.per_minute == 100
        await client.run(guest("hello"))
        usage = await client.account.usage(days=3)
        assert usage.executions == 1
        assert len(usage.daily) == 3


async def test_account_keys_lifecycle(server: Server) -> None:
    async with server.aclient(server.new_key("basic")) as owner:
        created = await owner.account.create_key("laptop")
        assert created.key.startswith(f"wwz_{created.key_id}_")
        keys = {k.key_id: k for k in await owner.account.list_keys()}
        assert created.key_id in keys
        assert keys[created.key_id].label == "laptop"
        assert keys[created.key_id].tier == "basic"
        assert not keys[created.key_id].revoked
        async with server.aclient(created.key) as second:
            assert (await second.whoami()).key_id == created.key_id
            await owner.account.revoke_key(created.key_id)
            await _expect_unauthenticated_soon(second)
        revoked = {k.key_id: k for k in await owner.account.list_keys()}[created.key_id]
        assert revoked.revoked


async def _expect_unauthenticated_soon(client: wasmwiz.AsyncClient, within: float = 15.0) -> None:
    """Revocation takes effect "within seconds" (a short-lived key cache)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await client.whoami()
        except wasmwiz.Unauthenticated:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"a revoked key still worked after {within}s")
        await asyncio.sleep(0.25)


# --------------------------------------------------------------------------- admin


async def test_admin_calls(aclient: wasmwiz.AsyncClient, server: Server) -> None:
    email = f"user-{uuid.uuid4().hex[:8]}@test.local"
    user = await aclient.admin.create_user(email)
    assert user.email == email
    assert user.tier == "free"
    moved = await aclient.admin.set_tier(email, "pro")
    assert moved.tier == "pro"
    key = await aclient.admin.create_key(email, label="ci")
    async with server.aclient(key.key) as theirs:
        assert (await theirs.whoami()).tier == "pro"
        assert (await theirs.run(guest("hello"))).ok
    listed = await aclient.admin.list_keys(email)
    assert [k.key_id for k in listed] == [key.key_id]
    assert listed[0].email == email
    assert listed[0].label == "ci"
    assert key.key_id in {k.key_id for k in await aclient.admin.list_keys()}
    usage = await aclient.admin.usage(email)
    assert usage.executions == 1
    everyone = await aclient.admin.usage(days=2)
    assert everyone.executions >= usage.executions
    assert len(everyone.daily) == 2
    admin_key = await aclient.admin.create_key(email, "basic", admin=True)
    async with server.aclient(admin_key.key) as promoted:
        me = await promoted.whoami()
        assert me.admin
        assert me.tier == "basic"
    await aclient.admin.revoke_key(key.key_id)
    async with server.aclient(key.key) as gone:
        await _expect_unauthenticated_soon(gone)


# --------------------------------------------------------------------------- misc


async def test_health_needs_no_key(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WASMWIZ_API_KEY", raising=False)
    async with wasmwiz.AsyncClient(server.url) as anonymous:
        assert await anonymous.health() == "SERVING"


async def test_client_repr_and_close(server: Server) -> None:
    client = server.aclient()
    assert repr(client).startswith("AsyncClient('127.0.0.1:")
    await client.close()


# --------------------------------------------------------------------------- keys and errors


async def test_key_is_read_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMWIZ_API_KEY", server.free_key)
    async with wasmwiz.AsyncClient(server.url) as client:
        assert (await client.whoami()).tier == "free"


async def test_missing_key_is_refused_before_sending(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WASMWIZ_API_KEY", raising=False)
    async with wasmwiz.AsyncClient(server.url) as client:
        with pytest.raises(wasmwiz.MissingApiKey, match="WASMWIZ_API_KEY") as info:
            await client.run(guest("hello"))
    assert info.value.rpc_error is None  # nothing was sent
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_key_is_not_a_missing_key(server: Server) -> None:
    async with wasmwiz.AsyncClient(server.url, api_key="wwz_nope_nope") as client:
        with pytest.raises(wasmwiz.Unauthenticated) as info:
            await client.whoami()
    assert not isinstance(info.value, wasmwiz.MissingApiKey)
    assert info.value.rpc_error is not None  # the server said so


async def test_errors_do_not_chain_grpc_internals(aclient: wasmwiz.AsyncClient) -> None:
    with pytest.raises(wasmwiz.NotFound) as info:
        await aclient.run("f" * 64)
    err = info.value
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert isinstance(err.rpc_error, grpc.RpcError)
    printed = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert "During handling" not in printed
    assert "direct cause" not in printed
    assert "Rendezvous" not in printed
    assert "AioRpcError" not in printed


async def test_error_text_says_each_thing_once(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as client:
        with pytest.raises(wasmwiz.InvalidModule) as info:
            await client.run(b"\x00asm\x01\x00\x00\x00")
        with pytest.raises(wasmwiz.InvalidArgument) as limit:
            await client.run(guest("hello"), limits={"memory": "2GiB"})
    text = str(info.value)
    assert info.value.violations
    for violation in info.value.violations:
        assert text.count(violation.description) == 1, text
    assert str(limit.value).count("2 GiB") == 1, str(limit.value)


async def test_errors(server: Server) -> None:
    async with wasmwiz.AsyncClient(server.url, api_key="wwz_nope_nope") as bad:
        with pytest.raises(wasmwiz.Unauthenticated):
            await bad.run(guest("hello"))
        with pytest.raises(wasmwiz.Unauthenticated):
            await bad.whoami()
    async with server.aclient(server.free_key) as free:
        with pytest.raises(wasmwiz.PermissionDenied):
            await free.admin.usage()
    async with server.aclient() as admin:
        with pytest.raises(wasmwiz.InvalidModule) as invalid:
            await admin.run(b"\x00asm\x01\x00\x00\x00")
        assert invalid.value.violations
        with pytest.raises(wasmwiz.NotFound) as missing:
            await admin.run("f" * 64)
        assert missing.value.resource is not None
        with pytest.raises(wasmwiz.DeadlineExceeded):
            await admin.run(guest("loop"), limits={"timeout": 10}, timeout=0.5)
    async with server.aclient(server.new_key("free")) as limited:
        with pytest.raises(wasmwiz.InvalidArgument) as too_big:
            await limited.run(guest("hello"), limits={"memory": "2GiB"})
        assert any(
            v.field == "limits.memory_bytes" or "memory" in v.field
            for v in too_big.value.violations
        )
        with pytest.raises(wasmwiz.RateLimited) as limited_err:
            for _ in range(15):
                await limited.run(guest("hello"))
        assert limited_err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert limited_err.value.retry_after is not None
        assert limited_err.value.retry_after > 0


# ------------------------------------------------------------------- stdin fed while running


async def test_stdin_from_iterable_and_file(aclient: wasmwiz.AsyncClient, tmp_path: Path) -> None:
    fed = await aclient.run(guest("echo"), stdin=iter([b"one ", "two ", b"", b"three"]))
    assert fed.stdout == b"one two three"
    assert fed.ok
    source = tmp_path / "stdin.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    with source.open("rb") as handle:
        from_file = await aclient.run(guest("echo"), stdin=handle)
    assert from_file.stdout == source.read_bytes()
    info = await aclient.upload(guest("echo"))
    by_hash = await aclient.run(info.sha256, stdin=[b"stored"], expected_stdout=b"stored")
    assert by_hash.accepted


async def test_stdin_from_a_generator(aclient: wasmwiz.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            await asyncio.sleep(0.01)
            yield part

    fed = await aclient.run(guest("echo"), stdin=chunks())
    assert fed.stdout == b"abc"


async def test_stdin_is_interactive(aclient: wasmwiz.AsyncClient) -> None:
    """The next stdin chunk is sent only after the guest echoed the previous one."""
    echoed = asyncio.Event()

    async def lines() -> AsyncIterator[bytes]:
        yield b"ping\n"
        await await_event(echoed, 30)
        yield b"pong\n"

    output = b""
    async with aclient.stream(guest("echo"), stdin=lines(), timeout=60) as events:
        async for event in events:
            if isinstance(event, wasmwiz.Stdout):
                output += event.data
                if output == b"ping\n":
                    echoed.set()
        result = await events.result()
    assert output == b"ping\npong\n"
    assert result.ok


async def test_failed_start_is_final(aclient: wasmwiz.AsyncClient, tmp_path: Path) -> None:
    stream = aclient.stream(tmp_path / "missing.wasm")
    with pytest.raises(FileNotFoundError):
        await stream.__anext__()
    assert [event async for event in stream] == []
    with pytest.raises(TypeError, match="sequence of strings"):
        await aclient.run(guest("hello"), args="not-a-list")
    with pytest.raises(TypeError, match="stdin"):
        await aclient.run(guest("echo"), stdin=[42])  # type: ignore[list-item]


async def test_local_errors_are_raised_as_themselves(aclient: wasmwiz.AsyncClient) -> None:
    async def bad_chunks() -> AsyncIterator[bytes]:
        yield b"fine"
        raise RuntimeError("stdin source broke")

    with pytest.raises(RuntimeError, match="stdin source broke"):
        await aclient.run(guest("echo"), stdin=bad_chunks())

    def progress(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt  # e.g. the user pressed ^C in a progress bar

    data = guest("hello").read_bytes() + b"\x00\x07\x06abort!"
    with pytest.raises(KeyboardInterrupt):
        await aclient.upload(data, progress=progress)


async def test_whoami_shows_what_the_account_stores(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as client:
        before = await client.whoami()
        assert (before.stored_modules, before.stored_bytes) == (0, 0)
        info = await client.upload(guest("hello"))
        after = await client.whoami()
        assert (after.stored_modules, after.stored_bytes) == (1, info.size)
        assert after.key_expires_at is None


async def test_whoami_shows_the_tiers_storage_upload_and_args_limits(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as client:
        limits = (await client.whoami()).limits
    assert (limits.max_stored_modules, limits.max_stored_bytes) == (50, 64 << 20)
    assert (limits.uploads_per_minute, limits.max_concurrent_uploads) == (10, 2)
    assert limits.upload_idle_timeout == 30.0
    assert (limits.max_args, limits.max_args_bytes, limits.max_api_keys) == (256, 64 << 10, 100)


async def test_a_listing_counts_exports_and_details_lists_them(server: Server) -> None:
    async with server.aclient(server.new_key("free")) as client:
        info = await client.upload(guest("hello"))
        [plain] = await client.modules.list()
        [detailed] = await client.modules.list(details=True)
    assert plain.exports == ()
    assert (plain.import_count, plain.export_count) == (len(info.imports), len(info.exports))
    assert detailed.exports == info.exports


async def test_a_self_made_key_names_its_parent_and_expiry(server: Server) -> None:
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    async with server.aclient(server.new_key("free")) as client:
        me = await client.whoami()
        new = await client.account.create_key("child", expires_at=expires)
        listed = {key.key_id: key for key in await client.account.list_keys()}
    assert new.parent_key_id == me.key_id
    assert new.expires_at is not None
    assert abs(new.expires_at.timestamp() - expires.timestamp()) < 1
    assert listed[new.key_id].parent_key_id == me.key_id

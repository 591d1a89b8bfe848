"""Every public call of AsyncClient, against the real server."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

import wasmwiz
from conftest import Server, guest

HELLO = b"Hello, WasmWiz!\n"


async def test_run(aclient: wasmwiz.AsyncClient) -> None:
    result = await aclient.run(guest("hello"))
    assert result.stdout == HELLO
    assert result.outcome is wasmwiz.Outcome.SUCCESS
    assert result.exit_code == 0
    assert result.fuel_consumed > 0
    assert result.duration > 0
    assert result.memory_peak > 0
    assert result.execution_id
    assert result.verdict is wasmwiz.Verdict.UNSPECIFIED
    data = guest("echo").read_bytes()
    echoed = await aclient.run(
        data, stdin="async", limits=wasmwiz.Limits(fuel="1e9", memory="64MiB", timeout=2.5)
    )
    assert echoed.stdout == b"async"
    assert echoed.limits is not None
    assert echoed.limits.memory == 64 * 1024 * 1024
    info = await aclient.upload(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    by_hash = await aclient.run(info.sha256, stdin=b"x")
    assert by_hash.stdout == b"x"
    assert by_hash.module_sha256 == info.sha256
    env = await aclient.run(guest("argsenv"), args=["a"], env={"K": "V"})
    assert env.text.splitlines() == ["argv[0]=main.wasm", "argv[1]=a", "env:K=V"]
    verdict = await aclient.run(guest("hello"), expected_stdout=HELLO, seed=1)
    assert verdict.accepted
    trap = await aclient.run(guest("trap"))
    assert trap.outcome is wasmwiz.Outcome.TRAP
    assert trap.trap_kind == "unreachable"


async def test_fifty_concurrent_runs(server: Server) -> None:
    async with server.aclient(timeout=120) as client:
        inputs = [f"job {i}: {uuid.uuid4().hex}\n".encode() for i in range(50)]
        results = await asyncio.gather(*(client.run(guest("echo"), stdin=s) for s in inputs))
    assert [r.stdout for r in results] == inputs
    assert all(r.ok for r in results)
    assert len({r.execution_id for r in results}) == 50


async def test_stream_order(aclient: wasmwiz.AsyncClient) -> None:
    arrivals: list[tuple[float, wasmwiz.Event]] = []
    async with aclient.stream(guest("progress"), args=["3"]) as events:
        async for event in events:
            arrivals.append((time.monotonic(), event))
        result = await events.result()
    kinds = [type(event) for _, event in arrivals]
    assert kinds[0] is wasmwiz.Started
    assert kinds[-1] is wasmwiz.Finished
    first_stdout = kinds.index(wasmwiz.Stdout)
    assert first_stdout < len(kinds) - 1
    assert arrivals[-1][0] - arrivals[first_stdout][0] > 0.05
    assert result.stdout == b"tick 0\ntick 1\ntick 2\ndone\n"
    assert (
        events.rate_limit is None or events.rate_limit.limit is None or events.rate_limit.limit > 0
    )


async def test_stream_cancel(aclient: wasmwiz.AsyncClient) -> None:
    stream = aclient.stream(guest("loop"), limits={"timeout": 30})
    async with stream:
        first = await stream.__anext__()
        assert isinstance(first, wasmwiz.Started)
    assert [event async for event in stream] == []


async def test_run_batch_and_stream_batch(aclient: wasmwiz.AsyncClient) -> None:
    cases = [
        wasmwiz.BatchCase(stdin="10\n", expected_stdout="55\n", name="ten"),
        wasmwiz.BatchCase(stdin="30\n", expected_stdout="832040\n", name="thirty"),
        {"stdin": "3\n", "expected_stdout": "3\n", "name": "wrong"},
    ]
    batch = await aclient.run_batch(guest("fib"), cases)
    assert [c.name for c in batch] == ["ten", "thirty", "wrong"]
    assert [c.verdict for c in batch] == [
        wasmwiz.Verdict.ACCEPTED,
        wasmwiz.Verdict.ACCEPTED,
        wasmwiz.Verdict.WRONG_ANSWER,
    ]
    assert [c.name for c in batch.failed] == ["wrong"]
    streamed = [case async for case in aclient.stream_batch(guest("fib"), cases[:2])]
    assert sorted(c.index for c in streamed) == [0, 1]


async def test_modules(server: Server) -> None:
    async with server.aclient(server.new_key("basic")) as client:
        variant = guest("hello").read_bytes() + b"\x00\x06\x05async"
        digest = hashlib.sha256(variant).hexdigest()
        assert not await client.modules.exists(digest)
        put = await client.modules.put(variant)
        assert put.sha256 == digest
        assert not put.already_existed
        got = await client.modules.get(digest)
        assert got.size == len(variant)
        assert [m.sha256 for m in await client.modules.list()] == [digest]
        assert [m.sha256 async for m in client.modules.iter(page_size=1)] == [digest]
        small = await client.upload(guest("hello"))
        assert not small.already_existed
        assert len(await client.modules.list(limit=1)) == 1
        assert (await client.run(digest)).stdout == HELLO
        await client.modules.delete(digest)
        assert not await client.modules.exists(digest)


async def test_account(server: Server) -> None:
    async with server.aclient(server.new_key("basic")) as client:
        me = await client.whoami()
        assert me.tier == "basic"
        assert not me.admin
        assert me.limits.per_minute == 100
        assert await client.account.whoami() == me
        await client.run(guest("hello"))
        usage = await client.account.usage(days=3)
        assert usage.executions == 1
        assert len(usage.daily) == 3
        created = await client.account.create_key("async")
        assert created.key_id in {k.key_id for k in await client.account.list_keys()}
        await client.account.revoke_key(created.key_id)
        keys = {k.key_id: k for k in await client.account.list_keys()}
        assert keys[created.key_id].revoked


async def test_admin(aclient: wasmwiz.AsyncClient, server: Server) -> None:
    email = f"async-{uuid.uuid4().hex[:8]}@test.local"
    user = await aclient.admin.create_user(email, "basic")
    assert user.tier == "basic"
    assert (await aclient.admin.set_tier(email, "free")).tier == "free"
    key = await aclient.admin.create_key(email)
    assert [k.key_id for k in await aclient.admin.list_keys(email)] == [key.key_id]
    async with server.aclient(key.key) as theirs:
        assert (await theirs.whoami()).tier == "free"
    usage = await aclient.admin.usage(email)
    assert usage.executions == 0
    await aclient.admin.revoke_key(key.key_id)
    assert (await aclient.admin.list_keys(email))[0].revoked


async def test_health(server: Server) -> None:
    async with wasmwiz.AsyncClient(server.url) as anonymous:
        assert await anonymous.health() == "SERVING"


# --------------------------------------------------------------------------- errors via grpc.aio


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


async def test_stdin_fed_while_running(aclient: wasmwiz.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            await asyncio.sleep(0.01)
            yield part

    fed = await aclient.run(guest("echo"), stdin=chunks())
    assert fed.stdout == b"abc"
    from_list = await aclient.run(guest("echo"), stdin=[b"x", "y"])
    assert from_list.stdout == b"xy"

    echoed = asyncio.Event()

    async def lines() -> AsyncIterator[bytes]:
        yield b"ping\n"
        await asyncio.wait_for(echoed.wait(), 30)
        yield b"pong\n"

    output = b""
    async with aclient.stream(guest("echo"), stdin=lines(), timeout=60) as events:
        async for event in events:
            if isinstance(event, wasmwiz.Stdout):
                output += event.data
                if output == b"ping\n":
                    echoed.set()
    assert output == b"ping\npong\n"


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

"""The SMTP pool against real servers on loopback: reuse, recovery, TLS, AUTH, limits."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from pathlib import Path

import aiosmtplib
import pytest
from smtp_servers import FaultHandler, greeting_server, make_tls, smtp_server

from digest.config import RelaySettings
from digest.deliver.classify import Kind, Phase, classify_exception
from digest.deliver.pool import RelayTarget, SMTPPool, TransactionError
from digest.deliver.ratelimit import RateLimiter
from digest.errors import ConfigError

MSG = b"From: a@news.example.org\r\nSubject: t\r\n\r\nbody\r\n.leading dot\r\n"
SENDER = "bounces@news.example.org"


def local_pool(addr: tuple[str, int], size: int = 2, **kw: object) -> SMTPPool:
    target = replace(RelayTarget.local(*addr, pool_size=size, timeout=2.0), **kw)
    return SMTPPool(target)


async def fail(pool: SMTPPool, rcpt: str, *, sender: str = SENDER,
               deadline: float = 3.0) -> TransactionError:
    with pytest.raises(TransactionError) as info:
        await pool.send(sender, [rcpt], MSG, deadline=deadline)
    return info.value


async def test_connections_are_persistent_and_reused() -> None:
    async with smtp_server() as srv:
        pool = local_pool(srv.addr, size=2)
        await asyncio.gather(*(pool.send(SENDER, [f"u{i}@example.com"], MSG, deadline=3)
                               for i in range(20)))
        await pool.close()
    assert srv.connections == 2
    assert sorted(srv.handler.by_rcpt()) == sorted(f"u{i}@example.com" for i in range(20))
    assert all(r.data.endswith(b".leading dot\r\n") for r in srv.handler.received)


FAULTS = [
    # recipient or sender, phase, kind, server keeps a copy
    ("rcpt550@example.com", Phase.RCPT, Kind.SUPPRESS, False),
    ("rcpt550p@example.com", Phase.RCPT, Kind.FAIL, False),
    ("rcpt552@example.com", Phase.RCPT, Kind.RETRY, False),
    ("greylist@example.com", Phase.RCPT, Kind.RETRY, False),
    ("rcpt421@example.com", Phase.RCPT, Kind.RETRY, False),
    ("data451@example.com", Phase.DATA, Kind.RETRY, False),
    ("data552@example.com", Phase.DATA, Kind.FAIL, False),
    ("data554@example.com", Phase.DATA, Kind.FAIL, False),
    ("data421@example.com", Phase.DATA, Kind.RETRY, False),
    ("dropbefore@example.com", Phase.DATA, Kind.RETRY, False),
    ("datadrop@example.com", Phase.DATA, Kind.RETRY, True),
    ("mail451@news.example.org", Phase.MAIL, Kind.RETRY, False),
    ("mail550@news.example.org", Phase.MAIL, Kind.SENDER, False),
    ("mail530@news.example.org", Phase.MAIL, Kind.AUTH, False),
]


@pytest.mark.parametrize(("who", "phase", "kind", "kept"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_then_the_connection_is_clean(who: str, phase: Phase, kind: Kind,
                                                  kept: bool) -> None:
    async with smtp_server() as srv:
        pool = local_pool(srv.addr, size=1)
        await pool.send(SENDER, ["warm@example.com"], MSG, deadline=3)  # reused connection
        if who.startswith("mail"):
            err = await fail(pool, "ok@example.com", sender=who)
        else:
            err = await fail(pool, who)
        assert err.phase is phase
        assert classify_exception(err.cause, err.phase).kind is kind
        # The very next transaction on the pool succeeds: RSET or a fresh connection,
        # never a half-open transaction (no "503 nested MAIL").
        await pool.send(SENDER, ["after@example.com"], MSG, deadline=3)
        await pool.close()
    got = srv.handler.by_rcpt()
    assert got["after@example.com"] == 1
    assert got[who] == (1 if kept else 0)
    assert not [r for r in srv.replies if r.startswith("503")]


async def test_partial_refusal_returns_each_recipient() -> None:
    async with smtp_server() as srv:
        pool = local_pool(srv.addr)
        result = await pool.send(SENDER, ["a@example.com", "rcpt553@example.com",
                                          "greylist@example.com"], MSG, deadline=3)
        await pool.close()
    assert result.accepted == ("a@example.com",)
    assert {r: v.code for r, v in result.refused.items()} == {
        "rcpt553@example.com": 553, "greylist@example.com": 450}
    assert srv.handler.received[0].rcpt_tos == ("a@example.com",)


async def test_stale_connection_closed_with_421_at_mail_is_replaced_once() -> None:
    async with smtp_server() as srv:
        pool = local_pool(srv.addr, size=1)
        await pool.send(SENDER, ["first@example.com"], MSG, deadline=3)
        await pool.send("mail421@news.example.org", ["second@example.com"], MSG, deadline=3)
        await pool.close()
    assert srv.handler.by_rcpt() == {"first@example.com": 1, "second@example.com": 1}
    assert srv.connections == 2


async def test_per_message_deadline_drops_a_slow_server() -> None:
    async with smtp_server(FaultHandler(slow=5.0)) as srv:
        pool = local_pool(srv.addr, size=1)
        started = time.monotonic()
        err = await fail(pool, "slowalways@example.com", deadline=0.5)
        assert time.monotonic() - started < 2.0
        assert isinstance(err.cause, TimeoutError) and err.phase is Phase.DATA
        assert classify_exception(err.cause, err.phase).ambiguous
        await pool.send(SENDER, ["next@example.com"], MSG, deadline=3)
        await pool.close()
    assert srv.connections == 2


@pytest.mark.parametrize("line", ["421 4.3.2 Service not available", "554 No SMTP here",
                                  "garbage\x00\xff", None])
async def test_bad_greetings_and_tarpits_are_relay_failures(line: str | None) -> None:
    async with greeting_server(line) as addr:
        pool = local_pool(addr, size=1, timeout=0.5)
        started = time.monotonic()
        err = await fail(pool, "a@example.com", deadline=3)
        await pool.close()
    assert err.phase is Phase.CONNECT
    assert classify_exception(err.cause, err.phase).kind is Kind.RELAY
    assert time.monotonic() - started < 2.5


async def test_closed_port_is_a_relay_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = local_pool(("127.0.0.1", port), size=1)
    err = await fail(pool, "a@example.com")
    assert err.phase is Phase.CONNECT
    assert isinstance(err.cause, aiosmtplib.SMTPConnectError)
    assert classify_exception(err.cause, err.phase).kind is Kind.RELAY


def relay(port: int, security: str, **kw: object) -> RelaySettings:
    return RelaySettings(name="main", host="127.0.0.1", port=port, security=security,
                         timeout=2.0, local_hostname="client.test", **kw)  # type: ignore[arg-type]


async def test_required_starttls_never_falls_back_to_plaintext() -> None:
    async with smtp_server(password="s3cret-pw") as srv:
        target = RelayTarget.from_settings(relay(srv.port, "starttls", username="user",
                                                 password="s3cret-pw"))
        pool = SMTPPool(target)
        err = await fail(pool, "a@example.com")
        await pool.close()
    assert err.phase is Phase.CONNECT
    assert classify_exception(err.cause, err.phase).kind is Kind.RELAY
    assert srv.auth_attempts == [] and srv.handler.commands == []


async def test_starttls_with_auth_delivers_and_verifies_the_certificate(
        tmp_path: Path) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    async with smtp_server(password="s3cret-pw", tls=server_ctx, require_starttls=True) as srv:
        settings = relay(srv.port, "starttls", username="user", password="s3cret-pw")
        pool = SMTPPool(RelayTarget.from_settings(settings, tls_context=client_ctx))
        await pool.send(SENDER, ["a@example.com"], MSG, deadline=3)
        await pool.close()
        # Without our CA the certificate is refused before anything is sent.
        untrusted = SMTPPool(RelayTarget.from_settings(settings))
        err = await fail(untrusted, "b@example.com")
        await untrusted.close()
    assert srv.handler.by_rcpt() == {"a@example.com": 1}
    assert classify_exception(err.cause, err.phase).kind is Kind.RELAY
    assert "TLS" in classify_exception(err.cause, err.phase).reason


async def test_implicit_tls(tmp_path: Path) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    async with smtp_server(implicit_tls=server_ctx) as srv:
        pool = SMTPPool(RelayTarget.from_settings(relay(srv.port, "tls"),
                                                  tls_context=client_ctx))
        await pool.send(SENDER, ["a@example.com"], MSG, deadline=3)
        await pool.close()
    async with smtp_server() as plain:
        pool = SMTPPool(RelayTarget.from_settings(relay(plain.port, "tls"),
                                                  tls_context=client_ctx))
        err = await fail(pool, "a@example.com")
        await pool.close()
    assert srv.handler.by_rcpt() == {"a@example.com": 1}
    assert classify_exception(err.cause, err.phase).kind is Kind.RELAY


async def test_wrong_password_is_auth_failure_without_leaking_it(tmp_path: Path) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    async with smtp_server(password="right-pw", tls=server_ctx) as srv:
        settings = relay(srv.port, "starttls", username="user", password="wr0ng-pw-XYZ")
        pool = SMTPPool(RelayTarget.from_settings(settings, tls_context=client_ctx))
        err = await fail(pool, "a@example.com")
        await pool.close()
    outcome = classify_exception(err.cause, err.phase)
    assert outcome.kind is Kind.AUTH and outcome.code == 535
    for text in (str(err), repr(err), str(err.cause), outcome.reason, repr(pool.target),
                 repr(settings)):
        assert "wr0ng-pw-XYZ" not in text
    assert srv.handler.commands == []


def test_credentials_in_clear_are_refused() -> None:
    target = RelayTarget.from_settings(RelaySettings(
        name="x", host="smtp.example.org", port=25, security="none", username="u",
        password="p"))
    with pytest.raises(ConfigError, match="in clear"):
        SMTPPool(target)


async def test_rate_per_second_is_enforced_at_send_time() -> None:
    async with smtp_server() as srv:
        pool = local_pool(srv.addr, size=4, rate_per_second=40.0)
        started = time.monotonic()
        await asyncio.gather(*(pool.send(SENDER, [f"r{i}@example.com"], MSG, deadline=3)
                               for i in range(21)))
        elapsed = time.monotonic() - started
        await pool.close()
    assert len(srv.handler.received) == 21
    assert elapsed >= 20 / 40 * 0.98


async def test_sliding_window_cap() -> None:
    async with smtp_server() as srv:
        limiter = RateLimiter(None, 5, window=0.6)
        pool = SMTPPool(RelayTarget.local(*srv.addr, pool_size=3), limiter=limiter)
        stamps: list[float] = []

        async def one(i: int) -> None:
            await pool.send(SENDER, [f"w{i}@example.com"], MSG, deadline=3)
            stamps.append(time.monotonic())

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(12)))
        await pool.close()
    assert time.monotonic() - started >= 1.2 * 0.98  # 12 messages, 5 per 0.6 s
    assert len(srv.handler.received) == 12


def test_rate_limiter_slots_with_a_fake_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(10.0, 25, window=10.0, clock=lambda: now[0], sleep=fake_sleep)

    async def run() -> list[float]:
        times = []
        for _ in range(60):
            await limiter.acquire()
            times.append(now[0])
        return times

    times = asyncio.run(run())
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(times, times[1:], strict=False))
    for i, t in enumerate(times):  # never more than 25 sends in any 10 s window
        assert sum(1 for u in times[: i + 1] if u > t - 10.0) <= 25
    assert times[25] - times[0] >= 10.0 - 1e-9
    assert limiter.delay() > 0

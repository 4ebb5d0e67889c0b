"""``serve`` as a real process: its access log and its own lines carry no address, no query
value and no token, whatever the requests put in their URLs."""

from __future__ import annotations

import signal
import socket

import httpx
from service_env import ISO_LINE, ListSpec, start, wait_for, write_project

LEAK = "leak.reader@example.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_logs_no_address_query_value_or_token(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = write_project(tmp_path, lists={"daily": ListSpec(readers=1)}, relay=None)
    port = _free_port()
    proc = start(config, "serve", "--host", "127.0.0.1", "--port", str(port))
    base = f"http://127.0.0.1:{port}/digest"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "serve answering", proc)
        with httpx.Client(timeout=5) as client:
            client.get(f"{base}/subscribe/daily", params={"email": LEAK, "name": "Leaky"})
            client.get(f"{base}/unsubscribe/secret-token-value", params={"u": LEAK})
            client.get(f"{base}/{LEAK}")
            client.get(f"{base}/leak.reader%40example.org/more")
            client.post(f"{base}/subscribe/daily", data={"email": LEAK})
            client.get(f"{base}/desk/editions/1", params={"subscriber": "12", "q": LEAK})
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    access = [line for line in err.splitlines() if "uvicorn.access" in line]
    assert len(access) >= 6, err
    assert all(ISO_LINE.match(line) for line in access)
    assert "leak" not in err and "Leaky" not in err and "secret-token-value" not in err
    assert any("/digest/subscribe/daily?email=[redacted]&name=[redacted]" in line
               for line in access), access
    assert any("/digest/unsubscribe/[token]?u=[redacted]" in line for line in access)
    assert any("/digest/[address]" in line for line in access)


def test_every_log_line_masks_what_looks_like_an_address() -> None:
    import io
    import logging

    from digest.logs import configure_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", stream=stream)
        log = logging.getLogger("digest.test")
        log.info("refused %s for list %s", "ana.lopez@example.org", "daily")
        log.warning("relay said: 550 5.1.1 <bo+news@mail.example.co.uk> unknown")
        log.info("encoded ana%40example.org in a URL")
        try:
            raise ValueError("no such reader cat@example.net")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "@" not in text and "%40" not in text
    assert "refused [address] for list daily" in text
    assert "550 5.1.1 <[address]> unknown" in text and "encoded [address] in a URL" in text
    assert "ValueError: no such reader [address]" in text  # the traceback too

"""A real ``serve`` for browser tests: uvicorn over TLS on 127.0.0.1 in a thread.

The desk's cookies are ``Secure`` and its forms need the ``Origin`` of ``web.base_url``, so
the browser must reach the app at exactly that https address: the socket is bound first (a
free port), the configuration's ``base_url`` names it, and a throwaway certificate
(``smtp_servers.make_tls``) serves it; the browser is told to accept that certificate.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from digest.config import Settings
from digest.web import create_app

__all__ = ["free_socket", "serving"]


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(settings: Settings, sock: socket.socket, tls_dir: Path,
            hasher: object | None = None) -> Iterator[str]:
    """Serve ``settings``' web app on ``sock`` over TLS until the block ends; yields the
    origin (``https://127.0.0.1:PORT``)."""
    from smtp_servers import make_tls

    tls_dir.mkdir(parents=True, exist_ok=True)
    make_tls(tls_dir)
    app = create_app(settings)
    if hasher is not None:
        app.state.desk.hasher = hasher
    config = uvicorn.Config(app, log_level="warning", ssl_certfile=str(tls_dir / "cert.pem"),
                            ssl_keyfile=str(tls_dir / "key.pem"), lifespan="on",
                            server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

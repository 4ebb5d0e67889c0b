"""sd_notify for service managers: READY, WATCHDOG, STATUS and STOPPING as one datagram each.

The protocol (systemd's ``sd_notify(3)``): when the service manager sets ``NOTIFY_SOCKET``
to a Unix datagram socket path (a leading ``@`` means Linux's abstract namespace), a
service sends newline-separated ``KEY=VALUE`` assignments to it. ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``, when set, naming the process meant) gives the watchdog period; a service
pings ``WATCHDOG=1`` at least every half of it. Without ``NOTIFY_SOCKET`` every call is a
no-op. These variables are the service manager's protocol, not digest settings, so they are
read here rather than through :mod:`digest.config`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("digest.systemd")


class Notifier:
    """Sends sd_notify messages to the socket named by ``NOTIFY_SOCKET``, if any."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + path[1:]) if path.startswith("@") else path
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if self.address and usec.isdigit() and int(usec) > 0 and (
                not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return bool(self.address)

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; False when nobody listens or
        the socket refused it (logged once, never raised: the service goes on)."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block: a manager that does not read must not stall the heartbeat.
                sock.setblocking(False)
                sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager at NOTIFY_SOCKET (%s)",
                            exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        """Startup is complete (``Type=notify`` units count as started from here)."""
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        """A one-line status ``systemctl status`` shows."""
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        """Still alive (only sent when the manager asked for a watchdog)."""
        return self.watchdog_interval is not None and self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        """Shutting down."""
        return self.notify("STOPPING=1", f"STATUS={status}")

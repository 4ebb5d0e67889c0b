"""Rate limits of the web app (sign-ups, desk sign-ins): which keys a request counts under,
and how much each key may do.

The token buckets live in the store (``Store.take_signup_token``), so the limits hold across
restarts and across several ``serve`` processes sharing a database. Keys are keyed hashes
(HMAC-SHA256 with the signing key), never addresses:

* a client's network: an IPv4 address, or the /64 of an IPv6 address (one customer's
  allocation, RFC 6177: a client changes addresses within it at will);
* a mailbox (:func:`digest.mailboxes.mailbox`): the address case-folded, without its
  ``+tag`` (RFC 5233 subaddress), and for Gmail without dots, so ``victim+1@…`` …
  ``victim+150@…`` share one bucket.

Behind a reverse proxy the client address comes from ``X-Forwarded-For`` only when uvicorn
trusts the proxy: set ``FORWARDED_ALLOW_IPS`` to the proxy's address (README, "Running
behind a proxy"); otherwise every request would count as the proxy's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from digest.mailboxes import mailbox

__all__ = ["PER_CLIENT", "PER_MAILBOX", "SIGN_IN_PER_ACCOUNT", "SIGN_IN_PER_CLIENT", "Limit",
           "client_key", "client_network", "mailbox", "mailbox_key", "sign_in_keys"]

@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``capacity`` actions at once, refilled at ``per_second``."""

    capacity: float
    per_second: float


#: Sign-up and resubscribe requests per client network: a burst of 5, then one a minute.
PER_CLIENT = Limit(5, 1 / 60)
#: Emails per mailbox: 3, then one every 20 minutes, so nobody can flood a stranger's inbox.
PER_MAILBOX = Limit(3, 1 / 1200)
#: Failed desk sign-ins per account name: 5, then one every 2 minutes.
SIGN_IN_PER_ACCOUNT = Limit(5, 1 / 120)
#: Failed desk sign-ins per client network: 20, then one a minute.
SIGN_IN_PER_CLIENT = Limit(20, 1 / 60)


def _key(kind: str, value: str, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{kind}:{value}".encode(), hashlib.sha256)
    return f"{kind}:{digest.hexdigest()}"


def client_network(host: str | None) -> str:
    """The network a client address is limited as: the IPv4 address itself, the IPv6 /64
    (an IPv4-mapped IPv6 address counts as its IPv4 address), or ``host`` as given when it
    is not an IP address (a Unix socket, a test client)."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_key(host: str | None, secret: str) -> str:
    """The per-client bucket key of a request from ``host``."""
    return _key("client", client_network(host), secret)


def mailbox_key(address: str, secret: str) -> str:
    """The per-mailbox bucket key of ``address``."""
    return _key("mailbox", mailbox(address), secret)


def sign_in_keys(name: str, host: str | None, secret: str) -> tuple[str, str]:
    """The bucket keys a desk sign-in counts under: the account name (any case) and the
    client's network; their own kinds, so sign-ups never use up an editor's attempts."""
    return (_key("desk-account", name.strip().casefold(), secret),
            _key("desk-client", client_network(host), secret))

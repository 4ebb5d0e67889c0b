"""Which mailbox an address delivers to: one reading shared by the web app's sign-up limits,
the store's suppression checks and the bounce processor's "is this report about the reader?".

Two spellings reach one mailbox when they differ only in

* case (RFC 5321 lets a server treat local parts case-sensitively; no provider does);
* a ``+tag`` (RFC 5233 subaddress: ``victim+news@…`` is ``victim@…``'s mailbox);
* dots in the local part at Gmail (``vic.tim@gmail.com`` is ``victim@gmail.com``);
* the domain's spelling: Unicode or IDNA (``bücher.example`` is ``xn--bcher-kva.example``).

A mailbox is never used as an address to send to, only to compare and to key limits.
"""

from __future__ import annotations

__all__ = ["DOTLESS_DOMAINS", "mailbox", "same_mailbox"]

#: Domains whose local parts ignore dots (Gmail's own addresses).
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def mailbox(address: str) -> str:
    """The mailbox ``address`` delivers to, as a comparison key (``local@domain``,
    case-folded, without ``+tag``, without Gmail's dots, the domain IDNA-encoded). An
    address without ``@`` is returned case-folded and stripped."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().casefold()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    local, domain = local.casefold(), domain.casefold().rstrip(".")
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def same_mailbox(one: str, other: str) -> bool:
    """True when the two addresses reach the same mailbox (see :func:`mailbox`)."""
    return mailbox(one) == mailbox(other)

"""Proofs of a stored edition for its editors: what one reader (or the generic reader) would
get, its size against the clip budget, the CSS that major clients ignore, and test copies.

The desk shows these; ``preview --out`` and ``send --test-to`` do the same from the command
line. Rendering happens once per section variant (:class:`MessageFactory` caches them), so a
page showing four frames of one edition renders it once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest.config import ListSettings, Settings
from digest.models import Edition
from digest.pipeline.messages import MessageFactory, links_for, new_message_id
from digest.render.csslint import Finding, lint_css
from digest.render.variant import Drop

if TYPE_CHECKING:
    from digest.deliver.report import DeliveryReport
    from digest.store import Membership

__all__ = ["GMAIL_CLIP", "MAX_TEST_ADDRESSES", "EditionProofs", "Proof", "send_proofs"]

#: Gmail clips a message whose HTML part is larger than about 102 KB ("[Message clipped]").
GMAIL_CLIP = 102 * 1024
#: How many addresses one test send may go to.
MAX_TEST_ADDRESSES = 20


@dataclass(frozen=True, slots=True)
class Proof:
    """One reader's email: ``html`` and ``text`` parts; ``html_size`` in bytes as transmitted
    against ``budget`` (our limit) and :data:`GMAIL_CLIP`; ``dropped`` teasers the budget
    left out of this variant; ``warnings`` of the render; ``sections`` the variant shows."""

    html: str
    text: str
    html_size: int
    budget: int
    dropped: tuple[Drop, ...]
    warnings: tuple[str, ...]
    sections: frozenset[str]


class EditionProofs:
    """Proofs of one stored edition of ``lst``; thread-safe, renders each variant once."""

    def __init__(self, settings: Settings, lst: ListSettings, edition: Edition) -> None:
        self.settings = settings
        self.lst = lst
        self.edition = edition
        self.factory = MessageFactory(settings, lst, edition)
        self._lock = threading.Lock()
        self._findings: dict[frozenset[str], list[Finding]] = {}

    def _reader(self, member: Membership | None) -> tuple[str, str | None,
                                                          frozenset[str] | None, int | None]:
        if member is None:
            return f"preview@{self.settings.site.domain}", None, None, None
        return member.email, member.name, member.sections, member.subscriber_id

    def proof(self, member: Membership | None = None) -> Proof:
        """The email ``member`` gets (None: a reader of every section, without a name).

        :raises RenderError: a template or the inliner failed.
        """
        email, name, sections, subscriber_id = self._reader(member)
        with self._lock:
            variant = self.factory.variant(sections)
        links = links_for(self.settings, self.lst, self.edition, subscriber_id)
        html, text = variant.fill(self.factory.personalisation(email, name, links))
        return Proof(html, text, variant.html_size, self.factory.renderer.budget,
                     variant.dropped, variant.warnings, variant.sections)

    def eml(self, member: Membership | None = None) -> bytes:
        """The whole message as it would be sent to ``member`` (a one-off Message-ID)."""
        email, name, sections, subscriber_id = self._reader(member)
        with self._lock:
            return self.factory.message(email=email, name=name, sections=sections,
                                        subscriber_id=subscriber_id,
                                        message_id=new_message_id(self.settings, "preview"))

    def findings(self, member: Membership | None = None) -> list[Finding]:
        """CSS in ``member``'s variant that Gmail, Outlook or Apple Mail do not support
        (caniemail's data), each once."""
        proof = self.proof(member)
        with self._lock:
            found = self._findings.get(proof.sections)
            if found is None:
                found = self._findings[proof.sections] = lint_css(proof.html)
        return found


async def send_proofs(settings: Settings, lst: ListSettings, edition: Edition,
                      addresses: list[str], *, as_of: datetime | None = None) -> DeliveryReport:
    """Send a "[TEST]" copy of ``edition`` (every section, no name) to each address, outside
    the ledger, through the list's relay or the embedded server (as ``send --test-to``).

    :raises ValueError: no address, or more than :data:`MAX_TEST_ADDRESSES`.
    :raises DeliveryError: the relay cannot be used.
    """
    from digest.deliver import send_test
    from digest.pipeline.send import smtp_target

    if not addresses or len(addresses) > MAX_TEST_ADDRESSES:
        raise ValueError(f"a test goes to 1 to {MAX_TEST_ADDRESSES} addresses")
    factory = MessageFactory(settings, lst, edition, subject_prefix="[TEST] ", as_of=as_of)
    messages = [(lst.from_email, address, factory.message(
        email=address, name=None, sections=None, subscriber_id=None,
        message_id=new_message_id(settings, "test"))) for address in addresses]
    relay = settings.relay_for(lst)
    async with smtp_target(settings, relay) as addr:
        return await send_test(messages, relay=relay, smtp_addr=addr,
                               delivery=settings.delivery)


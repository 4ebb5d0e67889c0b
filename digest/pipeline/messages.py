"""Per-subscriber messages from per-variant templates: links, the factory, previews."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest import tokens
from digest.config import ListSettings, Settings
from digest.errors import ConfigError
from digest.mail import DkimSigner, MessageTemplate, Recipient, UnsignedMessage
from digest.mail.sign_process import SigningProcess
from digest.models import Edition
from digest.render import Personalisation, Renderer

if TYPE_CHECKING:
    from digest.store import Store


@dataclass(frozen=True, slots=True)
class Links:
    """The per-subscriber URLs an email carries."""

    unsubscribe_url: str
    unsubscribe_mailto: str
    manage_url: str
    browser_url: str


def links_for(settings: Settings, lst: ListSettings, edition: Edition,
              subscriber_id: int | None) -> Links:
    """Signed, opaque links for one subscriber (or a preview when ``subscriber_id`` is None)."""
    base = settings.web.base_url
    if subscriber_id is None:
        token = manage = "preview"
    else:
        token = tokens.make_unsubscribe_token(settings.web.secret_keys, subscriber_id, lst.name)
        manage = tokens.make_manage_token(settings.web.secret_keys, subscriber_id, lst.name)
    return Links(
        unsubscribe_url=tokens.unsubscribe_url(base, token),
        unsubscribe_mailto=f"mailto:unsubscribe@{settings.site.domain}?subject=unsubscribe%20{token}",
        manage_url=tokens.manage_url(base, manage),
        browser_url=f"{base}/archive/{lst.name}/{edition.date.isoformat()}",
    )


# --------------------------------------------------------------------------- messages


class MessageFactory:
    """Builds each subscriber's message from per-variant templates made once per edition.

    Rendering + inlining happen once per section variant (the renderer caches them), the
    MIME template once per variant too; per subscriber only tokens, slots and headers.
    Each variant's subject is the list's pattern filled from what that variant shows.
    """

    def __init__(self, settings: Settings, lst: ListSettings, edition: Edition, *,
                 subject_prefix: str = "", as_of: datetime | None = None) -> None:
        self.settings = settings
        self.lst = lst
        self.edition = edition
        self.subject_prefix = subject_prefix
        self.renderer = Renderer(templates_dir=settings.templates_dir, site=settings.site,
                                 list_settings=lst, web_base_url=settings.web.base_url,
                                 as_of=as_of)
        # Every variant this edition needs, kept for the whole send: claims arrive in
        # subscriber order, not grouped by sections, so a small LRU would render again.
        self._variants: dict[frozenset[str] | None, tuple[object, object]] = {}
        # What every subscriber's links share, worked out once (links_for's values).
        base = settings.web.base_url
        self._tokens = tokens.LinkTokens(settings.web.secret_keys, lst.name)
        self._unsubscribe_base = tokens.unsubscribe_url(base, "")
        self._manage_base = tokens.manage_url(base, "")
        self._mailto_base = f"mailto:unsubscribe@{settings.site.domain}?subject=unsubscribe%20"
        self._browser_url = f"{base}/archive/{lst.name}/{edition.date.isoformat()}"
        # One signer for every message of the send (its keys were parsed with the settings).
        self._signer = DkimSigner(settings.dkim) if settings.dkim is not None else None

    @contextlib.asynccontextmanager
    async def signing(self) -> AsyncIterator[SigningProcess | None]:
        """The signer for ``deliver_edition`` (with :meth:`for_claim_unsigned` as its
        builder) while the block runs: a child process making the DKIM signatures beside
        the delivery's event loop when messages are signed, else None."""
        if self._signer is None:
            yield None
            return
        async with SigningProcess([k.private_key for k in self._signer.settings.keys]) as proc:
            yield proc

    def _entry(self, sections: frozenset[str] | None) -> tuple[object, object]:
        found = self._variants.get(sections)
        if found is not None:
            return found
        chosen = self.renderer.effective_sections(self.edition, sections)
        found = self._variants.get(chosen)
        if found is None:
            variant = self.renderer.variant(self.edition, chosen)
            template = MessageTemplate.build(
                html_segments=variant.html_segments, html_slots=variant.html_slots,
                text_segments=variant.text_segments, text_slots=variant.text_slots,
                subject=self.subject_prefix + (variant.subject or self.edition.subject),
                from_header=self.lst.from_header,
                list_id=f"{self.lst.title} <{self.lst.name}.{self.settings.site.domain}>",
                reply_to=self.lst.reply_to, dkim=self._signer,
                text_encoding=variant.text_encoding, html_encoding=variant.html_encoding)
            found = self._variants[chosen] = (variant, template)
        self._variants[sections] = found
        return found

    def variant(self, sections: frozenset[str] | None):  # type: ignore[no-untyped-def]
        """The rendered variant for a subscriber's sections (None: every section)."""
        return self._entry(sections)[0]

    def template(self, sections: frozenset[str] | None):  # type: ignore[no-untyped-def]
        """The MIME template of that variant."""
        return self._entry(sections)[1]

    @property
    def variants_built(self) -> int:
        """How many distinct variants were rendered (the expensive work, once each)."""
        return len({id(v) for v, _ in self._variants.values()})

    def personalisation(self, email: str, name: str | None, links: Links):  # type: ignore[no-untyped-def]
        return Personalisation(email=email, name=name, unsubscribe_url=links.unsubscribe_url,
                               manage_url=links.manage_url, browser_url=links.browser_url)

    def message(self, *, email: str, name: str | None, sections: frozenset[str] | None,
                subscriber_id: int | None, message_id: str) -> bytes:
        """The complete message bytes for one recipient."""
        links = links_for(self.settings, self.lst, self.edition, subscriber_id)
        variant, template = self._entry(sections)
        html_values, text_values = variant.slot_values(  # type: ignore[attr-defined]
            self.personalisation(email, name, links))
        return template.render(Recipient(  # type: ignore[attr-defined]
            email=email, name=name, message_id=message_id,
            unsubscribe_url=links.unsubscribe_url, unsubscribe_mailto=links.unsubscribe_mailto,
            slot_values_html=html_values, slot_values_text=text_values))

    def for_claim(self, claim) -> tuple[str, str, bytes]:  # type: ignore[no-untyped-def]
        """``deliver_edition``'s builder: (envelope sender, recipient, bytes).

        The same bytes as :meth:`message` (tests compare them), made without the
        intermediate objects: this runs once per subscriber.
        """
        sender, rcpt, data = self.for_claim_unsigned(claim)
        if isinstance(data, UnsignedMessage):
            return sender, rcpt, data.signed(data.signatures())
        return sender, rcpt, data

    def for_claim_unsigned(self, claim  # type: ignore[no-untyped-def]
                           ) -> tuple[str, str, bytes | UnsignedMessage]:
        """:meth:`for_claim`, a DKIM-signed message without its signatures: delivery has
        them made by :meth:`signing`'s process and sends the result."""
        unsubscribe, manage = self._tokens.pair(claim.subscriber_id)
        unsubscribe_url = self._unsubscribe_base + unsubscribe
        variant, template = self._variants.get(claim.sections) or self._entry(claim.sections)
        html_values, text_values = variant.values_for(  # type: ignore[attr-defined]
            claim.name, unsubscribe_url, self._manage_base + manage, self._browser_url)
        data = template.render_unsigned(  # type: ignore[attr-defined]
            claim.email, claim.name, claim.message_id, unsubscribe_url,
            self._mailto_base + unsubscribe, html_values, text_values)
        return self.lst.from_email, claim.email, data


def new_message_id(settings: Settings, label: str) -> str:
    """A one-off Message-ID on our domain (previews and tests; ledger rows carry their own)."""
    import secrets

    return f"<{label}.{secrets.token_hex(8)}@{settings.site.domain}>"


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True, slots=True)
class PreviewFiles:
    html: Path
    text: Path
    eml: Path
    edition: Edition
    warnings: tuple[str, ...]


def write_preview(settings: Settings, lst: ListSettings, edition: Edition, out_dir: Path, *,
                  store: Store | None, subscriber: str | None,
                  as_of: datetime | None = None) -> PreviewFiles:
    """Write ``edition.html``, ``edition.txt`` and ``edition.eml`` as a subscriber gets them.

    :param subscriber: an address on the list: their name, sections and real links; None
        for a generic preview with every section.
    """
    factory = MessageFactory(settings, lst, edition, as_of=as_of)
    email, name, sections, subscriber_id = f"preview@{settings.site.domain}", None, None, None
    if subscriber is not None:
        member = store.get_membership(lst.name, subscriber) if store else None
        if member is None:
            raise ConfigError(f"--subscriber {subscriber!r} is not on list {lst.name}; "
                              "check the address or `subscribers list`.")
        email, name, sections = member.email, member.name, member.sections
        subscriber_id = member.subscriber_id
    links = links_for(settings, lst, edition, subscriber_id)
    variant = factory.variant(sections)
    html, text = variant.fill(factory.personalisation(email, name, links))
    eml = factory.message(email=email, name=name, sections=sections,
                          subscriber_id=subscriber_id,
                          message_id=new_message_id(settings, "preview"))
    files = PreviewFiles(out_dir / "edition.html", out_dir / "edition.txt",
                         out_dir / "edition.eml", edition, variant.warnings)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files.html.write_text(html, encoding="utf-8", newline="")
        files.text.write_text(text, encoding="utf-8", newline="")
        files.eml.write_bytes(eml)
    except OSError as exc:
        from digest.errors import DigestError

        raise DigestError(f"Cannot write the preview to {out_dir} ({exc.strerror or exc}); "
                          "pick a writable folder for --out.") from None
    return files


def dkim_sign_if_configured(settings: Settings, data: bytes) -> bytes:
    """The message with its DKIM-Signature fields on top when ``[dkim]`` is configured (one
    message: the web app's confirmations)."""
    if settings.dkim is None:
        return data
    return DkimSigner(settings.dkim).sign(data)

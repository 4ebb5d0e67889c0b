"""The one place the stages meet: sources → edition → render → mail → deliver, with the store.

Dependency direction: ``cli``, ``web``, ``schedule`` → ``pipeline`` → the stage modules
(``sources``, ``edition``, ``render``, ``mail``, ``deliver``, ``store``) → ``models``,
``errors``, ``config``. Stages never import each other; they exchange ``models`` objects
and plain values, and this module adapts one stage's output to the next one's input.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digest import sources
from digest.config import ListSettings, Settings
from digest.edition import assemble_edition
from digest.errors import ConfigError, SourceError
from digest.models import Edition, SourceResult

if TYPE_CHECKING:
    from digest.store import Store

__all__ = [
    "BuildOutcome",
    "build_edition",
    "parse_as_of",
    "section_map_for",
]


@dataclass(slots=True)
class BuildOutcome:
    """An assembled edition and the whole-source errors met on the way."""

    edition: Edition
    errors: list[str] = field(default_factory=list)


def parse_as_of(value: str | None, lst: ListSettings) -> datetime | None:
    """``--as-of``: an ISO date or datetime; without an offset it is read in the list's zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of {value!r} is not an ISO 8601 date or time; "
                          "write e.g. 2026-11-28T07:00 or 2026-11-28T07:00+01:00.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=lst.timezone)
    return moment


def section_map_for(lst: ListSettings) -> dict[str, str]:
    """Case-insensitive section names: the configured ones, then the list's explicit map."""
    mapping = {name.casefold(): name for name in lst.sections}
    mapping.update(lst.section_map)
    return mapping


async def gather(settings: Settings, lst: ListSettings, *, source_override: list[str] | None,
                 as_of: datetime | None) -> SourceResult:
    """Read the list's sources (or ``--source`` ones); unreadable ones become errors."""
    wanted = [_resolve_source(s) for s in source_override] if source_override else lst.sources
    if not wanted:
        raise ConfigError(f"List {lst.name} in {settings.path} has no sources; add "
                          "sources = [...] there or pass --source.")
    return await sources.gather_stories(
        wanted, as_of=as_of, section_map=section_map_for(lst), fetch=settings.fetch
    )


def _resolve_source(src: str) -> str:
    if "://" in src:  # a URL: the sources stage accepts http(s) and names anything else
        return src
    return str(Path(src).expanduser().resolve())


async def build_edition(settings: Settings, lst: ListSettings, *, store: object | None,
                        source_override: list[str] | None = None, as_of: datetime | None = None,
                        force: bool = False) -> BuildOutcome:
    """Gather the sources and assemble the edition, leaving out what earlier editions carried.

    :raises EmptyEditionError: nothing new (unless ``force``), or no stories at all.
    :raises SourceError: every source was unreadable (the message lists them).
    """
    result = await gather(settings, lst, source_override=source_override, as_of=as_of)
    if not result.stories and result.errors:
        if len(result.errors) == 1:
            raise SourceError(result.errors[0])
        raise SourceError(f"None of the {len(result.errors)} sources could be read: "
                          + " ".join(result.errors))
    carried: set[str] = set()
    if store is not None:
        carried = store.carried_story_keys(lst.name)  # type: ignore[attr-defined]
    edition = assemble_edition(
        result.stories,
        list_settings=lst,
        as_of=as_of or datetime.now(UTC),
        carried=carried,
        skipped=result.skipped,
        site_name=settings.site.name,
        force=force,
    )
    return BuildOutcome(edition=edition, errors=list(result.errors))


def worker_id() -> str:
    """This process's name in the ledger: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def open_store_for(settings: Settings) -> Iterator[Store]:
    """Open (and migrate) the configured store for the length of one command."""
    from digest.store import open_store

    settings.work_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        store.close()


# --------------------------------------------------------------------------- links


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
    from digest import tokens

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
    """

    def __init__(self, settings: Settings, lst: ListSettings, edition: Edition, *,
                 subject_prefix: str = "", as_of: datetime | None = None) -> None:
        from digest.render import Renderer

        self.settings = settings
        self.lst = lst
        self.edition = edition
        self.subject = subject_prefix + edition.subject
        self.renderer = Renderer(templates_dir=settings.templates_dir, site=settings.site,
                                 list_settings=lst, web_base_url=settings.web.base_url,
                                 as_of=as_of)
        # Every variant this edition needs, kept for the whole send: claims arrive in
        # subscriber order, not grouped by sections, so a small LRU would render again.
        self._variants: dict[frozenset[str] | None, tuple[object, object]] = {}

    def _entry(self, sections: frozenset[str] | None) -> tuple[object, object]:
        found = self._variants.get(sections)
        if found is not None:
            return found
        chosen = self.renderer.effective_sections(self.edition, sections)
        found = self._variants.get(chosen)
        if found is None:
            from digest.mail import MessageTemplate

            variant = self.renderer.variant(self.edition, chosen)
            template = MessageTemplate.build(
                html_segments=variant.html_segments, html_slots=variant.html_slots,
                text_segments=variant.text_segments, text_slots=variant.text_slots,
                subject=self.subject, from_header=self.lst.from_header,
                list_id=f"{self.lst.title} <{self.lst.name}.{self.settings.site.domain}>",
                reply_to=self.lst.reply_to, dkim=self.settings.dkim)
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
        from digest.render import Personalisation

        return Personalisation(email=email, name=name, unsubscribe_url=links.unsubscribe_url,
                               manage_url=links.manage_url, browser_url=links.browser_url)

    def message(self, *, email: str, name: str | None, sections: frozenset[str] | None,
                subscriber_id: int | None, message_id: str) -> bytes:
        """The complete message bytes for one recipient."""
        from digest.mail import Recipient

        links = links_for(self.settings, self.lst, self.edition, subscriber_id)
        variant, template = self._entry(sections)
        html_values, text_values = variant.slot_values(  # type: ignore[attr-defined]
            self.personalisation(email, name, links))
        return template.render(Recipient(  # type: ignore[attr-defined]
            email=email, name=name, message_id=message_id,
            unsubscribe_url=links.unsubscribe_url, unsubscribe_mailto=links.unsubscribe_mailto,
            slot_values_html=html_values, slot_values_text=text_values))

    def for_claim(self, claim) -> tuple[str, str, bytes]:  # type: ignore[no-untyped-def]
        """``deliver_edition``'s builder: (envelope sender, recipient, bytes)."""
        data = self.message(email=claim.email, name=claim.name, sections=claim.sections,
                            subscriber_id=claim.subscriber_id, message_id=claim.message_id)
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


# --------------------------------------------------------------------------- send


@dataclass(slots=True)
class SendOutcome:
    """What one ``send`` did: ``status`` is sent / already-sent / skipped / dry-run / test."""

    status: str
    message: str
    edition: Edition | None = None
    edition_id: int | None = None
    report: object | None = None  # a digest.deliver.DeliveryReport
    published: int = 0
    imports: list[tuple[str, object]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sync_subscriber_files(settings: Settings, lst: ListSettings,
                          store: Store) -> list[tuple[str, object]]:
    """Import the list's ``subscribers_files`` (idempotent; never re-activates anyone)."""
    reports = []
    for path in lst.subscribers_files:
        if not Path(path).is_file():
            raise ConfigError(f"Setting lists.{lst.name}.subscribers_files in {settings.path} "
                              f"names {path}, which does not exist; fix the path.")
        reports.append((path, store.import_csv(
            lst.name, path, known_sections=lst.sections or None,
            allow_smtputf8=settings.allow_smtputf8)))
    return reports


async def _todays_edition(settings: Settings, lst: ListSettings, store: Store, *,
                          source_override: list[str] | None, as_of: datetime | None,
                          force: bool) -> tuple[Edition, list[str]]:
    """Today's stored edition if there is one (and not ``force``), else a fresh build."""
    day = (as_of or datetime.now(UTC)).astimezone(lst.timezone).date()
    existing = None if force or source_override else store.find_edition(lst.name, day)
    if existing is not None:
        return existing.edition(), []
    outcome = await build_edition(settings, lst, store=store, source_override=source_override,
                                  as_of=as_of, force=force)
    return outcome.edition, outcome.errors


async def send_edition(settings: Settings, lst: ListSettings, *, store: Store,
                       source_override: list[str] | None = None, as_of: datetime | None = None,
                       force: bool = False, dry_run: bool = False,
                       test_to: tuple[str, ...] = (), progress: bool = False,
                       max_wait: float | None = None) -> SendOutcome:
    """Publish today's edition of ``lst`` and deliver it, or resume one that is under way.

    A second call for the same day sends nothing (``force`` sends another edition).
    ``dry_run`` builds every message and sends none; ``test_to`` sends a "[TEST]" copy to
    each address without touching the ledger.

    :raises EmptyEditionError: caught here and reported as ``status == "skipped"``.
    """
    from digest.deliver import deliver_edition, send_test
    from digest.errors import EmptyEditionError

    relay = settings.relay_for(lst)
    imports: list[tuple[str, object]] = []
    if dry_run:  # the same recipients as a real send: the list's files are synced first
        imports = sync_subscriber_files(settings, lst, store)
    if test_to or dry_run:
        try:
            edition, errors = await _todays_edition(settings, lst, store,
                                                    source_override=source_override,
                                                    as_of=as_of, force=force)
        except EmptyEditionError as exc:
            return SendOutcome("skipped", str(exc), imports=imports)
        if test_to:
            factory = MessageFactory(settings, lst, edition, subject_prefix="[TEST] ",
                                     as_of=as_of)
            messages = [(lst.from_email, addr, factory.message(
                email=addr, name=None, sections=None, subscriber_id=None,
                message_id=new_message_id(settings, "test"))) for addr in test_to]
            async with _smtp_target(settings, relay) as addr:
                report = await send_test(messages, relay=relay, smtp_addr=addr,
                                         delivery=settings.delivery)
            return SendOutcome("test", f"Sent a test of the {lst.name} edition to "
                               f"{len(test_to)} address(es).", edition, report=report,
                               errors=errors)
        factory = MessageFactory(settings, lst, edition, as_of=as_of)
        count = size = 0
        for member in store.iter_eligible(lst.name):
            size += len(factory.message(email=member.email, name=member.name,
                                        sections=member.sections,
                                        subscriber_id=member.subscriber_id,
                                        message_id=new_message_id(settings, "dry-run")))
            count += 1
        return SendOutcome("dry-run", f"Dry run: built {count} messages "
                           f"({size / 1024:.0f} KiB in all) and sent none.", edition,
                           imports=imports, errors=errors)

    imports = sync_subscriber_files(settings, lst, store)
    day = (as_of or datetime.now(UTC)).astimezone(lst.timezone).date()
    record = None if force else store.find_edition(lst.name, day)
    errors: list[str] = []
    if record is None:
        try:
            outcome = await build_edition(settings, lst, store=store,
                                          source_override=source_override, as_of=as_of,
                                          force=force)
        except EmptyEditionError as exc:
            return SendOutcome("skipped", str(exc), imports=imports)
        errors = outcome.errors
        record = store.record_edition(outcome.edition, forced=force)
    edition = record.edition()
    published = store.publish_edition(record.id, message_id_domain=settings.site.domain,
                                      now=datetime.now(UTC))
    factory = MessageFactory(settings, lst, edition, as_of=as_of)
    async with _smtp_target(settings, relay) as addr:
        report = await deliver_edition(
            record.id, store=store, build=factory.for_claim, relay=relay, smtp_addr=addr,
            delivery=settings.delivery, worker_id=f"{socket.gethostname()}:send:{lst.name}",
            progress=progress, **({"max_wait": max_wait} if max_wait is not None else {}))
    summary = store.delivery_summary(record.id)
    if not published and not report.sent and not (report.failed or report.expired):  # type: ignore[attr-defined]
        status, message = "already-sent", (
            f"The {lst.name} edition of {edition.date} already went out "
            f"({summary.get('sent', 0)} sent); use --force to send another.")
    else:
        status, message = "sent", f"The {lst.name} edition of {edition.date} was delivered."
    return SendOutcome(status, message, edition, record.id, report, published, imports, errors)


@asynccontextmanager
async def _smtp_target(settings: Settings, relay: object | None) -> AsyncIterator[
        tuple[str, int] | None]:
    """No relay configured: the embedded server storing into the Maildir; else nothing."""
    from digest.deliver import embedded_smtp_server

    if relay is not None:
        yield None
        return
    async with embedded_smtp_server(settings.maildir) as addr:
        yield addr


def dkim_sign_if_configured(settings: Settings, data: bytes) -> bytes:
    """The message with a DKIM-Signature header on top when ``[dkim]`` is configured."""
    if settings.dkim is None:
        return data
    from digest.mail.signing import dkim_sign

    return dkim_sign(data, settings.dkim)


async def send_single_message(settings: Settings, lst: ListSettings,
                              message: tuple[str, str, bytes]) -> bool:
    """Send one ``(sender, recipient, bytes)`` message outside any edition (the web app's
    confirmation emails) through the list's relay or the embedded server.

    :returns: True when the relay accepted it, False when it refused the recipient.
    :raises DeliveryError: when the relay cannot be used (down, refused our credentials).
    """
    from digest.deliver import send_test
    from digest.errors import DeliveryError

    relay = settings.relay_for(lst)
    try:
        async with _smtp_target(settings, relay) as addr:
            report = await send_test([message], relay=relay, smtp_addr=addr,
                                     delivery=settings.delivery)
    except OSError as exc:
        raise DeliveryError(f"The mail server could not be reached ({type(exc).__name__}); "
                            "check the relay settings.") from exc
    return report.sent > 0  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------- locks


@contextmanager
def _file_lock(path: Path, busy_message: str) -> Iterator[None]:
    import fcntl

    from digest.errors import DigestError

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DigestError(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def send_lock(settings: Settings, lst: ListSettings) -> AbstractContextManager[None]:
    """One ``send`` of a list at a time on this machine (its claims carry one worker id)."""
    return _file_lock(settings.work_dir / "locks" / f"send-{lst.name}.lock",
                      f"Another send of list {lst.name} is running on this machine; "
                      "wait for it to finish or stop it.")


@contextmanager
def scheduler_lock(settings: Settings) -> Iterator[None]:
    """Exactly one scheduler: a PostgreSQL advisory lock, or a file lock for SQLite."""
    if not settings.database_url.startswith("postgresql"):
        with _file_lock(settings.work_dir / "locks" / "scheduler.lock",
                        "Another scheduler is running on this machine; stop it first."):
            yield
        return
    from digest.errors import DigestError

    from digest.store import open_store

    # The lock needs a connection, not the schema: no migration here.
    with open_store(settings.database_url, migrate=False) as store, \
            store.engine.connect() as conn:
        got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)" % SCHEDULER_LOCK_KEY)
        if not got.scalar():
            raise DigestError("Another scheduler holds the database's scheduler lock; "
                              "run only one `schedule` per database.")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)" % SCHEDULER_LOCK_KEY)


#: pg_advisory_lock key for "the scheduler" (any fixed 64-bit number unique to digest).
SCHEDULER_LOCK_KEY = 0x6469676573740001


# --------------------------------------------------------------------------- jobs


def run_scheduled(settings: Settings, list_name: str) -> SendOutcome:
    """The scheduler's job: send today's edition of one list, logging one line."""
    import asyncio
    import logging

    log = logging.getLogger("digest.pipeline")
    lst = settings.get_list(list_name)
    with open_store_for(settings) as store, send_lock(settings, lst):
        outcome = asyncio.run(send_edition(settings, lst, store=store))
    log.info("edition list=%s status=%s %s", list_name, outcome.status, outcome.message)
    return outcome


def run_open_deliveries(settings: Settings) -> None:
    """One pass over every list's editions with rows still queued (the scheduler's retry job)."""
    import asyncio

    with open_store_for(settings) as store:
        asyncio.run(run_worker(settings, store, poll=5.0, once=True))


async def run_worker(settings: Settings, store: Store, *, poll: float, once: bool,
                     progress: bool = False) -> None:
    """Deliver the open ledger rows of every list's published editions until stopped."""
    import asyncio

    from digest.deliver import deliver_edition

    factories: dict[int, MessageFactory] = {}
    me = worker_id()
    while True:
        worked = False
        open_ids: set[int] = set()
        for lst in settings.lists.values():
            for record in store.list_editions(lst.name, limit=10):
                if record.status != "publishing":
                    continue
                open_ids.add(record.id)
                factory = factories.get(record.id)
                if factory is None:
                    factory = factories[record.id] = MessageFactory(settings, lst,
                                                                    record.edition())
                relay = settings.relay_for(lst)
                async with _smtp_target(settings, relay) as addr:
                    report = await deliver_edition(
                        record.id, store=store, build=factory.for_claim, relay=relay,
                        smtp_addr=addr, delivery=settings.delivery, worker_id=me,
                        progress=progress, max_wait=poll)
                worked = worked or bool(report.sent or report.failed)  # type: ignore[attr-defined]
        for done in set(factories) - open_ids:  # finished editions: free their variants
            del factories[done]
        if once:
            return
        if not worked:
            await asyncio.sleep(poll)

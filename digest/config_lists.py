"""The newsroom's and its lists' settings (``[site]``, ``[lists.NAME]``): their shapes and
how they are read from the configuration file and checked. :mod:`digest.config` loads the
whole file and re-exports :class:`SiteSettings` and :class:`ListSettings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.config_table import Table
from digest.i18n import (
    DEFAULT_LANGUAGE,
    LanguageError,
    available_languages,
    catalog_dirs,
    has_catalog,
    normalise_language,
)

__all__ = ["ListSettings", "SiteSettings", "read_list", "read_site"]

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
                     r"[a-zA-Z][a-zA-Z0-9-]{0,62}$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = dict(zip(_WEEKDAYS, ("monday", "tuesday", "wednesday", "thursday", "friday",
                                      "saturday", "sunday"), strict=True))
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """The newsroom: name, home page, postal address for the footer, Message-ID domain."""

    name: str
    url: str
    postal_address: str
    domain: str
    logo_url: str | None = None


@dataclass(frozen=True, slots=True)
class ListSettings:
    """One mailing list: where its stories come from and how its edition is made and sent."""

    name: str
    title: str
    sources: tuple[str, ...]
    sections: tuple[str, ...]
    section_map: Mapping[str, str]
    lead_section: str | None
    teasers_per_section: int
    max_age: timedelta | None
    timezone: ZoneInfo
    send_time: time
    from_name: str
    from_email: str
    reply_to: str | None
    subject: str
    preheader: str
    relay: str | None
    subscribers_files: tuple[str, ...] = ()
    send_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    #: "off": the scheduler publishes a draft at send time; "required": only an approved one.
    review: str = "off"
    #: With review, the draft is built and mailed to ``review_to`` this long before send time.
    review_lead: timedelta = timedelta(hours=2)
    review_to: tuple[str, ...] = ()
    #: An edition not published this long after its send time is "missed" (editors told).
    send_window: timedelta = timedelta(hours=3)
    #: "hold": a scheduled edition built while a source failed waits for an editor; "send".
    on_source_error: str = "hold"
    #: How long a headline alone marks a linkless story as already sent (digest.edition).
    repeat_window: timedelta = timedelta(days=7)
    #: BCP 47 tag of the newsroom's language: the emails' and web pages' words, dates and
    #: ``<html lang>`` (gettext catalogs and CLDR data through Babel).
    language: str = "en"

    @property
    def from_header(self) -> str:
        """``Name <address>`` with the name quoted where RFC 5322 needs it."""
        return str(Address(display_name=self.from_name, addr_spec=self.from_email))


def _address(table: Table, name: str, default: str | None) -> tuple[str, str] | None:
    value = table.str(name, default)
    if value is None:
        return None
    display, addr = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in addr or " " in addr:
        raise table.error(table.key(name), f"must be an address such as "
                          f"\"Newsroom <news@example.org>\", not {value!r}", "fix the address")
    return display, addr


def read_site(t: Table, fallback_domain: str) -> SiteSettings:
    """``[site]``; ``fallback_domain`` (the first list's sender's) when it names none.

    :raises ConfigError: naming the setting for a wrong domain or URL.
    """
    site = SiteSettings(
        name=t.str("name", required=True),
        url=t.str("url", required=True),
        postal_address=t.str("postal_address", required=True),
        domain=t.str("domain", fallback_domain),
        logo_url=t.str("logo_url"),
    )
    if not _DOMAIN.match(site.domain):
        raise t.error(t.key("domain"), f"must be a domain name such as \"news.example.org\", "
                      f"not {site.domain!r}", "fix the domain (Message-IDs and List-Id use it)")
    if not site.url.startswith(("http://", "https://")):
        raise t.error(t.key("url"), f"must be an http(s) URL, not {site.url!r}", "fix the URL")
    t.finish()
    return site


def _read_language(t: Table, templates_dir: Path) -> str:
    """The list's ``language``: a BCP 47 tag Babel knows, with a catalog to speak it."""
    raw = t.raw("language", DEFAULT_LANGUAGE)
    if not isinstance(raw, str):
        raise t.error(t.key("language"), f"must be a language tag string, not {raw!r}",
                      "write e.g. language = \"fr\"")
    try:
        tag = normalise_language(raw)
    except LanguageError as exc:
        raise t.error(t.key("language"), f"is not a language Babel knows ({exc})",
                      "use a BCP 47 tag such as \"en\", \"fr\" or \"pt-BR\"") from None
    dirs = catalog_dirs(templates_dir)
    if not has_catalog(tag, dirs):
        shipped = ", ".join(available_languages(dirs)) or "none"
        raise t.error(t.key("language"), f"is {tag!r}, which has no translation catalog "
                      f"(available: {shipped})",
                      f"add {templates_dir.name}/locale/{tag.split('-')[0]}/LC_MESSAGES/"
                      "digest.po as the README's \"Languages\" section says, or pick an "
                      "available language")
    return tag


def read_list(name: str, t: Table, base_dir: Path, relays: tuple[str, ...],
              templates_dir: Path | None = None) -> ListSettings:
    """``[lists.NAME]``: paths resolved against ``base_dir``, ``relay`` one of ``relays``,
    ``language`` one with a catalog under ``templates_dir``.

    :raises ConfigError: naming the setting and the file for anything missing or wrong.
    """
    if not _SLUG.match(name):
        raise t.error(t.prefix, "has a name that is not a short slug (a-z, 0-9, - and _)",
                      "rename the table, e.g. [lists.daily]")
    sources = []
    for src in t.strings("sources"):
        if src.startswith(("http://", "https://")):
            sources.append(src)
        elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", src):
            raise t.error(t.key("sources"), f"has {src!r}, which is neither a file nor an "
                          "http(s) URL", "use a path or an http(s) URL")
        else:
            sources.append(str((base_dir / src).resolve()))
    section_map_t = t.table("section_map")
    section_map = {}
    for key, value in section_map_t.data.items():
        section_map_t.used.add(key)
        if not isinstance(value, str) or not value.strip():
            raise t.error(section_map_t.key(key), f"must name a section, not {value!r}",
                          f"write it as \"{key}\" = \"Section\"")
        section_map[key.casefold().strip()] = value.strip()
    tz_name = t.str("timezone", "UTC")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.error(t.key("timezone"), f"names no known timezone ({tz_name!r})",
                      "use an IANA name such as \"Europe/London\"") from None
    send_time_s = t.str("send_time", "07:00")
    try:
        send_time = time.fromisoformat(send_time_s)
    except ValueError:
        raise t.error(t.key("send_time"), f"must be a time of day such as \"07:00\", "
                      f"not {send_time_s!r}", "fix the time") from None
    raw_days = t.strings("send_days", _WEEKDAYS)
    days = tuple(d.strip().lower()[:3] for d in raw_days)
    bad = [raw for raw, d in zip(raw_days, days, strict=True)
           if d not in _WEEKDAYS or not _WEEKDAY_NAMES[d].startswith(raw.strip().lower())]
    if not days or bad:
        raise t.error(t.key("send_days"), f"must list weekdays such as [\"sat\", \"sun\"], "
                      f"not {bad[0] if bad else raw_days!r}",
                      "use mon, tue, wed, thu, fri, sat, sun")
    sender = _address(t, "from", None)
    if sender is None:
        raise t.error(t.key("from"), "is missing", "add from = \"Newsroom <news@example.org>\"")
    reply = _address(t, "reply_to", None)
    relay = t.str("relay")
    if relay is not None and relay not in relays:
        raise t.error(t.key("relay"), f"names no configured relay ({relay!r})",
                      f"use one of: {', '.join(relays) or 'none configured'}")
    subject = t.str("subject", "{lead_headline}")
    preheader = t.str("preheader", "{teaser_headlines}")
    for key, pattern in (("subject", subject), ("preheader", preheader)):
        try:
            pattern.format_map(_PatternCheck())
        except (KeyError, ValueError, IndexError, AttributeError) as exc:
            raise t.error(t.key(key), f"is not a valid pattern ({exc})",
                          "use fields such as {lead_headline}, {title}, {date:%d %B %Y}, "
                          "{weekday}, {teaser_headlines}") from None
    review = _choice(t, "review", ("off", "required"), "off")
    review_to = tuple(_one_address(t, "review_to", v) for v in t.strings("review_to"))
    if review == "required" and not review_to:
        raise t.error(t.key("review_to"), "is missing while review = \"required\"",
                      "list the editors who approve, e.g. review_to = [\"desk@example.org\"]")
    review_lead = t.duration("review_lead", timedelta(hours=2))
    send_window = t.duration("send_window", timedelta(hours=3))
    if not timedelta(minutes=1) <= send_window <= timedelta(hours=20):
        raise t.error(t.key("send_window"), f"must be from 1m to 20h, not {send_window}",
                      "write e.g. send_window = \"3h\"")
    if review_lead + send_window > timedelta(hours=22):
        raise t.error(t.key("review_lead"), "and send_window together must stay within 22h "
                      "(one day's edition must be over before the next one's review starts)",
                      "shorten one of them")
    lst = ListSettings(
        name=name,
        title=t.str("title", name.title()),
        sources=tuple(sources),
        sections=t.strings("sections"),
        section_map=section_map,
        lead_section=t.str("lead_section"),
        teasers_per_section=t.int("teasers_per_section", 5, 1, 50),
        max_age=t.duration("max_age", None),
        repeat_window=t.duration("repeat_window", timedelta(days=7)),
        timezone=tz,
        send_time=send_time,
        from_name=sender[0],
        from_email=sender[1],
        reply_to=reply[1] if reply else None,
        subject=subject,
        preheader=preheader,
        relay=relay,
        send_days=days,
        subscribers_files=tuple(str((base_dir / f).resolve())
                                for f in t.strings("subscribers_files")),
        review=review,
        review_lead=review_lead,
        review_to=review_to,
        send_window=send_window,
        on_source_error=_choice(t, "on_source_error", ("hold", "send"), "hold"),
        language=_read_language(t, templates_dir or base_dir / "templates"),
    )
    t.finish()
    return lst


def _choice(t: Table, name: str, choices: tuple[str, ...], default: str) -> str:
    value = t.str(name, default)
    if value not in choices:
        shown = " or ".join(f"\"{c}\"" for c in choices)
        raise t.error(t.key(name), f"must be {shown}, not {value!r}", "pick one")
    return str(value)


def _one_address(t: Table, name: str, value: str) -> str:
    _display, addr = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in addr or " " in addr:
        raise t.error(t.key(name), f"must list addresses such as \"desk@example.org\", "
                      f"not {value!r}", "fix the address")
    return addr


class _PatternCheck(dict[str, Any]):
    """format_map target that accepts exactly the fields subject patterns may use."""

    FIELDS = frozenset({"lead_headline", "lead_section", "title", "site", "date", "weekday",
                        "teaser_headlines", "story_count"})

    def __missing__(self, key: str) -> Any:
        if key not in self.FIELDS:
            raise KeyError(f"unknown field {{{key}}}")
        from datetime import date

        return date(2000, 1, 1) if key == "date" else ("" if key != "story_count" else 0)

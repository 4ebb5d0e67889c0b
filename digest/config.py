"""Settings: read once from one TOML file plus ``DIGEST_*`` environment secrets, validated, frozen.

This is the only module that reads the configuration file or ``os.environ``. Everything
else receives a :class:`Settings` (or the part of it it needs) as an argument.

Paths in the file are relative to the file's own folder. Secrets never live in the file:

========================  ==========================================================
``DIGEST_DATABASE_URL``   overrides ``[database] url`` (may carry a password)
``DIGEST_SECRET_KEY``     signs unsubscribe, manage and confirmation links
``DIGEST_OLD_SECRET_KEYS`` comma-separated retired keys still accepted (rotation)
``DIGEST_SMTP_USERNAME``  relay login (``DIGEST_RELAY_<NAME>_USERNAME`` for one relay)
``DIGEST_SMTP_PASSWORD``  relay password (``DIGEST_RELAY_<NAME>_PASSWORD`` for one relay)
``DIGEST_DKIM_PRIVATE_KEY`` PEM text of the rsa-sha256 DKIM key (else its ``private_key_file``)
``DIGEST_DKIM_ED25519_PRIVATE_KEY`` the ed25519-sha256 DKIM key (else its ``private_key_file``)
``DIGEST_WORK_DIR``       overrides ``[digest] work_dir``
========================  ==========================================================
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.config_dkim import DkimKey, DkimSettings, read_dkim
from digest.config_table import Table, parse_duration
from digest.errors import ConfigError
from digest.i18n import (
    DEFAULT_LANGUAGE,
    LanguageError,
    available_languages,
    catalog_dirs,
    has_catalog,
    normalise_language,
)

__all__ = [
    "DeliverySettings",
    "DkimKey",
    "DkimSettings",
    "FetchSettings",
    "ListSettings",
    "RelaySettings",
    "Settings",
    "SiteSettings",
    "WebSettings",
    "load_settings",
    "parse_duration",
]

DEFAULT_CONFIG = "digest.toml"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
                     r"[a-zA-Z][a-zA-Z0-9-]{0,62}$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = {d: n for d, n in zip(_WEEKDAYS, ("monday", "tuesday", "wednesday", "thursday",
                                                  "friday", "saturday", "sunday"), strict=True)}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Secret(str):
    """A string whose repr never shows its value (passwords, keys)."""

    def __repr__(self) -> str:
        return "'***'"


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


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """An SMTP relay with its own connection pool and rate limits."""

    name: str
    host: str
    port: int
    security: str  # "tls" (implicit), "starttls" (required) or "none" (local relays only)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    pool_size: int = 10
    rate_per_second: float | None = None
    max_per_hour: int | None = None
    timeout: float = 60.0
    local_hostname: str | None = None


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the ledger retries: backoff from ``first_retry`` doubling up to ``retry_window``."""

    retry_window: timedelta = timedelta(hours=24)
    first_retry: timedelta = timedelta(minutes=1)
    max_retry_delay: timedelta = timedelta(hours=1)
    message_timeout: float = 60.0
    claim_batch: int = 100
    max_auth_failures: int = 3


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The web app: its public base URL (used in every link) and signing keys."""

    base_url: str
    host: str
    port: int
    secret_keys: tuple[str, ...] = field(repr=False)
    token_max_age: timedelta = timedelta(days=365)
    confirm_max_age: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Limits for fetching feeds over http(s)."""

    timeout: float = 20.0
    max_bytes: int = 10_000_000
    max_redirects: int = 3
    user_agent: str = "digest/0.1 (+newsletter digest)"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs, loaded once by :func:`load_settings` and passed in."""

    path: Path
    base_dir: Path
    work_dir: Path
    templates_dir: Path
    database_url: str = field(repr=False)
    site: SiteSettings
    web: WebSettings
    fetch: FetchSettings
    delivery: DeliverySettings
    lists: Mapping[str, ListSettings]
    relays: tuple[RelaySettings, ...] = ()
    dkim: DkimSettings | None = None
    allow_smtputf8: bool = False

    @property
    def maildir(self) -> Path:
        """Where the embedded SMTP server stores what it receives."""
        return self.work_dir / "maildir"

    def get_list(self, name: str | None) -> ListSettings:
        """The list called ``name``, or the first list when ``name`` is None."""
        if name is None:
            return next(iter(self.lists.values()))
        try:
            return self.lists[name]
        except KeyError:
            known = ", ".join(self.lists)
            raise ConfigError(
                f"There is no list {name!r} in {self.path.name}; configured lists: {known}."
            ) from None

    def relay_for(self, lst: ListSettings) -> RelaySettings | None:
        """The relay a list sends through: its own, else the first; None means embedded."""
        if not self.relays:
            return None
        if lst.relay is None:
            return self.relays[0]
        return next(r for r in self.relays if r.name == lst.relay)


def _address(table: Table, name: str, default: str | None) -> tuple[str, str] | None:
    value = table.str(name, default)
    if value is None:
        return None
    display, addr = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in addr or " " in addr:
        raise table.error(table.key(name), f"must be an address such as "
                          f"\"Newsroom <news@example.org>\", not {value!r}", "fix the address")
    return display, addr


def _read_site(t: Table, fallback_domain: str) -> SiteSettings:
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


def _read_list(name: str, t: Table, base_dir: Path, relays: tuple[str, ...],
               templates_dir: Path | None = None) -> ListSettings:
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


def _read_relay(t: Table, env: Mapping[str, str], index: int) -> RelaySettings:
    name = t.str("name", f"relay{index + 1}")
    security = t.str("security", "starttls")
    if security not in ("tls", "starttls", "none"):
        raise t.error(t.key("security"), f"must be \"tls\", \"starttls\" or \"none\", "
                      f"not {security!r}", "pick one")
    port_default = {"tls": 465, "starttls": 587, "none": 25}[security]
    env_name = re.sub(r"[^A-Z0-9]", "_", name.upper())
    username_setting = t.str("username")
    username = (env.get(f"DIGEST_RELAY_{env_name}_USERNAME") or env.get("DIGEST_SMTP_USERNAME")
                or username_setting)
    password = env.get(f"DIGEST_RELAY_{env_name}_PASSWORD") or env.get("DIGEST_SMTP_PASSWORD")
    if "password" in t.data:
        raise t.error(t.key("password"), "must not be in the file", "set "
                      f"DIGEST_RELAY_{env_name}_PASSWORD or DIGEST_SMTP_PASSWORD instead")
    relay = RelaySettings(
        name=name,
        host=t.str("host", required=True),
        port=t.int("port", port_default, 1, 65535),
        security=security,
        username=username,
        password=_Secret(password) if password else None,
        pool_size=t.int("pool_size", 10, 1, 200),
        rate_per_second=t.float("rate_per_second", None, 0.01),
        max_per_hour=t.int("max_per_hour", None, 1, 10_000_000),
        timeout=t.duration("timeout", timedelta(seconds=60)).total_seconds(),
        local_hostname=t.str("local_hostname"),
    )
    if relay.password and not relay.username:
        raise t.error(t.key("username"), "is missing while a password is set",
                      f"set DIGEST_RELAY_{env_name}_USERNAME or username = \"...\"")
    t.finish()
    return relay


# Every link an email carries starts with web.base_url, so it must go into a header and an
# href as it is: https, an ASCII host, a path of RFC 3986 characters, nothing after it.
_BASE_URL = re.compile(r"https://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
                       r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*)?")


def _secret_keys(env: Mapping[str, str], work_dir: Path) -> tuple[str, ...]:
    """The signing keys: DIGEST_SECRET_KEY, else one generated once under the working folder."""
    current = env.get("DIGEST_SECRET_KEY")
    if not current:
        current = _stored_key(work_dir / "secret.key")
    old = tuple(k.strip() for k in env.get("DIGEST_OLD_SECRET_KEYS", "").split(",") if k.strip())
    return tuple(_Secret(k) for k in (current, *old))


def _stored_key(key_file: Path) -> str:
    """Read the generated signing key, creating it (mode 0600) on first use."""
    if key_file.parent.exists() and not key_file.parent.is_dir():
        raise ConfigError(f"The working folder {key_file.parent} is a file, not a folder; set "
                          "digest.work_dir to a folder.")
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            # Written whole under a temporary name, then linked into place: a run starting at
            # the same moment sees either no key or the complete one, and both keep the first.
            tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, key_file)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = key_file.read_text(encoding="ascii").strip()
        if key:
            return key
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII"
        raise ConfigError(f"The signing key file {key_file} cannot be used ({reason}); make "
                          "the working folder (digest.work_dir) writable, fix or delete the "
                          "file, or set DIGEST_SECRET_KEY.") from None
    raise ConfigError(f"The signing key file {key_file} is empty; delete it or set "
                      "DIGEST_SECRET_KEY.")


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read, convert and check the configuration file and the ``DIGEST_*`` environment.

    :param path: the TOML file; default ``$DIGEST_CONFIG`` or ``./digest.toml``.
    :param env: the environment to read secrets from; default ``os.environ``.
    :raises ConfigError: naming the setting and the file for anything missing or wrong.
    """
    env = os.environ if env is None else env
    cfg_path = Path(path or env.get("DIGEST_CONFIG") or DEFAULT_CONFIG)
    try:
        with cfg_path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The configuration file {cfg_path} does not exist; "
                          "pass --config FILE or copy the sample digest.toml.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The configuration file {cfg_path} cannot be read "
                          f"({exc.__class__.__name__}); check its permissions.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The configuration file {cfg_path} is not valid TOML ({exc}); "
                          "fix the syntax there.") from None
    cfg_path = cfg_path.resolve()
    base_dir = cfg_path.parent
    root = Table(data, "", cfg_path)

    main = root.table("digest")
    work_dir_setting = main.str("work_dir", "var")
    work_dir = base_dir / (env.get("DIGEST_WORK_DIR") or work_dir_setting)
    templates_dir = base_dir / main.str("templates_dir", "templates")
    allow_smtputf8 = main.bool("allow_smtputf8", False)
    main.finish()
    if not templates_dir.is_dir():
        raise main.error("digest.templates_dir", f"points to {templates_dir}, which is not a "
                         "folder", "point it at the templates folder")

    db = root.table("database")
    db_url_setting = db.str("url", "sqlite:///digest.db")
    db_url = env.get("DIGEST_DATABASE_URL") or db_url_setting
    db.finish()
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        rel = db_url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            db_url = f"sqlite:///{(work_dir / rel).resolve()}"
    elif not db_url.startswith(("sqlite:", "postgresql")):
        raise db.error("database.url", f"must be a sqlite:/// or postgresql:// URL, not "
                       f"{db_url.split(':')[0]!r}", "fix the URL or DIGEST_DATABASE_URL")

    relay_data = root.raw("relays", [])
    if not isinstance(relay_data, list):
        raise root.error("relays", "must be an array of tables", "write each as [[relays]]")
    relays = tuple(_read_relay(Table(r, f"relays[{i}]", cfg_path), env, i)
                   for i, r in enumerate(relay_data))
    names = [r.name for r in relays]
    if len(set(names)) != len(names):
        raise root.error("relays", "has two relays with the same name", "rename one")

    lists_t = root.table("lists")
    if not lists_t.data:
        raise root.error("lists", "is missing", "add at least one [lists.NAME] table")
    lists = {}
    for name in lists_t.data:
        lists[name] = _read_list(name, lists_t.table(name), base_dir, tuple(names),
                                 templates_dir)
    first_domain = next(iter(lists.values())).from_email.rpartition("@")[2]

    site = _read_site(root.table("site"), first_domain)

    web_t = root.table("web")
    web = WebSettings(
        base_url=web_t.str("base_url", required=True).rstrip("/"),
        host=web_t.str("host", "127.0.0.1"),
        port=web_t.int("port", 8080, 1, 65535),
        secret_keys=_secret_keys(env, work_dir),
        token_max_age=web_t.duration("token_max_age", timedelta(days=365)),
        confirm_max_age=web_t.duration("confirm_max_age", timedelta(days=7)),
    )
    web_t.finish()
    if not _BASE_URL.fullmatch(web.base_url):
        raise web_t.error("web.base_url", f"must be the public https URL of `digest serve` "
                          "(one-click unsubscribe needs https; ASCII only, other characters "
                          "percent-encoded and an international host in punycode; no query "
                          "or fragment), not "
                          f"{web.base_url!r}",
                          "write e.g. base_url = \"https://news.example.org/digest\"")

    fetch_t = root.table("fetch")
    fetch = FetchSettings(
        timeout=fetch_t.duration("timeout", timedelta(seconds=20)).total_seconds(),
        max_bytes=fetch_t.int("max_bytes", 10_000_000, 1024, 1_000_000_000),
        max_redirects=fetch_t.int("max_redirects", 3, 0, 10),
    )
    fetch_t.finish()

    del_t = root.table("delivery")
    delivery = DeliverySettings(
        retry_window=del_t.duration("retry_window", timedelta(hours=24)),
        first_retry=del_t.duration("first_retry", timedelta(minutes=1)),
        max_retry_delay=del_t.duration("max_retry_delay", timedelta(hours=1)),
        message_timeout=del_t.duration("message_timeout", timedelta(seconds=60)).total_seconds(),
        claim_batch=del_t.int("claim_batch", 100, 1, 10_000),
        max_auth_failures=del_t.int("max_auth_failures", 3, 1, 100),
    )
    del_t.finish()

    dkim = None
    if "dkim" in data:
        dkim = read_dkim(root.table("dkim"), env, base_dir, site.domain)
    root.finish()

    return Settings(
        path=cfg_path,
        base_dir=base_dir,
        work_dir=work_dir,
        templates_dir=templates_dir,
        database_url=db_url,
        site=site,
        web=web,
        fetch=fetch,
        delivery=delivery,
        lists=lists,
        relays=relays,
        dkim=dkim,
        allow_smtputf8=allow_smtputf8,
    )

"""Settings: read once from one TOML file plus ``DIGEST_*`` environment secrets, validated, frozen.

This is the only module that reads the configuration file or ``os.environ``; the tables and
the environment it reads are checked by :mod:`digest.config_lists` (``[site]``,
``[lists.NAME]``), :mod:`digest.config_dkim` (``[dkim]``) and :mod:`digest.config_secrets`
(the signing keys), which it hands them to. Everything else receives a :class:`Settings`
(or the part of it it needs) as an argument.

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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from digest.config_dkim import DkimKey, DkimSettings, read_dkim
from digest.config_lists import ListSettings, SiteSettings, read_list, read_site
from digest.config_secrets import Secret, secret_keys
from digest.config_table import Table, parse_duration
from digest.errors import ConfigError
from digest.shipped import SHIPPED_TEMPLATES

__all__ = [
    "DeliverySettings",
    "DkimKey",
    "DkimSettings",
    "FetchSettings",
    "ListSettings",
    "RelaySettings",
    "SchedulerSettings",
    "Settings",
    "SiteSettings",
    "WebSettings",
    "load_settings",
    "parse_duration",
]

DEFAULT_CONFIG = "digest.toml"


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


#: The longest ``[delivery] send_wait``: well inside a day, so a daily job is free again
#: long before the next edition is due.
MAX_SEND_WAIT = timedelta(hours=6)
MAX_SEND_WAIT_TEXT = "6h"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the ledger retries: backoff from ``first_retry`` doubling up to ``retry_window``;
    how long a send waits for retries (``send_wait``); how many ambiguous outcomes a row may
    have (``max_ambiguous``); how long a claim is held (``claim_lease``)."""

    retry_window: timedelta = timedelta(hours=24)
    first_retry: timedelta = timedelta(minutes=1)
    max_retry_delay: timedelta = timedelta(hours=1)
    message_timeout: float = 60.0
    claim_batch: int = 100
    max_auth_failures: int = 3
    #: How long ``send`` (and the scheduler's daily job) waits for retries before it returns
    #: and leaves the waiting rows to the scheduler's pass or a ``worker``.
    send_wait: timedelta = timedelta(minutes=5)
    #: How many times a row is retried after an ambiguous outcome (disconnect or timeout
    #: after the final dot); the next ambiguous outcome ends it as "sent_unconfirmed", so a
    #: row is sent at most ``1 + max_ambiguous`` times. 0: never resend after one.
    max_ambiguous: int = 1
    #: How long a claimed ledger row stays a worker's (None: three message timeouts + 10 s).
    claim_lease: timedelta | None = None


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Locks held in the database: the scheduler's (one per database) and each list's send
    lock. The holder renews every ``heartbeat``; a holder silent for ``lease`` (crashed,
    hung, cut off from the database) loses it, and a standby or the next run takes over."""

    heartbeat: timedelta = timedelta(seconds=5)
    lease: timedelta = timedelta(seconds=30)


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
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
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
        password=Secret(password) if password else None,
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
    templates_setting = main.str("templates_dir", None)
    templates_dir = base_dir / (templates_setting or "templates")
    allow_smtputf8 = main.bool("allow_smtputf8", False)
    main.finish()
    if templates_setting is None and not templates_dir.is_dir():
        templates_dir = SHIPPED_TEMPLATES  # no folder of the newsroom's: the shipped ones
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
        lists[name] = read_list(name, lists_t.table(name), base_dir, tuple(names),
                                 templates_dir)
    first_domain = next(iter(lists.values())).from_email.rpartition("@")[2]

    site = read_site(root.table("site"), first_domain)

    web_t = root.table("web")
    web = WebSettings(
        base_url=web_t.str("base_url", required=True).rstrip("/"),
        host=web_t.str("host", "127.0.0.1"),
        port=web_t.int("port", 8080, 1, 65535),
        secret_keys=secret_keys(env, work_dir),
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
        send_wait=del_t.duration("send_wait", timedelta(minutes=5)),
        max_ambiguous=del_t.int("max_ambiguous", 1, 0, 100),
        claim_lease=del_t.duration("claim_lease", None),
    )
    if delivery.claim_lease is not None and \
            delivery.claim_lease.total_seconds() < 2 * delivery.message_timeout:
        raise del_t.error("delivery.claim_lease", "must be at least twice "
                          "delivery.message_timeout (a claim must outlive a message)",
                          "raise it or leave it out (default: three message timeouts + 10 s)")
    if delivery.send_wait > MAX_SEND_WAIT:
        raise del_t.error("delivery.send_wait", f"must be at most {MAX_SEND_WAIT_TEXT} (a "
                          "send that waits longer still holds the daily job when the next "
                          "edition is due; the scheduler's pass and `worker` finish the "
                          "rows that wait)", "lower it (default: 5m)")
    del_t.finish()

    sched_t = root.table("scheduler")
    scheduler = SchedulerSettings(
        heartbeat=sched_t.duration("heartbeat", timedelta(seconds=5)),
        lease=sched_t.duration("lease", timedelta(seconds=30)),
    )
    sched_t.finish()
    if scheduler.heartbeat <= timedelta(0) or scheduler.lease < 2 * scheduler.heartbeat:
        raise sched_t.error("scheduler.lease", "must be at least twice scheduler.heartbeat "
                            "(and the heartbeat above zero)", "e.g. heartbeat = \"5s\", "
                            "lease = \"30s\"")

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
        scheduler=scheduler,
        allow_smtputf8=allow_smtputf8,
    )

"""The newsroom's language: BCP 47 tags, gettext catalogs and locale-aware dates (Babel).

Catalogs are GNU gettext files in the ``digest`` domain, one folder per language, laid out as
``<dir>/<language>/LC_MESSAGES/digest.po`` (Babel's and gettext's standard layout). Two places
are searched, most specific first: a newsroom's own ``<templates_dir>/locale/`` (it may add a
language or reword one without touching the package) and the catalogs shipped in
``digest/locale/``. Less specific catalogs are fallbacks for missing messages: ``fr-CA`` reads
``fr_CA`` then ``fr``; a message in no catalog stays in English (the msgid).

The ``.po`` files are the source; ``.mo`` files are built from them by the package build
(``setup.py``) or by ``pybabel compile``. A ``.mo`` that is missing or older than its ``.po`` is
not used: the ``.po`` is compiled in memory instead (once per process), so an editable
install, a freshly edited catalog or a newsroom's new language work without a build step.

Nothing here is per subscriber: a render loads its translations once per edition.
"""

from __future__ import annotations

import functools
import gettext as _gettext
import io
import itertools
import logging
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LOCALE_DIR",
    "LanguageError",
    "LocalDate",
    "available_languages",
    "catalog_dirs",
    "format_day",
    "format_long",
    "format_short",
    "has_catalog",
    "load_translations",
    "locale_for",
    "normalise_language",
    "text_direction",
    "weekday_name",
]

log = logging.getLogger("digest.i18n")

DEFAULT_LANGUAGE = "en"
DOMAIN = "digest"
#: The catalogs shipped with the package (``digest/locale/<lang>/LC_MESSAGES/digest.po``).
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


class LanguageError(ValueError):
    """Raised for a language tag that is not BCP 47 or names a locale Babel does not know."""


def normalise_language(tag: str) -> str:
    """The BCP 47 spelling of ``tag`` (``"EN-gb"`` → ``"en-GB"``, ``"pt_BR"`` → ``"pt-BR"``).

    :raises LanguageError: when Babel's ``Locale.parse`` refuses the tag (not a language, or
        a locale CLDR has no data for), with Babel's reason.
    """
    locale = _parse(tag)
    parts = [locale.language]
    if locale.script:
        parts.append(locale.script)
    if locale.territory:
        parts.append(locale.territory)
    if locale.variant:
        parts.append(locale.variant)
    return "-".join(parts)


def _parse(tag: str) -> Locale:
    if not isinstance(tag, str) or not tag.strip():
        raise LanguageError("an empty language tag")
    try:
        return Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except UnknownLocaleError as exc:
        raise LanguageError(f"no locale data for {tag!r} ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise LanguageError(f"{tag!r} is not a language tag ({str(exc).splitlines()[0]})"
                            ) from None


@functools.lru_cache(maxsize=64)
def locale_for(tag: str) -> Locale:
    """The Babel :class:`~babel.Locale` of a BCP 47 tag (cached).

    :raises LanguageError: as :func:`normalise_language`.
    """
    return _parse(tag)


def text_direction(tag: str) -> str:
    """``"rtl"`` for right-to-left scripts (Arabic, Hebrew, ...), else ``"ltr"`` (the HTML
    ``dir`` attribute), from CLDR's character order."""
    return "rtl" if locale_for(tag).character_order == "right-to-left" else "ltr"


def catalog_dirs(templates_dir: Path | None = None) -> tuple[Path, ...]:
    """Where catalogs are looked for, first match wins: the newsroom's, then the shipped."""
    dirs = []
    if templates_dir is not None:
        dirs.append(Path(templates_dir) / "locale")
    dirs.append(LOCALE_DIR)
    return tuple(dirs)


def _candidates(locale: Locale) -> list[str]:
    """Catalog folder names for ``locale``, most specific first (``zh_Hant_TW`` … ``zh``)."""
    names = []
    lang, script, territory = locale.language, locale.script, locale.territory
    if script and territory:
        names.append(f"{lang}_{script}_{territory}")
    if script:
        names.append(f"{lang}_{script}")
    if territory:
        names.append(f"{lang}_{territory}")
    names.append(lang)
    return names


def _catalog_files(tag: str, dirs: Sequence[Path]) -> list[Path]:
    """The ``.po`` (or lone ``.mo``) files for ``tag``, most specific first."""
    found = []
    for name in _candidates(locale_for(tag)):
        for base in dirs:
            folder = base / name / "LC_MESSAGES"
            po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
            if po.is_file():
                found.append(po)
            elif mo.is_file():
                found.append(mo)
    return found


def has_catalog(tag: str, dirs: Sequence[Path]) -> bool:
    """True when some catalog in ``dirs`` serves ``tag`` (directly or as a fallback)."""
    return bool(_catalog_files(tag, dirs))


def available_languages(dirs: Sequence[Path]) -> list[str]:
    """The catalog folder names present in ``dirs`` (``["en", "fr"]``), sorted."""
    names: set[str] = set()
    for base in dirs:
        if base.is_dir():
            names.update(p.name for p in base.iterdir()
                         if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
                         or (p / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file())
    return sorted(names)


def _load_file(path: Path) -> Translations:
    """One catalog: its ``.mo`` when that is at least as new as the ``.po``, else the ``.po``
    compiled in memory (fuzzy entries left out, as ``pybabel compile`` does)."""
    mo = path.with_suffix(".mo")
    po = path.with_suffix(".po")
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    with po.open("rb") as fh:
        catalog = read_po(fh, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@functools.lru_cache(maxsize=32)
def _load(tag: str, dirs: tuple[Path, ...]) -> _gettext.NullTranslations:
    files = _catalog_files(tag, dirs)
    if not files:
        return Translations(None, domain=DOMAIN)  # English msgids as they are
    chain = [_load_file(f) for f in files]
    for specific, general in itertools.pairwise(chain):
        specific.add_fallback(general)
    return chain[0]


def load_translations(tag: str, templates_dir: Path | None = None
                      ) -> _gettext.NullTranslations:
    """The translations for ``tag``: the newsroom's catalogs, then the shipped ones, then
    the English msgids. Loaded once per process and language, then shared (read-only).

    :raises LanguageError: when ``tag`` is not a language Babel knows.
    """
    return _load(normalise_language(tag), catalog_dirs(templates_dir))


def weekday_name(day: date, tag: str) -> str:
    """The day of the week in the language (``Monday``, ``lundi``)."""
    return format_date(day, "EEEE", locale=locale_for(tag))


_STRFTIME_NAMES = {"%A": "EEEE", "%a": "EEE", "%B": "MMMM", "%b": "MMM"}


class LocalDate(date):
    """A date whose ``format`` spec (``{date:%d %B %Y}`` in a subject pattern) writes day and
    month names in the list's language; the numbers are strftime's, as before."""

    language: str = DEFAULT_LANGUAGE

    @classmethod
    def of(cls, day: date, tag: str) -> LocalDate:
        """``day`` speaking ``tag``."""
        local = cls(day.year, day.month, day.day)
        local.language = tag
        return local

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return self.strftime(spec)

    def strftime(self, spec: str) -> str:  # type: ignore[override]
        locale = locale_for(self.language)
        out = []
        i = 0
        while i < len(spec):
            pair = spec[i:i + 2]
            if pair in _STRFTIME_NAMES:
                out.append(format_date(self, _STRFTIME_NAMES[pair], locale=locale)
                           .replace("%", "%%"))
                i += 2
            elif pair == "%%":
                out.append(pair)
                i += 2
            else:
                out.append(spec[i])
                i += 1
        return date.strftime(self, "".join(out))


def format_day(day: date, tag: str) -> str:
    """The edition's date written out in the language (CLDR's full date format):
    ``Monday, August 25, 2025`` (``en``), ``Monday, 25 August 2025`` (``en-GB``),
    ``lundi 25 août 2025`` (``fr``)."""
    return format_date(day, "full", locale=locale_for(tag))


def format_short(moment: datetime | date, tag: str, tz: tzinfo | None = None) -> str:
    """A date in CLDR's medium format: ``Aug 25, 2025`` (``en``), ``25 août 2025`` (``fr``);
    a datetime is first converted to ``tz`` when given."""
    if isinstance(moment, datetime):
        moment = (moment.astimezone(tz) if tz else moment).date()
    return format_date(moment, "medium", locale=locale_for(tag))


def format_long(day: date, tag: str) -> str:
    """A date in CLDR's long format: ``August 25, 2025`` (``en``), ``25 août 2025`` (``fr``)."""
    return format_date(day, "long", locale=locale_for(tag))

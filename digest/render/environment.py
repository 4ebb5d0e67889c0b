"""The Jinja2 environment the email templates run in: strict, autoescaped HTML, filters, and
the list's language (``jinja2.ext.i18n`` with the gettext catalogs of :mod:`digest.i18n`)."""

from __future__ import annotations

import gettext
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal

import jinja2
from babel.dates import format_timedelta

from digest import i18n
from digest.errors import RenderError
from digest.render.text import reference, wrap_text
from digest.shipped import template_folders

__all__ = ["format_date", "format_day", "make_environment", "relative_time"]


def format_day(day: date, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """The day written out in ``language``: ``Monday, August 25, 2025``, ``lundi 25 août
    2025`` (CLDR's full date format, whatever the process locale is)."""
    return i18n.format_day(day, language)


def format_date(moment: datetime, tz: tzinfo | None = None,
                language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """``Aug 25, 2025``, ``25 août 2025`` (in ``tz`` when given; CLDR's medium format)."""
    return i18n.format_short(moment, language, tz)


_Unit = Literal["minute", "hour", "day"]
_UNITS: tuple[tuple[_Unit, int, int], ...] = (("minute", 60, 60), ("hour", 3600, 24),
                                            ("day", 86400, 7))


def relative_time(moment: datetime | None, now: datetime | None, tz: tzinfo | None = None,
                  language: str = i18n.DEFAULT_LANGUAGE,
                  translations: gettext.NullTranslations | None = None) -> str:
    """How long before ``now`` a story appeared: ``3 hours ago`` (``il y a 3 heures``) up to
    six days, counted in whole units (Babel's ``format_timedelta``), else a date.

    A story dated after ``now`` reads ``just now`` (from ``translations``); without a ``now``
    or a ``moment`` the answer is the absolute date or the empty string.
    """
    if moment is None:
        return ""
    if now is None:
        return format_date(moment, tz, language)
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size, limit in _UNITS:
        if seconds < size * limit:
            count = int(seconds // size)
            if count < 1:
                _ = (translations or gettext.NullTranslations()).gettext
                return _("just now")
            # threshold=1: "23 hours ago" stays in hours instead of rounding to "1 day".
            return format_timedelta(timedelta(seconds=-count * size), granularity=unit,
                                    threshold=1, add_direction=True,
                                    locale=i18n.locale_for(language))
    return format_date(moment, tz, language)


def make_environment(templates_dir: Path, language: str = i18n.DEFAULT_LANGUAGE
                     ) -> jinja2.Environment:
    """The environment for ``templates_dir`` speaking ``language`` (a BCP 47 tag):
    autoescape for ``.html``, undefined is an error, ``_``/``gettext``/``ngettext``/
    ``pgettext`` from the list's catalogs (new-style: ``_("Hi %(name)s", name=...)``, values
    escaped, the translation not), and ``lang``/``dir`` for the ``<html>`` element.

    Templates are looked up in ``templates_dir`` first, then among the shipped ones
    (:mod:`digest.shipped`): a newsroom's folder holds only what it changes.

    :raises RenderError: when the folder does not exist or the language is unknown.
    """
    if not Path(templates_dir).is_dir():
        raise RenderError(f"The templates folder {templates_dir} does not exist; "
                          "point digest.templates_dir at it.")
    folders = [str(f) for f in template_folders(Path(templates_dir))]
    try:
        translations = i18n.load_translations(language, Path(templates_dir))
        direction = i18n.text_direction(language)
    except i18n.LanguageError as exc:
        raise RenderError(f"The list's language cannot be used ({exc}); set it to a BCP 47 "
                          "tag such as \"en\" or \"fr\".") from None
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm"),
                                            default_for_string=True, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = language
    env.globals["dir"] = direction
    env.filters["wrap"] = wrap_text
    env.filters["reference"] = reference
    env.filters["day"] = lambda day: format_day(day, language)
    env.filters["shortdate"] = lambda moment, tz=None: format_date(moment, tz, language)
    return env

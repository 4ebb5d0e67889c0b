"""The web app's HTML: Jinja2 environments over templates/web/ with autoescape, one per
language (``jinja2.ext.i18n`` with the list's gettext catalogs), and helpers."""

from __future__ import annotations

import gettext
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from digest import i18n
from digest.config import Settings
from digest.errors import ConfigError
from digest.shipped import template_folders

__all__ = ["Pages", "mask_address"]


_TEMPLATES = ("base.html", "message.html", "manage.html", "subscribe.html",
              "unsubscribe.html", "archive_index.html", "confirm.html")


def mask_address(email: str) -> str:
    """``ana.lopez@example.org`` → ``a•••@e•••.org``: enough to recognise, not to harvest."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "•••"
    name, dot, tld = domain.rpartition(".")
    masked_domain = f"{name[:1]}•••{dot}{tld}" if dot else f"{domain[:1]}•••"
    return f"{local[:1]}•••@{masked_domain}"


class Pages:
    """Renders the web templates into responses in a list's language; every value is
    HTML-escaped. Pages that belong to no list (the home page, errors before a list is
    known) speak :attr:`default_language`, the first list's."""

    def __init__(self, settings: Settings) -> None:
        # The newsroom's web/ first, then the shipped one (digest.shipped), template by
        # template: a copy made before the web app existed has no web/ folder at all.
        found = [str(f) for f in template_folders(settings.templates_dir, "web")]
        if not found:
            raise ConfigError(f"The templates folder {settings.templates_dir} has no web/ "
                              "folder; copy templates/web from digest into it.")
        self._loader = jinja2.FileSystemLoader(found)
        self._templates_dir = settings.templates_dir
        self._globals: dict[str, Any] = {"site": settings.site,
                                         "base_url": settings.web.base_url}
        self.default_language = next((lst.language for lst in settings.lists.values()),
                                     i18n.DEFAULT_LANGUAGE)
        self._envs: dict[str, jinja2.Environment] = {}
        self._lock = threading.Lock()
        env = self.env(self.default_language)
        for name in _TEMPLATES:
            try:
                env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigError(f"The web template {name} is missing from "
                                  f"{settings.templates_dir / 'web'}; restore it.") from None
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"The web template {name} has a syntax error on line "
                                  f"{exc.lineno} ({exc.message}); fix it.") from None

    def translations(self, language: str | None = None) -> gettext.NullTranslations:
        """The catalogs of ``language`` (default: :attr:`default_language`), loaded once."""
        return i18n.load_translations(language or self.default_language, self._templates_dir)

    def gettext(self, language: str | None = None) -> Callable[[str], str]:
        """``_`` for handler code: the translation of a message in ``language``."""
        return self.translations(language).gettext

    def ngettext(self, language: str | None = None) -> Callable[[str, str, int], str]:
        """``ngettext`` in ``language``: the singular or plural form for a count."""
        return self.translations(language).ngettext

    def env(self, language: str | None = None) -> jinja2.Environment:
        """The Jinja2 environment speaking ``language`` (made on first use, then shared)."""
        language = language or self.default_language
        found = self._envs.get(language)
        if found is not None:
            return found
        with self._lock:
            if language not in self._envs:
                env = jinja2.Environment(
                    loader=self._loader, autoescape=True, undefined=jinja2.StrictUndefined,
                    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])
                env.install_gettext_translations(  # type: ignore[attr-defined]
                    self.translations(language), newstyle=True)
                env.globals.update(self._globals, lang=language,
                                   dir=i18n.text_direction(language))
                env.filters["longdate"] = lambda day: i18n.format_long(day, language)
                self._envs[language] = env
            return self._envs[language]

    def html(self, template: str, *, lang: str | None = None, **context: Any) -> str:
        """The rendered text of ``template`` with ``context``, in ``lang``."""
        return self.env(lang).get_template(template).render(context)

    def render(self, template: str, *, status: int = 200,
               headers: Mapping[str, str] | None = None, lang: str | None = None,
               **context: Any) -> HTMLResponse:
        """An HTML response of ``template`` rendered with ``context``, in ``lang``."""
        return HTMLResponse(self.html(template, lang=lang, **context), status_code=status,
                            headers=dict(headers or {}))

    def message(self, heading: str, *lines: str, status: int = 200,
                links: Iterable[tuple[str, str]] = (),
                headers: Mapping[str, str] | None = None,
                lang: str | None = None) -> HTMLResponse:
        """A short page: a heading, a sentence or two, and optional ``(label, url)`` links;
        the caller translates them (the page's own words are translated into ``lang``)."""
        return self.render("message.html", status=status, headers=headers, lang=lang,
                           heading=heading, lines=list(lines), links=list(links))

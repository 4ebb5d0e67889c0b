"""The web app's HTML: a Jinja2 environment over templates/web/ with autoescape, and helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from digest.config import Settings
from digest.errors import ConfigError

__all__ = ["Pages", "mask_address"]

#: The templates shipped next to the package, used when the configured templates folder
#: (a newsroom's copy made before the web app existed) has no web/ folder.
_BUILTIN = Path(__file__).resolve().parent.parent.parent / "templates" / "web"


def mask_address(email: str) -> str:
    """``ana.lopez@example.org`` → ``a•••@e•••.org``: enough to recognise, not to harvest."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "•••"
    name, dot, tld = domain.rpartition(".")
    masked_domain = f"{name[:1]}•••{dot}{tld}" if dot else f"{domain[:1]}•••"
    return f"{local[:1]}•••@{masked_domain}"


class Pages:
    """Renders the web templates into responses; every value is HTML-escaped."""

    def __init__(self, settings: Settings) -> None:
        folders = [settings.templates_dir / "web", _BUILTIN]
        found = [str(f) for f in folders if f.is_dir()]
        if not found:
            raise ConfigError(f"The templates folder {settings.templates_dir} has no web/ "
                              "folder; copy templates/web from digest into it.")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(found), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.globals: dict[str, Any] = {"site": settings.site,
                                        "base_url": settings.web.base_url}
        for name in ("base.html", "message.html", "manage.html", "subscribe.html",
                     "unsubscribe.html", "archive_index.html"):
            try:
                self.env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigError(f"The web template {name} is missing from "
                                  f"{settings.templates_dir / 'web'}; restore it.") from None
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"The web template {name} has a syntax error on line "
                                  f"{exc.lineno} ({exc.message}); fix it.") from None

    def html(self, template: str, **context: Any) -> str:
        """The rendered text of ``template`` with ``context``."""
        return self.env.get_template(template).render({**self.globals, **context})

    def render(self, template: str, *, status: int = 200,
               headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        """An HTML response of ``template`` rendered with ``context``."""
        return HTMLResponse(self.html(template, **context), status_code=status,
                            headers=dict(headers or {}))

    def message(self, heading: str, *lines: str, status: int = 200,
                links: Iterable[tuple[str, str]] = (),
                headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """A short page: a heading, a sentence or two, and optional ``(label, url)`` links."""
        return self.render("message.html", status=status, headers=headers, heading=heading,
                           lines=list(lines), links=list(links))

"""The desk's HTML: a Jinja2 environment over templates/web/desk/ and its static files.

The same conventions as the public pages (autoescape, strict undefined, ``jinja2.ext.i18n``
with ``_()`` around the words, so a catalog can translate the desk later; today it speaks
English). Static files (the stylesheet, a few lines of script) are served from the desk's
own path, never from elsewhere.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.config import Settings
from digest.errors import ConfigError
from digest.shipped import template_folders

from ..pages import mask_address

__all__ = ["DeskPages", "StaticFiles", "mask_addresses"]

_TEMPLATES = ("base.html", "login.html", "message.html", "overview.html", "edition.html",
              "report.html", "subscribers.html", "subscriber.html", "confirm.html",
              "unbuilt.html", "_history.html", "_counts.html")
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml"}


# An address in free text (a relay's reply quotes the recipient); our ledger Message-IDs
# (<e12.s34.abcdef@domain>) identify a message, not a person, and stay as they are.
_ADDRESS = re.compile(r"(?<![\w.+-])(?!e\d+\.s\d+\.[0-9a-z]+@)[\w.+'-]+@[\w-]+(?:\.[\w-]+)+",
                      re.ASCII)


def mask_addresses(text: object) -> str:
    """``text`` with every email address in it masked as the public pages mask them."""
    return _ADDRESS.sub(lambda m: mask_address(m.group(0)), "" if text is None else str(text))


def _when(moment: datetime | None, zone: tzinfo | None = None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "—"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(zone or UTC).strftime(fmt)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:,}".replace(",", "\u202f")


def _percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def _kib(size: int | None) -> str:
    return "—" if size is None else f"{size / 1024:.1f} KB"


class StaticFiles:
    """The desk's static files, read once; ``url(name)`` carries a content hash so browsers
    may cache them for good."""

    def __init__(self, folders: list[Path]) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for folder in reversed(folders):  # the newsroom's copy wins
            static = folder / "static"
            if not static.is_dir():
                continue
            for path in static.iterdir():
                kind = _STATIC_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
                if path.is_file() and kind:
                    data = path.read_bytes()
                    self.files[path.name] = (data, kind, hashlib.sha256(data).hexdigest()[:12])

    def response(self, name: str) -> Response | None:
        """The file ``name`` with a year's cache, or None."""
        found = self.files.get(name)
        if found is None:
            return None
        data, kind, _ = found
        return Response(data, media_type=kind,
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})

    def version(self, name: str) -> str:
        found = self.files.get(name)
        return found[2] if found else "0"


class DeskPages:
    """Renders the desk's templates; every value is HTML-escaped."""

    def __init__(self, settings: Settings, *, desk_url: str) -> None:
        found = template_folders(settings.templates_dir, "web/desk")  # newsroom's, shipped
        if not found:
            raise ConfigError(f"The templates folder {settings.templates_dir} has no web/desk/ "
                              "folder; copy templates/web/desk from digest into it.")
        self.static = StaticFiles(found)
        self.desk_url = desk_url
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(f) for f in found]), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"])
        self.env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
        self.env.globals.update(
            site=settings.site, desk_url=desk_url,
            static=lambda name: f"{desk_url}/static/{name}?v={self.static.version(name)}")
        self.env.filters.update(mask=mask_address, mask_text=mask_addresses, when=_when,
                                number=_number, percent=_percent, kib=_kib)
        for name in _TEMPLATES:
            try:
                self.env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigError(f"The desk template {name} is missing from "
                                  f"{found[0]}; restore it.") from None
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"The desk template {name} has a syntax error on line "
                                  f"{exc.lineno} ({exc.message}); fix it.") from None

    def html(self, template: str, **context: Any) -> str:
        """The rendered text of ``template``."""
        return self.env.get_template(template).render(context)

    def render(self, request: Request | None, template: str, *, status: int = 200,
               headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        """An HTML response of ``template``; the signed-in editor and their form token
        come from ``request`` (None on pages before sign-in)."""
        who = request.scope.get("digest.desk") if request is not None else None
        context.setdefault("editor", who.editor.name if who else None)
        context.setdefault("csrf", who.csrf if who else "")
        context.setdefault("nav", "")
        return HTMLResponse(self.html(template, **context), status_code=status,
                            headers=dict(headers or {}))

    def message(self, request: Request | None, heading: str, *lines: str, status: int = 200,
                links: list[tuple[str, str]] | None = None,
                headers: Mapping[str, str] | None = None,
                button: tuple[str, str, Mapping[str, str]] | None = None) -> HTMLResponse:
        """A short page: a heading, a sentence or two, and ``(label, url)`` links; with
        ``button`` (label, url, fields) a form that posts those fields (and the CSRF token)
        to the url."""
        return self.render(request, "message.html", status=status, headers=headers,
                           heading=heading, lines=list(lines), links=links or [],
                           button=button)

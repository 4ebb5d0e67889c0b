"""CSS inlining with Premailer, configured so responsive and dark-mode email survives it.

Premailer's defaults break responsive email: they strip ``!important`` from media queries
(``strip_important``), fetch ``<link>`` stylesheets over the network (``allow_network``),
overwrite hand-written ``width``/``height`` attributes (``disable_basic_attributes``), and
cssutils shortens colours to three digits (``minimizeColorHash``); the options are those of
Premailer's README (https://github.com/peterbe/premailer) and cssutils' serializer
preferences. Every one of those is switched off here. cssutils logs through one global logger, so it is
configured once, at import: warnings (``mso-*``, ``-webkit-*`` properties) are silenced and
errors are collected per call and turned into :class:`RenderError`.
"""

from __future__ import annotations

import logging
import re
import threading

import cssutils
from premailer import Premailer

from digest.errors import RenderError

__all__ = ["inline_css"]

_EXTERNAL_CSS = re.compile(r"<link\b[^>]*\bstylesheet\b|@import\b", re.IGNORECASE)


class _Collector(logging.Handler):
    """Keeps cssutils ERROR records of the inlining running on this thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        bucket = getattr(self.local, "records", None)
        if bucket is not None:
            bucket.append(record.getMessage())


def _configure_cssutils() -> _Collector:
    cssutils.ser.prefs.minimizeColorHash = False  # keep #112233 (Lotus Notes, Outlook)
    logger = cssutils.log._log  # the logging.Logger behind cssutils' ErrorHandler
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    collector = _Collector()
    logger.addHandler(collector)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    return collector


_COLLECTOR = _configure_cssutils()
# Premailer is not thread-safe (its maintainer's words, PR #218) and shares a CSS cache.
_LOCK = threading.Lock()


def inline_css(html: str, *, template: str = "email/edition.html") -> str:
    """Inline the ``<style>`` rules of a fully rendered document into ``style`` attributes.

    ``<style data-premailer="ignore">`` blocks (media queries, dark mode, client resets) stay
    in ``<head>`` exactly as written. No network or file is touched.

    :param template: the template name, for error messages.
    :raises RenderError: on a cssutils error, a Premailer failure, or external CSS.
    """
    if _EXTERNAL_CSS.search(html):
        raise RenderError(f"The template {template} links an external stylesheet or uses "
                          "@import; put the CSS in a <style> block instead.")
    records: list[str] = []
    with _LOCK:
        _COLLECTOR.local.records = records
        try:
            out = Premailer(
                html,
                allow_network=False,
                allow_loading_external_files=False,
                strip_important=False,
                keep_style_tags=False,
                remove_classes=False,
                disable_basic_attributes=["width", "height"],
                disable_link_rewrites=True,
                base_url=None,
                cssutils_logging_level=logging.ERROR,
            ).transform(pretty_print=False)
        except Exception as exc:  # Premailer/cssutils/lxml raise many unrelated types
            raise RenderError(f"Inlining the CSS of {template} failed "
                              f"({exc.__class__.__name__}: {exc}); fix the template's CSS.") from exc
        finally:
            _COLLECTOR.local.records = None
    if records:
        raise RenderError(f"The CSS of {template} has an error cssutils cannot parse "
                          f"({records[0]}); fix the template's CSS.")
    if _EXTERNAL_CSS.search(out):
        raise RenderError(f"The output of {template} still links an external stylesheet; "
                          "remove it from the template.")
    return out

"""Choosing a story's image from what a feed offers, and its alt text.

Only formats every major mail client shows are used: JPEG, PNG and GIF (caniemail.com
lists WebP, AVIF, SVG, BMP and TIFF as unsupported in Outlook or Gmail). A candidate must
pass on both its declared MIME type (when the feed gives one, on that object or on another
object of the item with the same URL) and its URL's file suffix (when it has one), and one
of the two must say JPEG, PNG or GIF: a WebP served from ``/photo?id=5`` with
``type="image/webp"`` is left out, and so is an image whose format nothing declares (no
type, no suffix). Author avatars are never a story's image. Media objects come before thumbnails, and a
Media RSS ``isDefault`` object before its siblings.

Alt text (WCAG 2.2 success criterion 1.1.1) comes from the media object's description,
else its title, unless that text is a file name ("featured1", "IMG_1234.jpg").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from posixpath import splitext
from urllib.parse import urljoin, urlsplit

from digest.models import Image
from digest.sources.markup import markup_to_text
from digest.sources.text import clean_text, is_http_url, shorten

__all__ = ["ImageRef", "alt_text", "choose_image"]

EMAIL_IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/gif"})
_EMAIL_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif"})
# Suffixes that name some other format: an image mail clients refuse, or not an image.
_OTHER_SUFFIXES = frozenset(
    {".webp", ".avif", ".svg", ".svgz", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".ico",
     ".jxl", ".jp2", ".psd", ".mp4", ".m4v", ".mov", ".webm", ".mp3", ".m4a", ".ogg", ".pdf",
     ".html", ".htm", ".php", ".zip"}
)
_AVATAR = re.compile(r"avatar|gravatar|/profile[_-]?(?:image|photo|pic)", re.IGNORECASE)
_FILE_NAME = re.compile(r"^\S*(?:[\d_./\\-]\S*|\.(?:jpe?g|png|gif|webp|avif|svg))$", re.IGNORECASE)
_ALT_LIMIT = 250


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A candidate image for an item, before it is checked.

    ``kind`` is where it came from (``"content"``, ``"enclosure"``, ``"image"`` for a JSON
    Feed ``image``, ``"thumbnail"``); ``mime`` is the declared type, lower case.
    """

    url: str
    width: int | None = None
    height: int | None = None
    alt: str = ""
    mime: str | None = None
    kind: str = "content"
    is_default: bool = False
    label: str = ""  # the media object's title as written, to recognise an avatar


def choose_image(refs: Sequence[ImageRef], *, base_url: str | None = None) -> Image | None:
    """The best usable image among ``refs`` (relative URLs resolved against ``base_url``).

    Returns None when none is http(s) in an email format or every one is an avatar.
    """
    usable: list[tuple[tuple[int, int, int], ImageRef, str]] = []
    located = [(ref, _absolute(ref.url, base_url)) for ref in refs]
    # A type declared for a URL holds wherever the item names that URL (a JSON Feed's
    # "image" repeated as an attachment with its mime_type).
    declared = {url: ref.mime for ref, url in located if url and ref.mime}
    for order, (ref, url) in enumerate(located):
        if url is None or not email_format(url, ref.mime or declared.get(url)) \
                or _is_avatar(ref, url):
            continue
        rank = (1 if ref.kind == "thumbnail" else 0, 0 if ref.is_default else 1, order)
        usable.append((rank, ref, url))
    if not usable:
        return None
    _, ref, url = min(usable, key=lambda entry: entry[0])
    return Image(url=url, alt=ref.alt, width=ref.width, height=ref.height)


def email_format(url: str, mime: str | None) -> bool:
    """True when the declared type or the URL's suffix says JPEG, PNG or GIF and neither
    names another format (an unknown type and no known suffix is not a known format)."""
    kind = mime.split(";")[0].strip().lower() if mime else ""
    if kind and kind not in EMAIL_IMAGE_TYPES:
        return False
    try:
        suffix = splitext(urlsplit(url).path)[1].lower()
    except ValueError:
        return False
    if suffix in _EMAIL_SUFFIXES:
        return True
    return bool(kind) and suffix not in _OTHER_SUFFIXES


def alt_text(
    *candidates: tuple[str | None, str | None], url: str = ""
) -> str:
    """The first candidate ``(text, type)`` that reads as a description, as plain text.

    ``type`` is the Media RSS ``type`` attribute: ``"html"`` text is de-tagged, anything
    else is plain. File names, URLs and empty strings are passed over; the result is at
    most 250 characters.
    """
    for text, kind in candidates:
        if not text:
            continue
        value = clean_text(markup_to_text(text) if (kind or "").lower() == "html" else text)
        if not value or _FILE_NAME.match(value) or value.lower().startswith(("http:", "https:")):
            continue
        if url and value.casefold() == _stem(url):
            continue
        return shorten(value, _ALT_LIMIT)
    return ""


def _absolute(url: str, base_url: str | None) -> str | None:
    url = (url or "").strip()
    if not url:
        return None
    if not is_http_url(url) and base_url and is_http_url(base_url):
        try:
            url = urljoin(base_url, url)
        except ValueError:
            return None
    return url if is_http_url(url) else None


def _is_avatar(ref: ImageRef, url: str) -> bool:
    return bool(_AVATAR.search(url) or _AVATAR.search(ref.label))


def _stem(url: str) -> str:
    try:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
    except ValueError:
        return ""
    return splitext(name)[0].casefold()

"""Links in the email made https where the site allows it, and the rest counted.

A newsletter's links should be absolute https (mail clients and spam filters treat plain
http links as a weak signal; images on http are blocked as mixed content). A plain ``http://`` link on the newsroom's own host (``site.url``, with or
without ``www.``) is upgraded when ``site.url`` itself is https; any other http link is kept
as the publisher wrote it and counted in one warning per source. An http image cannot be
shown in the email at all (clients block mixed content), so those are counted apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from digest.models import SkippedItem, Story

__all__ = ["secure_links"]

_HREF = re.compile(r'href="(http://[^"]*)"', re.IGNORECASE)


def secure_links(
    stories: Sequence[Story], *, source: str, site_url: str | None
) -> tuple[list[Story], list[SkippedItem]]:
    """``stories`` with http links on the site's host made https, and the warnings.

    Touches ``url``, ``image.url`` and the links in ``summary_html``. Returns the new
    stories (unchanged ones are the same objects) and at most two warnings for ``source``.
    """
    host = _own_host(site_url)
    kept: list[str] = []
    images: list[str] = []
    out: list[Story] = []
    for story in stories:
        changes: dict[str, object] = {}
        url = _upgrade(story.url, host, kept)
        if url != story.url:
            changes["url"] = url
        if story.image is not None:
            image_url = _upgrade(story.image.url, host, images)
            if image_url and image_url != story.image.url:
                changes["image"] = dataclasses.replace(story.image, url=image_url)
        if story.summary_html and "http://" in story.summary_html.lower():
            summary = _HREF.sub(
                lambda m: f'href="{_upgrade(m.group(1), host, kept)}"', story.summary_html
            )
            if summary != story.summary_html:
                changes["summary_html"] = summary
        out.append(dataclasses.replace(story, **changes) if changes else story)  # type: ignore[arg-type]
    warnings: list[SkippedItem] = []
    if kept:
        warnings.append(SkippedItem(source, None, _count(kept, "link", "was kept as written")))
    if images:
        warnings.append(
            SkippedItem(source, None, _count(images, "image", "will not be shown in the email"))
        )
    return out, warnings


def _own_host(site_url: str | None) -> str | None:
    if not site_url:
        return None
    try:
        parts = urlsplit(site_url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    return _bare(parts.hostname)


def _upgrade(url: str | None, host: str | None, plain: list[str]) -> str | None:
    if not url or url[:7].lower() != "http://":
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        plain.append(url)
        return url
    own = host is not None and parts.hostname and _bare(parts.hostname) == host
    if own and parts.port in (None, 80):
        netloc = parts.netloc.rsplit(":80", 1)[0] if parts.port == 80 else parts.netloc
        return parts._replace(scheme="https", netloc=netloc).geturl()
    plain.append(url)
    return url


def _bare(hostname: str) -> str:
    hostname = hostname.lower().rstrip(".")
    return hostname.removeprefix("www.")


def _count(urls: list[str], noun: str, fate: str) -> str:
    unique = list(dict.fromkeys(urls))
    plural = noun if len(unique) == 1 else f"{noun}s"
    verb = fate if len(unique) == 1 else fate.replace("was ", "were ")
    example = unique[0] if len(unique[0]) <= 80 else unique[0][:79] + "…"
    return f"{len(unique)} {plural} on http:// rather than https:// {verb} (e.g. {example})"

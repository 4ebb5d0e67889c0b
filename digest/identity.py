"""Story identity: which two stories are the same story, across sources and across editions.

A story is the same story as an earlier one when its guid or its link, normalised, is the
same. Normalising a link (:func:`link_key`) uses w3lib's ``canonicalize_url`` (host case,
percent-encoding, query order, fragment; the canonical form Scrapy deduplicates requests
by), then drops what does not name a different document: the scheme (``http`` and
``https`` are one story, so a site moving to TLS does not resend its archive), the default
port, a trailing slash, and tracking parameters (``utm_*``, ``fbclid``, ``gclid``,
``mc_cid`` ... see :data:`TRACKING_PARAMETERS`). A guid that is an http(s) URL is normalised
the same way, so a feed's permalink guid and its link give one key.

Headlines are not identity: "Letters to the Editor" recurs with a new link every day. A
story's id made from its headline (:func:`digest.models.story_id`, for stories with
neither guid nor link) is therefore a headline key too, not an identity.

Nothing here does I/O; keys are plain strings, at most :data:`KEY_MAX` characters.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit

from w3lib.url import canonicalize_url

from digest.models import Story, is_derived_id, normalise_headline

__all__ = [
    "KEY_MAX",
    "TRACKING_PARAMETERS",
    "TRACKING_PREFIXES",
    "guid_key",
    "headline_key",
    "identity_keys",
    "link_key",
]

KEY_MAX = 500
"""Longer keys are stored as a hash of themselves (indexes have a size limit per row)."""

TRACKING_PREFIXES = ("utm_", "hsa_", "pk_", "mtm_", "matomo_", "_hs")
"""Query parameters starting with one of these are campaign tracking (Google Analytics'
UTM, HubSpot ads, Piwik/Matomo campaigns, HubSpot email)."""

TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "mkt_tok", "_ga", "_gl", "_ke",
    "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "rb_clickid", "s_cid", "ncid",
    "ocid", "cmpid", "sr_share", "at_medium", "at_campaign", "wt_mc", "wt.mc_id", "ito",
})
"""Click and email-campaign identifiers that ad networks and mailers append to a link
(Facebook, Google Ads, Microsoft Ads, Yandex, X, TikTok, LinkedIn, Instagram, Mailchimp,
Marketo, Google Analytics' linker, Klaviyo, Omeda, Vero, Adobe, ...)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _bounded(key: str) -> str:
    if len(key) <= KEY_MAX:
        return key
    return key[:2] + "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _is_tracking(name: str) -> bool:
    folded = name.casefold()
    return folded in TRACKING_PARAMETERS or folded.startswith(TRACKING_PREFIXES)


@lru_cache(maxsize=8192)  # an edition asks about each story's link several times
def link_key(url: str | None) -> str | None:
    """The normalised form of an absolute http(s) link, as ``"u:" + host/path?query``.

    >>> link_key("HTTP://News.Example.org:80/a/b/?utm_source=rss&id=2&fbclid=x#top")
    'u:news.example.org/a/b?id=2'
    >>> link_key("https://news.example.org/a/b") == link_key("http://news.example.org/a/b/")
    True

    :returns: None for anything that is not an absolute http(s) URL.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        canonical = urlsplit(canonicalize_url(url, keep_fragments=False))
        port = canonical.port
    except ValueError:  # a malformed port or netloc
        return None
    host = (canonical.hostname or "").rstrip(".")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(canonical.query, keep_blank_values=True)
             if not _is_tracking(k)]
    path = canonical.path.rstrip("/")
    key = "u:" + host + path + ("?" + urlencode(query) if query else "")
    return _bounded(key)


def guid_key(guid: str | None) -> str | None:
    """The normalised guid: a URL guid as :func:`link_key`, any other as ``"g:" + guid``.

    :returns: None when there is no guid or the id was made from the headline.
    """
    if not guid or not guid.strip() or is_derived_id(guid):
        return None
    guid = guid.strip()
    if guid[:5].lower() in ("http:", "https"):
        as_link = link_key(guid)
        if as_link is not None:
            return as_link
    return _bounded("g:" + guid)


def headline_key(headline: str) -> str:
    """``"h:"`` + the headline folded by :func:`digest.models.normalise_headline`."""
    return _bounded("h:" + normalise_headline(headline))


def identity_keys(story: Story) -> frozenset[str]:
    """The story's identity: its normalised guid and link (none for a headline-only story)."""
    return frozenset(k for k in (guid_key(story.id), link_key(story.url)) if k is not None)

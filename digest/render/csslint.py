"""A CSS support lint: which CSS in an inlined email major clients do not support at all.

The data is caniemail's (https://www.caniemail.com, MIT; ``digest/data/caniemail.json`` with
its licence next to it). Rules inside ``@media`` and markup inside Outlook conditional
comments are guarded (only clients that understand them apply them), so they are skipped;
everything else, inline ``style`` attributes and top-level ``<style>`` rules, is checked.
Vendor properties (``mso-*``, ``-webkit-*``, ``-ms-*``) target one client on purpose and are
skipped too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import cssutils
import lxml.html

__all__ = ["MAJOR_CLIENTS", "Finding", "caniemail_data", "feature_for", "lint_css"]

MAJOR_CLIENTS = ("gmail.", "outlook.", "apple-mail.")
"""Client families that count (prefixes of caniemail's ``family.platform`` keys)."""

_VALUE_FEATURES = (
    (re.compile(r"\bdisplay\s*:\s*flex\b"), "css-display-flex"),
    (re.compile(r"\bdisplay\s*:\s*grid\b"), "css-display-grid"),
    (re.compile(r"\bdisplay\s*:\s*none\b"), "css-display-none"),
    (re.compile(r"\brgba\("), "css-rgba"),
    (re.compile(r"\brgb\("), "css-rgb"),
    (re.compile(r"\bcalc\("), "css-unit-calc"),
    (re.compile(r"\bvar\("), "css-variables"),
    (re.compile(r"\blinear-gradient\("), "css-linear-gradient"),
    (re.compile(r"\bradial-gradient\("), "css-radial-gradient"),
    (re.compile(r"\d(?:rem)\b"), "css-unit-rem"),
    (re.compile(r"\d(?:vh)\b"), "css-unit-vh"),
    (re.compile(r"\d(?:vw)\b"), "css-unit-vw"),
)


@dataclass(frozen=True)
class Finding:
    """A CSS feature some major client does not support, where it was used, and by whom."""

    feature: str
    declaration: str
    where: str
    clients: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{self.declaration} ({self.feature}) in {self.where}: not supported in "
                f"{', '.join(self.clients)}")


@lru_cache(maxsize=1)
def caniemail_data() -> dict[str, Any]:
    """The caniemail features, keyed by slug (``css-padding``, ``html-style``, ...)."""
    raw = resources.files("digest").joinpath("data/caniemail.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(raw).items() if not k.startswith("_")}


@lru_cache(maxsize=1)
def _keyword_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for slug, feature in caniemail_data().items():
        if feature.get("category") != "css" or not feature.get("keywords"):
            continue
        # Keywords are search tags; only hyphenated ones in the feature's own property
        # family (``border-top`` for "border") name real properties.
        family = str(feature.get("title", "")).split("-")[0].split(" ")[0].lower()
        for word in str(feature["keywords"]).split(","):
            word = word.strip().lower()
            if re.fullmatch(r"[a-z]+(?:-[a-z]+)+", word) and word.split("-")[0] == family:
                index.setdefault(word, slug)
    return index


def feature_for(prop: str) -> str | None:
    """The caniemail slug that covers CSS property ``prop``, or None when it has none.

    ``padding-left`` falls back to ``css-padding``, ``border-top-width`` to ``css-border``.
    """
    prop = prop.lower()
    if prop.startswith(("mso-", "-")):
        return None
    data = caniemail_data()
    parts = prop.split("-")
    while parts:
        name = "-".join(parts)
        if f"css-{name}" in data:
            return f"css-{name}"
        if name in _keyword_index():
            return _keyword_index()[name]
        parts.pop()
    return None


def _unsupported(slug: str) -> tuple[str, ...]:
    support = caniemail_data()[slug]["support"]
    return tuple(sorted(client for client, value in support.items()
                        if client.startswith(MAJOR_CLIENTS) and value.split(" ")[0] == "n"))


def _declarations(style: cssutils.css.CSSStyleDeclaration) -> list[tuple[str, str]]:
    return [(p.name, p.value) for p in style.getProperties(all=True)]


def _check(declarations: list[tuple[str, str]], where: str, seen: set[tuple[str, str]],
           out: list[Finding]) -> None:
    for name, value in declarations:
        text = f"{name}:{value}"
        slugs = {feature_for(name)}
        slugs |= {slug for pattern, slug in _VALUE_FEATURES if pattern.search(text)}
        for slug in sorted(s for s in slugs if s):
            clients = _unsupported(slug)
            key = (slug, text)
            if clients and key not in seen:
                seen.add(key)
                out.append(Finding(feature=slug, declaration=text, where=where, clients=clients))


def lint_css(html: str) -> list[Finding]:
    """Unguarded CSS in ``html`` that Gmail, Outlook or Apple Mail do not support ("n").

    Each (feature, declaration) is reported once, at its first use.
    """
    doc = lxml.html.document_fromstring(html)
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for style_el in doc.iter("style"):
        sheet = cssutils.parseString(style_el.text or "", validate=False)
        for rule in sheet.cssRules:
            if rule.type == rule.STYLE_RULE:
                _check(_declarations(rule.style), f"<style> {rule.selectorText}", seen, findings)
            elif rule.type == rule.IMPORT_RULE:
                _check([("@import", rule.href or "")], "<style>", seen, findings)
    for el in doc.iter():
        if isinstance(el.tag, str) and el.get("style"):
            style = cssutils.parseStyle(el.get("style"), validate=False)
            _check(_declarations(style), f"<{el.tag} class={el.get('class')!r}>", seen, findings)
    return findings

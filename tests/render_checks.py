"""Static checks of a rendered digest email against the email-standards checklist.

``check_html(html)`` and ``check_text(text)`` return human-readable violations (an empty list
means the email passes). Item numbers refer to the checklist in the project's research note
on email standards (A-I). The lead's end-to-end tests reuse these on real output.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import urlsplit

import cssutils
import lxml.html
from lxml import etree

__all__ = ["check_html", "check_text", "head_css", "media_rules"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
_FORBIDDEN = ("script", "form", "iframe", "object", "embed")
_THREE_HEX = re.compile(r"#[0-9a-fA-F]{3}\b(?![0-9a-fA-F])")
_TEMPLATE_RESIDUE = re.compile(r"\{\{|\}\}|\{%|%\}|%7B%7B|%%\w+%%|DGSLOT")
_VAGUE_LINK = {"click here", "here", "learn more", "read more", "more", "link"}
_ENTITY = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#\d{1,7}|#[xX][0-9a-fA-F]{1,6});")
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?>")
_MARKDOWN = re.compile(r"\*\*|__|\]\(|^#{1,6} |```|^>\s", re.MULTILINE)
_URL_LINE = re.compile(r"^(?:https?|mailto):\S+$")


def head_css(doc: etree._Element) -> list[str]:
    """The text of every ``<style>`` element in the document."""
    return [el.text or "" for el in doc.iter("style")]


def media_rules(css: str) -> list[cssutils.css.CSSMediaRule]:
    """The top-level ``@media`` rules of a stylesheet."""
    sheet = cssutils.parseString(css, validate=False)
    return [r for r in sheet.cssRules if r.type == r.MEDIA_RULE]


def _check_css(css_blocks: list[str], doc: etree._Element, all_classes_used: bool) -> list[str]:
    problems = []
    body_classes = {c for el in doc.iter() if isinstance(el.tag, str)
                    for c in (el.get("class") or "").split()}
    total = sum(len(css.encode("utf-8")) for css in css_blocks)
    if total > 16 * 1024:
        problems.append(f"16: <style> blocks hold {total} bytes, over Gmail's 16 KB")
    for css in css_blocks:
        if re.search(r"@import\b", css, re.IGNORECASE):
            problems.append("10: @import in a <style> block")
        if _THREE_HEX.search(css):
            problems.append(f"19: three-digit colour in <style>: {_THREE_HEX.search(css)[0]}")
        if "var(" in css:
            problems.append("P7: CSS variable in <style>")
        sheet = cssutils.parseString(css, validate=False)
        for rule in sheet.cssRules:
            if rule.type != rule.MEDIA_RULE:
                continue
            for inner in rule.cssRules:
                if inner.type != inner.STYLE_RULE:
                    problems.append(f"15: nested at-rule inside @media {rule.media.mediaText}")
                    continue
                for prop in inner.style:
                    if prop.priority != "important":
                        problems.append(f"14: {inner.selectorText} {{{prop.name}}} in @media "
                                        f"{rule.media.mediaText} lacks !important")
                for cls in re.findall(r"\.([A-Za-z0-9_-]+)", inner.selectorText):
                    if all_classes_used and cls not in body_classes:
                        problems.append(f"20: class .{cls} in @media matches no element")
    return problems


def _styles(doc: etree._Element) -> list[tuple[etree._Element, str]]:
    return [(el, el.get("style")) for el in doc.iter() if isinstance(el.tag, str)
            and el.get("style")]


def _link_ok(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("mailto", "tel"):
        return True
    if parts.scheme == "https" and parts.netloc:
        return True
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


def check_html(html: str, *, subject: str | None = None, postal_address: str | None = None,
               all_classes_used: bool = False) -> list[str]:
    """Violations of the checklist's static HTML items in a final, inlined email.

    Links must be absolute https (http only to a loopback host, for local previews).
    ``all_classes_used`` also asks that every class in an ``@media`` rule matches an element
    (item 20; only meaningful for an edition that uses every block: image, button, summary).
    """
    problems: list[str] = []
    if not html.lstrip().lower().startswith("<!doctype html"):
        problems.append("1: the document does not start with <!DOCTYPE html>")
    doc = lxml.html.document_fromstring(html)
    root = doc if doc.tag == "html" else doc.getroottree().getroot()
    if not (root.get("lang") or "").strip():
        problems.append("2: <html> has no lang")
    metas = doc.findall(".//meta")
    if not any((m.get("charset") or "").lower() == "utf-8" or
               "charset=utf-8" in (m.get("content") or "").lower().replace(" ", "")
               for m in metas):
        problems.append("3: no <meta charset=utf-8>")
    if not any(m.get("name") == "viewport" and "width=device-width" in (m.get("content") or "")
               for m in metas):
        problems.append("4: no viewport meta")
    title = doc.findtext(".//title") or ""
    if not title.strip():
        problems.append("5: empty <title>")
    elif subject is not None and title.strip() != subject.strip():
        problems.append("5: <title> differs from the subject")
    for tag in _FORBIDDEN:
        if doc.find(f".//{tag}") is not None:
            problems.append(f"10: forbidden element <{tag}>")
    for link in doc.iter("link"):
        problems.append(f"10: <link rel={link.get('rel')}> in the output")
    body = doc.find(".//body")
    if body is None:
        return [*problems, "the document has no <body>"]
    if list(body.iter("style")):
        problems.append("13: <style> inside <body>")
    css_blocks = head_css(doc)
    problems += _check_css(css_blocks, doc, all_classes_used)
    if any("prefers-color-scheme" in css for css in css_blocks):
        names = {m.get("name") for m in metas}
        for needed in ("color-scheme", "supported-color-schemes"):
            if needed not in names:
                problems.append(f"40: dark styles without <meta name={needed}>")

    for table in doc.iter("table"):
        if table.get("role") not in ("presentation", "none"):
            problems.append("11: layout <table> without role=presentation")
        for attr in ("border", "cellpadding", "cellspacing"):
            if table.get(attr) != "0":
                problems.append(f"11: layout <table> without {attr}=0")
    if not any(t.get("width") == "600" and "max-width:600px" in
               (t.get("style") or "").replace(" ", "") for t in doc.iter("table", "div")):
        problems.append("12: no 600 px container with max-width:600px")
    for el in doc.iter("img", "table", "td", "th"):
        for attr in ("width", "height"):
            value = el.get(attr)
            if value is not None and not re.fullmatch(r"\d+%?", value):
                problems.append(f"17: <{el.tag} {attr}={value!r}> is not an integer")
            if value is not None and value.endswith("%") and el.tag == "img":
                problems.append(f"17: <img {attr}={value!r}> must be pixels")
    for el, style in _styles(doc):
        if _THREE_HEX.search(style):
            problems.append(f"19: three-digit colour in <{el.tag} style>: {style[:60]}")
        if re.search(r"display\s*:\s*(flex|grid)|position\s*:|float\s*:|var\(", style):
            problems.append(f"18: fragile layout CSS on <{el.tag}>: {style[:60]}")
    for el in doc.iter():
        for attr in ("bgcolor", "color"):
            value = el.get(attr) if isinstance(el.tag, str) else None
            if value and _THREE_HEX.fullmatch(value):
                problems.append(f"19: three-digit {attr}={value}")

    comments = re.findall(r"<!--.*?-->", html, re.DOTALL)
    opened = html.count("<!--[if")
    closed = html.count("<![endif]-->")
    if opened != closed:
        problems.append(f"24: {opened} conditional comments opened, {closed} closed")
    if re.search(r"<!\s+\[|\[if\s[^\]]*\n|\[\s+if|<!\[\s+endif", html):
        problems.append("25: mangled conditional comment syntax")
    if "mso" in html and not any("PixelsPerInch" in c for c in comments):
        problems.append("8: no Outlook PixelsPerInch block")

    wrapper = next((el for el in body if isinstance(el.tag, str)), None)
    if wrapper is None or wrapper.get("role") != "article" or not wrapper.get("lang"):
        problems.append("9: the first element in <body> is not role=article with lang")
    else:
        first = next((el for el in wrapper if isinstance(el.tag, str)), None)
        style = (first.get("style") or "").replace(" ", "") if first is not None else ""
        if not all(s in style for s in ("display:none", "max-height:0", "overflow:hidden",
                                        "mso-hide:all")):
            problems.append("29: no hidden preheader first in the article wrapper")

    for img in doc.iter("img"):
        alt = img.get("alt")
        if alt is None:
            problems.append(f"30: <img src={img.get('src')}> has no alt")
        elif re.search(r"\.(png|jpe?g|gif|webp|svg)$|^(image|alt_text|img)$", alt, re.IGNORECASE):
            problems.append(f"30: placeholder alt text {alt!r}")
        if not re.fullmatch(r"\d+", img.get("width") or ""):
            problems.append("31: <img> without an integer width")
        src = img.get("src") or ""
        if not (src.startswith(("https://", "cid:"))):
            problems.append(f"32: image src {src[:60]!r} is not https")
        if re.search(r"\.(svg|webp)(\?|$)", src, re.IGNORECASE):
            problems.append(f"32: SVG or WebP image {src[:60]!r}")

    unsubscribe = False
    for a in doc.iter("a"):
        href = a.get("href")
        text = " ".join(a.text_content().split())
        if not href:
            problems.append(f"34: <a> without href ({text[:40]!r})")
            continue
        if href.lower().startswith("javascript:") or not _link_ok(href):
            problems.append(f"34: link {href[:80]!r} is not absolute https")
        if not text:
            problems.append(f"35: link {href[:60]!r} has no text")
        elif text.casefold().rstrip(" →.") in _VAGUE_LINK:
            problems.append(f"35: vague link text {text!r}")
        if "unsubscribe" in text.casefold():
            unsubscribe = True
    if _TEMPLATE_RESIDUE.search(html):
        problems.append(f"34: template residue {_TEMPLATE_RESIDUE.search(html)[0]!r}")
    if not unsubscribe:
        problems.append("38: no visible unsubscribe link")

    for a in doc.iter("a"):
        style = (a.get("style") or "").replace(" ", "")
        if "padding" in style and "display:inline-block" in style:
            td = a.getparent()
            if td is None or td.tag != "td" or not (td.get("bgcolor") or "background" in
                                                    (td.get("style") or "")):
                problems.append("36: a button <a> is not inside a <td> with a background")

    h1 = list(doc.iter("h1"))
    if len(h1) != 1:
        problems.append(f"37: {len(h1)} <h1> elements (want exactly one)")
    levels = [int(el.tag[1]) for el in doc.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    for before, after in itertools.pairwise(levels):
        if after > before + 1:
            problems.append(f"37: heading level skips from h{before} to h{after}")
            break
    if postal_address is not None:
        visible = " ".join(body.text_content().split())
        if " ".join(postal_address.split()) not in visible:
            problems.append("39: the postal address is not in the footer")
    return problems


def check_text(text: str, *, unsubscribe_url: str | None = None,
               postal_address: str | None = None) -> list[str]:
    """Violations of the checklist's plaintext items (I: 54-58) in a text part."""
    problems = []
    if not text.strip():
        return ["54: the text part is empty"]
    for number, line in enumerate(text.split("\n"), 1):
        if len(line.encode("utf-8")) > 998:
            problems.append(f"56: line {number} is over 998 octets")
        if len(line) > 78 and not _URL_LINE.match(line):
            problems.append(f"56: line {number} has {len(line)} characters: {line[:40]!r}")
        if line != line.rstrip():
            problems.append(f"line {number} ends in whitespace")
    if "\r" in text:
        problems.append("the text part contains a carriage return (the mailer adds CRLF)")
    if _TAG.search(text):
        problems.append(f"58: HTML tag {_TAG.search(text)[0]!r} in the text part")
    if _ENTITY.search(text):
        problems.append(f"58: HTML entity {_ENTITY.search(text)[0]!r} in the text part")
    prose = "\n".join(line for line in text.split("\n") if not _URL_LINE.match(line))
    if _MARKDOWN.search(prose):
        problems.append(f"58: Markdown residue {_MARKDOWN.search(prose)[0]!r} in the text part")
    if _TEMPLATE_RESIDUE.search(text):
        problems.append(f"template residue {_TEMPLATE_RESIDUE.search(text)[0]!r} in the text")
    if unsubscribe_url is not None and unsubscribe_url not in text.split():
        problems.append("55: the unsubscribe URL is not in the text part")
    if postal_address is not None and " ".join(postal_address.split()) not in " ".join(
            text.split()):
        problems.append("55: the postal address is not in the text part")
    return problems

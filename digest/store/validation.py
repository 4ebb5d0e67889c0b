"""Checks for what a subscriber gives us: the address, the display name, section choices."""

from __future__ import annotations

import re
from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

from digest.errors import InvalidSubscriberError

__all__ = ["MAX_NAME", "InvalidSubscriberError", "clean_name", "clean_sections",
           "normalise_address"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?.*\?=", re.DOTALL)
MAX_NAME = 200


def normalise_address(email: str, *, allow_smtputf8: bool = False) -> tuple[str, str]:
    """The address to send to (domain lower-cased, IDNA-encoded) and its case-folded key.

    :raises InvalidSubscriberError: naming why the address is refused.
    """
    text = (email or "").strip()
    if not text:
        raise InvalidSubscriberError("The address is empty.")
    if _CONTROL.search(text):
        raise InvalidSubscriberError("The address contains a control character or line break.")
    try:
        info = validate_email(text, check_deliverability=False, allow_smtputf8=allow_smtputf8,
                              allow_quoted_local=False, allow_domain_literal=False,
                              allow_display_name=False)
    except EmailNotValidError as exc:
        raise InvalidSubscriberError(f"The address is not valid: {exc}") from None
    domain = (info.ascii_domain or info.domain).lower()
    address = f"{info.local_part}@{domain}"
    return address, address.casefold()


def clean_name(name: str | None) -> str | None:
    """A display name safe for a header, or None when blank.

    :raises InvalidSubscriberError: for a line break, a control character or an overlong name.
    """
    if name is None:
        return None
    if _CONTROL.search(name):
        raise InvalidSubscriberError("The name contains a line break or control character, "
                                     "which would break the To: header.")
    name = " ".join(name.split())
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise InvalidSubscriberError(f"The name is longer than {MAX_NAME} characters.")
    if _ENCODED_WORD.search(name):
        # CPython before 3.13 decodes an encoded word's =0D=0A into a real line break when
        # it writes the header (CVE-2024-6923): a name must be plain text.
        raise InvalidSubscriberError("The name looks like an RFC 2047 encoded word (=?...?=); "
                                     "write it as plain text.")
    # With control characters, line breaks and encoded words refused, headerregistry.Address
    # quotes or encodes any other display name safely.
    return name


def clean_sections(sections: Iterable[str] | None,
                   known: Iterable[str] | None = None) -> tuple[list[str] | None, list[str]]:
    """Section preferences (sorted, canonical spelling) and the names not in ``known``.

    Names match known sections case-insensitively; an empty preference means every
    section (None). With ``known`` None every name is accepted as written.
    """
    if sections is None:
        return None, []
    canonical = {k.casefold(): k for k in known} if known is not None else None
    chosen: list[str] = []
    unknown: list[str] = []
    for raw in sections:
        name = " ".join(raw.split())
        if not name:
            continue
        if canonical is not None:
            if name.casefold() not in canonical:
                unknown.append(name)
                continue
            name = canonical[name.casefold()]
        if name not in chosen:
            chosen.append(name)
    return (sorted(chosen) or None), unknown

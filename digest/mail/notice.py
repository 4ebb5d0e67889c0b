"""Mails to a list's editors about an edition: ready for review, held, or missed.

Pure: :func:`notice_message` turns an :class:`EditorNotice` into the bytes of one plain-text
RFC 5322 message (:func:`digest.mail.single.single_message`: its headers written by the same
code as every edition message's); sending it is the pipeline's job (the same relay path as
every single message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from digest.mail.single import single_message

__all__ = ["NOTICE_KINDS", "EditorNotice", "notice_message", "notice_subject"]

NOTICE_KINDS = ("review", "held", "missed")
_TAG = {"review": "Review", "held": "Held", "missed": "Missed"}


@dataclass(frozen=True, slots=True)
class EditorNotice:
    """What the editors are told about one edition.

    ``kind`` is one of :data:`NOTICE_KINDS`; ``due`` and ``closes`` are the send time and
    the send window's end as the list's local wall-clock text ("07:00 Europe/London");
    ``counts`` maps a label to a number ("stories", "sections", "recipients");
    ``warnings`` are whole sentences (unreadable sources, skipped items); ``reason`` says
    why an edition was held or missed; ``preview_url`` is the signed draft preview link;
    ``desk_url`` the edition's page on the editor's desk (sign-in required).
    """

    kind: str
    list_name: str
    list_title: str
    edition_id: int | None
    day: str
    subject: str
    due: str
    closes: str
    counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    reason: str | None = None
    preview_url: str | None = None
    desk_url: str | None = None
    command: str = "python run_digest.py"


def notice_subject(notice: EditorNotice) -> str:
    """e.g. "[Review] Morning Briefing, 2026-11-28: Vote tonight"."""
    tail = f": {notice.subject}" if notice.subject else ""
    return f"[{_TAG[notice.kind]}] {notice.list_title}, {notice.day}{tail}"


def _body(n: EditorNotice) -> str:
    which = f"The {n.list_title} edition of {n.day}"
    if n.edition_id is not None:
        which += f" (edition {n.edition_id})"
    cmd = n.command
    lines: list[str] = []
    if n.kind == "review":
        lines += [f"{which} is ready for review.",
                  (f"It goes out at {n.due} only once an editor approves it; if it is still "
                   f"not approved at {n.closes}, it is missed.")]
    elif n.kind == "held":
        lines += [f"{which} is held and will not go out until an editor approves it.",
                  f"Why: {n.reason or 'held'}.",
                  f"Approved by {n.closes}, it still goes out (send time {n.due})."]
    else:
        lines += [(f"{which} was not sent: its send window ended at {n.closes} (send time "
                   f"{n.due})."), f"Why: {n.reason or 'it was not published in time'}."]
    lines.append("")
    if n.subject:
        lines.append(f"Subject: {n.subject}")
    lines += [f"{label.capitalize()}: {value}" for label, value in n.counts.items()]
    if n.kind != "missed" or n.warnings:
        lines += ["", "Warnings:" if n.warnings else "Warnings: none"]
        lines += [f"- {w}" for w in n.warnings]
    if n.preview_url:
        lines += ["", f"Preview: {n.preview_url}"]
    if n.desk_url:
        lines += [f"On the desk (check, test, approve): {n.desk_url}"]
    if n.edition_id is not None:
        lines += ["", f"Look at it:  {cmd} editions show {n.edition_id}"]
        if n.kind in ("review", "held"):
            lines += [f"Approve it:  {cmd} editions approve {n.edition_id}",
                      f"Cancel it:   {cmd} editions cancel {n.edition_id}"]
            if n.kind == "review":
                lines.append(f"Hold it:     {cmd} editions hold {n.edition_id}")
        else:
            lines.append(f"Send it now: {cmd} send --list {n.list_name} --force")
    return "\n".join(lines) + "\n"


def notice_message(notice: EditorNotice, *, from_header: str, to: str, message_id: str,
                   date: datetime) -> bytes:
    """The notice as message bytes (CRLF line ends, UTF-8 text in quoted-printable or
    base64, whichever is smaller).

    :param from_header: the list's ``From`` (``Name <address>``).
    :param to: one editor's address.
    :param date: an aware datetime for the ``Date`` header (RFC 5322 section 3.3).
    """
    return single_message(from_header=from_header, to=to, subject=notice_subject(notice),
                          text=_body(notice), message_id=message_id, date=date)

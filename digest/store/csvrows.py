"""Reading a subscriber CSV file: validated rows, or a rejection with its line number.

File shape (UTF-8, with or without BOM; a header row is required)::

    email,name,sections,status,<any extra column...>

Only ``email`` is required. ``sections`` names sections separated by ``;`` (empty: every
section). Extra columns are attributes, except ``confirmed_at`` and ``consent_source``,
which ``subscribers export`` writes and an import ignores (they are the store's record, not
the editor's to set). Columns a file does not have are left alone; an empty cell in a
column it has clears that value.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from .schema import MEMBERSHIP_STATUSES
from .validation import InvalidSubscriberError, clean_name, clean_sections, normalise_address

__all__ = ["EXPORT_COLUMNS", "IGNORED_COLUMNS", "SECTION_SEPARATOR", "ImportReport",
           "RejectedRow", "Row", "RowReader", "open_text"]

EXPORT_COLUMNS = ("email", "name", "sections", "status", "confirmed_at", "consent_source")
#: Written by export, ignored by import: the round trip holds and the record stays the store's.
IGNORED_COLUMNS = frozenset({"confirmed_at", "consent_source"})
SECTION_SEPARATOR = ";"
_RESERVED = frozenset(EXPORT_COLUMNS)
_UNDECODED = re.compile("[\udc80-\udcff]")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was not imported (or a warning about one): its first line and why."""

    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, for a dry run, would do): counts per outcome, and every
    rejected row with its reason.

    ``warnings`` are rows imported with something left out (an unknown section); ``kept``
    are rows the file asked to change in a way the ownership rule leaves to the reader
    (sections the reader chose, a pending member's activation, a status the reader left
    behind after an earlier import set it); they are counted in ``updated`` or
    ``unchanged`` too. ``new_members`` lists ``(email, name, sections)`` of the members a
    dry run would add as active (empty for a real import). ``unchanged_since``: see
    :mod:`.filesync` (the file was skipped; every row counts as unchanged).
    """

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    warnings: list[RejectedRow] = field(default_factory=list)
    kept: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False
    new_members: list[tuple[str, str | None, frozenset[str] | None]] = field(
        default_factory=list)
    #: Set when the file was not read again: its bytes and the import's parameters are
    #: those of its last import, at this moment (digest.store.filesync).
    unchanged_since: datetime | None = None

    @property
    def rows(self) -> int:
        """Every data row read (blank lines aside)."""
        return (self.accepted + self.updated + self.unchanged + self.kept_inactive
                + len(self.rejected))

    @property
    def changed(self) -> bool:
        """True when the import added or changed anything (or a dry run would)."""
        return bool(self.accepted or self.updated)


@dataclass(slots=True)
class Row:
    """One validated row: ``line`` is where it starts in the file; ``attributes`` maps
    extra columns to values (None: the cell was empty, which clears the attribute)."""

    line: int
    email: str
    key: str
    name: str | None
    sections: list[str] | None
    status: str | None
    attributes: dict[str, str | None]
    has_name: bool
    has_sections: bool


class RowReader:
    """Turns CSV text into validated rows and rejections, one record at a time."""

    def __init__(self, text: IO[str], *, known: tuple[str, ...] | None, smtputf8: bool,
                 report: ImportReport) -> None:
        self.reader = csv.reader(text, strict=True)
        self.known = known
        self.smtputf8 = smtputf8
        self.report = report
        try:
            header = next(self.reader)
        except StopIteration:
            raise InvalidSubscriberError("The file is empty; it needs a header row such as "
                                         "email,name,sections.") from None
        except (csv.Error, UnicodeError) as exc:
            raise InvalidSubscriberError(f"The header row cannot be read ({exc}); save the "
                                         "file as UTF-8 CSV.") from None
        names = [h.strip() for h in header]
        lowered = [n.lower() for n in names]
        if "email" not in lowered:
            raise InvalidSubscriberError("The file has no email column; its first row must be "
                                         "a header such as email,name,sections.")
        if any(_BAD_TEXT.search(n) for n in names) or len(set(lowered)) != len(lowered) \
                or not all(names):
            raise InvalidSubscriberError("The header row has an empty, repeated or unreadable "
                                         "column name; fix the first row of the file.")
        self.columns = [n if n.lower() not in _RESERVED else n.lower() for n in names]

    def __iter__(self) -> Iterator[Row]:
        line = self.reader.line_num + 1
        while True:
            try:
                record = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.report.rejected.append(RejectedRow(line, f"the row is not valid CSV ({exc})"))
                line = self.reader.line_num + 1
                continue
            start, line = line, self.reader.line_num + 1
            if not record or all(not cell.strip() for cell in record):
                continue
            try:
                yield self._row(start, record)
            except InvalidSubscriberError as exc:
                self.report.rejected.append(RejectedRow(start, str(exc)))

    def _row(self, line: int, record: list[str]) -> Row:
        if len(record) != len(self.columns):
            raise InvalidSubscriberError(f"The row has {len(record)} fields but the header has "
                                         f"{len(self.columns)}.")
        if _UNDECODED.search("".join(record)):
            raise InvalidSubscriberError("The row is not valid UTF-8; save the file as UTF-8.")
        cells = dict(zip(self.columns, record, strict=True))
        email, key = normalise_address(cells["email"], allow_smtputf8=self.smtputf8)
        name = clean_name(cells["name"]) if "name" in cells else None
        sections = None
        if "sections" in cells:
            parts = cells["sections"].split(SECTION_SEPARATOR)
            sections, unknown = clean_sections(parts, self.known)
            for section in unknown:
                self.report.warnings.append(RejectedRow(
                    line, f"unknown section {section!r} ignored"
                    + ("" if sections else "; the subscriber gets every section")))
        status = None
        if cells.get("status", "").strip():
            status = cells["status"].strip().lower()
            if status not in MEMBERSHIP_STATUSES:
                raise InvalidSubscriberError(f"The status {cells['status']!r} is not one of "
                                             f"{', '.join(MEMBERSHIP_STATUSES)}.")
        attributes: dict[str, str | None] = {}
        for column, value in cells.items():
            if column in _RESERVED:
                continue
            if _BAD_TEXT.search(value):
                raise InvalidSubscriberError(f"The column {column!r} holds a control "
                                             "character.")
            attributes[column] = value.strip() or None
        return Row(line, email, key, name, sections, status, attributes,
                    has_name="name" in cells, has_sections="sections" in cells)


def open_text(source: str | os.PathLike[str] | IO[bytes]) -> tuple[io.TextIOWrapper, bool]:
    if isinstance(source, str | os.PathLike):
        try:
            raw: IO[bytes] = Path(source).open("rb")  # noqa: SIM115 - closed by import_csv
        except OSError as exc:
            raise InvalidSubscriberError(f"The file {source} cannot be read "
                                         f"({exc.strerror}); check the path.") from None
        owned = True
    else:
        raw, owned = source, False
    # surrogateescape keeps undecodable bytes visible per row, so one bad row is rejected
    # with its line number instead of ending the import.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                            newline=""), owned



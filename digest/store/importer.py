"""CSV import and export of a list's subscribers: streamed, batched, idempotent, never resurrecting.

File shape (UTF-8, with or without BOM; a header row is required)::

    email,name,sections,status,<any extra column...>

Only ``email`` is required. ``sections`` names sections separated by ``;`` (empty: every
section). ``status`` may only lower a membership (e.g. to "unsubscribed"); it never raises an
unsubscribed, bounced or complained address back to active. Extra columns are kept as
attributes. Columns a file does not have are left alone; an empty cell in a column it has
clears that value. Each row is applied in file order as if imported alone, so importing the
same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .editions import list_id
from .engine import Database, guarded
from .schema import ACTIVE, INACTIVE, MEMBERSHIP_STATUSES, memberships, subscribers, suppressions
from .subscribers import (
    InvalidSubscriberError,
    Membership,
    SubscribersMixin,
    clean_name,
    clean_sections,
    normalise_address,
)

__all__ = ["EXPORT_COLUMNS", "SECTION_SEPARATOR", "ImportMixin", "ImportReport", "RejectedRow"]

EXPORT_COLUMNS = ("email", "name", "sections", "status")
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
    """What an import did: counts per outcome, and every rejected row with its reason.

    ``warnings`` are rows imported with something left out (an unknown section).
    """

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    warnings: list[RejectedRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Every data row read (blank lines aside)."""
        return (self.accepted + self.updated + self.unchanged + self.kept_inactive
                + len(self.rejected))

    @property
    def changed(self) -> bool:
        """True when the import added or changed anything."""
        return bool(self.accepted or self.updated)


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    key: str
    name: str | None
    sections: list[str] | None
    status: str | None
    attributes: dict[str, str | None]
    has_name: bool
    has_sections: bool


def _utc(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


class _Reader:
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

    def __iter__(self) -> Iterator[_Row]:
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

    def _row(self, line: int, record: list[str]) -> _Row:
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
        return _Row(line, email, key, name, sections, status, attributes,
                    has_name="name" in cells, has_sections="sections" in cells)


def _open_text(source: str | os.PathLike[str] | IO[bytes]) -> tuple[IO[str], bool]:
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


class ImportMixin(SubscribersMixin, Database):
    """Store methods for importing and exporting CSV files."""

    def import_csv(self, list_name: str, source: str | os.PathLike[str] | IO[bytes], *,
                   known_sections: Iterable[str] | None = None, confirmed: bool = True,
                   allow_smtputf8: bool = False, batch: int = 1000,
                   now: datetime | None = None) -> ImportReport:
        """Import a CSV file (path or binary stream) into the list, ``batch`` rows per
        transaction, and report what happened to every row.

        :param confirmed: rows without a status become active (else pending).
        :raises InvalidSubscriberError: when the file has no usable header.
        """
        report = ImportReport()
        text, owned = _open_text(source)
        known = tuple(known_sections) if known_sections is not None else None
        moment = _utc(now)
        try:
            pending: dict[str, _Row] = {}
            for row in _Reader(text, known=known, smtputf8=allow_smtputf8, report=report):
                if row.key in pending or len(pending) >= batch:
                    self._apply(list_name, list(pending.values()), confirmed, moment, report)
                    pending = {}
                pending[row.key] = row
            if pending:
                self._apply(list_name, list(pending.values()), confirmed, moment, report)
        finally:
            if owned:
                text.close()
            else:
                text.detach()
        report.rejected.sort(key=lambda r: r.line)
        return report

    def _insert(self, table: sa.Table, conflict: list[str]) -> Any:
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)

    @guarded
    def _apply(self, list_name: str, rows: list[_Row], confirmed: bool, now: datetime,
               report: ImportReport) -> None:
        keys = [r.key for r in rows]
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            subs = self._existing(conn, keys)
            new_subs = [{
                "email": r.email, "email_key": r.key, "name": r.name,
                "attributes": {k: v for k, v in r.attributes.items() if v is not None},
                "created_at": now, "updated_at": now} for r in rows if r.key not in subs]
            if new_subs:
                conn.execute(self._insert(subscribers, ["email_key"]), new_subs)
                subs.update(self._existing(conn, [s["email_key"] for s in new_subs]))
            members = {m.subscriber_id: m for m in conn.execute(
                sa.select(memberships.c.subscriber_id, memberships.c.status,
                          memberships.c.sections)
                .where(memberships.c.list_id == lid,
                       memberships.c.subscriber_id.in_([s.id for s in subs.values()])))}
            blocked = dict(conn.execute(
                sa.select(suppressions.c.email_key, suppressions.c.reason)
                .where(suppressions.c.email_key.in_(keys))).all())
            fresh = {s["email_key"] for s in new_subs}
            inserts, sub_updates, member_updates = [], [], []
            for row in rows:
                sub = subs[row.key]
                member = members.get(sub.id)
                if member is None:
                    status = self._first_status(row.status, confirmed)
                    if row.key in blocked:
                        status = "complained" if blocked[row.key] == "complained" else "bounced"
                        report.kept_inactive += 1
                    elif row.key in fresh:
                        report.accepted += 1
                    else:
                        report.accepted += 1
                        self._sub_update(sub, row, now, sub_updates)
                    inserts.append({
                        "list_id": lid, "subscriber_id": sub.id, "status": status,
                        "sections": row.sections, "source": "import", "created_at": now,
                        "changed_at": now, "confirmed_at": now if status == ACTIVE else None})
                    continue
                if member.status in INACTIVE:
                    report.kept_inactive += 1
                    continue
                changed = self._sub_update(sub, row, now, sub_updates)
                values = self._member_change(member, row, confirmed, now)
                if values:
                    member_updates.append({"b_sid": sub.id, "b_status": values["status"],
                                           "b_sections": values["sections"],
                                           "b_confirmed": values["confirmed"]})
                if changed or values:
                    report.updated += 1
                else:
                    report.unchanged += 1
            if inserts:
                conn.execute(self._insert(memberships, ["list_id", "subscriber_id"]), inserts)
            if sub_updates:
                conn.execute(subscribers.update()
                             .where(subscribers.c.id == sa.bindparam("b_id"))
                             .values(name=sa.bindparam("b_name"),
                                     attributes=sa.bindparam("b_attributes"),
                                     updated_at=now), sub_updates)
            if member_updates:
                conn.execute(memberships.update()
                             .where(memberships.c.list_id == lid,
                                    memberships.c.subscriber_id == sa.bindparam("b_sid"))
                             .values(status=sa.bindparam("b_status"),
                                     sections=sa.bindparam("b_sections", type_=sa.JSON),
                                     confirmed_at=sa.func.coalesce(
                                         sa.bindparam("b_confirmed",
                                                      type_=memberships.c.confirmed_at.type),
                                         memberships.c.confirmed_at),
                                     changed_at=now), member_updates)

    @staticmethod
    def _existing(conn: Connection, keys: list[str]) -> dict[str, Any]:
        query = (sa.select(subscribers.c.id, subscribers.c.email_key, subscribers.c.name,
                           subscribers.c.attributes)
                 .where(subscribers.c.email_key.in_(keys)))
        return {row.email_key: row for row in conn.execute(query)}

    @staticmethod
    def _first_status(status: str | None, confirmed: bool) -> str:
        default = ACTIVE if confirmed else "pending"
        if status is None or (status == ACTIVE and not confirmed):
            return default
        return status

    @staticmethod
    def _sub_update(sub: Any, row: _Row, now: datetime, out: list[dict[str, Any]]) -> bool:
        name = row.name if row.has_name else sub.name
        attributes = dict(sub.attributes or {})
        for key, value in row.attributes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        if name == sub.name and attributes == (sub.attributes or {}):
            return False
        out.append({"b_id": sub.id, "b_name": name, "b_attributes": attributes})
        return True

    @staticmethod
    def _member_change(member: Any, row: _Row, confirmed: bool,
                       now: datetime) -> dict[str, Any] | None:
        status = member.status
        confirmed_at = None
        if row.status in INACTIVE:
            status = row.status
        elif member.status == "pending" and (row.status == ACTIVE or (
                row.status is None and confirmed)):
            status, confirmed_at = ACTIVE, now
        sections = row.sections if row.has_sections else member.sections
        if status == member.status and sections == member.sections:
            return None
        return {"status": status, "sections": sections, "confirmed": confirmed_at}

    def export_csv(self, list_name: str, out: IO[str], *, status: str | None = None) -> int:
        """Write the list's members as CSV (``email,name,sections,status`` then attribute
        columns) to ``out``, streaming; returns the number of rows written."""
        extra: set[str] = set()
        for member in self.iter_members(list_name, status=status):
            extra.update(member.attributes)
        columns = list(EXPORT_COLUMNS) + sorted(extra - _RESERVED)
        writer = csv.writer(out)
        writer.writerow(columns)
        written = 0
        for member in self.iter_members(list_name, status=status):
            writer.writerow(_export_row(member, columns))
            written += 1
        return written


def _export_row(member: Membership, columns: list[str]) -> list[str]:
    sections = (SECTION_SEPARATOR.join(sorted(member.sections))
                if member.sections is not None else "")
    fixed = [member.email, member.name or "", sections, member.status]
    return fixed + [member.attributes.get(c, "") for c in columns[len(EXPORT_COLUMNS):]]

"""CSV import and export of a list's subscribers: streamed, batched, idempotent, and bound by
the ownership rule.

The file shape is in :mod:`.csvrows`. What an import may change is the ownership rule written
in :mod:`.subscribers`: it adds readers, fills names and attributes (of inactive members
too), sets sections only where the reader never chose them, and moves a status only towards
not mailing and never to a status the membership had before (so a reader who came back by
their own confirmation stays back, whatever stale row says otherwise); it never makes an
existing member active, and a bounced or complained status it sets suppresses the address
on every list. Rows it leaves to the reader are reported (``kept``). Each row is applied in
file order as if imported alone, so importing the same file twice changes nothing the second
time. Every membership it adds or changes gets a consent event (cause "import", detail: file
and line), inserted in bulk with its batch.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .consent import consent_sources, event_row, record_events
from .csvrows import (
    EXPORT_COLUMNS,
    SECTION_SEPARATOR,
    ImportReport,
    RejectedRow,
    Row,
    RowReader,
    open_text,
)
from .engine import Database, guarded
from .members import Membership, suppressed_statuses
from .schema import (
    ACTIVE,
    INACTIVE,
    lists,
    membership_events,
    memberships,
    subscribers,
)
from .subscribers import SubscribersMixin, lowers, suppress_everywhere

__all__ = ["EXPORT_COLUMNS", "SECTION_SEPARATOR", "ImportMixin", "ImportReport", "RejectedRow"]

_KEPT_SECTIONS = ("sections chosen by the reader (on the preferences page or at a confirmed "
                  "sign-up) were left alone")
_KEPT_PENDING = "pending until the reader confirms: an import never makes a member active"
_KEPT_BACK = ("the membership was {status} before and the reader came back; an import never "
              "sets a status again (to stop their mail, use `subscribers remove`)")


def _utc(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


@dataclass(slots=True)
class _Batch:
    """The writes one batch of rows calls for."""

    new_members: list[dict[str, Any]] = field(default_factory=list)
    subscriber_updates: list[dict[str, Any]] = field(default_factory=list)
    member_updates: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: (subscriber id, email key, status, file and line) of rows that suppress the address
    suppress: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)


class ImportMixin(SubscribersMixin, Database):
    """Store methods for importing and exporting CSV files."""

    def import_csv(self, list_name: str, source: str | os.PathLike[str] | IO[bytes], *,
                   known_sections: Iterable[str] | None = None, confirmed: bool = True,
                   allow_smtputf8: bool = False, batch: int = 1000, dry_run: bool = False,
                   source_name: str | None = None,
                   now: datetime | None = None) -> ImportReport:
        """Import a CSV file (path or binary stream) into the list, ``batch`` rows per
        transaction, and report what happened to every row.

        :param confirmed: rows without a status make *new* members active (else pending).
        :param dry_run: read the store and report what the import would do, writing
            nothing (``report.new_members`` lists who would be added as active).
        :param source_name: how the consent record names the file (default: its path).
        :raises InvalidSubscriberError: when the file has no usable header.
        """
        report = ImportReport(dry_run=dry_run)
        text, owned = open_text(source)
        known = tuple(known_sections) if known_sections is not None else None
        name = source_name or (os.fspath(source) if isinstance(source, str | os.PathLike)
                               else "stdin")
        moment = _utc(now)
        planned: dict[str, Row] = {}  # rows a dry run has already counted as new
        try:
            pending: dict[str, Row] = {}
            for row in RowReader(text, known=known, smtputf8=allow_smtputf8, report=report):
                if row.key in pending or len(pending) >= batch:
                    self._apply(list_name, list(pending.values()), confirmed=confirmed,
                                now=moment, report=report, file=name, planned=planned)
                    pending = {}
                pending[row.key] = row
            if pending:
                self._apply(list_name, list(pending.values()), confirmed=confirmed,
                            now=moment, report=report, file=name, planned=planned)
        finally:
            if owned:
                text.close()
            else:
                text.detach()
        for found in (report.rejected, report.kept):
            found.sort(key=lambda r: r.line)
        return report

    def _insert(self, table: sa.Table, conflict: list[str]) -> Any:
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)

    @guarded
    def _apply(self, list_name: str, rows: list[Row], *, confirmed: bool, now: datetime,
               report: ImportReport, file: str, planned: dict[str, Row]) -> None:
        keys = [r.key for r in rows]
        dry = report.dry_run
        with (self.read() if dry else self.write()) as conn:
            lid = self._import_list(conn, list_name, create=not dry)
            subs = self._existing(conn, keys)
            new_subs: list[dict[str, Any]] = [{
                "email": r.email, "email_key": r.key, "name": r.name,
                "attributes": {k: v for k, v in r.attributes.items() if v is not None},
                "created_at": now, "updated_at": now} for r in rows if r.key not in subs]
            if new_subs and not dry:
                conn.execute(self._insert(subscribers, ["email_key"]), new_subs)
                subs.update(self._existing(conn, [s["email_key"] for s in new_subs]))
            members = self._members(conn, lid, [s.id for s in subs.values()])
            blocked = suppressed_statuses(conn, keys)
            had = self._had_before(conn, lid, rows, subs)
            fresh = {s["email_key"] for s in new_subs}
            out = _Batch()
            for row in rows:
                sub = subs.get(row.key)
                member = members.get(sub.id) if sub is not None else None
                where = {"file": file, "line": row.line}
                if member is None:
                    self._plan_new(row, sub, lid, fresh, blocked, confirmed, now, report,
                                   planned, out, where)
                else:
                    self._plan_existing(row, sub, member, lid, had, confirmed, now,
                                        report, out, where)
            if not dry:
                self._write(conn, lid, out, now)

    def _plan_new(self, row: Row, sub: Any, lid: int | None, fresh: set[str],
                  blocked: dict[str, str], confirmed: bool, now: datetime,
                  report: ImportReport, planned: dict[str, Row], out: _Batch,
                  where: dict[str, Any]) -> None:
        status = self._first_status(row.status, confirmed)
        if row.key in blocked:
            status = blocked[row.key]
            report.kept_inactive += 1
        elif row.key in planned:  # a dry run met this address in an earlier batch
            seen, planned[row.key] = planned[row.key], row
            same = (seen.name, seen.sections, seen.attributes) == (
                row.name, row.sections, row.attributes)
            if same:
                report.unchanged += 1
            else:
                report.updated += 1
            return
        else:
            report.accepted += 1
        if sub is not None and row.key not in fresh:
            self._sub_update(sub, row, now, out.subscriber_updates)
        if report.dry_run:
            planned[row.key] = row
            if status == ACTIVE:
                name = row.name if row.has_name or sub is None else sub.name
                report.new_members.append((row.email, name, frozenset(row.sections)
                                           if row.sections is not None else None))
            return
        assert lid is not None and sub is not None
        out.new_members.append({
            "list_id": lid, "subscriber_id": sub.id, "status": status,
            "sections": row.sections, "source": "import", "created_at": now,
            "changed_at": now, "confirmed_at": now if status == ACTIVE else None})
        out.events.append(event_row(
            list_id=lid, subscriber_id=sub.id, old_status=None, new_status=status,
            old_sections=None, new_sections=row.sections, actor="import", cause="import",
            detail=where, now=now))
        if status in ("bounced", "complained") and row.key not in blocked:
            out.suppress.append((sub.id, row.key, status, where))

    def _plan_existing(self, row: Row, sub: Any, member: Any, lid: int | None,
                       had: set[tuple[int, str]], confirmed: bool, now: datetime,
                       report: ImportReport, out: _Batch, where: dict[str, Any]) -> None:
        changed = self._sub_update(sub, row, now, out.subscriber_updates)
        status = member.status
        if row.status in INACTIVE and lowers(row.status, member.status):
            if (sub.id, row.status) in had:
                report.kept.append(RejectedRow(row.line, _KEPT_BACK.format(status=row.status)))
            else:
                status = row.status
        elif member.status == "pending" and (row.status == ACTIVE or (
                row.status is None and confirmed)):
            report.kept.append(RejectedRow(row.line, _KEPT_PENDING))
        sections = member.sections
        if row.has_sections and row.sections != member.sections:
            if member.sections_chosen_at is not None:
                report.kept.append(RejectedRow(row.line, _KEPT_SECTIONS))
            else:
                sections = row.sections
        if status == member.status and sections == member.sections:
            if changed:
                report.updated += 1
            elif member.status in INACTIVE:
                report.kept_inactive += 1
            else:
                report.unchanged += 1
            return
        report.updated += 1
        out.member_updates.append({"b_sid": sub.id, "b_status": status,
                                   "b_sections": sections})
        if lid is not None:
            out.events.append(event_row(
                list_id=lid, subscriber_id=sub.id, old_status=member.status,
                new_status=status, old_sections=member.sections, new_sections=sections,
                actor="import", cause="import", detail=where, now=now))
        if status != member.status and status in ("bounced", "complained"):
            out.suppress.append((sub.id, row.key, status, where))

    def _write(self, conn: Connection, lid: int | None, out: _Batch, now: datetime) -> None:
        if out.new_members:
            conn.execute(self._insert(memberships, ["list_id", "subscriber_id"]),
                         out.new_members)
        if out.subscriber_updates:
            conn.execute(subscribers.update()
                         .where(subscribers.c.id == sa.bindparam("b_id"))
                         .values(name=sa.bindparam("b_name"),
                                 attributes=sa.bindparam("b_attributes"),
                                 updated_at=now), out.subscriber_updates)
        if out.member_updates:
            conn.execute(memberships.update()
                         .where(memberships.c.list_id == lid,
                                memberships.c.subscriber_id == sa.bindparam("b_sid"))
                         .values(status=sa.bindparam("b_status"),
                                 sections=sa.bindparam("b_sections", type_=sa.JSON),
                                 changed_at=now), out.member_updates)
        record_events(conn, out.events)
        for sid, key, status, where in out.suppress:
            suppress_everywhere(conn, sid, key, status, actor="import", cause="suppressed",
                                detail=where, now=now, except_list=lid)

    @staticmethod
    def _import_list(conn: Connection, list_name: str, *, create: bool) -> int | None:
        from .editions import list_id

        if create:
            return list_id(conn, list_name, create=True)
        found = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
        return int(found) if found is not None else None

    @staticmethod
    def _members(conn: Connection, lid: int | None, ids: list[int]) -> dict[int, Any]:
        if lid is None or not ids:
            return {}
        return {m.subscriber_id: m for m in conn.execute(
            sa.select(memberships.c.subscriber_id, memberships.c.status,
                      memberships.c.sections, memberships.c.sections_chosen_at)
            .where(memberships.c.list_id == lid, memberships.c.subscriber_id.in_(ids)))}

    @staticmethod
    def _had_before(conn: Connection, lid: int | None, rows: list[Row],
                    subs: dict[str, Any]) -> set[tuple[int, str]]:
        """(subscriber id, status) pairs of the inactive statuses the rows' memberships have
        had at any time (the consent record): an import never sets one of those again."""
        wanted = [subs[r.key].id for r in rows if r.status in INACTIVE and r.key in subs]
        if lid is None or not wanted:
            return set()
        ev = membership_events.c
        return {(int(sid), status) for sid, status in conn.execute(
            sa.select(ev.subscriber_id, ev.new_status).distinct().where(
                ev.list_id == lid, ev.subscriber_id.in_(wanted),
                ev.new_status.in_(INACTIVE)))}

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
    def _sub_update(sub: Any, row: Row, now: datetime, out: list[dict[str, Any]]) -> bool:
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

    def export_csv(self, list_name: str, out: IO[str], *, status: str | None = None) -> int:
        """Write the list's members as CSV (``email,name,sections,status,confirmed_at,
        consent_source`` then attribute columns) to ``out``, streaming; returns the number
        of rows written. ``consent_source`` is the cause of the consent event that last
        made the member active ("confirm", "import", "editor-add", ...)."""
        extra: set[str] = set()
        for member in self.iter_members(list_name, status=status):
            extra.update(member.attributes)
        columns = list(EXPORT_COLUMNS) + sorted(extra - set(EXPORT_COLUMNS))
        writer = csv.writer(out)
        writer.writerow(columns)
        written = 0
        page: list[Membership] = []
        for member in self.iter_members(list_name, status=status):
            page.append(member)
            if len(page) == 1000:
                written += self._export_page(list_name, page, columns, writer)
                page = []
        return written + self._export_page(list_name, page, columns, writer)

    @guarded
    def _export_page(self, list_name: str, page: list[Membership], columns: list[str],
                     writer: Any) -> int:
        if not page:
            return 0
        with self.read() as conn:
            lid = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
            sources = consent_sources(conn, int(lid), [m.subscriber_id for m in page]) \
                if lid is not None else {}
        writer.writerows(_export_row(m, columns, sources.get(m.subscriber_id, ""))
                         for m in page)
        return len(page)


def _export_row(member: Membership, columns: list[str], consent_source: str) -> list[str]:
    sections = (SECTION_SEPARATOR.join(sorted(member.sections))
                if member.sections is not None else "")
    confirmed = member.confirmed_at.isoformat(timespec="seconds") if member.confirmed_at \
        else ""
    fixed = [member.email, member.name or "", sections, member.status, confirmed,
             consent_source]
    return fixed + [member.attributes.get(c, "") for c in columns[len(EXPORT_COLUMNS):]]

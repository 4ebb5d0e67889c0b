"""Importing a subscribers file by path, and not reading it again while it is unchanged.

``send`` (and the scheduler, and the desk's send) imports a list's ``subscribers_files``
before every edition. Importing the same file twice changes nothing the second time (the
ownership rule in :mod:`.subscribers` and :mod:`.importer`: an import never makes a member
active, never sets a status the membership had before, never overwrites sections a reader
chose), so an unchanged file can be skipped: its import would only spend time (about 60 us
per row, mostly address validation). A file counts as unchanged when the SHA-256 of its
bytes and of the import's parameters (the list's known sections, SMTPUTF8, confirmed, and
:data:`IMPORT_RULES`, the version of the import's rules) equal those recorded by the last
import of that path into that list (table ``subscriber_files``). The digest is taken of the
bytes the import actually read, so a file edited during an import is read again next time.
Any change to the file, however small, means a full import under the same rules as ever.

A skipped import returns an :class:`ImportReport` with ``unchanged_since`` set, every row
counted as unchanged, and the rows the recorded import rejected or warned about (they are
the file's, so they still stand).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .csvrows import ImportReport, RejectedRow
from .engine import guarded
from .importer import ImportMixin
from .schema import lists, subscriber_files
from .validation import InvalidSubscriberError

__all__ = ["IMPORT_RULES", "FileSyncMixin"]

#: Bump when the import's rules change, so every recorded file is read again once.
IMPORT_RULES = "2026-11-30"
_CHUNK = 1 << 20
#: Rows of a report kept for a skipped import to repeat (per kind); the rest are counted.
_KEPT_ROWS = 1000


class _Hashing(io.RawIOBase):
    """A binary file that hashes (SHA-256) and counts the bytes read through it."""

    def __init__(self, raw: io.RawIOBase) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer) or 0
        if n:
            self.sha.update(memoryview(buffer)[:n])
            self.size += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _params(known: tuple[str, ...] | None, smtputf8: bool, confirmed: bool) -> str:
    text = json.dumps([IMPORT_RULES, list(known) if known is not None else None,
                       smtputf8, confirmed])
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _rows(found: list[RejectedRow]) -> list[list[Any]]:
    return [[r.line, r.reason] for r in found[:_KEPT_ROWS]]


class FileSyncMixin(ImportMixin):
    """Store methods that import a subscribers file by path and skip it while unchanged."""

    def import_file(self, list_name: str, path: str | os.PathLike[str], *,
                    known_sections: Iterable[str] | None = None, confirmed: bool = True,
                    allow_smtputf8: bool = False, dry_run: bool = False,
                    skip_unchanged: bool = True, now: datetime | None = None) -> ImportReport:
        """Import the CSV file at ``path`` into the list (:meth:`import_csv`) and record its
        SHA-256; with ``skip_unchanged``, a file whose bytes and import parameters match the
        record of its last import is not read again (the report says so in
        ``unchanged_since``). A dry run records nothing.

        :raises InvalidSubscriberError: the file cannot be read or has no usable header.
        """
        file = Path(path)
        key = str(file.resolve())
        known = tuple(known_sections) if known_sections is not None else None
        params = _params(known, allow_smtputf8, confirmed)
        try:
            if skip_unchanged:
                skipped = self._unchanged(list_name, key, params, _digest(file), dry_run)
                if skipped is not None:
                    return skipped
            raw = file.open("rb", buffering=0)
        except OSError as exc:
            raise InvalidSubscriberError(f"The file {path} cannot be read ({exc.strerror}); "
                                         "check the path.") from None
        hashing = _Hashing(raw)  # type: ignore[arg-type]
        with io.BufferedReader(hashing, _CHUNK) as source:
            report = self.import_csv(list_name, source, known_sections=known,
                                     confirmed=confirmed, allow_smtputf8=allow_smtputf8,
                                     dry_run=dry_run, source_name=os.fspath(path), now=now)
            source.read()  # the digest covers the whole file, whatever the reader left
        if not dry_run:
            self._record_file(list_name, key, params, hashing.sha.hexdigest(), hashing.size,
                              report, now)
        return report

    @guarded
    def _unchanged(self, list_name: str, key: str, params: str, sha256: str,
                   dry_run: bool) -> ImportReport | None:
        f = subscriber_files.c
        with self.read() as conn:
            row = conn.execute(
                sa.select(f.rows, f.report, f.imported_at)
                .join(lists, lists.c.id == f.list_id)
                .where(lists.c.name == list_name, f.path == key, f.sha256 == sha256,
                       f.params == params)).first()
        if row is None:
            return None
        saved = row.report or {}
        report = ImportReport(dry_run=dry_run, unchanged_since=row.imported_at)
        report.rejected = [RejectedRow(int(n), str(r)) for n, r in saved.get("rejected", [])]
        report.warnings = [RejectedRow(int(n), str(r)) for n, r in saved.get("warnings", [])]
        report.unchanged = max(0, int(row.rows) - int(saved.get("rejected_count",
                                                                 len(report.rejected))))
        return report

    @guarded
    def _record_file(self, list_name: str, key: str, params: str, sha256: str, size: int,
                     report: ImportReport, now: datetime | None) -> None:
        from .editions import list_id

        saved = {"rejected": _rows(report.rejected), "warnings": _rows(report.warnings),
                 "rejected_count": len(report.rejected)}
        values = {"sha256": sha256, "params": params, "size": size, "rows": report.rows,
                  "report": saved, "imported_at": now or datetime.now(UTC)}
        f = subscriber_files.c
        with self.write() as conn:
            lid = list_id(conn, list_name, create=True)
            done = conn.execute(subscriber_files.update().where(
                f.list_id == lid, f.path == key).values(**values)).rowcount
            if not done:
                conn.execute(subscriber_files.insert().values(list_id=lid, path=key,
                                                              **values))

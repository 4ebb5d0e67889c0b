"""CSV import and export: reports per row, idempotent re-import, no resurrection, round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from digest.store import ImportReport, InvalidSubscriberError, RejectedRow, Store, open_store

pytest_plugins = ["store_backends"]

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"
SAMPLE = Path(__file__).parent.parent / "subscribers" / "sample.csv"
SECTIONS = ("Politics", "World", "Business", "Top Stories", "Sports", "Health",
            "Entertainment", "Lifestyle", "Technology")


def _import(store: Store, path: Path | io.BytesIO, **kwargs) -> ImportReport:
    return store.import_csv("daily", path, known_sections=SECTIONS, **kwargs)


def _counts(report: ImportReport) -> tuple[int, int, int, int, int]:
    return (report.accepted, report.updated, report.unchanged, report.kept_inactive,
            len(report.rejected))


def _snapshot(store: Store) -> list[tuple]:
    return [(m.email, m.name, m.sections, m.status, m.attributes)
            for m in store.iter_members("daily")]


@pytest.mark.parametrize("batch", [1000, 3])
def test_mixed_file_reports_every_row(store: Store, batch: int) -> None:
    report = _import(store, FIXTURES / "mixed.csv", batch=batch)

    assert _counts(report) == (7, 0, 1, 0, 7)
    assert [r.line for r in report.rejected] == [3, 5, 6, 9, 10, 12, 16]
    reasons = {r.line: r.reason for r in report.rejected}
    assert "not valid" in reasons[3]
    assert "3 fields but the header has 5" in reasons[5]
    assert "line break" in reasons[6]
    assert "UTF-8" in reasons[9]
    assert "sleeping" in reasons[10]
    assert "Internationalized" in reasons[12]
    assert "control character" in reasons[16]
    assert report.warnings == [
        RejectedRow(8, "unknown section 'Cooking' ignored"),
        RejectedRow(17, "unknown section 'Cooking' ignored"),
        RejectedRow(17, "unknown section 'Knitting' ignored"),
        RejectedRow(18, "unknown section 'cooking' ignored; the subscriber gets every section"),
    ]
    members = {m.email: m for m in store.iter_members("daily")}
    assert sorted(members) == ["ann@example.org", "bob@example.com", "erin@example.org",
                               "hana@xn--bcher-kva.example", "ivan@example.org",
                               "kim@example.org", "lou@example.org"]
    ann = members["ann@example.org"]
    assert (ann.name, ann.sections, ann.status, ann.attributes) == (
        "Ann Lee", frozenset({"Politics", "World"}), "active", {"city": "Leeds"})
    assert members["erin@example.org"].sections == frozenset({"World"})
    assert members["kim@example.org"].sections == frozenset({"Sports"})
    assert members["lou@example.org"].sections is None
    assert members["ivan@example.org"].status == "unsubscribed"
    assert all(m.source == "import" for m in members.values())


def test_reimport_changes_nothing(store: Store) -> None:
    _import(store, FIXTURES / "mixed.csv")
    before = _snapshot(store)
    again = _import(store, FIXTURES / "mixed.csv")
    assert _counts(again) == (0, 0, 7, 1, 7)
    assert not again.changed
    assert _snapshot(store) == before


def test_status_column_only_lowers(store: Store) -> None:
    _import(store, FIXTURES / "mixed.csv")
    lowered = _import(store, FIXTURES / "status-changes.csv")
    assert _counts(lowered) == (0, 2, 1, 0, 0)
    statuses = {m.email: m.status for m in store.iter_members("daily")}
    assert statuses["ann@example.org"] == "unsubscribed"
    assert statuses["hana@xn--bcher-kva.example"] == "complained"

    again = _import(store, FIXTURES / "mixed.csv")
    assert _counts(again) == (0, 0, 4, 4, 7)  # ann twice, ivan, hana kept inactive
    statuses = {m.email: m.status for m in store.iter_members("daily")}
    assert statuses["ann@example.org"] == "unsubscribed"
    assert statuses["ivan@example.org"] == "unsubscribed"
    assert statuses["hana@xn--bcher-kva.example"] == "complained"


def test_active_status_never_resurrects(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org")
    store.set_status("daily", "ann@example.org", "bounced")
    report = _import(store, io.BytesIO(b"email,status\nann@example.org,active\n"))
    assert _counts(report) == (0, 0, 0, 1, 0)
    member = store.get_membership("daily", "ann@example.org")
    assert member is not None and member.status == "bounced"


def test_pending_import_is_never_confirmed_by_a_file(store: Store) -> None:
    data = b"email,status\nann@example.org,\nbob@example.org,active\ncat@example.org,pending\n"
    report = _import(store, io.BytesIO(data), confirmed=False)
    assert _counts(report) == (3, 0, 0, 0, 0)
    assert {m.status for m in store.iter_members("daily")} == {"pending"}
    # Only the reader's confirmation makes a pending member active: a file cannot.
    again = _import(store, io.BytesIO(b"email,status\nann@example.org,\ncat@example.org,active\n"))
    assert _counts(again) == (0, 0, 2, 0, 0)
    assert [(k.line, k.reason) for k in again.kept] == [
        (2, "pending until the reader confirms: an import never makes a member active"),
        (3, "pending until the reader confirms: an import never makes a member active")]
    ann = store.get_membership("daily", "ann@example.org")
    assert ann is not None and ann.status == "pending" and ann.confirmed_at is None


def test_columns_absent_are_left_alone_and_empty_cells_clear(store: Store) -> None:
    store.add_subscriber("daily", "ann@example.org", name="Ann", sections=["World"],
                         attributes={"city": "Lyon", "team": "Sport"})
    only_email = _import(store, io.BytesIO(b"email\nann@example.org\n"))
    assert _counts(only_email) == (0, 0, 1, 0, 0)
    cleared = _import(store, io.BytesIO(b"email,name,sections,city\nann@example.org,,,\n"))
    assert _counts(cleared) == (0, 1, 0, 0, 0)
    member = store.get_membership("daily", "ann@example.org")
    assert member is not None
    assert (member.name, member.sections, member.attributes) == (None, None, {"team": "Sport"})


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"name,city\nAnn,Lyon\n", "no email column"),
    (b"email,city,City\nann@example.org,a,b\n", "repeated"),
])
def test_unusable_files_are_refused_whole(store: Store, data: bytes, message: str) -> None:
    with pytest.raises(InvalidSubscriberError, match=message):
        _import(store, io.BytesIO(data))


def test_missing_file_is_reported(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidSubscriberError, match="cannot be read"):
        _import(store, tmp_path / "nope.csv")


def test_sample_list_imports_cleanly(store: Store) -> None:
    report = _import(store, SAMPLE)
    assert _counts(report) == (26, 0, 0, 0, 0)
    assert report.warnings == []
    amelie = store.get_membership("daily", "amelie.durand@example.org")
    assert amelie is not None and amelie.name == "Amélie Durand"
    assert amelie.attributes == {"city": "Lyon"}


def test_export_round_trips(store: Store, tmp_path: Path) -> None:
    _import(store, SAMPLE)
    _import(store, FIXTURES / "mixed.csv")
    _import(store, FIXTURES / "status-changes.csv")
    store.add_subscriber("daily", "pending@example.org", status="pending",
                         attributes={"team": "News, Desk"})
    out = io.StringIO()
    written = store.export_csv("daily", out)
    text = out.getvalue()
    assert written == 34
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["email", "name", "sections", "status", "confirmed_at", "consent_source",
                      "city", "team"]

    again = store.import_csv("daily", io.BytesIO(text.encode()), known_sections=SECTIONS)
    assert _counts(again) == (0, 0, 31, 3, 0) and again.warnings == []
    assert again.kept == []

    def without_record(csv_text: str) -> list[list[str]]:
        # confirmed_at and consent_source are the store's record: import ignores them.
        return [row[:4] + row[6:] for row in csv.reader(io.StringIO(csv_text))]

    with open_store(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        fresh = copy.import_csv("daily", io.BytesIO(text.encode()), known_sections=SECTIONS)
        assert _counts(fresh) == (34, 0, 0, 0, 0)
        assert _snapshot(copy) == _snapshot(store)
        round_trip = io.StringIO()
        copy.export_csv("daily", round_trip)
    assert without_record(round_trip.getvalue()) == without_record(text)


def test_export_filters_by_status(store: Store) -> None:
    _import(store, FIXTURES / "mixed.csv")
    out = io.StringIO()
    assert store.export_csv("daily", out, status="unsubscribed") == 1
    assert out.getvalue().splitlines()[1].startswith("ivan@example.org,Ivan,,unsubscribed")

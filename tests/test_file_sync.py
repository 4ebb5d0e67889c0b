"""A subscribers file imported by path is not read again while unchanged (digest.store.filesync);
any edit is imported in full, under the same ownership rule, and never re-activates anyone."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from digest.store import Store

pytest_plugins = ["store_backends"]

SECTIONS = ("Politics", "World", "Business")
HEADER = "email,name,sections\n"


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _status(store: Store, email: str) -> str:
    member = store.get_membership("daily", email)
    assert member is not None
    return member.status


def test_unchanged_file_is_skipped_and_reports_its_rejected_rows(store: Store,
                                                                 tmp_path: Path) -> None:
    path = _write(tmp_path / "readers.csv", ["ann@example.org,Ann,World",
                                            "not an address,Bob,", "cy@example.org,Cy,Cooking"])
    first = store.import_file("daily", path, known_sections=SECTIONS)
    assert (first.accepted, len(first.rejected), first.unchanged_since) == (2, 1, None)

    again = store.import_file("daily", path, known_sections=SECTIONS)

    assert again.unchanged_since is not None and not again.changed
    assert (again.accepted, again.updated, again.unchanged) == (0, 0, 2)
    assert [r.line for r in again.rejected] == [3] and again.rows == first.rows == 3
    assert [(w.line, w.reason) for w in again.warnings] == [
        (4, "unknown section 'Cooking' ignored; the subscriber gets every section")]
    # A dry run of the unchanged file is skipped too; different parameters read it again.
    assert store.import_file("daily", path, known_sections=SECTIONS,
                             dry_run=True).unchanged_since is not None
    assert store.import_file("daily", path, known_sections=("World",)).unchanged_since is None
    # An explicit import always reads the file.
    assert store.import_file("daily", path, known_sections=SECTIONS,
                             skip_unchanged=False).unchanged_since is None


def test_edited_file_is_imported_and_never_reactivates(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "readers.csv", ["ann@example.org,Ann,World", "bo@example.org,Bo,"])
    store.import_file("daily", path, known_sections=SECTIONS)
    ann = store.get_membership("daily", "ann@example.org")
    assert ann is not None
    assert store.unsubscribe(ann.subscriber_id, "daily")

    skipped = store.import_file("daily", path, known_sections=SECTIONS)
    assert skipped.unchanged_since is not None
    assert _status(store, "ann@example.org") == "unsubscribed"

    # Same size, one byte different: read in full. Ann's row still has no status column,
    # Bo's name changes, a new reader arrives; Ann stays unsubscribed.
    _write(path, ["ann@example.org,Ann,World", "bo@example.org,Bu,",
                  "cy@example.org,Cy,Business"])
    dry = store.import_file("daily", path, known_sections=SECTIONS, dry_run=True)
    assert (dry.unchanged_since, dry.accepted, dry.updated) == (None, 1, 1)
    report = store.import_file("daily", path, known_sections=SECTIONS)  # the dry run
    assert report.unchanged_since is None  # recorded nothing
    assert (report.accepted, report.updated, report.kept_inactive) == (1, 1, 1)
    assert _status(store, "ann@example.org") == "unsubscribed"
    bo = store.get_membership("daily", "bo@example.org")
    assert bo is not None and bo.name == "Bu"
    assert _status(store, "cy@example.org") == "active"
    assert store.import_file("daily", path, known_sections=SECTIONS).unchanged_since

    # A status row the reader left behind is not set again after a skip either.
    _write(path, ["ann@example.org,Ann,World", "bo@example.org,Bu,"])
    store.import_file("daily", path, known_sections=SECTIONS)
    assert _status(store, "ann@example.org") == "unsubscribed"
    assert _status(store, "cy@example.org") == "active"  # no longer in the file: untouched


def test_send_skips_the_unchanged_file_and_says_so(tmp_path: Path, store_url: str) -> None:
    from digest.cli import main

    readers = _write(tmp_path / "readers.csv", ["ann@example.org,Ann,World", "x,Bad,"])
    front = Path(__file__).parent.parent / "content" / "front-page.txt"
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[digest]\nwork_dir = "{tmp_path / "var"}"\n[database]\nurl = "{store_url}"\n'
        '[site]\nname = "T"\nurl = "https://news.example.org"\n'
        'postal_address = "1 Press Row"\n[web]\nbase_url = "https://news.example.org/"\n'
        f'[lists.daily]\ntitle = "Daily"\nsources = ["{front}"]\nmax_age = "45d"\n'
        'from = "T <t@news.example.org>"\n'
        f'subscribers_files = ["{readers}"]\n', encoding="utf-8")
    runner = CliRunner()
    env = {"DIGEST_SECRET_KEY": "s" * 40}
    first = runner.invoke(main, ["subscribers", "import", str(readers), "--list", "daily",
                                 "--config", str(config)], env=env)
    assert first.exit_code == 0, first.output
    assert "1 new" in first.output and "1 rejected" in first.output
    dry = runner.invoke(main, ["send", "--dry-run", "--list", "daily", "--as-of",
                               "2025-08-25T07:00", "--config", str(config)], env=env)
    assert dry.exit_code == 0, dry.output
    assert "unchanged since its import at" in dry.output
    assert "rejected line 3" in dry.output
    assert "Dry run: built 1 messages" in dry.output

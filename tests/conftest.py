"""Shared test fixtures: a clean environment and paths to the repository's files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.logs import ISOFormatter

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED_PAGE = FIXTURES / "pages" / "seed.txt"

# Variables the test harness itself needs; every other DIGEST_* is cleared per test.
_KEEP = {"DIGEST_TEST_DATABASE_URL"}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's DIGEST_* settings (cf. httpx's clean_environ)."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") and name not in _KEEP:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def seed_page() -> Path:
    return SEED_PAGE


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A command run in-process (CliRunner) configures logging for its process; undo that
    after each test so one test's level and handler do not leak into the next."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, ISOFormatter):
            root.removeHandler(handler)
    root.setLevel(level)

"""Shared test fixtures: a clean environment and paths to the repository's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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

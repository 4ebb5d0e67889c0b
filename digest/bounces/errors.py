"""The bounce sources' error lives in the project's error tree; re-exported here."""

from __future__ import annotations

from digest.errors import BounceSourceError

__all__ = ["BounceSourceError"]

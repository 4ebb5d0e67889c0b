"""The store: lists, subscribers, editions and the delivery ledger in SQLite or PostgreSQL.

``open_store(url)`` returns a :class:`Store`, migrated once under a database-wide lock
(:mod:`digest.store.migrate`); :mod:`digest.store.ledger` holds the ledger contract the
delivery workers rely on, :mod:`digest.store.leases` the locks the scheduler and sends hold.
Who may change a subscriber's status and sections is written once, in
:mod:`digest.store.subscribers`, and every change is recorded in :mod:`digest.store.consent`.
"""

from __future__ import annotations

from typing import Self

from .bounces import BouncesMixin, DeliveryRef
from .carried import CarriedMixin, StoryRecord
from .consent import ConsentMixin, MembershipEvent
from .editions import EditionRecord, EditionsMixin
from .editors import Editor, EditorsMixin, InvalidEditorError
from .engine import create_engine, guarded
from .filesync import FileSyncMixin
from .importer import ImportReport, RejectedRow
from .leases import Lease, LeasesMixin
from .ledger import Claim, LedgerMixin
from .lifecycle import EDITION_STATUSES, PENDING, PUBLISHED, UNPUBLISHED, EditionEvent
from .migrate import upgrade
from .overview import EditionWaits, LapsedClaims, OpenEdition, OverviewMixin
from .reports import ReportsMixin
from .signups import SignupLimitsMixin
from .subscribers import (
    InvalidSubscriberError,
    Membership,
    SubscribersMixin,
    SubscriptionRequest,
)

__all__ = [
    "EDITION_STATUSES",
    "PENDING",
    "PUBLISHED",
    "UNPUBLISHED",
    "Claim",
    "DeliveryRef",
    "EditionEvent",
    "EditionRecord",
    "EditionWaits",
    "Editor",
    "ImportReport",
    "InvalidEditorError",
    "InvalidSubscriberError",
    "LapsedClaims",
    "Lease",
    "Membership",
    "MembershipEvent",
    "OpenEdition",
    "RejectedRow",
    "Store",
    "StoryRecord",
    "SubscriptionRequest",
    "open_store",
]


class Store(FileSyncMixin, SubscribersMixin, ConsentMixin, SignupLimitsMixin, EditionsMixin,
            CarriedMixin, LedgerMixin, BouncesMixin, LeasesMixin, OverviewMixin, EditorsMixin,
            ReportsMixin):
    """Everything digest keeps in its database, behind short transactions."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the database at ``url`` and, unless ``migrate`` is false, bring its schema to
    the newest revision (a no-op when it is there already).

    :raises StoreError: when the URL is wrong or the database cannot be reached.
    """
    store = Store(create_engine(url))
    if migrate:
        try:
            guarded(lambda self: upgrade(self.engine))(store)
        except BaseException:
            store.close()
            raise
    return store

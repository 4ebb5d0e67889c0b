"""Child process for tests/test_store_open.py: opens (and migrates) a store, or dies trying.

Usage: python tests/store_opener.py DB_URL [KILL_AT]

With KILL_AT = N the process sends itself SIGKILL when the migration is about to create its
N-th table, in the middle of the first upgrade.
"""

from __future__ import annotations

import os
import signal
import sys

from alembic.operations import Operations

from digest.store import open_store


def _die_at(n: int) -> None:
    original = Operations.create_table
    made = 0

    def create_table(self: Operations, *args: object, **kwargs: object) -> object:
        nonlocal made
        made += 1
        if made == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    Operations.create_table = create_table  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _die_at(int(argv[1]))
    with open_store(argv[0]) as store:
        store.list_names()  # the schema is usable
    print("opened", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

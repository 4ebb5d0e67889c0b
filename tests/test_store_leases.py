"""Named leases in the store: one holder at a time, renewals, expiry, release, takeover."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from digest.store import Store, open_store

pytest_plugins = ["store_backends"]

TTL = timedelta(seconds=30)


def test_a_lease_has_one_holder_until_released(store: Store) -> None:
    assert store.get_lease("scheduler") is None
    taken, lease = store.acquire_lease("scheduler", "a", ttl=TTL)
    assert taken and lease.holder == "a" and lease.state == "held"
    assert timedelta(seconds=29) < lease.expires_at - lease.now <= TTL
    taken, lease = store.acquire_lease("scheduler", "b", ttl=TTL)
    assert not taken and lease.holder == "a"
    # Not even its own holder takes it twice: threads sharing a holder id exclude each other.
    assert store.acquire_lease("scheduler", "a", ttl=TTL)[0] is False
    assert store.renew_lease("scheduler", "a", ttl=TTL)
    assert not store.renew_lease("scheduler", "b", ttl=TTL)
    assert not store.release_lease("scheduler", "b")
    assert store.release_lease("scheduler", "a")
    released = store.get_lease("scheduler")
    assert released is not None and released.state == "released" and released.holder == "a"
    assert not store.renew_lease("scheduler", "a", ttl=TTL)  # gone means gone
    taken, lease = store.acquire_lease("scheduler", "b", ttl=TTL)
    assert taken and lease.holder == "b" and lease.released_at is None
    # Leases are independent of each other.
    assert store.acquire_lease("send:daily", "a", ttl=TTL)[0]


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew(store: Store) -> None:
    assert store.acquire_lease("scheduler", "a", ttl=timedelta(seconds=0.3))[0]
    time.sleep(0.4)
    lease = store.get_lease("scheduler")
    assert lease is not None and lease.state == "expired"
    assert lease.heartbeat_age >= timedelta(seconds=0.3)
    assert store.acquire_lease("scheduler", "b", ttl=TTL)[0]
    assert not store.renew_lease("scheduler", "a", ttl=TTL)
    assert store.get_lease("scheduler").holder == "b"  # type: ignore[union-attr]


def test_racing_takers_get_one_lease(store_url: str) -> None:
    open_store(store_url).close()
    winners: list[str] = []
    start = threading.Barrier(6)

    def take(name: str) -> None:
        with open_store(store_url, migrate=False) as own:
            start.wait()
            if own.acquire_lease("scheduler", name, ttl=TTL)[0]:
                winners.append(name)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(winners) == 1

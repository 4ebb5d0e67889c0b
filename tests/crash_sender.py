"""Child process for tests/test_crash_resume.py: sends an edition until it is killed.

Usage: python tests/crash_sender.py DB_URL EDITION_ID HOST PORT POOL_SIZE LEASE_SECONDS
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

from digest.config import DeliverySettings
from digest.deliver import deliver_edition
from digest.mail import MessageTemplate, Recipient
from digest.store import open_store

TEMPLATE = MessageTemplate.build(
    html_segments=("<p>Hello ", "</p>"), html_slots=("name",),
    text_segments=("Hello ", "\n"), text_slots=("name",), subject="Crash test",
    from_header="Ledger <briefing@news.example.org>", list_id="Daily <daily.news.example.org>")


def build(claim: Any) -> tuple[str, str, bytes]:
    """The message for one claim, with its stable Message-ID."""
    url = f"https://news.example.org/u/{claim.subscriber_id}"
    data = TEMPLATE.render(Recipient(
        email=claim.email, name=None, message_id=claim.message_id, unsubscribe_url=url,
        unsubscribe_mailto="mailto:u@news.example.org", slot_values_html={"name": "you"},
        slot_values_text={"name": "you"}))
    return "bounces@news.example.org", claim.email, data


async def main(argv: list[str]) -> None:
    url, edition, host, port, pool, lease = argv
    delivery = DeliverySettings(message_timeout=5.0, first_retry=timedelta(seconds=0.1),
                                max_retry_delay=timedelta(seconds=0.5))
    with open_store(url) as store:
        print("ready", flush=True)
        await deliver_edition(int(edition), store=store, build=build, relay=None,
                              smtp_addr=(host, int(port)), delivery=delivery,
                              worker_id="crash-worker", pool_size=int(pool),
                              lease=timedelta(seconds=float(lease)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

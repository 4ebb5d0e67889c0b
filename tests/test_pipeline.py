"""Pipeline wiring: per-edition work happens once per variant, per-subscriber work is cheap."""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

from test_cli import AS_OF, make_project

from digest import pipeline
from digest.config import load_settings
from digest.sources import parse_page


def seed_edition(settings, lst):  # type: ignore[no-untyped-def]
    from digest.edition import assemble_edition

    as_of = datetime.fromisoformat(AS_OF)
    page = parse_page((Path(__file__).parent / "fixtures" / "pages" / "seed.txt").read_bytes(),
                      source="seed", as_of=as_of, section_map=pipeline.section_map_for(lst))
    return assemble_edition(page.stories, list_settings=lst, as_of=as_of)


def test_each_variant_is_rendered_once_however_the_claims_are_ordered(
        tmp_path: Path, repo: Path) -> None:
    settings = load_settings(make_project(tmp_path, repo))
    lst = settings.get_list("daily")
    edition = seed_edition(settings, lst)
    factory = pipeline.MessageFactory(settings, lst, edition)
    names = edition.section_names
    # 98 different preference sets (more than any small cache holds), in rounds.
    sets = [frozenset(c) for n in (2, 3, 4) for c in itertools.combinations(names, n)][:98]
    first = {s: factory.variant(s) for s in sets}
    for round_ in range(2):
        for i, sections in enumerate(sets):
            data = factory.message(email=f"r{round_}s{i}@example.org", name=None,
                                   sections=sections, subscriber_id=i + 1,
                                   message_id=f"<e1.s{i}@example.org>")
            assert factory.variant(sections) is first[sections]
            assert data.startswith(b"From: ")
    assert factory.variants_built == len(set(sets))

    message = email.message_from_bytes(data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    assert set(re.findall(r"<h2 [^>]*>([^<]+)</h2>", html)) == set(sets[-1])
    assert re.findall(r'<p class="label[^>]*>([^<]+)<', html) == [edition.lead.section]


def test_unknown_sections_share_the_variant_of_the_known_ones(
        tmp_path: Path, repo: Path) -> None:
    settings = load_settings(make_project(tmp_path, repo))
    lst = settings.get_list("daily")
    factory = pipeline.MessageFactory(settings, lst, seed_edition(settings, lst))
    a = factory.variant(frozenset({"Sports"}))
    b = factory.variant(frozenset({"sports", "Astrology"}))
    assert a is b
    assert factory.variants_built == 1


def test_the_schedulers_pass_finishes_published_editions(tmp_path: Path, repo: Path) -> None:
    """What `schedule` runs every few minutes: rows left queued (a retry that was still
    waiting when `send` returned) go out, to the embedded server when no relay is set."""
    import mailbox

    from digest.store import open_store

    settings = load_settings(make_project(tmp_path, repo))
    lst = settings.get_list("daily")
    with open_store(settings.database_url) as store:
        for i in range(5):
            store.add_subscriber("daily", f"reader{i}@example.org")
        record = store.record_edition(seed_edition(settings, lst))
        store.publish_edition(record.id, message_id_domain=settings.site.domain,
                              now=datetime.now(UTC))
        assert store.delivery_summary(record.id) == {"queued": 5}

    pipeline.run_open_deliveries(settings)

    with open_store(settings.database_url) as store:
        assert store.delivery_summary(record.id) == {"sent": 5}
        assert store.get_edition(record.id).status == "sent"
        last = store.edition_events(record.id)[-1]  # the pass recorded the move, with counts
        assert (last.old_status, last.new_status, last.actor) == ("sending", "sent",
                                                                  "scheduler")
        assert last.detail is not None and last.detail["sent"] == 5
    box = mailbox.Maildir(settings.maildir, create=False)
    assert sorted(email.message_from_bytes(box.get_bytes(k))["To"] for k in box.keys()) == [
        f"reader{i}@example.org" for i in range(5)]
    pipeline.run_open_deliveries(settings)  # nothing left: nothing sent again
    assert len(box.keys()) == 5


def test_for_claim_writes_the_same_bytes_as_message(tmp_path: Path, repo: Path) -> None:
    """The send loop's shortcut (one token pass, no intermediate objects) against the
    general path, over awkward names, every preference shape and ids of every size."""
    import time

    from digest.store import Claim

    settings = load_settings(make_project(tmp_path, repo))
    lst = settings.get_list("daily")
    edition = seed_edition(settings, lst)
    factory = pipeline.MessageFactory(settings, lst, edition)
    names = [None, "", "Ana", "  Ana   Lima ", "Zoë Ångström", 'Dr. "Quote" O\'Neil',
             "Ana & <Bob>", "=?utf-8?q?x?=", "x" * 120, "Line\r\nBcc: evil@example.net",
             "Tab\tName", "Mr. Smith, Jr.", "李小龙"]
    sections = [None, frozenset(), frozenset({"Sports"}), frozenset({"world", "Business"}),
                frozenset({"Nope"})]
    addresses = ["reader@example.org", "a.b+tag@news.example.org", "x@bücher.example"]
    for i, (name, chosen, address) in enumerate(itertools.product(names, sections, addresses)):
        claim = Claim(delivery_id=i, edition_id=1, subscriber_id=i * 7919 + 1, email=address,
                      name=name, sections=chosen, attributes={}, attempts=0,
                      first_attempt_at=None, message_id=f"<e1.s{i}.ab12@news.example.org>")
        while True:  # tokens carry the second they were signed in: compare within one
            before = int(time.time())
            sender, rcpt, fast = factory.for_claim(claim)
            general = factory.message(email=address, name=name, sections=chosen,
                                      subscriber_id=claim.subscriber_id,
                                      message_id=claim.message_id)
            if int(time.time()) == before:
                break
        assert (sender, rcpt) == (lst.from_email, address)
        assert fast == general, (name, chosen, address)

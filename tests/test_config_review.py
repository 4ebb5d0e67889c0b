"""Review and send-window settings: defaults, accepted forms, and one sentence for each
wrong value (naming the setting and the file)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_config import MINIMAL, write

from digest.config import load_settings
from digest.errors import ConfigError


def test_defaults_send_without_review_within_three_hours(tmp_path: Path, repo: Path) -> None:
    lst = load_settings(write(tmp_path, MINIMAL), env={}).get_list("morning")
    assert (lst.review, lst.review_to, lst.on_source_error) == ("off", (), "hold")
    assert (lst.review_lead, lst.send_window) == (timedelta(hours=2), timedelta(hours=3))
    sample = load_settings(repo / "digest.toml", env={"DIGEST_WORK_DIR": str(tmp_path)})
    assert sample.get_list("daily").review == "off"  # the sample's lists send as before


def test_review_settings_are_read(tmp_path: Path) -> None:
    text = MINIMAL + ('review = "required"\nreview_lead = "90m"\nsend_window = "1h"\n'
                      'review_to = ["desk@gazette.example", "Chief <chief@gazette.example>"]\n'
                      'on_source_error = "send"\n')
    lst = load_settings(write(tmp_path, text), env={}).get_list("morning")
    assert lst.review == "required" and lst.on_source_error == "send"
    assert lst.review_to == ("desk@gazette.example", "chief@gazette.example")
    assert (lst.review_lead, lst.send_window) == (timedelta(minutes=90), timedelta(hours=1))


@pytest.mark.parametrize(("extra", "needle"), [
    ('review = "maybe"', 'lists.morning.review in .* must be "off" or "required"'),
    ('review = "required"', "lists.morning.review_to in .* is missing while review"),
    ('review_to = ["not an address"]', "lists.morning.review_to in .* must list addresses"),
    ('send_window = "0s"', "lists.morning.send_window in .* must be from 1m to 20h"),
    ('send_window = "21h"', "lists.morning.send_window in .* must be from 1m to 20h"),
    ('send_window = "soon"', "lists.morning.send_window in .* must be a duration"),
    ('review_lead = "20h"\nsend_window = "3h"', "review_lead in .* within 22h"),
    ('on_source_error = "ignore"', 'on_source_error in .* must be "hold" or "send"'),
])
def test_wrong_review_settings_are_one_sentence(tmp_path: Path, extra: str,
                                                needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as caught:
        load_settings(write(tmp_path, MINIMAL + extra + "\n"), env={})
    assert str(caught.value).count("\n") == 0

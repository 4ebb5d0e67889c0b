"""Hand-offs between the pipeline and its callers are typed: the send's outcome carries the
delivery report as a DeliveryReport, not an object the callers must guess at."""

from __future__ import annotations

import typing
from pathlib import Path

from digest.deliver.report import DeliveryReport
from digest.pipeline import send
from digest.pipeline.send import SendOutcome


def test_send_outcome_report_is_a_delivery_report() -> None:
    module = vars(send)  # annotations are strings (PEP 563): read them in the module
    hints = {name: eval(text, module) for name, text in SendOutcome.__annotations__.items()
             if "ImportReport" not in text}  # that one is imported for type checkers only
    assert hints["report"] == DeliveryReport | None
    assert not any(hint in (object, typing.Any, object | None) for hint in hints.values())


def test_callers_of_the_report_need_no_type_ignore() -> None:
    root = Path(__file__).resolve().parent.parent / "digest"
    for path in ("pipeline/send.py", "pipeline/scheduled.py", "cli/edition.py"):
        text = (root / path).read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines() if "report" in ln and "type: ignore" in ln]
        assert lines == [], (path, lines)

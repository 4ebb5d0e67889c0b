"""The moves an editor can make on an edition from the desk, and in which statuses each is
offered (the store decides in the end: a move it refuses is one sentence on the page)."""

from __future__ import annotations

from dataclasses import dataclass

from digest.config import ListSettings
from digest.store import EditionRecord

__all__ = ["ACTIONS", "Action", "actions_for"]


@dataclass(frozen=True, slots=True)
class Action:
    """A button on the edition page: ``moves_to`` a status (None: publish and deliver),
    offered ``from_statuses``; ``force`` is the editor's override of ``send --force``."""

    name: str
    label: str
    moves_to: str | None
    from_statuses: frozenset[str]
    button: str
    question: str
    explanation: str
    force: bool = False


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("approve", "Approve", "approved", frozenset({"draft", "held"}), "",
           "Approve this edition?",
           "The scheduler sends it at its send time; until then you can still hold or "
           "cancel it."),
    Action("hold", "Hold", "held", frozenset({"draft", "approved"}), "secondary",
           "Hold this edition?",
           "The scheduler will not send it until an editor approves it; past its send window "
           "it is missed."),
    Action("cancel", "Cancel", "cancelled", frozenset({"draft", "approved", "held", "missed"}),
           "danger", "Cancel this edition?",
           "It will never be sent, and cancelled editions stay cancelled; the draft command "
           "(or Build today's draft) makes another."),
    Action("send", "Send now", None, frozenset({"draft", "approved"}), "",
           "Send this edition now?",
           "Every active reader of the list gets it now, instead of at its send time. This "
           "cannot be undone."),
    Action("force", "Send anyway", None, frozenset({"held", "missed"}), "danger",
           "Send this edition anyway?",
           "This overrides the hold or the missed send window (send --force) and sends it to "
           "every active reader now. It is recorded with your name. This cannot be undone.",
           force=True),
)}


def actions_for(record: EditionRecord, lst: ListSettings | None) -> list[Action]:
    """The buttons the edition page offers for ``record`` in its status."""
    if lst is None or not record.has_stories or record.published:
        return []
    found = [a for a in ACTIONS.values() if record.status in a.from_statuses]
    if lst.review == "required" and record.status == "draft":
        # Review holds a draft back: sending it before approval is the editor's override.
        found = [a if a.name != "send" else Action(
            "force", "Send without approval", None, a.from_statuses, "danger",
            "Send this edition without approval?",
            "The list needs review and nobody approved this draft; sending it now overrides "
            "that (send --force). It is recorded with your name. This cannot be undone.",
            force=True) for a in found]
    return found

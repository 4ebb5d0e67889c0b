"""Row ids in URLs: only numbers the store can hold match a route.

Starlette's ``int`` convertor matches any run of digits and hands the number to the handler;
an id beyond the database's integer (``MAX_ROW_ID``) then fails inside the driver, as a 500.
Routes use ``{id:rowid}`` instead, whose pattern matches 1 to :data:`MAX_ROW_ID` only, so a
larger number matches no route and gets the app's 404 page; query parameters carrying an id
go through :func:`parse_row_id`.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from digest.store.engine import MAX_ROW_ID

__all__ = ["ROW_ID_PATTERN", "RowIdConvertor", "at_most", "parse_row_id"]


def at_most(limit: int) -> str:
    """A regular expression (no anchors, no groups) for the decimal numbers 1 to ``limit``
    without leading zeros.

    >>> import re
    >>> [n for n in range(130) if re.fullmatch(at_most(123), str(n))] == list(range(1, 124))
    True
    """
    digits = str(limit)
    width = len(digits)
    choices = []
    if width > 1:  # every shorter number
        choices.append(f"[1-9][0-9]{{0,{width - 2}}}")
    for i, digit in enumerate(digits):  # equal up to i, then smaller, then anything
        low = "1" if i == 0 else "0"
        if digit > low:
            top = chr(ord(digit) - 1)
            rest = f"[0-9]{{{width - i - 1}}}" if width - i - 1 else ""
            choices.append(f"{digits[:i]}[{low}-{top}]{rest}")
    choices.append(digits)
    return "(?:" + "|".join(choices) + ")"


ROW_ID_PATTERN = at_most(MAX_ROW_ID)


class RowIdConvertor(Convertor[int]):
    """``{name:rowid}``: 1 to :data:`MAX_ROW_ID`, as an int."""

    regex = ROW_ID_PATTERN

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 1 <= value <= MAX_ROW_ID:
            raise ValueError(f"{value} is not a row id")
        return str(value)


register_url_convertor("rowid", RowIdConvertor())


def parse_row_id(raw: str | None) -> int | None:
    """The id in ``raw`` (a query parameter), or None when it is not one the store holds."""
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_ROW_ID)):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ROW_ID else None

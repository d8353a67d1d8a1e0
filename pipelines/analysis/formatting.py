"""How analysis output writes numbers and labels, for the terminal, the HTML
report and the figures alike."""

from __future__ import annotations

from collections.abc import Iterable

TABLE_DIGITS = 4  # significant digits of a float in a table (terminal or HTML)
LABEL_DIGITS = 3  # significant digits of a float in a label or a one-line summary


def significant(value: float, digits: int) -> str:
    """`value` to `digits` significant digits, as %g writes it (0.0123, 1.23e+03)."""
    return f"{value:.{digits}g}"


def table_number(value: float) -> str:
    """A float as a table shows it, to TABLE_DIGITS significant digits."""
    return significant(value, TABLE_DIGITS)


def format_value(value: object, digits: int) -> str:
    """A float to `digits` significant digits; anything else as str() writes it."""
    return significant(value, digits) if isinstance(value, float) else str(value)


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def comma_list(values: Iterable[object]) -> str:
    """'1, 2, 4': the values as str() writes them, comma-separated."""
    return ", ".join(str(v) for v in values)

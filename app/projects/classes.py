"""Resolving a class given by index or by name."""

from __future__ import annotations

from app.errors import Invalid


def class_index(classes: list[str], value: int | str, field: str) -> int:
    """The index of a class given as an index (0..K-1) or a name; :class:`Invalid` otherwise."""
    if isinstance(value, bool):
        raise Invalid(field, f"expected a class index or name, got {value!r}")
    if isinstance(value, int):
        if 0 <= value < len(classes):
            return value
        raise Invalid(
            field, f"unknown class {value}: expected an index in 0..{len(classes) - 1} or a class name"
        )
    try:
        return classes.index(value)
    except ValueError:
        shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
        raise Invalid(field, f"unknown class {value!r}; classes: {shown}") from None

"""Reading the Choices control out of a Label Studio label config (XML) and checking it against a
project's classes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache

from app.errors import Invalid

MAX_CONFIG_CHARS = 1_000_000
_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class ChoicesControl:
    """A ``<Choices name=... toName=...>`` tag and its choices (``alias`` where given, else ``value``:
    what annotations carry)."""

    from_name: str
    to_name: str
    choices: tuple[str, ...]
    multiple: bool


def choices_controls(label_config: str, field: str = "schema") -> list[ChoicesControl]:
    """Every Choices control of ``label_config`` in document order; :class:`Invalid` for a config that is
    not XML, declares a DTD (entities are refused), or is larger than ``MAX_CONFIG_CHARS``."""
    return list(_parse(label_config, field))


@lru_cache(maxsize=64)
def _parse(label_config: str, field: str) -> tuple[ChoicesControl, ...]:
    root = _root(label_config, field)
    found: list[ChoicesControl] = []
    for tag in root.iter("Choices"):
        choices = tuple(choice.get("alias") or choice.get("value") or "" for choice in tag.iter("Choice"))
        found.append(
            ChoicesControl(
                from_name=tag.get("name", ""),
                to_name=tag.get("toName", ""),
                choices=choices,
                multiple=tag.get("choice", "single") == "multiple",
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class LabeledObject:
    """The object tag a Choices control labels (``<Text name="text" value="$text"/>``): its tag and the
    task data key its ``value`` names."""

    tag: str
    data_key: str


def labeled_object(label_config: str, to_name: str, field: str = "schema") -> LabeledObject | None:
    """The object tag named ``to_name`` whose value is ``$key``; None when there is none (a value that is
    not a plain ``$key`` reference, or no such tag)."""
    root = _root(label_config, field)
    for tag in root.iter():
        if tag.get("name") != to_name or tag.tag in ("Choices", "Choice"):
            continue
        value = tag.get("value") or ""
        if value.startswith("$") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", value[1:]):
            return LabeledObject(tag=tag.tag, data_key=value[1:])
    return None


@lru_cache(maxsize=64)
def _root(label_config: str, field: str) -> ET.Element:
    if len(label_config) > MAX_CONFIG_CHARS:
        raise Invalid(field, f"expected a label config of at most {MAX_CONFIG_CHARS} characters")
    if _DTD.search(label_config):
        raise Invalid(field, "label configs with <!DOCTYPE> or <!ENTITY> declarations are not accepted")
    try:
        return ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise Invalid(field, f"expected a Label Studio label config (XML), got a parse error: {exc}") from exc


def matching_control(label_config: str, classes: list[str], field: str = "schema") -> ChoicesControl:
    """The first Choices control whose choices are exactly ``classes`` (any order), single choice.

    Raises :class:`Invalid` (422) naming what differs: no Choices control, dynamic choices, multiple
    choice, or the choices missing from / extra to the project's classes.
    """
    controls = choices_controls(label_config, field)
    if not controls:
        raise Invalid(
            field,
            "expected a <Choices> control in the label config (tbal labels each item with one class), "
            "found none",
        )
    wanted = set(classes)
    problems: list[str] = []
    for control in controls:
        got = set(control.choices)
        name = control.from_name or "<unnamed>"
        if not control.choices:
            problems.append(
                f"Choices {name!r} has no static <Choice> tags (dynamic choices are not supported)"
            )
        elif got != wanted:
            missing = sorted(wanted - got)
            extra = sorted(got - wanted)
            problems.append(
                f"Choices {name!r}: classes missing in Label Studio: {missing}; choices that are not "
                f"classes of the project: {extra}"
            )
        elif control.multiple:
            problems.append(f'Choices {name!r} allows several choices; tbal needs choice="single"')
        elif not control.from_name or not control.to_name:
            problems.append(f"Choices {name!r} needs both 'name' and 'toName'")
        else:
            return control
    raise Invalid(
        field,
        f"the label config's choices do not match the project's classes {list(classes)}: "
        + "; ".join(problems),
    )

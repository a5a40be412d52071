"""The indicator registry as a whole (warehouse/indicators/*.yaml), with how the lens presents each one.

Families record their own entries in core.indicators; the lens document also needs what the
registry declares for readers, which core.indicators does not hold:

    display:
      topic: health          # the topic of its section it is shown under
      order: 10              # position inside that topic (lower first)
      headline: 1            # rank among its section's headline numbers in the summary
      chart: health_cancer   # indicators with the same key share one chart
      format: rate           # how its numbers are written (FORMATS)
    es: {label: ..., unit: ..., definition: ...}   # Spanish texts (English is the entry itself)

Both are optional: an indicator without `display` comes last in its section, in its own
chart, formatted from its unit.

This module is the registry's one loader (pipelines.ingest.load_indicators reads through it).
Every entry's top-level fields are declared in FIELDS (type, required, allowed values, after the
core.indicators DDL in warehouse/sql/schema.sql); an unknown key, a missing or mistyped field,
a value outside its set or an indicator_id registered twice is a RegistryError naming the file,
the indicator and the field, so a misspelt key can never become a silent NULL.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from sources import strict_yaml

REGISTRY_DIR = Path(__file__).resolve().parent / "indicators"
MAX_FILE_BYTES = 2_000_000
FORMATS = ("money", "count", "percent", "ratio", "index", "probability", "share", "decimal", "rate")
DISPLAY_FIELDS = {"topic", "order", "headline", "chart", "format"}
TRANSLATED_FIELDS = {"label", "unit", "definition"}
LANGUAGES = ("en", "es")
LENS_SECTIONS = ("governance", "state_presence", "structural_constraints")
INDICATOR_ID = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class FieldRule:
    """One top-level field of a registry entry: its type, whether it must be given, its allowed values."""

    kind: type
    required: bool = True
    allowed: tuple | None = None  # None: any value of `kind`
    nullable: bool = False


FIELDS: dict[str, FieldRule] = {
    "indicator_id": FieldRule(str),
    "source_id": FieldRule(str),
    "label": FieldRule(str),
    "unit": FieldRule(str),
    "theme": FieldRule(str),
    "definition": FieldRule(str),
    "method": FieldRule(str),
    "lens_section": FieldRule(str, allowed=LENS_SECTIONS),
    "claim_level": FieldRule(str, allowed=("contribution", "attribution")),
    "higher_is": FieldRule(str, allowed=("better", "worse"), nullable=True),  # null: neither
    "display": FieldRule(dict, required=False),
    "es": FieldRule(dict, required=False),
}


class RegistryError(ValueError):
    """A registry entry the lens cannot use; the message names the file and the indicator."""


@dataclass(frozen=True)
class Presentation:
    """What the registry says about showing one indicator to readers."""

    indicator_id: str
    source_id: str
    topic: str = ""
    order: int = 10_000
    headline: int | None = None
    chart: str = ""
    format: str = ""
    texts: dict[str, dict[str, str]] = field(default_factory=dict)  # lang -> {label, unit, definition}

    def text(self, lang: str, name: str, default: str) -> str:
        """The text in `lang`, else the English one given as default."""
        return (self.texts.get(lang) or {}).get(name) or default


def _problem(path: Path, entry: dict, text: str) -> RegistryError:
    return RegistryError(f"{path.name}: indicator {entry.get('indicator_id')!r}: {text}")


def _display(path: Path, entry: dict) -> dict:
    display = entry.get("display") or {}
    if not isinstance(display, dict):
        raise _problem(path, entry, "display: expected a mapping")
    unknown = sorted(set(display) - DISPLAY_FIELDS)
    if unknown:
        raise _problem(
            path, entry, f"display.{unknown[0]}: unknown (allowed: {', '.join(sorted(DISPLAY_FIELDS))})"
        )
    for name in ("order", "headline"):
        if name in display and (type(display[name]) is not int or display[name] < 0):
            raise _problem(path, entry, f"display.{name}: expected a whole number >= 0")
    if display.get("format") not in (None, *FORMATS):
        raise _problem(path, entry, f"display.format: expected one of {', '.join(FORMATS)}")
    return display


def _texts(path: Path, entry: dict) -> dict[str, dict[str, str]]:
    texts = {}
    for lang in LANGUAGES[1:]:
        given = entry.get(lang) or {}
        if not isinstance(given, dict) or set(given) - TRANSLATED_FIELDS:
            raise _problem(
                path, entry, f"{lang}: expected a mapping of {', '.join(sorted(TRANSLATED_FIELDS))}"
            )
        texts[lang] = {k: " ".join(str(v).split()) for k, v in given.items() if v}
    return texts


def _presentation(path: Path, entry: dict) -> Presentation:
    display = _display(path, entry)
    return Presentation(
        indicator_id=str(entry["indicator_id"]),
        source_id=str(entry.get("source_id") or ""),
        topic=str(display.get("topic") or ""),
        order=display.get("order", 10_000),
        headline=display.get("headline"),
        chart=str(display.get("chart") or entry["indicator_id"]),
        format=str(display.get("format") or ""),
        texts=_texts(path, entry),
    )


def _check_field(path: Path, entry: dict, name: str) -> None:
    rule = FIELDS[name]
    if name not in entry:
        if rule.required:
            raise _problem(path, entry, f"{name}: missing (required)")
        return
    value = entry[name]
    if value is None and (rule.nullable or not rule.required):
        return
    if not isinstance(value, rule.kind) or (rule.kind is str and not value.strip()):
        expected = "a non-empty str" if rule.kind is str else f"a {rule.kind.__name__}"
        raise _problem(path, entry, f"{name}: expected {expected}, got {value!r}")
    if rule.allowed is not None and value not in rule.allowed:
        raise _problem(path, entry, f"{name}: {value!r} is not one of {', '.join(rule.allowed)}")


def _check_entry(path: Path, entry: object) -> dict:
    if not isinstance(entry, dict):
        raise RegistryError(f"{path.name}: expected a mapping per entry, got {entry!r}")
    for key in entry:
        if key not in FIELDS:
            near = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (allowed: {', '.join(FIELDS)})"
            raise _problem(path, entry, f"{key}: unknown field{hint}")
    for name in FIELDS:
        _check_field(path, entry, name)
    if not INDICATOR_ID.fullmatch(entry["indicator_id"]):
        raise _problem(path, entry, "indicator_id: expected lower-case letters, digits and '_'")
    _display(path, entry)
    _texts(path, entry)
    return entry


def _entries(path: Path) -> list[dict]:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RegistryError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
    try:
        entries = strict_yaml.load(path.read_text(encoding="utf-8")) or []
    except yaml.constructor.ConstructorError as error:
        raise RegistryError(f"{path.name}: {error.problem} ({error.problem_mark})") from error
    if not isinstance(entries, list):
        raise RegistryError(f"{path.name}: expected a list of entries")
    return [_check_entry(path, entry) for entry in entries]


@lru_cache(maxsize=4)
def _registry(folder: Path) -> dict[str, list[dict]]:
    """Every file's checked entries, by family (the file's stem); an id in two places is an error."""
    families: dict[str, list[dict]] = {}
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        families[path.stem] = _entries(path)
        for entry in families[path.stem]:
            if entry["indicator_id"] in seen:
                raise _problem(
                    path, entry, f"indicator_id: already registered in {seen[entry['indicator_id']]}"
                )
            seen[entry["indicator_id"]] = path.name
    return families


def family_indicators(family: str, folder: Path = REGISTRY_DIR) -> list[dict]:
    """The checked entries of warehouse/indicators/<family>.yaml (copies: callers may change them)."""
    families = _registry(folder)
    if family not in families:
        raise RegistryError(f"{family}.yaml: no such registry file in {folder} (have: {', '.join(families)})")
    return copy.deepcopy(families[family])


@lru_cache(maxsize=4)
def presentations(folder: Path = REGISTRY_DIR) -> dict[str, Presentation]:
    """Every registered indicator's presentation, by indicator id (all files of the registry)."""
    return {
        entry["indicator_id"]: _presentation(folder / f"{family}.yaml", entry)
        for family, entries in _registry(folder).items()
        for entry in entries
    }


def presentation(indicator_id: str) -> Presentation:
    """The registry's presentation of an indicator; defaults for one that is not registered."""
    return presentations().get(indicator_id) or Presentation(indicator_id, "", chart=indicator_id)

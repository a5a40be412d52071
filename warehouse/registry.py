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

Everything is optional: an indicator without `display` comes last in its section, in its own
chart, formatted from its unit. A misspelt key is an error naming the file and the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

REGISTRY_DIR = Path(__file__).resolve().parent / "indicators"
MAX_FILE_BYTES = 2_000_000
FORMATS = ("money", "count", "percent", "ratio", "index", "probability", "share", "decimal", "rate")
DISPLAY_FIELDS = {"topic", "order", "headline", "chart", "format"}
TRANSLATED_FIELDS = {"label", "unit", "definition"}
LANGUAGES = ("en", "es")


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


def _entries(path: Path) -> list[dict]:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RegistryError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "indicator_id" in e for e in entries):
        raise RegistryError(f"{path.name}: expected a list of entries, each with an indicator_id")
    return entries


@lru_cache(maxsize=4)
def presentations(folder: Path = REGISTRY_DIR) -> dict[str, Presentation]:
    """Every registered indicator's presentation, by indicator id (all files of the registry)."""
    found: dict[str, Presentation] = {}
    for path in sorted(folder.glob("*.yaml")):
        for entry in _entries(path):
            found[str(entry["indicator_id"])] = _presentation(path, entry)
    return found


def presentation(indicator_id: str) -> Presentation:
    """The registry's presentation of an indicator; defaults for one that is not registered."""
    return presentations().get(indicator_id) or Presentation(indicator_id, "", chart=indicator_id)

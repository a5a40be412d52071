"""What every part of the lens body writes with: the reader's texts and numbers, names, and the
small shapes the templates read (a link, a table's records, a unit as printed)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd

from pipelines.reading import Numbers, _missing, territory_names, texts
from warehouse.lens import Lens, LensScope


def records(frame: pd.DataFrame) -> list[SimpleNamespace]:
    return [SimpleNamespace(**row) for row in frame.to_dict("records")]


def _text(value) -> str:
    return "" if _missing(value) else str(value)


UNIT_SIGNS = (("m3/s", "m³/s"), ("km2", "km²"), ("ug/m3", "µg/m³"))


def unit_text(unit: str) -> str:
    """Units as printed: m³/s, km², µg/m³."""
    for plain, printed in UNIT_SIGNS:
        unit = unit.replace(plain, printed)
    return unit


def link(text: str, href: str | None) -> dict:
    return {"text": text, "href": href or ""}


@dataclass
class Writer:
    """What every block needs: the language's texts and numbers, territory and source names."""

    lang: str
    names: dict[str, str]
    source_titles: dict[str, str]

    @property
    def t(self) -> dict:
        return texts(self.lang)

    @property
    def b(self) -> dict:
        return texts(self.lang)["body"]

    @property
    def num(self) -> Numbers:
        return Numbers(self.lang)

    @classmethod
    def for_lens(cls, lens: Lens, scope: LensScope, lang: str) -> Writer:
        sources = lens.tables["sources"]
        titles = dict(zip(sources["source_id"], sources["title"], strict=True))
        return cls(lang, territory_names(scope, lang), titles)

    def badge_text(self, mode: str) -> str:
        return self.t["badges"].get(mode, mode)

"""One resolver from whatever a source writes (2201, '00002', 'De Antofagasta', 'CL02') to territory ids.

Territory ids are `<kind>:<code>`: `country:CL`, `region:02`, `province:022`,
`comuna:02201`, `basin:021`, and `unknown:99999` for residence recorded as unknown. Other
schemes (OECD TL2 `CL02`, publisher spellings) are aliases of those territories, never
territories of their own, so every source lands on the same keys.

A value that matches nothing is never dropped: `resolve` raises `UnresolvedTerritoriesError`
listing every distinct unresolved value, so one run shows all the gaps at once.

`sources/reference/regions.csv` is reference data written for this project: the 16
regions with their official CUT codes and names (as in the SUBDERE/INE code tables), their
OECD TL2 codes (CL01–CL16, following the CUT numbering) and spellings seen in public files
(BCN, DEIS, INE), `|`-separated. With `territorial_division.csv` it makes the official
division (`sources.division`): `division_resolver` knows every region, province and comuna
of Chile, whether or not a boundary source has given it a polygon.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sources.base import ValidationError, fold_name, is_missing, normalize_cut
from sources.division import REGIONS_CSV, load_division

COUNTRY_ID = "country:CL"
UNKNOWN_ID = "unknown:99999"
CUT_KINDS = ("region", "province", "comuna")

# Spellings that differ beyond accents, case and punctuation, seen in the BCN (fcortes),
# chilemapas, bastianolea and DEIS files: the official name and the other spellings, as the
# division's reference file lists them (Paiguano/Paihuano, Coyhaique/Coihaique, ...).
KNOWN_ALTERNATIVE_NAMES: dict[str, tuple[str, ...]] = {
    row.territory_id: (row.name, *row.alternative_names)
    for row in load_division().itertuples(index=False)
    if row.kind != "region" and row.alternative_names
}
UNKNOWN_NAMES = ("Ignorada", "Ignorado")

# Ways a region name is prefixed: 'Región de Antofagasta' (BCN), 'De Antofagasta' (DEIS).
_REGION_PREFIXES = ("region de ", "region del ", "region ", "del ", "de ")
_NUMERIC = re.compile(r"\s*\d+(\.0+)?\s*")


class UnresolvedTerritoriesError(ValidationError):
    """Some distinct values match no territory (or more than one); `values` lists them all."""

    def __init__(
        self,
        source: str,
        kind: str,
        values: list[Any],
        reasons: Mapping[Any, str],
        snapshot: str | None = None,
    ):
        self.kind = kind
        self.values = values
        self.reasons = dict(reasons)
        listed = "; ".join(f"{value!r} ({self.reasons[value]})" for value in values)
        super().__init__(
            source, f"{len(values)} distinct {kind} value(s) resolve to no territory: {listed}", snapshot
        )


def name_key(text: Any) -> str:
    """Accent-, case-, space- and punctuation-free key: 'Bío-Bío' ~ 'Biobío', "O'Higgins" ~ 'OHiggins'."""
    return fold_name(str(text)).replace(" ", "")


def _value_key(value: Any) -> Hashable:
    """A hashable, type-stable key for de-duplicating raw values (2201 and 2201.0 stay distinct)."""
    if is_missing(value):
        return ("<missing>", str(value))
    return (
        (type(value).__name__, value) if isinstance(value, Hashable) else (type(value).__name__, str(value))
    )


class TerritoryResolver:
    """Resolve raw codes and names to territory ids, vectorised over distinct values.

    `territories`: columns id, kind, code, name, parent_id (id = '<kind>:<code>').
    `aliases`: columns territory_id, scheme, alias.
    """

    def __init__(
        self, territories: pd.DataFrame, aliases: pd.DataFrame | None = None, source: str = "territories"
    ):
        self.source = source
        self.territories = self._checked_territories(territories)
        self.aliases = self._checked_aliases(aliases)
        self._ids = set(self.territories["id"])
        self._kind_of = dict(zip(self.territories["id"], self.territories["kind"], strict=True))
        self._kinds = set(self._kind_of.values())
        self._code_width = {
            kind: int(codes.str.len().iloc[0])
            for kind, codes in self.territories.groupby("kind")["code"]
            if codes.str.fullmatch(r"\d+").all() and codes.str.len().nunique() == 1
        }
        self._unknown_codes = {
            int(code): tid
            for tid, kind, code in self.territories[["id", "kind", "code"]].itertuples(index=False)
            if kind == "unknown" and str(code).isdigit()
        }
        # key -> set of ids, per kind; names and aliases share one index
        self._by_name: dict[str, dict[str, set[str]]] = {}
        for tid, kind, name in self.territories[["id", "kind", "name"]].itertuples(index=False):
            self._index(kind, name_key(name), tid)
        self._by_scheme: dict[tuple[str, str], set[str]] = {}
        for tid, scheme, alias in self.aliases[["territory_id", "scheme", "alias"]].itertuples(index=False):
            self._index(self._kind_of[tid], name_key(alias), tid)
            self._by_scheme.setdefault((scheme, name_key(alias)), set()).add(tid)

    def _index(self, kind: str, key: str, tid: str) -> None:
        self._by_name.setdefault(kind, {}).setdefault(key, set()).add(tid)

    def _checked_territories(self, territories: pd.DataFrame) -> pd.DataFrame:
        missing = {"id", "kind", "code", "name", "parent_id"} - set(territories.columns)
        if missing:
            raise ValidationError(self.source, f"territory table lacks column(s) {sorted(missing)}")
        table = territories[["id", "kind", "code", "name", "parent_id"]].copy()
        table["code"] = table["code"].astype(str)
        duplicated = sorted(table.loc[table["id"].duplicated(), "id"])
        if duplicated:
            raise ValidationError(self.source, f"territory ids repeat: {duplicated}")
        malformed = [
            tid
            for tid, kind, code in table[["id", "kind", "code"]].itertuples(index=False)
            if tid != f"{kind}:{code}"
        ]
        if malformed:
            raise ValidationError(self.source, f"territory ids are not '<kind>:<code>': {malformed}")
        ids = set(table["id"])
        orphans = sorted({p for p in table["parent_id"] if not is_missing(p) and p not in ids})
        if orphans:
            raise ValidationError(self.source, f"parent ids {orphans} are not territories")
        return table.reset_index(drop=True)

    def _checked_aliases(self, aliases: pd.DataFrame | None) -> pd.DataFrame:
        if aliases is None:
            return pd.DataFrame(columns=["territory_id", "scheme", "alias"])
        missing = {"territory_id", "scheme", "alias"} - set(aliases.columns)
        if missing:
            raise ValidationError(self.source, f"alias table lacks column(s) {sorted(missing)}")
        unknown = sorted(set(aliases["territory_id"]) - set(self.territories["id"]))
        if unknown:
            raise ValidationError(self.source, f"aliases point to unknown territories {unknown}")
        return aliases[["territory_id", "scheme", "alias"]].drop_duplicates().reset_index(drop=True)

    # --- one value -------------------------------------------------------------------------

    def _by_code(self, value: Any, kind: str) -> str | None:
        text = str(value).strip()
        try:
            number = int(float(text))
        except (ValueError, OverflowError):
            return None
        if number in self._unknown_codes:
            return self._unknown_codes[number]
        if kind in CUT_KINDS:
            try:
                code = normalize_cut(text, kind)
            except ValueError:
                return None
        elif kind in self._code_width:
            code = str(number).zfill(self._code_width[kind])
        else:
            code = text
        tid = f"{kind}:{code}"
        return tid if tid in self._ids else None

    def _candidates(self, text: str, kind: str) -> list[str]:
        folded = fold_name(text)
        keys = [folded]
        if kind == "region":
            keys += [folded[len(prefix) :] for prefix in _REGION_PREFIXES if folded.startswith(prefix)]
        return [key.replace(" ", "") for key in keys]

    def resolve_one(self, value: Any, kind: str) -> tuple[str | None, str]:
        """(territory id, '') or (None, why not) for a single raw value."""
        if kind not in self._kinds:
            raise ValueError(f"no territories of kind {kind!r} (kinds: {sorted(self._kinds)})")
        if is_missing(value) or isinstance(value, bool):
            return None, "missing value"
        if isinstance(value, int | float) or _NUMERIC.fullmatch(str(value)):
            tid = self._by_code(value, kind)
            return (tid, "") if tid else (None, f"no {kind} with this code")
        text = str(value).strip()
        if text in self._ids:
            return (text, "") if self._kind_of[text] in (kind, "unknown") else (None, f"id is not a {kind}")
        scheme, _, alias = text.partition(":")
        if alias and (scheme, name_key(alias)) in self._by_scheme:
            found = {t for t in self._by_scheme[(scheme, name_key(alias))] if self._kind_of[t] == kind}
            return (found.pop(), "") if len(found) == 1 else (None, f"{scheme} alias of no single {kind}")
        unknown_keys = self._by_name.get("unknown", {})
        for key in self._candidates(text, kind):
            if key in unknown_keys and len(unknown_keys[key]) == 1:
                return next(iter(unknown_keys[key])), ""
            found = self._by_name.get(kind, {}).get(key, set())
            if len(found) == 1:
                return next(iter(found)), ""
            if len(found) > 1:
                return None, f"ambiguous: {sorted(found)}"
        return None, f"no {kind} with this name or alias"

    # --- vectorised ----------------------------------------------------------------------------

    def resolve(
        self, values: Iterable[Any], kind: str, *, source: str | None = None, snapshot: str | None = None
    ) -> list[str]:
        """Territory ids for `values`, in order; raise listing all distinct unresolved values."""
        values = list(values)
        resolved: dict[Hashable, str] = {}
        failures: dict[Hashable, tuple[Any, str]] = {}
        for value in values:
            key = _value_key(value)
            if key in resolved or key in failures:
                continue
            tid, why = self.resolve_one(value, kind)
            if tid is None:
                failures[key] = (value, why)
            else:
                resolved[key] = tid
        if failures:
            raw = [value for value, _ in failures.values()]
            reasons = {value: why for value, why in failures.values()}
            raise UnresolvedTerritoriesError(source or self.source, kind, raw, reasons, snapshot)
        return [resolved[_value_key(value)] for value in values]

    def resolve_series(
        self, series: pd.Series, kind: str, *, source: str | None = None, snapshot: str | None = None
    ) -> pd.Series:
        """`resolve` for a pandas Series: resolves distinct values once, keeps the index."""
        distinct = pd.unique(series.astype(object))
        ids = dict(
            zip(
                map(_value_key, distinct),
                self.resolve(distinct, kind, source=source, snapshot=snapshot),
                strict=True,
            )
        )
        return pd.Series(
            [ids[_value_key(v)] for v in series.astype(object)],
            index=series.index,
            name=series.name,
            dtype=object,
        )

    def name(self, territory_id: str) -> str:
        row = self.territories.loc[self.territories["id"] == territory_id, "name"]
        if row.empty:
            raise KeyError(territory_id)
        return str(row.iloc[0])

    def children(self, territory_id: str, kind: str | None = None) -> list[str]:
        """Direct children, or all descendants of one kind when `kind` is given."""
        parents = dict(zip(self.territories["id"], self.territories["parent_id"], strict=True))
        found = []
        for tid, tkind in self._kind_of.items():
            if kind is None:
                if parents[tid] == territory_id:
                    found.append(tid)
                continue
            ancestor = parents[tid]
            while tkind == kind and not is_missing(ancestor):
                if ancestor == territory_id:
                    found.append(tid)
                    break
                ancestor = parents.get(ancestor)
        return sorted(found)


# --- building the Chilean tables ---------------------------------------------------------------------


def load_regions(path: Path = REGIONS_CSV) -> pd.DataFrame:
    """The 16 regions: region_code, name (official), oecd_tl2, alternative_names (list of str)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    table["alternative_names"] = table["alternative_names"].map(
        lambda text: [n for n in text.split("|") if n]
    )
    return table


def _place(kind: str, code: str, name: str, parent_id: str | None) -> dict:
    return {"id": f"{kind}:{code}", "kind": kind, "code": code, "name": name, "parent_id": parent_id}


def _region_rows(regions: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """The country and its regions with official names; OECD TL2 codes and other spellings as aliases."""
    rows = [{"id": COUNTRY_ID, "kind": "country", "code": "CL", "name": "Chile", "parent_id": None}]
    aliases: list[dict] = []
    for region in regions.itertuples(index=False):
        rows.append(_place("region", region.region_code, region.name, COUNTRY_ID))
        tid = f"region:{region.region_code}"
        aliases.append({"territory_id": tid, "scheme": "oecd_tl2", "alias": region.oecd_tl2})
        aliases += [
            {"territory_id": tid, "scheme": "name", "alias": name} for name in region.alternative_names
        ]
    return rows, aliases


def chile_territory_tables(
    comunas: pd.DataFrame,
    *,
    comuna_name: str = "comuna_name",
    province_name: str | None = "province_name",
    basins: pd.DataFrame | None = None,
    regions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(territories, aliases) for Chile from a comuna code table.

    `comunas` needs comuna_code, province_code, region_code and the name columns (e.g. the
    output of `sources.boundaries.parse_chilemapas_code_table`). Regions take their official
    names from regions.csv, with OECD TL2 codes and alternative spellings as aliases.
    `basins` (basin_code, basin_name), when given, adds `basin:<code>` territories.
    """
    regions = load_regions() if regions is None else regions
    stray = sorted(set(comunas["region_code"]) - set(regions["region_code"]))
    if stray:
        raise ValidationError("territories", f"comuna table has region codes {stray} not in regions.csv")
    rows, aliases = _region_rows(regions)
    provinces = comunas.drop_duplicates("province_code").sort_values("province_code")
    rows += [
        _place(
            "province",
            p.province_code,
            getattr(p, province_name) if province_name else p.province_code,
            f"region:{p.region_code}",
        )
        for p in provinces.itertuples(index=False)
    ]
    rows += [
        _place("comuna", c.comuna_code, getattr(c, comuna_name), f"province:{c.province_code}")
        for c in comunas.sort_values("comuna_code").itertuples(index=False)
    ]
    if basins is not None:
        rows += [
            _place("basin", b.basin_code, b.basin_name, COUNTRY_ID)
            for b in basins.sort_values("basin_code").itertuples(index=False)
        ]
    rows.append(
        {"id": UNKNOWN_ID, "kind": "unknown", "code": "99999", "name": UNKNOWN_NAMES[0], "parent_id": None}
    )
    aliases += [{"territory_id": UNKNOWN_ID, "scheme": "name", "alias": name} for name in UNKNOWN_NAMES[1:]]
    ids = {row["id"] for row in rows}
    for tid, names in KNOWN_ALTERNATIVE_NAMES.items():
        if tid in ids:
            aliases += [{"territory_id": tid, "scheme": "name", "alias": name} for name in names]
    return pd.DataFrame(rows), pd.DataFrame(aliases, columns=["territory_id", "scheme", "alias"])


def name_aliases(
    table: pd.DataFrame, kind: str, code_column: str, name_column: str, scheme: str
) -> pd.DataFrame:
    """Alias rows recording how one publisher spells territories whose codes it also gives."""
    width = {"region": 2, "province": 3, "comuna": 5}
    pairs = table[[code_column, name_column]].drop_duplicates()
    return pd.DataFrame(
        {
            "territory_id": [
                f"{kind}:{normalize_cut(code, kind) if kind in width else code}"
                for code in pairs[code_column]
            ],
            "scheme": scheme,
            "alias": pairs[name_column].to_numpy(),
        }
    )


def division_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(territories, aliases) of the official division: Chile, its regions, provinces and comunas, unknown."""
    division = load_division()
    rows = [{"id": COUNTRY_ID, "kind": "country", "code": "CL", "name": "Chile", "parent_id": None}]
    rows += division.rename(columns={"territory_id": "id"})[
        ["id", "kind", "code", "name", "parent_id"]
    ].to_dict("records")
    rows.append(
        {"id": UNKNOWN_ID, "kind": "unknown", "code": "99999", "name": UNKNOWN_NAMES[0], "parent_id": None}
    )
    aliases = [
        {"territory_id": tid, "scheme": "name", "alias": name}
        for tid, names in zip(division["territory_id"], division["alternative_names"], strict=True)
        for name in names
    ]
    aliases += [{"territory_id": UNKNOWN_ID, "scheme": "name", "alias": name} for name in UNKNOWN_NAMES[1:]]
    regions = load_regions()
    aliases += [
        {"territory_id": f"region:{code}", "scheme": "oecd_tl2", "alias": tl2}
        for code, tl2 in zip(regions["region_code"], regions["oecd_tl2"], strict=True)
    ]
    return pd.DataFrame(rows), pd.DataFrame(aliases, columns=["territory_id", "scheme", "alias"])


def division_resolver(source: str = "territories") -> TerritoryResolver:
    """A resolver that knows every comuna of the official division, polygons or not."""
    territories, aliases = division_tables()
    return TerritoryResolver(territories, aliases, source=source)


def build_resolver(
    comunas: pd.DataFrame, *, extra_aliases: Iterable[pd.DataFrame] = (), **kwargs: Any
) -> TerritoryResolver:
    """A resolver for Chile from a comuna code table plus any publisher alias tables."""
    territories, aliases = chile_territory_tables(comunas, **kwargs)
    return TerritoryResolver(territories, pd.concat([aliases, *extra_aliases], ignore_index=True))

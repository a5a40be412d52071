"""Finance sources: what the live walks ask for and how each payload becomes raw and staging frames.

SINIM is walked as one unit through its POST forms (offline: the SAMPLE long extract);
mindicador and Presupuesto Abierto are asked one request per indicator or region and year,
with a sample where one exists; the curated royalty files are read from their endpoints.
"""

import hashlib
import io
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.finance_tables import SINIM_COLUMNS, SINIM_SCHEMA, VARIABLE_KEYS, validated
from pipelines.studies import all_studies
from sources import mindicador, presupuesto_abierto, royalties, sinim
from sources.acquire import SAMPLES_DIR, Acquired, Acquirer
from sources.base import FetchError, FetchRequest, ParseError, SourceInfo
from sources.endpoints import endpoints, file_url_path

SAMPLE_DIR = SAMPLES_DIR / "finance"
SINIM_SAMPLE = SAMPLE_DIR / "sinim_finanzas_region02_2019-2023_SAMPLE.csv"
FIRST_YEAR = 2019


# --- scope ---------------------------------------------------------------------------------------


def study_scope() -> tuple[list[str], list[str]]:
    """(comuna codes, region codes) the studies focus on: what the live walks ask for."""
    studies = all_studies()
    comunas = sorted({c for s in studies for c in s.comunas})
    regions = sorted({r for s in studies for r in s.regions} | {c[:2] for c in comunas})
    return comunas, regions


def sinim_years() -> list[int]:
    """SINIM publishes a year's municipal accounts during the next year."""
    return list(range(FIRST_YEAR, date.today().year))


def calendar_years() -> list[int]:
    return list(range(FIRST_YEAR, date.today().year + 1))


# --- acquisition ---------------------------------------------------------------------------------


def acquire_available(
    acquirer: Acquirer, source: SourceInfo, requests: list[tuple[FetchRequest, Path | None]]
) -> tuple[list[tuple[FetchRequest, Acquired]], list[str]]:
    """Acquire each request by the usual policy; one with neither data nor a sample is listed, not fatal.

    Yearly series have no sample for every year (the current year, say): such a year is
    reported as unavailable. With no payload at all, the fetch error stands.
    """
    acquired, unavailable = [], []
    for request, sample in requests:
        try:
            acquired.append((request, acquirer.acquire(source, request, sample)))
        except FetchError as exc:
            unavailable.append(f"{request.name}: {exc.problem}")
    if not acquired:
        raise FetchError(source.id, "nothing could be acquired: " + "; ".join(unavailable))
    return acquired, unavailable


def existing_sample(path: Path) -> Path | None:
    return path if path.exists() else None


def rate_requests(api_url: str) -> tuple[list[tuple[FetchRequest, Path | None]], dict[str, tuple[str, int]]]:
    """One mindicador request per indicator and calendar year, with its sample where one exists;
    and the (indicator, year) each request name asks for."""
    requests, asked = [], {}
    for indicator in mindicador.SERIES_INDICATORS:
        for year in calendar_years():
            request = mindicador.series_request(api_url, indicator, year)
            asked[request.name] = (indicator, year)
            sample = SAMPLE_DIR / f"mindicador_{indicator}_{year}_SAMPLE.json"
            requests.append((request, existing_sample(sample)))
    return requests, asked


def pagos_requests(
    pagos_url: str,
) -> tuple[list[tuple[FetchRequest, Path | None]], dict[str, tuple[int, int]]]:
    """One Presupuesto Abierto request per region of the studies and calendar year, with its sample
    where one exists; and the (region, year) each request name asks for."""
    _, regions = study_scope()
    requests, keys = [], {}
    for region in regions:
        for year in calendar_years():
            request = presupuesto_abierto.pagos_request(pagos_url, int(region), year)
            keys[request.name] = (int(region), year)
            sample = SAMPLE_DIR / f"presupuesto_abierto_pagos_region{region}_{year}_SAMPLE.json"
            requests.append((request, existing_sample(sample)))
    return requests, keys


def acquire_sinim(acquirer: Acquirer) -> tuple[list[Acquired], pd.DataFrame | None]:
    """The live walk as one unit, else the earlier live walk, else the SAMPLE long extract.

    Returns the payloads and the walk's long frame, or None for the frame when the sample
    stands in (the caller parses it).
    """
    urls = endpoints(sinim.SOURCE.id, sinim.ENDPOINTS)
    comunas, _ = study_scope()
    codes, years = [v.code for v in sinim.FINANCE_VARIABLES], sinim_years()
    walked: dict[str, pd.DataFrame] = {}

    def walk(fetcher):
        frame, payloads = sinim.fetch_values(fetcher, urls, codes, years, comunas)
        walked["frame"] = frame
        return payloads

    stand_in = FetchRequest(
        name="sinim-finance-walk",
        url=urls["values"],
        expect="csv",
        method="POST",
        data={"variables": codes, "years": years, "comunas": comunas},
    )
    acquired = acquirer.acquire_walk(sinim.SOURCE, walk, SINIM_SAMPLE, stand_in)
    return acquired, None if acquired[0].status == "sample" else walked["frame"]


# --- parsing into staging ------------------------------------------------------------------------


def sinim_staging(long: pd.DataFrame) -> pd.DataFrame:
    """The finance variables of a SINIM long frame (with snapshot_id), validated; values as published."""
    frame = long[long["variable_code"].isin(list(VARIABLE_KEYS))].copy()
    frame.insert(4, "measure", frame["variable_code"].map(VARIABLE_KEYS))
    return validated(SINIM_SCHEMA, sinim.SOURCE, frame[list(SINIM_COLUMNS)].reset_index(drop=True))


def parse_sinim(acquired: list[Acquired], walked: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw long rows, staging rows): the walk's frame, or the SAMPLE long extract."""
    if walked is None:
        payload = acquired[0].payload
        raw = sinim.parse_long_extract(payload.content)
        raw["snapshot_id"] = payload.snapshot_id
    else:
        raw = walked
    return raw, sinim_staging(raw)


def parse_rates(
    acquired: list[tuple[FetchRequest, Acquired]], asked: dict[str, tuple[str, int]]
) -> pd.DataFrame:
    """mindicador series; each answer must hold the indicator and year it was asked for (`asked[name]`)."""
    frames = []
    for request, item in acquired:
        payload = item.payload
        indicator, year = asked[request.name]
        frame = mindicador.parse_series(payload.content, payload.snapshot_id)
        if (frame["indicator"] != indicator).any() or (frame["date"].dt.year != year).any():
            found = sorted(set(frame["indicator"])), sorted(set(frame["date"].dt.year))
            raise ParseError(
                mindicador.SOURCE.id,
                f"{request.name}: answer holds indicator/years {found}, not {indicator} {year}",
                payload.snapshot_id,
            )
        frame["snapshot_id"] = payload.snapshot_id
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def parse_pagos(
    acquired: list[tuple[FetchRequest, Acquired]], asked: dict[str, tuple[int, int]]
) -> pd.DataFrame:
    """Presupuesto Abierto answers, each read for the region and year it was asked for (`asked[name]`)."""
    frames = []
    for request, item in acquired:
        region, year = asked[request.name]
        frame = presupuesto_abierto.parse_pagos(item.payload.content, region, year, item.payload.snapshot_id)
        frame["snapshot_id"] = item.payload.snapshot_id
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def raw_csv_rows(content: bytes, snapshot_id: str) -> pd.DataFrame:
    """A curated CSV's rows as text, as the file has them."""
    frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame["snapshot_id"] = snapshot_id
    return frame


def curated_paths() -> dict[str, Path]:
    """The curated royalty files, from the endpoints (overridable; file:// under an allowed root)."""
    urls = endpoints(royalties.SOURCE.id, royalties.ENDPOINTS)
    return {name: file_url_path(url) for name, url in urls.items()}


def curated_digest() -> str:
    digest = hashlib.sha256()
    for name, path in sorted(curated_paths().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --- territories ---------------------------------------------------------------------------------


def comuna_territories(conn) -> frozenset[str] | None:
    """Comuna codes in core.territories, or None while no comuna has been loaded (boundaries family)."""
    codes = [r[0] for r in conn.execute("SELECT code FROM core.territories WHERE kind = 'comuna'").fetchall()]
    return frozenset(codes) or None


def unresolved_territories(conn, territory_ids) -> tuple[list[str], str]:
    """Territory ids with no territory, and what they were resolved against."""
    known = {r[0] for r in conn.execute("SELECT territory_id FROM core.territories").fetchall()}
    comunas_loaded = comuna_territories(conn) is not None
    unresolved = []
    for tid in sorted(set(territory_ids)):
        if tid in known:
            continue
        kind, code = tid.split(":", 1)
        if kind == "comuna" and not comunas_loaded and f"region:{code[:2]}" in known:
            continue
        unresolved.append(tid)
    basis = (
        "core.territories"
        if comunas_loaded
        else "core.territories regions only: no comuna territories loaded yet (boundaries family), "
        "so comuna codes were checked for a known region prefix"
    )
    return unresolved, basis

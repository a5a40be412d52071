"""Every payload the pipeline reads, at national size, in each source's real wire format.

Generated for `bench/bench_national_build.py` into a cache directory (reused across timed
runs and across invocations with the same size and seed: generation is deterministic), and
served by `routes` at the sources' real URL paths. Every value is INVENTED: only the shape
and the size stand for the real files.

Full national size, generated here:
- CAMELS-CL v202201 zip: `q_m3s_day.csv` (516 gauges x ~40,000 days, bench_streamflow_load's
  generator) and `catchment_attributes.csv`;
- DEIS deaths 1990-2023: one zipped `;` latin-1 CSV of ~3.5 million rows (bench_deaths_load's
  generator, over the 346 real comuna codes);
- INE projections by sex and single age: the comuna file (346 comunas x 2 sexes x ages 0..80,
  2002-2035) and the national file (1992-2050, the comunas summed, 80+ spread over 80..100+);
- MINVU catastros: the 2024 FeatureServer layer (paged) and the CNC 2022 shapefile parts,
  settlements spread over every region;
- SINIM: the data service answering every comuna x finance variable x year;
- OECD regional: the four SDMX-CSV flows for every TL2 region, Chile and the OECD, 2000-2023.

Served at their natural size from the project's samples (sources/samples/, our own files in
the real formats): SINCA, ENE, DEIS establishments, INDH conflicts, MDS poverty, census 2024
tables and microdata, DGA basins, INE census comuna layer, CAMELS-CL macrobasins, mindicador.
Not served (their protocol needs a walk the bench does not script; they fall back to their
samples): CR2 streamflow, Presupuesto Abierto, census table V1, MDS income 2022.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_deaths_load, bench_streamflow_load  # noqa: E402
from sources import camels_cl, deis_deaths, ine_population, oecd, sinim  # noqa: E402
from sources import minvu_campamentos as mc  # noqa: E402
from sources.division import DIVISION_CSV, REGIONS_CSV  # noqa: E402
from sources.samples.health import make_sample as health_sample  # noqa: E402
from sources.samples.oecd import make_sample as oecd_sample  # noqa: E402
from tests.support.http import Reply, featureserver_layer, file_reply  # noqa: E402

SAMPLES = REPO_ROOT / "sources" / "samples"
ZIP_TIME = (2026, 12, 2, 0, 0, 0)
SEED = 20261202
MAX_RECORD_COUNT = 2000  # the FeatureServer page cap


@dataclass(frozen=True)
class Scale:
    """How big to make the generated payloads (the defaults are Chile's)."""

    gauges: int = 516
    days: int = 40_000
    deaths: int = 3_500_000
    settlements_2024: int = 1_290
    settlements_2022: int = 1_091
    oecd_years: tuple[int, int] = (2000, 2023)

    def key(self) -> str:
        return hashlib.sha256(repr((self, SEED)).encode()).hexdigest()[:12]


QUICK = Scale(gauges=20, days=3_000, deaths=20_000, settlements_2024=120, settlements_2022=100)


@dataclass(frozen=True)
class Comuna:
    code: str  # 5 digits
    name: str
    province: str  # 3 digits
    province_name: str
    region: str  # 2 digits
    region_name: str


def division() -> list[Comuna]:
    """The 346 comunas of the official division the project maintains (sources/reference)."""
    with REGIONS_CSV.open(encoding="utf-8") as handle:
        regions = {row["region_code"]: row["name"] for row in csv.DictReader(handle)}
    with DIVISION_CSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    provinces = {row["cut"]: row["name"] for row in rows if row["level"] == "province"}
    return [
        Comuna(row["cut"], row["name"], row["parent_cut"], provinces[row["parent_cut"]], row["cut"][:2],
               regions[row["cut"][:2]])
        for row in rows
        if row["level"] == "comuna"
    ]  # fmt: skip


def regions() -> dict[str, tuple[str, str]]:
    """{region code: (name, OECD TL2 code)}."""
    with REGIONS_CSV.open(encoding="utf-8") as handle:
        return {row["region_code"]: (row["name"], row["oecd_tl2"]) for row in csv.DictReader(handle)}


def _zip_file(target: Path, members: dict[str, Path]) -> None:
    """A deflated zip of files streamed from disk, with pinned timestamps (byte-identical reruns)."""
    with zipfile.ZipFile(target, "w") as bundle:
        for name, source in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with source.open("rb") as src, bundle.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


# --- CAMELS-CL -------------------------------------------------------------------------------


def write_camels(work: Path, scale: Scale) -> Path:
    daily, attributes = work / "q_m3s_day.csv", work / "catchment_attributes.csv"
    bench_streamflow_load.generate(daily, scale.days, scale.gauges, seed=SEED)
    rng = np.random.default_rng(SEED)
    with attributes.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["gauge_id", "gauge_name", "gauge_lat", "gauge_lon", "area", "elev_gauge",
                         "interv_degree", "big_dam"])  # fmt: skip
        for i, gauge in enumerate(bench_streamflow_load.gauge_ids(scale.gauges)):
            lat = -17.6 - 38.0 * i / max(scale.gauges - 1, 1)
            writer.writerow([gauge, f"Rio Invented {i} BENCH", f"{lat:.4f}", f"{-70.5 + rng.uniform(-1, 1):.4f}",
                             f"{rng.lognormal(6, 1.2):.1f}", int(rng.integers(0, 4000)),
                             f"{rng.uniform(0, 1):.3f}", int(rng.integers(0, 2))])  # fmt: skip
    target = work / "camels_cl_v202201.zip"
    _zip_file(
        target, {camels_cl.V202201_DAILY_MEMBER: daily, camels_cl.V202201_ATTRIBUTES_MEMBER: attributes}
    )
    daily.unlink()
    attributes.unlink()
    return target


# --- DEIS deaths -----------------------------------------------------------------------------


def write_deaths(work: Path, scale: Scale, comunas: list[Comuna]) -> Path:
    """DEIS writes the comuna without its leading zero and the region as "De <name>"."""
    csv_path = work / "DEFUNCIONES_FUENTE_DEIS_1990_2023_CIFRAS_OFICIALES.csv"
    listed = [(str(int(c.code)), c.name, f"De {c.region_name}") for c in comunas]
    bench_deaths_load.write_deaths_file(csv_path, scale.deaths, comunas=listed)
    target = work / "DEFUNCIONES_FUENTE_DEIS_1990_2023_CIFRAS_OFICIALES.zip"
    _zip_file(target, {csv_path.name: csv_path})
    csv_path.unlink()
    return target


# --- INE projections -------------------------------------------------------------------------


def _comuna_population(comunas: list[Comuna], years: range) -> dict[tuple[int, int, int, int], int]:
    """{(comuna, sex, age, year): people}, invented and smooth, 80 the open 80+ group."""
    rng = np.random.default_rng(SEED)
    table = {}
    for comuna in comunas:
        code, base = int(comuna.code), float(rng.lognormal(10.2, 1.3))
        growth, shares = float(rng.uniform(-0.005, 0.025)), health_sample.age_structure(rng.uniform(32, 55))
        for sex, sex_share in ((1, 0.505), (2, 0.495)):
            for year in years:
                total = base * (1 + growth) ** (year - 2017) * sex_share
                for age in range(81):
                    table[(code, sex, age, year)] = int(round(total * shares[age]))
    return table


def write_population(work: Path, comunas: list[Comuna]) -> tuple[Path, Path]:
    """The comuna file (the INE workbook's columns, as CSV, which the source reads too) and the
    national file, whose country is the comunas summed so the totals check agrees."""
    table = _comuna_population(comunas, health_sample.NATIONAL_YEARS)
    comuna_csv = work / "estimaciones-y-proyecciones-2002-2035-comunas.csv"
    header = ["Region", "Nombre Region", "Provincia", "Nombre Provincia", "Comuna", "Nombre Comuna"]
    header += ["Sexo (1=Hombre 2=Mujer)", "Edad"] + [f"Poblacion {y}" for y in health_sample.POPULATION_YEARS]
    with comuna_csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for c in comunas:
            place = [int(c.region), c.region_name, int(c.province), c.province_name, int(c.code), c.name]
            for sex in (1, 2):
                for age in range(81):
                    counts = [table[(int(c.code), sex, age, y)] for y in health_sample.POPULATION_YEARS]
                    writer.writerow([*place, sex, age, *counts])
    national: dict[tuple[int, int, int], int] = {}
    codes = [int(c.code) for c in comunas]
    for sex in (1, 2):
        for year in health_sample.NATIONAL_YEARS:
            by_age = [sum(table[(code, sex, age, year)] for code in codes) for age in range(81)]
            for age, count in enumerate(by_age[:80] + health_sample.spread_open_group(by_age[80])):
                national[(sex, age, year)] = count
    national_csv = work / "ine_estimaciones-y-proyecciones-de-poblacion-1992-2050_base-2017_base-de-datos.csv"
    health_sample.write_national_csv(national, national_csv)
    return comuna_csv, national_csv


# --- MINVU catastros -------------------------------------------------------------------------


def _settlements(comunas: list[Comuna], count: int, seed: int) -> list[dict]:
    """Invented settlements: a comuna, a centre near its region's latitude, households, a folio."""
    rng = np.random.default_rng(seed)
    order = sorted({c.region for c in comunas})
    rows = []
    for i in range(count):
        comuna = comunas[int(rng.integers(len(comunas)))]
        lat = -18.5 - 2.2 * order.index(comuna.region) + float(rng.uniform(-0.8, 0.8))
        rows.append({"folio": 1_000_000 + i * 7, "comuna": comuna, "centre": (lat, -70.3 + float(rng.uniform(-0.6, 0.6))),
                     "radius": float(rng.uniform(0.0003, 0.003)), "households": int(rng.integers(8, 900))})  # fmt: skip
    return rows


def catastro_2024_features(comunas: list[Comuna], count: int) -> list[dict]:
    """The layer's features in the FeatureServer's GeoJSON properties (sample layout)."""
    from shapely.geometry import mapping

    from sources.samples.campamentos import make_samples as camp

    features = []
    for object_id, row in enumerate(_settlements(comunas, count, SEED), 1):
        c, polygon = row["comuna"], camp.settlement_polygon(row["centre"], row["radius"])
        planar = camp.web_mercator(polygon)
        area, perimeter = camp._GEOD.geometry_area_perimeter(polygon)
        properties = {"OBJECTID_12": object_id, "OBJECTID": object_id, "OBJECTID_1": object_id,
                      "FOLIO": row["folio"], "NOMBRE": f"Campamento {object_id} BENCH", "REGION": c.region_name,
                      "CUT_R": c.region, "PROVINCIA": c.province_name, "CUT_P": c.province, "CUT": int(c.code),
                      "COMUNA": c.name, "AN_CAT": "CATASTRO_2024", "N_HOG": row["households"], "FUENTE": "MINVU",
                      "OBS": "BENCH: invented", "HECTAREAS": round(planar.area / 10_000, 8),
                      "Shape_Leng": round(planar.length, 8), "Shape__Area": round(abs(area), 8),
                      "Shape__Length": round(perimeter, 8)}  # fmt: skip
        features.append(
            {"type": "Feature", "id": object_id, "geometry": mapping(polygon), "properties": properties}
        )
    return features


def write_cnc_2022(work: Path, comunas: list[Comuna], count: int) -> Path:
    """The CNC 2022 shapefile parts (Web Mercator, the published attribute layout)."""
    import geopandas as gpd
    import pyogrio

    from sources.samples.campamentos import make_samples as camp

    records, geometries = [], []
    for row in _settlements(comunas, count, SEED + 1):
        c, planar = row["comuna"], camp.web_mercator(camp.settlement_polygon(row["centre"], row["radius"]))
        records.append({"FOLIO_NUM": row["folio"], "FOLIO": float(row["folio"]), "NOMBRE": f"Campamento {row['folio']}",
                        "REGION": c.region_name, "CUT_R": c.region, "PROVINCIA": c.province_name, "CUT_P": c.province,
                        "COMUNA": c.name, "CUT_C": c.code, "AN_CAT": "CATASTRO_2022", "N_HOG": float(row["households"]),
                        "SUP_M2": f"{planar.area:.7f}".replace(".", ","), "Shape_Leng": round(planar.length, 6),
                        "Shape_Area": round(planar.area, 6)})  # fmt: skip
        geometries.append(planar)
    directory = work / "CNC2022"
    directory.mkdir(exist_ok=True)
    frame = gpd.GeoDataFrame(records, geometry=geometries, crs="EPSG:3857")
    shp = directory / "CNC2022.shp"
    pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile", encoding="UTF-8")
    dbf = shp.with_suffix(".dbf")
    header = bytearray(dbf.read_bytes())
    header[1:4] = bytes((ZIP_TIME[0] - 1900, ZIP_TIME[1], ZIP_TIME[2]))  # the DBF's update date
    dbf.write_bytes(bytes(header))
    return directory


# --- OECD --------------------------------------------------------------------------------------


def write_oecd(work: Path, years: tuple[int, int]) -> dict[str, Path]:
    """Each flow for every TL2 region, Chile and the OECD, in the samples' SDMX-CSV layout."""
    areas = {tl2: ("TL2", name, "CHL") for name, tl2 in regions().values()}
    areas |= {k: v for k, v in oecd_sample.AREAS.items() if v[0] == "TL1"}
    written = {}
    for indicator, spec in oecd_sample.FLOWS.items():
        header = ["STRUCTURE", "STRUCTURE_ID", "STRUCTURE_NAME", "ACTION", "FREQ", "Frequency of observation",
                  "TERRITORIAL_LEVEL", "Territorial level", "REF_AREA", "Reference area",
                  "TERRITORIAL_TYPE", "Territorial typology"]  # fmt: skip
        for code, label, _, _ in spec["dims"]:
            header += [code, label]
        header += oecd_sample.COMMON_TAIL + oecd_sample.STATUS
        structure_id, structure_name = spec["structure"]
        target = work / f"{indicator}.csv"
        with target.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            for index, (area, (level, name, country)) in enumerate(areas.items()):
                base = spec["base"].get(area, spec["base"]["CL01"] * (0.8 + 0.03 * index))
                for step, year in enumerate(range(years[0], years[1] + 1)):
                    value = round(base * (1 + spec["growth"]) ** step, spec["decimals"])
                    row = [
                        "DATAFLOW",
                        structure_id,
                        structure_name + " [BENCH: invented]",
                        "I",
                        "A",
                        "Annual",
                    ]
                    row += [level, level, area, name, "_Z", "Not applicable"]
                    row += [cell for _, _, code, label in spec["dims"] for cell in (code, label)]
                    row += [str(year), "", repr(value) if spec["decimals"] else str(int(value)), ""]
                    row += [country, "Chile" if country == "CHL" else "OECD"]
                    row += ["A", "Normal value", "0", "Units", str(spec["decimals"]), str(spec["decimals"])]
                    writer.writerow(row)
        written[indicator] = target
    return written


# --- SINIM --------------------------------------------------------------------------------------


def sinim_handlers(comunas: list[Comuna]) -> dict[str, Callable]:
    """The three data-service scripts: the sample catalogue, every municipality, and one value a
    request, answered deterministically from the request (Chilean number format)."""
    listing = {"textos": [{"id_municipio": str(180 + i), "municipio": c.name.upper(), "idLegal": c.code}
                          for i, c in enumerate(comunas)]}  # fmt: skip
    names = {c.code: c.name.upper() for c in comunas}
    catalogue = (SAMPLES / "finance" / "sinim_obtener_datos_filtros_SAMPLE.json").read_bytes()
    json_type = {"Content-Type": "application/json; charset=utf-8"}

    def value(handler) -> Reply:
        form = {k: v[0] for k, v in parse_qs(handler.request_body.decode("utf-8")).items()}
        code = next(k.split("[")[2].rstrip("]") for k in form if k.startswith("variables[1]["))
        comuna = form["municipios[0][idLegal]"]
        digest = hashlib.sha256(f"{code}|{comuna}|{form}".encode()).digest()
        number = int.from_bytes(digest[:4], "big")
        if number % 97 == 0:
            text = sinim.NOT_RECEIVED
        elif code == "1272":
            text = f"{number % 9000 / 100:.2f}".replace(".", ",")
        else:
            text = f"{number % 40_000_000 + 1000:,}".replace(",", ".")
        body = {"textos": [{"valor": text, "col": "1", "classtype": "par", "municipio": names[comuna]}]}
        return Reply(200, json.dumps(body, ensure_ascii=False).encode(), json_type)

    return {
        "catalogue": lambda handler: Reply(200, catalogue, json_type),
        "municipalities": lambda handler: Reply(
            200, json.dumps(listing, ensure_ascii=False).encode(), json_type
        ),
        "values": value,
    }


# --- the served set ------------------------------------------------------------------------------

# (source id, endpoint name, sample file under sources/samples, content type): served as they are.
SAMPLE_ROUTES = [
    ("ine_ene", name, f"labour/{name}_SAMPLE.csv", "text/csv")
    for name in ("DF_TDES_SEXO", "DF_TDES_PROVINCIAS", "DF_TDES_CONUR", "DF_TP_SEXO", "DF_OCURAMA_RAMA_SEXO")
] + [
    ("indh_conflicts", "conflicts", "facilities/indh_conflictos_SAMPLE.json", "application/json"),
    ("deis_establishments", "workbook", "facilities/Establecimientos_ChileDEIS_MINSAL(SAMPLE).xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("mds_poverty_sae", "multidimensional_2022", "poverty/estimaciones_indice_pobreza_multidimensional_comunas_2022_SAMPLE.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("ine_censo2024_microdata", "viviendas", "census2024/viviendas_censo2024_SAMPLE.zip", "application/zip"),
    ("ine_censo2024_microdata", "personas", "census2024/personas_censo2024_SAMPLE.zip", "application/zip"),
    ("ine_censo2024_microdata", "dictionary", "census2024/diccionario_variables_censo2024_SAMPLE.csv", "text/csv"),
    ("dga_bna_basins", "cuencas", "boundaries/SAMPLE_Cuencas_BNA.zip", "application/zip"),
    ("camels_cl_macrobasins", "annual_csv", "streamflow/camelscl_macrobasins_yr_SAMPLE.csv", "text/csv"),
    ("sinca", "stations", "air/sinca_listadomapa2k19_SAMPLE.json", "application/json"),
] + [
    ("ine_censo2024_tables", name, f"census2024/{name}_SAMPLE.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    for name in ("V4", "H1", "D1", "P2")
]  # fmt: skip


@dataclass
class Payloads:
    """The generated files and the routes that serve them, plus what each source was served from."""

    routes: dict[str, Callable] = field(default_factory=dict)
    served: dict[str, dict] = field(default_factory=dict)  # source id -> {scale, bytes, files}
    changed: dict[str, tuple[str, Path, str]] = field(default_factory=dict)  # source -> (route, file, type)

    def add(self, source_id: str, path: str, handler: Callable, scale: str, size: int = 0) -> None:
        self.routes[path] = handler
        entry = self.served.setdefault(source_id, {"scale": scale, "bytes": 0, "routes": 0})
        entry["bytes"] += size
        entry["routes"] += 1


def url_path(module, name: str, attribute: str = "ENDPOINTS") -> str:
    return urlparse(getattr(module, attribute)[name]).path


def source_modules() -> list:
    """Every module of the sources package (where the endpoints are declared)."""
    import importlib
    import pkgutil

    import sources

    return [
        importlib.import_module(f"sources.{found.name}") for found in pkgutil.iter_modules(sources.__path__)
    ]


def _module_of(source_id: str):
    for module in source_modules():
        info = getattr(module, "SOURCE", None)
        if getattr(info, "id", None) == source_id and hasattr(module, "ENDPOINTS"):
            return module
    raise LookupError(source_id)


def build(cache: Path, scale: Scale, log=print) -> Payloads:
    """Generate (or reuse from `cache`) every payload at `scale`; return the routes serving them."""
    work = cache / f"payloads-{scale.key()}"
    done = work / ".complete"
    comunas = division()
    if not done.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for what, step in (
            ("CAMELS-CL zip", lambda: write_camels(work, scale)),
            ("DEIS deaths zip", lambda: write_deaths(work, scale, comunas)),
            ("INE projections", lambda: write_population(work, comunas)),
            ("CNC 2022 shapefile", lambda: write_cnc_2022(work, comunas, scale.settlements_2022)),
            ("OECD flows", lambda: write_oecd(work, scale.oecd_years)),
        ):
            log(f"  generating {what} ...")
            step()
        done.write_text("ok\n")
    return _served(work, scale, comunas)


def _served(work: Path, scale: Scale, comunas: list[Comuna]) -> Payloads:
    payloads = Payloads()

    def serve_file(source_id, path, file, content_type, size_label="full"):
        payloads.add(source_id, path, file_reply(file, content_type), size_label, file.stat().st_size)

    camels = work / "camels_cl_v202201.zip"
    serve_file("camels_cl", url_path(camels_cl, "v202201_zip"), camels, "application/zip")
    deaths = work / "DEFUNCIONES_FUENTE_DEIS_1990_2023_CIFRAS_OFICIALES.zip"
    serve_file("deis_deaths", url_path(deis_deaths, "official_zip"), deaths, "application/zip")
    comuna_csv = work / "estimaciones-y-proyecciones-2002-2035-comunas.csv"
    national_csv = work / "ine_estimaciones-y-proyecciones-de-poblacion-1992-2050_base-2017_base-de-datos.csv"
    serve_file(
        "ine_population", url_path(ine_population, "comunas_xlsx"), comuna_csv, "text/csv; charset=utf-8"
    )
    serve_file(
        "ine_population",
        url_path(ine_population, "national_csv"),
        national_csv,
        "text/csv; charset=windows-1252",
    )
    features = catastro_2024_features(comunas, scale.settlements_2024)
    layer = featureserver_layer(features, MAX_RECORD_COUNT)
    payloads.add("minvu_campamentos", url_path(mc, "catastro_2024_layer") + "/query", layer, "full")
    written = {file.suffix.lower(): file for file in (work / "CNC2022").iterdir()}  # pyogrio writes .cpg
    for part in mc.SHAPEFILE_PARTS:
        serve_file("minvu_campamentos", url_path(mc, "cnc_2022_shapefile") + part, written[part.lower()],
                   "application/octet-stream")  # fmt: skip
    for indicator in oecd_sample.FLOWS:
        serve_file("oecd_regional", url_path(oecd, indicator), work / f"{indicator}.csv", "text/csv")
    gdp = "oecd_gdp_per_capita_usd_ppp"
    payloads.changed["oecd_regional"] = (url_path(oecd, gdp), work / f"{gdp}.csv", "text/csv")
    for name, handler in sinim_handlers(comunas).items():
        payloads.add("sinim", url_path(sinim, name), handler, "full")
    _serve_samples(payloads)
    return payloads


def _serve_samples(payloads: Payloads) -> None:
    from sources import ine_territories, mindicador, sinca

    for source_id, name, relative, content_type in SAMPLE_ROUTES:
        file = SAMPLES / relative
        path = (
            urlparse(_module_of(source_id).ENDPOINTS[name]).path
            if source_id != "camels_cl_macrobasins"
            else url_path(camels_cl, name, "MACROBASIN_ENDPOINTS")
        )
        payloads.add(source_id, path, file_reply(file, content_type), "sample", file.stat().st_size)
    # SINCA: one CGI path, the series told apart by the `macro` query parameter.
    by_macro = {}
    for name, url in sinca.ENDPOINTS.items():
        if name != "stations":
            by_macro[parse_qs(urlparse(url).query)["macro"][0]] = file_reply(
                SAMPLES / "air" / f"{name}_SAMPLE.csv", "text/csv"
            )
    cgi = next(urlparse(u).path for n, u in sinca.ENDPOINTS.items() if n != "stations")

    def series(handler):
        macro = parse_qs(urlparse(handler.path).query).get("macro", [""])[0]
        return by_macro[macro](handler) if macro in by_macro else Reply(404, b"no such series")

    payloads.add("sinca", cgi, series, "sample")
    for file in sorted((SAMPLES / "finance").glob("mindicador_*_SAMPLE.json")):
        _, indicator, year, _ = file.name.split("_")
        path = f"{urlparse(mindicador.ENDPOINTS['api']).path.rstrip('/')}/{indicator}/{year}"
        payloads.add("mindicador", path, file_reply(file, "application/json"), "sample", file.stat().st_size)
    pages = json.loads((SAMPLES / "boundaries" / "SAMPLE_ine_censo2024_comunas.geojson").read_bytes())[
        "features"
    ]
    layer = urlparse(ine_territories.layer_url(ine_territories.ENDPOINTS["censo2024_featureserver"])).path
    payloads.add(
        "ine_censo2024_territories", layer + "/query", featureserver_layer(pages, MAX_RECORD_COUNT), "sample"
    )


def endpoint_overrides(base_url: str) -> dict[str, str]:
    """CONTEXT_LENS_ENDPOINT__* for every http endpoint every source spec declares: the local server
    at the real URL path and query. Endpoints the server does not answer get 404 (and fall back)."""
    from sources import specs
    from sources.endpoints import _env_key

    env = {}
    for source_id in specs.all_specs():
        for name, url in specs.endpoints(source_id).items():
            parsed = urlparse(url or "")
            if parsed.scheme in ("http", "https"):
                env[_env_key(source_id, name)] = (
                    base_url + parsed.path + (f"?{parsed.query}" if parsed.query else "")
                )
    return env


def change_one_source(payloads: Payloads, source_id: str = "oecd_regional") -> None:
    """Serve a new release of one source: a copy of its file with one value changed (the last
    row's OBS_VALUE plus one), so its sha256 and ETag change and nothing else does."""
    path, original, content_type = payloads.changed[source_id]
    edited = original.with_suffix(".changed" + original.suffix)
    lines = original.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = next(csv.reader([lines[-1]]))
    column = lines[0].rstrip("\n").split(",").index("OBS_VALUE")
    cells[column] = str(int(cells[column]) + 1)
    with edited.open("w", encoding="utf-8", newline="") as out:
        out.writelines(lines[:-1])
        csv.writer(out, lineterminator="\n").writerow(cells)
    payloads.routes[path] = file_reply(edited, content_type)


def restore_source(payloads: Payloads, source_id: str = "oecd_regional") -> None:
    """Serve the source's original file again (before the next repetition's fresh build)."""
    path, original, content_type = payloads.changed[source_id]
    payloads.routes[path] = file_reply(original, content_type)

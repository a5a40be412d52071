"""The SAMPLE census workbooks (V1, V4, H1, D1, P2) computed from the sample microdata, in INE's layout."""

from __future__ import annotations

from collections import Counter, defaultdict

INE_REGION_ORDER = [15, 1, 2, 3, 4, 5, 13, 6, 7, 16, 8, 9, 14, 10, 11, 12]
DWELLINGS = "Viviendas particulares ocupadas con moradores presentes"
INDIGENOUS = "Población que es o se considera perteneciente a un pueblo indígena u originario"
FOOTNOTE = (
    "Fuente: Censo de Población y Vivienda 2024 - Instituto Nacional de Estadísticas. SAMPLE: figures computed "
    "by context-lens from invented microdata, not INE results.\nNota: La información utilizada fue procesada bajo "
    "los principios de protección y privacidad de los datos de la ley 17.374."
)
SUPPRESSION_NOTE = (
    "\nNota 2: las celdas con 50 casos o menos han sido suprimidas para el resguardo de la anonimización e "
    "indeterminación de las personas. Estas celdas se encuentran marcadas con asterisco (*)."
)

# (sheet pair, title, variable, [(header, code), ...]); the first column is the universe total.
V4 = [
    ("fuente de origen del agua para uso doméstico", "p6_fuente_agua", [("Red pública", 1), ("Pozo o noria", 2), ("Camión aljibe", 3), ("Río, vertiente, estero, canal, lago, agua lluvia, etc", 4), ("Fuente de origen del agua no declarado", -99)]),
    ("sistema de distribución del agua", "p7_distrib_agua", [("Con llave dentro de la vivienda", 1), ("Con llave dentro del sitio, pero fuera de la vivienda", 2), ("No tiene sistema, la acarrea", 3), ("Sistema de distribución del agua no declarado", -99)]),
    ("sistema de servicio higiénico", "p8_serv_hig", [("Dentro de la vivienda, conectado a una red de alcantarillado", 1), ("Fuera de la vivienda, conectado a una red de alcantarillado", 2), ("Conectado a una fosa séptica", 3), ("Conectado a pozo negro (letrina sanitaria o cajón)", 4), ("En un cajón sobre acequia o canal", 5), ("En un cajón conectado a otro sistema", 6), ("Baño químico", 7), ("Conectado a baño seco", 8), ("No tiene servicio higiénico", 9), ("Sistema de servicio higiénico no declarado", -99)]),
    ("fuente de energía eléctrica", "p9_fuente_elect", [("Red pública", 1), ("Generador con diésel o bencina", 2), ("Placa solar", 3), ("Energía eólica (viento)", 4), ("Otro", 5), ("No tiene energía eléctrica", 6), ("Fuente de energía eléctrica no declarada", -99)]),
    ("medio de eliminación de basura", "p10_basura", [("La recogen los servicios de aseo", 1), ("La entierra y/o quema", 2), ("La deja en terreno eriazo, quebrada o zanja", 3), ("La tira al río, laguna o mar", 4), ("Otro", 5), ("Medio de eliminación de basura no declarado", -99)]),
]  # fmt: skip
PEOPLES = [("Mapuche", 1), ("Aymara", 2), ("Rapa Nui", 3), ("Atacameño o Lickanantay", 4), ("Quechua", 5), ("Colla", 6), ("Diaguita", 7), ("Kawésqar", 8), ("Yagán", 9), ("Chango", 10), ("Selk'nam", 11), ("Otro", 12), ("Pueblo no declarado", -99)]  # fmt: skip
ICT = ["Teléfono móvil, celular o smartphone", "Computador (escritorio, portátil)", "Tablet", "Internet fija", "Internet móvil desde un celular, tablet o BAM", "Internet por conexión satelital"]  # fmt: skip
ICT_SHARES = {"urban": [0.98, 0.6, 0.3, 0.7, 0.9, 0.02], "rural": [0.93, 0.35, 0.15, 0.25, 0.8, 0.12]}


def _sheet(number: int, title: str, level: str, header: list[str], rows: list[list], note: str = "") -> tuple:
    codes = ["Código región", "Región"] + (
        ["Código provincia", "Provincia", "Código comuna", "Comuna"] if level == "comuna" else []
    )
    word = "comuna" if level == "comuna" else "región"
    body = [[], [], [f"{number}. {title}, según {word}."], codes + header, *rows, [], [FOOTNOTE + note]]
    return str(number), body  # fmt: skip


def _nota(workbook: str) -> tuple:
    rows = [["Nota de presentación"], ["Fecha de publicación: 1 de enero, 2025."], [f"SAMPLE {workbook}: tables computed by context-lens from invented microdata; they are not INE results."]]  # fmt: skip
    return "Nota", rows


class Places:
    """The sample's comunas, provinces and regions in INE's north-to-south order."""

    def __init__(self, comunas, region_names):
        order = {region: i for i, region in enumerate(INE_REGION_ORDER)}
        self.comunas = sorted(comunas, key=lambda c: (order[c[0] // 1000], c[0]))
        self.regions = sorted({c[0] // 1000 for c in comunas}, key=order.get)
        self.region_names = region_names

    def rows(self, level: str, values) -> list[list]:
        """País row first, then one row per region or comuna; `values(key)` gives the cells (key 0 = País)."""
        if level == "region":
            out = [[0, "País", *values(0)]]
            return out + [[r, self.region_names[r], *values(("region", r))] for r in self.regions]
        out = [[0, "País", 0, "País", 0, "País", *values(0)]]
        for code, name, province, province_name, *_ in self.comunas:
            region = code // 1000
            out.append(
                [
                    region,
                    self.region_names[region],
                    province,
                    province_name,
                    code,
                    name,
                    *values(("comuna", code)),
                ]
            )
        return out


def _keys(record: dict) -> list:
    return [0, ("region", int(record["region"])), ("comuna", int(record["comuna"]))]


def _counter(records, variable: str | None, where=lambda r: True) -> dict:
    counts: dict = defaultdict(Counter)
    for record in records:
        if where(record):
            for key in _keys(record):
                counts[key]["total"] += 1
                if variable:
                    counts[key][record[variable]] += 1
    return counts


def _suppress(value: int) -> int | str:
    return "*" if 0 < value <= 50 else value


def v4(places: Places, dwellings) -> list[tuple]:
    present = [d for d in dwellings if d["p3b_estado_ocupacion"] == 1]
    sheets = [_nota("V4")]
    for pair, (title, variable, categories) in enumerate(V4):
        counts = _counter(present, variable)
        header = [DWELLINGS.replace(" con ", "\ncon ", 1) if pair == 0 else DWELLINGS] + [
            h for h, _ in categories
        ]
        for level, number in (("region", 2 * pair + 1), ("comuna", 2 * pair + 2)):
            rows = places.rows(
                level, lambda key, c=counts, k=categories: [c[key]["total"]] + [c[key][code] for _, code in k]
            )
            sheets.append(_sheet(number, f"{DWELLINGS} por {title}", level, header, rows))
    return sheets


def p2(places: Places, persons) -> list[tuple]:
    counts = _counter(persons, "p28_pueblo_pert", where=lambda p: p["p28_autoid_pueblo"] == 1)
    header = [INDIGENOUS] + [name for name, _ in PEOPLES]
    sheets = [_nota("P2")]
    for level, number in (("region", 1), ("comuna", 2)):

        def cells(key, level=level):
            values = [counts[key]["total"]] + [counts[key][code] for _, code in PEOPLES]
            return [_suppress(v) for v in values] if level == "comuna" else values

        rows = places.rows(level, cells)
        note = SUPPRESSION_NOTE if level == "comuna" else ""
        sheets.append(
            _sheet(number, f"{INDIGENOUS} por nombre del pueblo originario", level, header, rows, note)
        )
    return sheets


def d1(places: Places, persons) -> list[tuple]:
    counts = _counter(persons, "sexo")
    header = ["Población censada", "Hombres", "Mujeres", "Razón hombre-mujer"]

    def cells(key):
        c = counts[key]
        return [c["total"], c[1], c[2], round(100 * c[1] / c[2], 1) if c[2] else "-"]

    sheets = [_nota("D1")]
    for level, number in (("region", 1), ("comuna", 2)):
        sheets.append(
            _sheet(
                number,
                "Población censada por sexo y razón hombre-mujer",
                level,
                header,
                places.rows(level, cells),
            )
        )
    return sheets


def v1(places: Places, dwellings, persons) -> list[tuple]:
    census = _counter(dwellings, "p3a_estado_ocupacion")
    households = _counter([d for d in dwellings if d["p3b_estado_ocupacion"] == 1], None)
    people = _counter(persons, None)
    sheets = [_nota("V1")]
    header = [
        "Viviendas censadas",
        "Viviendas particulares ocupadas",
        "Viviendas particulares desocupadas",
        "Viviendas colectivas",
    ]
    for level, number in (("region", 1), ("comuna", 2)):
        rows = places.rows(level, lambda key: [census[key]["total"], census[key][1], census[key][2], 0])
        sheets.append(_sheet(number, "Viviendas particulares y colectivas censadas", level, header, rows))
    for level, number in (("region", 5), ("comuna", 6)):
        rows = places.rows(
            level,
            lambda key: [households[key]["total"], round(people[key]["total"] / households[key]["total"], 1)],
        )
        sheets.append(
            _sheet(
                number,
                "Hogares censados y promedio de personas por hogar",
                level,
                ["Hogares censados", "Promedio de personas por hogar"],
                rows,
            )
        )
    return sheets


def h1(places: Places, dwellings, rng) -> list[tuple]:
    counts: dict = defaultdict(Counter)
    for dwelling in (d for d in dwellings if d["p3b_estado_ocupacion"] == 1):
        shares = ICT_SHARES["urban" if dwelling["area"] == 1 else "rural"]
        for item, share in zip(ICT, shares, strict=True):
            answer = (
                "Sí"
                if rng.random() < share
                else ("No" if rng.random() > 0.003 else "Disponibilidad no declarada")
            )
            for key in _keys(dwelling):
                counts[(key, answer)][item] += 1
    sheets = [_nota("H1")]
    for level, number in (("region", 5), ("comuna", 6)):
        rows = []
        for row in places.rows(level, lambda key: [key]):
            key = row.pop()
            for answer in ("Sí", "No", "Disponibilidad no declarada"):
                rows.append([*row, answer, *[counts[(key, answer)][item] for item in ICT]])
        sheets.append(
            _sheet(
                number,
                "Equipos o servicios que dispone el hogar",
                level,
                ["Disponibilidad de equipo o servicio", *ICT],
                rows,
            )
        )
    return sheets


def workbooks(comunas, region_names, dwellings, persons, rng) -> dict[str, list[tuple]]:
    places = Places(comunas, region_names)
    return {
        "V1": v1(places, dwellings, persons),
        "V4": v4(places, dwellings),
        "H1": h1(places, dwellings, rng),
        "D1": d1(places, persons),
        "P2": p2(places, persons),
    }

"""The lens map: focus territories, basins, settlements, gauges, facilities, conflicts, air stations
and sites, with a legend, a scale bar, labels that do not collide and SAMPLE geometry marked.

This module projects and places; `templates/_map.html.j2` writes the SVG and its legend, and
`templates/texts.yaml` (body.map) holds the words in each language.
"""

import math

from pipelines import reading

MAP_STYLES = {
    "region": "fill:#f3efe6;stroke:#8a8170;stroke-width:1",
    "comuna": "fill:#fbe3c2;stroke:#b0702f;stroke-width:.7",
    "basin-other": "fill:none;stroke:#8fa9bf;stroke-width:1;stroke-dasharray:4 3",
    "basin": "fill:rgba(33,102,172,.12);stroke:#2166ac;stroke-width:1.8",
    "settlement": "fill:#c51b7d;stroke:#fff;stroke-width:.5",
    "gauge": "fill:#1b7837;stroke:#fff;stroke-width:.6",
    "facility": "fill:#2b8cbe;stroke:#fff;stroke-width:.5",
    "conflict": "fill:#e6550d;stroke:#fff;stroke-width:.6",
    "air_station": "fill:#6a51a3;stroke:#fff;stroke-width:.6",
    "site": "fill:#111;stroke:#fff;stroke-width:1.5",
}
WIDTH = 640
LABEL_CHARS = 36


def _swatch(style: str) -> str:
    """The colour a legend swatch shows for an SVG style: its fill, else its stroke."""
    props = dict(part.split(":", 1) for part in style.split(";") if ":" in part)
    fill = props.get("fill", "none")
    return props.get("stroke", "#999") if fill == "none" else fill


def _rings(geometry: dict) -> list[list]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return list(coords)
    if kind == "MultiPolygon":
        return [ring for polygon in coords for ring in polygon]
    if kind == "GeometryCollection":
        return [r for g in geometry.get("geometries", []) for r in _rings(g)]
    return []


def _mark(style: str, geometry: dict, name: str, project) -> dict | None:
    """One feature as a mark: a circle, a triangle (gauges) or a path."""
    if geometry.get("type") == "Point":
        x, y = project(*geometry["coordinates"][:2])
        if style == "gauge":
            d = f"M{x:.1f},{y - 5:.1f} L{x + 4.5:.1f},{y + 3.5:.1f} L{x - 4.5:.1f},{y + 3.5:.1f} Z"
            return {"shape": "path", "d": d, "name": name}
        return {
            "shape": "circle",
            "x": f"{x:.1f}",
            "y": f"{y:.1f}",
            "r": 6 if style == "site" else 2.8,
            "name": name,
        }
    d = " ".join(
        "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in (project(*pt[:2]) for pt in ring)) + " Z"
        for ring in _rings(geometry)
        if len(ring) >= 3
    )
    return {"shape": "path", "d": d, "name": name, "evenodd": True} if d else None


def _label(style: str, feature: dict, name: str, project, width: int) -> dict | None:
    short = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
    if style == "site":
        x, y = project(*feature["geometry"]["coordinates"][:2])
        end = x > width * 0.55  # a site on the right is labelled on its left, inside the frame
        return {"x": x - 9 if end else x + 9, "y": y + 4, "end": end, "css": "site-label", "text": short}
    if feature.get("label") and style in ("comuna", "basin", "basin-other"):
        x, y = project(*feature["label"])
        return {"x": x, "y": y, "end": False, "css": f"{style}-label", "text": name}
    return None


def feature_name(feature: dict, words: dict) -> str:
    """A feature's name as the map shows it; an air station's says who runs it (texts: body.map.station)."""
    name = str(feature.get("name") or "")
    run = feature.get("operator")
    if not run:
        return name
    operator = run["operator"] or words["not_stated"]
    return words["station"].format(name=name, code=run["code"], operator=operator) + (
        words["mining_company"] if run["mining"] else ""
    )


def map_view(geo, lang: str = "en") -> dict | None:
    """An equirectangular map (longitudes shrunk by cos(latitude)), ready for the template."""
    if geo is None:
        return None
    words = reading.texts(lang)["body"]["map"]
    west, south, east, north = geo.extent
    shrink = math.cos(math.radians((south + north) / 2))
    width = WIDTH
    height = int(min(max(width * (north - south) / max((east - west) * shrink, 1e-9), 240), 820))
    span_x, span_y = (east - west) * shrink, north - south  # keep the aspect: fit the tighter dimension
    scale = min(width / span_x, height / span_y)
    cx, cy = (west + east) / 2, (south + north) / 2

    def project(lon: float, lat: float) -> tuple[float, float]:
        return width / 2 + (lon - cx) * shrink * scale, height / 2 - (lat - cy) * scale

    layers, labelled = [], []
    for index, layer in enumerate(geo.layers):
        style = MAP_STYLES.get(layer["style"], "fill:none;stroke:#999")
        marks, labels = [], []
        for feature in layer["features"]:
            name = feature_name(feature, words)
            mark = _mark(layer["style"], feature["geometry"], name, project)
            if mark:
                marks.append(mark)
            label = _label(layer["style"], feature, name, project, width)
            if label:
                labels.append(label)
        layer_id = f"map-layer-{index}"
        layers.append(
            {
                "id": layer_id,
                "style": style,
                "swatch": _swatch(style),
                "name": words["layers"].get(layer["style"], layer["name"]),
                "count": len(layer["features"]),
                "sample": bool(layer.get("sample")),
                "marks": marks,
            }
        )
        labelled.append((0 if layer["style"] == "site" else 1, layer_id, labels))  # sites placed first
    placed: list[tuple[float, float, float, float]] = []
    label_groups = [
        {"layer": layer_id, "labels": [lab for lab in labels if _place_label(lab, placed, width, height)]}
        for _, layer_id, labels in sorted(labelled, key=lambda item: item[0])  # none over another
    ]
    return {
        "width": width,
        "height": height,
        "layers": layers,
        "label_groups": label_groups,
        "scale_bar": _scale_bar(scale, height),
        "sample": any(layer["sample"] for layer in layers),
        "words": words,
    }


def map_svg(geo, lang: str = "en") -> str:
    view = map_view(geo, lang)
    return reading.render_template("_map.html.j2", {"map": view}, markdown=False) if view else ""


def _place_label(label: dict, placed: list, width: int, height: int) -> bool:
    """Keep a label when its box (estimated from its length) overlaps no kept one and stays inside."""
    length = 6.2 * len(label["text"])
    left = label["x"] - length if label["end"] else label["x"]
    box = (left, label["y"] - 11, left + length, label["y"] + 3)
    if box[0] < 0 or box[2] > width or box[1] < 0 or box[3] > height:
        return False
    if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
        return False
    placed.append(box)
    return True


def _scale_bar(scale: float, height: int) -> dict:
    """A scale bar of a round length near 120 px (km at the map's middle latitude)."""
    km_per_px = 111.32 / scale  # one degree of latitude is ~111.32 km; x is already shrunk by cos(lat)
    target = 120 * km_per_px
    power = 10 ** math.floor(math.log10(target))
    length_km = max(m * power for m in (1, 2, 5, 10) if m * power <= target)
    label = f"{length_km:,.0f} km" if length_km >= 1 else f"{length_km * 1000:,.0f} m"
    return {"x": 12, "y": height - 14, "pixels": f"{length_km / km_per_px:.1f}", "end": f"{12 + length_km / km_per_px:.1f}",
            "middle": f"{12 + length_km / km_per_px / 2:.1f}", "km": f"{length_km:g}", "label": label}  # fmt: skip

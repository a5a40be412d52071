"""The lens map as inline SVG: focus territories, basins, settlements, gauges, facilities, conflicts
and sites, with a legend, a scale bar, labels that do not collide and SAMPLE geometry marked."""

import html
import math
import re

MAP_STYLES = {
    "region": "fill:#f3efe6;stroke:#8a8170;stroke-width:1",
    "comuna": "fill:#fbe3c2;stroke:#b0702f;stroke-width:.7",
    "basin-other": "fill:none;stroke:#8fa9bf;stroke-width:1;stroke-dasharray:4 3",
    "basin": "fill:rgba(33,102,172,.12);stroke:#2166ac;stroke-width:1.8",
    "settlement": "fill:#c51b7d;stroke:#fff;stroke-width:.5",
    "gauge": "fill:#1b7837;stroke:#fff;stroke-width:.6",
    "facility": "fill:#2b8cbe;stroke:#fff;stroke-width:.5",
    "conflict": "fill:#e6550d;stroke:#fff;stroke-width:.6",
    "site": "fill:#111;stroke:#fff;stroke-width:1.5",
}


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


def map_svg(geo) -> str:
    """An equirectangular map (longitudes shrunk by cos(latitude)) of the focus, basins, settlements,
    gauges and sites."""
    if geo is None:
        return ""
    west, south, east, north = geo.extent
    shrink = math.cos(math.radians((south + north) / 2))
    width = 640
    height = int(min(max(width * (north - south) / max((east - west) * shrink, 1e-9), 240), 820))
    # keep the aspect: fit the tighter dimension
    span_x, span_y = (east - west) * shrink, north - south
    scale = min(width / span_x, height / span_y)
    cx, cy = (west + east) / 2, (south + north) / 2

    def project(lon: float, lat: float) -> tuple[float, float]:
        return width / 2 + (lon - cx) * shrink * scale, height / 2 - (lat - cy) * scale

    parts = [
        f'<svg id="lens-map" data-map="study" class="map" role="img" aria-label="Map of the study area" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>Study area</title>"
    ]
    legend, all_labels = [], []
    for index, layer in enumerate(geo.layers):
        layer_id = f"map-layer-{index}"
        style = MAP_STYLES.get(layer["style"], "fill:none;stroke:#999")
        marks, labels = [], []
        for feature in layer["features"]:
            full = str(feature.get("name") or "")
            name, short = html.escape(full), html.escape(full if len(full) <= 36 else full[:35] + "…")
            geometry = feature["geometry"]
            if geometry.get("type") == "Point":
                x, y = project(*geometry["coordinates"][:2])
                if layer["style"] == "site":
                    marks.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" style="{style}"><title>{name}</title></circle>'
                    )
                    labels.append(
                        f'<text class="map-label site-label" x="{x - 9 if x > width * 0.55 else x + 9:.1f}" '
                        f'y="{y + 4:.1f}" text-anchor="{"end" if x > width * 0.55 else "start"}">{short}</text>'
                    )
                elif layer["style"] == "gauge":
                    marks.append(
                        f'<path d="M{x:.1f},{y - 5:.1f} L{x + 4.5:.1f},{y + 3.5:.1f} L{x - 4.5:.1f},{y + 3.5:.1f} Z" '
                        f'style="{style}"><title>{name}</title></path>'
                    )
                else:
                    marks.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.8" style="{style}"><title>{name}</title></circle>'
                    )
                continue
            path = " ".join(
                "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in (project(*pt[:2]) for pt in ring)) + " Z"
                for ring in _rings(geometry)
                if len(ring) >= 3
            )
            if path:
                marks.append(
                    f'<path d="{path}" style="{style}" fill-rule="evenodd"><title>{name}</title></path>'
                )
            if feature.get("label") and layer["style"] in ("comuna", "basin", "basin-other"):
                x, y = project(*feature["label"])
                labels.append(
                    f'<text class="map-label {layer["style"]}-label" x="{x:.1f}" y="{y:.1f}">{name}</text>'
                )
        parts.append(f'<g id="{layer_id}" class="layer">{"".join(marks)}</g>')
        all_labels.append((0 if layer["style"] == "site" else 1, layer_id, labels))  # sites placed first
        count = len(layer["features"])
        sample = " · SAMPLE geometry" if layer.get("sample") else ""
        legend.append(
            f'<label><input type="checkbox" checked data-layer="{layer_id}"> '
            f'<span class="swatch" style="background:{_swatch(style)}"></span>{html.escape(layer["name"])} '
            f"({count}{sample})</label>"
        )
    placed: list[tuple[float, float, float, float]] = []
    for _, layer_id, labels in sorted(all_labels, key=lambda item: item[0]):  # none over another
        kept = [text for text in labels if _place_label(text, placed, width, height)]
        parts.append(f'<g class="labels" data-labels-for="{layer_id}">{"".join(kept)}</g>')
    parts.append(_scale_bar(scale, shrink, height))
    if any(layer.get("sample") for layer in geo.layers):
        parts.append(
            '<text class="map-sample" x="8" y="18" fill="#b2182b" font-weight="700">'
            "SAMPLE geometry: not official boundaries</text>"
        )
    parts.append("</svg>")
    return (
        '<figure class="map-figure">'
        + "".join(parts)
        + f'<figcaption class="legend">{" ".join(legend)}</figcaption></figure>'
    )


def _place_label(text: str, placed: list, width: int, height: int) -> bool:
    """Keep a label when its box (estimated from its length) overlaps no kept one and stays inside."""
    x = float(re.search(r' x="([-\d.]+)"', text)[1])
    y = float(re.search(r' y="([-\d.]+)"', text)[1])
    length = 6.2 * len(html.unescape(re.sub(r"<[^>]+>", "", text)))
    left = x - length if 'text-anchor="end"' in text else x
    box = (left, y - 11, left + length, y + 3)
    if box[0] < 0 or box[2] > width or box[1] < 0 or box[3] > height:
        return False
    if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
        return False
    placed.append(box)
    return True


def _scale_bar(scale: float, shrink: float, height: int) -> str:
    """A scale bar of a round length near 120 px (km at the map's middle latitude)."""
    km_per_px = 111.32 / scale  # one degree of latitude is ~111.32 km; x is already shrunk by cos(lat)
    target = 120 * km_per_px
    power = 10 ** math.floor(math.log10(target))
    length_km = max(m * power for m in (1, 2, 5, 10) if m * power <= target)
    pixels = length_km / km_per_px
    x, y = 12, height - 14
    label = f"{length_km:,.0f} km" if length_km >= 1 else f"{length_km * 1000:,.0f} m"
    return (
        f'<g class="scale-bar" data-km="{length_km:g}"><line x1="{x}" y1="{y}" x2="{x + pixels:.1f}" y2="{y}" '
        'stroke="#222" stroke-width="2"/>'
        f'<line x1="{x}" y1="{y - 4}" x2="{x}" y2="{y + 4}" stroke="#222"/>'
        f'<line x1="{x + pixels:.1f}" y1="{y - 4}" x2="{x + pixels:.1f}" y2="{y + 4}" stroke="#222"/>'
        f'<text x="{x + pixels / 2:.1f}" y="{y - 6}" text-anchor="middle" font-size="11">{label}</text></g>'
    )

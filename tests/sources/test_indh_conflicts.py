"""INDH socio-environmental conflicts on the real 162-conflict payload, counted independently with json."""

import json
from collections import Counter

import pytest

from sources import indh_conflicts as indh
from sources.base import ParseError
from sources.samples.facilities import make_samples

PAYLOAD = "conflicts/indh_conflictos.json"


@pytest.fixture(scope="module")
def real(shared_data):
    content = (shared_data / PAYLOAD).read_bytes()
    return json.loads(content), indh.parse_conflicts(content)


def test_region_02_conflicts_and_statuses(real):
    records, frame = real
    assert len(frame) == len(records) == 162
    # Independently: a record is in region 2 when `region` or, where it is null, `regiones` says id 2.
    in_02 = {
        str(r["id"])
        for r in records
        if any(x["id"] == 2 for x in ([r["region"]] if r["region"] else r["regiones"]))
    }
    assert len(in_02) == 12  # 11 with `region`, one (44758, La Chimba) only in `regiones`
    assert set(frame.loc[frame["region_code"] == "02", "conflict_id"]) == in_02
    assert Counter(frame["status_published"]) == Counter(r["estadoConflico"]["glosa"] for r in records)
    assert frame["status"].value_counts().to_dict() == {
        "active": 74,
        "latent": 33,
        "archived": 31,
        "closed": 24,
    }
    assert frame["sector"].value_counts()[["Energía", "Minería"]].tolist() == [60, 46]
    assert frame["indigenous_territory"].sum() == 55
    tocopilla = frame.set_index("conflict_id").loc["12440"]
    assert (tocopilla["title"], tocopilla["start_year"], tocopilla["status"]) == (
        "Contaminación de Tocopilla (Zona de sacrificio)", 1990, "active",
    )  # fmt: skip
    assert tocopilla["url"] == "https://mapaconflictos.indh.cl/conflicto/12440"


def test_polygons_become_points_and_none_is_dropped(real):
    records, frame = real
    polygons = {str(r["id"]) for r in records if r["marcaMapa"]["esPoligono"]}
    assert len(polygons) == 65
    placed = frame[frame["conflict_id"].isin(polygons)]
    assert (placed["location_kind"] == "polygon").all() and placed["longitude"].notna().all()
    assert placed["location_flag"].isna().all()  # every representative point lies in Chile
    # The interregional record lists Los Lagos and Los Ríos too: no single region.
    assert frame.set_index("conflict_id").loc["26657", "regions_stated"] == "10,14"


def _sample() -> list[dict]:
    return json.loads(make_samples.conflicts())


def test_a_conflict_with_no_point_or_outside_chile_is_flagged_not_dropped():
    records = _sample()
    records[0]["marcaMapa"] = {
        "id": 1,
        "latitud": None,
        "longitud": None,
        "poligono": "",
        "esPoligono": False,
    }
    records[1]["marcaMapa"]["latitud"] = 23.09  # sign lost
    frame = indh.parse_conflicts(json.dumps(records).encode())
    assert len(frame) == len(records)
    assert frame["location_flag"].iloc[0] == "no map point: placed by its stated region only"
    assert frame["location_flag"].iloc[1].startswith("map point outside Chile (-70.44, 23.09)")
    assert frame["region_code"].iloc[0] == "02"


def test_unknown_status_and_html_are_refused():
    records = _sample()
    records[0]["estadoConflico"]["glosa"] = "Resuelto"
    with pytest.raises(ParseError, match=r"conflict 9001: status 'Resuelto'"):
        indh.parse_conflicts(json.dumps(records).encode())
    with pytest.raises(ParseError, match="not JSON"):
        indh.parse_conflicts(b"<html><body>Mantenimiento</body></html>")

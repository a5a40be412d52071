"""INE ENE over SDMX: the shared SDMX-CSV reader on INE's layout, and the INE.Stat mirror on the real export."""

import csv
import io

import pytest

from sources import ine_ene, sdmx
from sources.acquire import SAMPLES_DIR
from sources.base import ParseError

TP = ine_ene.dataflow("DF_TP_SEXO")
TDES = ine_ene.dataflow("DF_TDES_SEXO")
MINING = ine_ene.dataflow("DF_OCURAMA_RAMA_SEXO")
INE_STAT = "labour/ine_stat_ENE_TP_28032024121937836_subset_T_CHL02.csv"


def _sample(flow) -> bytes:
    return (SAMPLES_DIR / "labour" / f"{flow.id}_SAMPLE.csv").read_bytes()


def test_ine_stat_export_reads_as_the_participation_series(shared_data):
    content = (shared_data / INE_STAT).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"\r\n" in content  # BOM and CRLF, as documented
    frame = ine_ene.parse_payload(content, TP)
    # Recount the export independently: 1,710 data lines, two series of 855 lines each.
    text = content.decode("utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(frame) == len(lines) == 1710
    by_series = frame.groupby("series").size().to_dict()
    assert by_series == {"base 2002": 6 * 118, "base 2017": 6 * 167}
    # The period code's month is the centre of the quarter: 2010-V02 is Jan-Mar, 2023-V12 is Nov-Jan.
    first = next(line for line in lines if line["DTI_CL_TRIMESTRE_MOVIL"] == "2010-V02")
    assert first["Trimestre Móvil"] == "2010 ene-mar"
    assert "2010-01/P3M" in set(frame["period"]) and "2023-11/P3M" in set(frame["period"])
    # Region 2, women, base 2017, Nov 2023-Jan 2024: the value in the file, to full precision.
    wanted = next(
        line
        for line in lines
        if line["DTI_CL_INDICADOR"] == "ENE_TP_P2017"
        and line["DTI_CL_REGION"] == "CHL02"
        and line["DTI_CL_SEXO"] == "F"
        and line["DTI_CL_TRIMESTRE_MOVIL"] == "2023-V12"
    )
    row = frame[
        (frame["series"] == "base 2017")
        & (frame["area_ref"] == "2")
        & (frame["sex"] == "F")
        & (frame["period"] == "2023-11/P3M")
    ]
    assert row["value"].tolist() == [float(wanted["Value"])] == [53.2280268275397]
    assert set(frame["area_ref"]) == {"_T", "2"} and set(frame["sex"]) == {"T", "M", "F"}


def test_ine_stat_period_label_must_agree_with_code(shared_data):
    text = (shared_data / INE_STAT).read_text(encoding="utf-8-sig")
    broken = text.replace('"2010-V02","2010 ene-mar"', '"2010-V02","2010 feb-abr"', 1).encode()
    with pytest.raises(ParseError, match="does not match its label"):
        ine_ene.parse_payload(broken, TP)


def test_sdmx_sample_layout_and_quirks():
    frame = ine_ene.parse_payload(_sample(TDES), TDES)
    assert set(frame["sex"]) == {"T", "F", "M"}
    assert (
        "_T" in set(frame["area_ref"])
        and "2" in set(frame["area_ref"])
        and "02" not in set(frame["area_ref"])
    )
    assert frame["period"].str.fullmatch(r"\d{4}-\d{2}/P3M").all()
    assert (frame["obs_status"] == "Y").any()  # reliability flags kept
    mining = ine_ene.parse_payload(_sample(MINING), MINING)
    assert set(mining["branch"]) == {"B"}  # RAMA C dropped by the selection
    raw = list(csv.DictReader(io.StringIO(_sample(MINING).decode(), newline="")))
    one = next(r for r in raw if r["RAMA"] == "B" and r["AREA_REF"] == "2" and r["SEXO"] == "AS")
    value = mining[(mining["area_ref"] == "2") & (mining["sex"] == "T") & (mining["period"] == "2024-01/P3M")]
    assert value["value"].iloc[0] == pytest.approx(float(one["OBS_VALUE"]) * 10 ** int(one["MULT"]))


def test_sdmx_error_message_with_status_200_is_refused():
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><message:Error xmlns:message="http://www.sdmx.org/resources/'
        b'sdmxml/schemas/v2_1/message"><message:ErrorMessage code="100"><common:Text xml:lang="en" '
        b'xmlns:common="c">No Results Found</common:Text></message:ErrorMessage></message:Error>'
    )
    with pytest.raises(ParseError, match=r"ine_ene.*SDMX error message \(code 100\): No Results Found"):
        ine_ene.parse_payload(body, TDES, "snap-1")
    with pytest.raises(ParseError, match="SDMX error message: NoResultsFound"):
        sdmx.read_csv(b"NoResultsFound", "ine_ene")


def test_another_dataflow_or_structure_is_refused():
    other = _sample(TP)  # DF_TP_SEXO rows served for DF_TDES_SEXO
    with pytest.raises(ParseError, match=r"not dataflow CL01:DF_TDES_SEXO\(1\.0\)"):
        ine_ene.parse_payload(other, TDES)
    renamed = _sample(TDES).replace(b",SEXO,", b",GENERO,", 1)
    with pytest.raises(ParseError, match=r"another structure: dimension\(s\) \['SEXO'\] missing"):
        ine_ene.parse_payload(renamed, TDES)
    no_mining = _sample(MINING).replace(b",B,", b",X,")
    with pytest.raises(ParseError, match="no RAMA 'B'"):
        ine_ene.parse_payload(no_mining, MINING)


def test_unit_or_indicator_change_and_periods_are_refused():
    with pytest.raises(ParseError, match=r"UNIDAD holds \['PC'\] where 'RT' was expected"):
        ine_ene.parse_payload(_sample(TDES).replace(b",RT,", b",PC,"), TDES)
    with pytest.raises(ParseError, match="not rolling quarters"):
        ine_ene.parse_payload(_sample(TDES).replace(b"-01/P3M", b"-01/P1M", 1), TDES)
    with pytest.raises(ParseError, match="SEXO codes"):
        ine_ene.parse_payload(_sample(TDES).replace(b",AS,", b",T,", 1), TDES)


def test_requests_send_accept_language_es():
    requests = ine_ene.build_requests(ine_ene.ENDPOINTS)
    assert {r.headers["Accept-Language"] for r in requests} == {"es"}
    assert requests[0].url == (
        "https://sdmx.ine.gob.cl/rest/data/CL01,DF_TDES_SEXO,1.0/all?format=csv&startPeriod=2018-01"
    )


def test_samples_rebuild_byte_identical(tmp_path):
    from sources.samples.labour import make_samples

    for path in make_samples.main(tmp_path):
        assert path.read_bytes() == (SAMPLES_DIR / "labour" / path.name).read_bytes(), path.name

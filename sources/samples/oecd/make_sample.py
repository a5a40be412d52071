"""Write the SAMPLE OECD regional payloads in SDMX-CSV `csvfilewithlabels` layout.

The values are invented stand-ins (see ../README.md), not OECD figures. The structure
name of every row says so, so the label travels with the data.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABEL = " [SAMPLE DATA written by context-lens, not OECD figures]"
YEARS = range(2015, 2023)
AREAS = {
    "CL01": ("TL2", "Tarapacá", "CHL"),
    "CL02": ("TL2", "Antofagasta", "CHL"),
    "CL03": ("TL2", "Atacama", "CHL"),
    "CHL": ("TL1", "Chile", "CHL"),
    "OECD": ("TL1", "OECD member countries", "OECD"),
}
COMMON_TAIL = ["TIME_PERIOD", "Time period", "OBS_VALUE", "Observation value", "COUNTRY", "Country"]
STATUS = ["OBS_STATUS", "Observation status", "UNIT_MULT", "Unit multiplier", "DECIMALS", "Decimals"]

FLOWS = {
    "oecd_gdp_per_capita_usd_ppp": {
        "structure": ("OECD.CFE.EDS:DSD_REG_ECO@DF_GDP(2.0)", "Gross domestic product - Regions"),
        "dims": [
            ("MEASURE", "Measure", "GDP", "Gross domestic product"),
            ("ACTIVITY", "Economic activity", "_T", "Total - all activities"),
            ("PRICES", "Price base", "V", "Current prices"),
            ("UNIT_MEASURE", "Unit of measure", "USD_PPP_PS", "US dollars per person, PPP converted"),
        ],
        "base": {"CL01": 27500, "CL02": 51000, "CL03": 29800, "CHL": 24800, "OECD": 43000},
        "growth": 0.03,
        "decimals": 0,
    },
    "oecd_unemployment_rate": {
        "structure": ("OECD.CFE.EDS:DSD_REG_LABOUR@DF_LAB(2.0)", "Regional labour market - Regions"),
        "dims": [
            ("MEASURE", "Measure", "UNE_RATE", "Unemployment rate"),
            ("AGE", "Age", "Y15T64", "From 15 to 64 years"),
            ("SEX", "Sex", "_T", "Total"),
            ("UNIT_MEASURE", "Unit of measure", "PT_LF", "Percentage of labour force"),
        ],
        "base": {"CL01": 7.4, "CL02": 8.6, "CL03": 8.1, "CHL": 7.0, "OECD": 6.4},
        "growth": -0.01,
        "decimals": 1,
    },
    "oecd_gini_disposable_income": {
        "structure": ("OECD.CFE.EDS:DSD_REG_SOC@DF_INCOME_INEQ(1.0)", "Income inequality - Regions"),
        "dims": [
            ("MEASURE", "Measure", "INC_DISP_GINI", "Gini coefficient of disposable income"),
            ("UNIT_MEASURE", "Unit of measure", "IX", "Index"),
        ],
        "base": {"CL01": 0.44, "CL02": 0.41, "CL03": 0.42, "CHL": 0.47, "OECD": 0.32},
        "growth": -0.004,
        "decimals": 3,
    },
    "oecd_population": {
        "structure": (
            "OECD.CFE.EDS:DSD_REG_DEMO@DF_POP_5Y(2.0)",
            "Population by 5-year age groups - Regions",
        ),
        "dims": [
            ("MEASURE", "Measure", "POP", "Population"),
            ("AGE", "Age", "_T", "Total"),
            ("SEX", "Sex", "_T", "Total"),
            ("UNIT_MEASURE", "Unit of measure", "PS", "Persons"),
        ],
        "base": {"CL01": 340000, "CL02": 620000, "CL03": 300000, "CHL": 18000000, "OECD": 1300000000},
        "growth": 0.012,
        "decimals": 0,
    },
}


def write_flow(indicator: str, spec: dict) -> None:
    header = ["STRUCTURE", "STRUCTURE_ID", "STRUCTURE_NAME", "ACTION", "FREQ", "Frequency of observation"]
    header += ["TERRITORIAL_LEVEL", "Territorial level", "REF_AREA", "Reference area"]
    header += ["TERRITORIAL_TYPE", "Territorial typology"]
    for code, label, _, _ in spec["dims"]:
        header += [code, label]
    header += COMMON_TAIL + STATUS
    structure_id, structure_name = spec["structure"]
    with open(HERE / f"{indicator}_SAMPLE.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for area, (level, name, country) in AREAS.items():
            for step, year in enumerate(YEARS):
                value = round(spec["base"][area] * (1 + spec["growth"]) ** step, spec["decimals"])
                row = ["DATAFLOW", structure_id, structure_name + LABEL, "I", "A", "Annual"]
                row += [level, level, area, name, "_Z", "Not applicable"]
                for _, _, code, label in spec["dims"]:
                    row += [code, label]
                row += [str(year), "", repr(value) if spec["decimals"] else str(int(value)), ""]
                row += [country, "Chile" if country == "CHL" else "OECD"]
                row += ["E", "Estimated value", "0", "Units", str(spec["decimals"]), str(spec["decimals"])]
                writer.writerow(row)


if __name__ == "__main__":
    for indicator, spec in FLOWS.items():
        write_flow(indicator, spec)

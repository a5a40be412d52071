"""Basin names keep their accents in the lens, while ids and the stored source names stay as published."""

from __future__ import annotations

import pytest

from pipelines import reading
from warehouse import db


@pytest.mark.parametrize(
    ("published", "shown"),
    [
        ("Rio Loa", "Río Loa"),
        ("Rio Copiapo", "Río Copiapó"),
        ("Rio Limari", "Río Limarí"),
        ("Salar de Atacama", "Salar de Atacama"),
        ("Río Loa", "Río Loa"),  # already accented: left as published
        ("Rioja", "Rioja"),  # whole words only
    ],
)
def test_accented(published, shown):
    assert reading.accented(published) == shown


def test_the_lens_shows_rio_loa_with_its_accent(sample_env):
    markdown = (sample_env.folder / "lens.md").read_text(encoding="utf-8")
    page = (sample_env.folder / "lens.html").read_text(encoding="utf-8")
    assert "Río Loa" in markdown and "Río Loa" in page
    assert "Rio Loa" not in markdown and "Rio Loa" not in page
    with db.reader() as conn:
        stored = conn.execute(
            "SELECT name FROM core.territories WHERE territory_id = 'basin:021'"
        ).fetchone()[0]
    assert stored == "Rio Loa", "the source's name is kept in the warehouse"

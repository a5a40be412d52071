"""Mode badges: the one word a reader must see beside every number about where it came from.

    unknown             no snapshot recorded: it cannot be traced, do not use it
    live                fetched from the publisher and within the source's cadence
    stale               fetched from the publisher, but older than the source's cadence
    curated             transcribed by us from cited public documents, checked
    curated-unverified  transcribed by us, not yet checked against the document
    sample              written by us for offline runs: never to be cited

A value computed from several inputs carries the weakest badge among them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

BADGES = ("unknown", "sample", "curated-unverified", "curated", "stale", "live")  # weakest first
UNVERIFIED = ("unverified", "not verified", "curated-unverified")


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).lower()


def badge(mode, freshness=None, verification=None) -> str:
    """The badge of one observation from its snapshot's mode, freshness and curation status.

    A value whose snapshot is not known is 'unknown', weaker than sample: it cannot be traced.
    """
    mode, freshness, verification = _text(mode), _text(freshness), _text(verification)
    if mode == "sample" or freshness == "sample":
        return "sample"
    if mode in ("curated", "curated-unverified"):
        unverified = mode == "curated-unverified" or verification in UNVERIFIED
        return "curated-unverified" if unverified else "curated"
    if mode == "live":
        return "stale" if freshness == "stale" else "live"
    return "unknown"


def weakest(badges: Iterable[str]) -> str:
    """The weakest of several badges (a derived value is as weak as its weakest input)."""
    known = [b for b in badges if b in BADGES]
    return min(known, key=BADGES.index) if known else ""


def badges_of(frame: pd.DataFrame) -> pd.Series:
    """One badge per row of a lens frame with mode, freshness and (when present) a verification column."""
    verification = frame["verification"] if "verification" in frame.columns else [None] * len(frame)
    return pd.Series(
        [
            badge(m, f, v)
            for m, f, v in zip(
                frame["mode"], frame.get("freshness", [None] * len(frame)), verification, strict=True
            )
        ],
        index=frame.index,
        dtype="object",
    )

"""A family's refresh job and its schedule, declared once with descriptions people can act on.

The job re-acquires the family's sources and rebuilds what they feed in the family; the lenses
and the export follow through the `publish_after_refresh` sensor (pipelines.ops). Each family
passes its assets after they are all defined, so a source added later cannot be left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import ScheduleDefinition, define_asset_job


def _names(assets: Sequence) -> str:
    return ", ".join(key.to_user_string() for a in assets for key in a.keys)


def refresh_job(name: str, assets: Sequence, what: str):
    """The job `name` materializing `assets`: `what` says which sources it re-acquires."""
    return define_asset_job(
        name,
        selection=list(assets),
        description=f"Re-acquire {what} and rebuild {_names(assets)}; the lenses and the export "
        "follow (publish_after_refresh sensor).",
    )


def refresh_schedule(job, cron: str, name: str, why: str) -> ScheduleDefinition:
    """The schedule `name` running `job` at `cron` (UTC); `why` says why that cadence."""
    return ScheduleDefinition(
        job=job, cron_schedule=cron, name=name, description=f"Runs {job.name} at '{cron}' (UTC): {why}."
    )

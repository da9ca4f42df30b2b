"""The Dagster layer: assets, checks, jobs, schedules, sensors and resources that wire the pure core together."""

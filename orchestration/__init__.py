"""Dagster definitions, resources, assets, checks, schedules and sensors, and the `tether` CLI."""

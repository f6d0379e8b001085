"""Tether's contracts: staged-table models, store metadata, the attendance code table, layouts."""

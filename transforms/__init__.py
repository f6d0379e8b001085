"""Pure functions on DataFrames: read layouts, validate, pseudonymise, link, signals, cohorts, flags."""

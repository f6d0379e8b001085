"""Runs of consecutive unauthorised days from recent marks equal the runs over every mark."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from connectors.attendance import stage_marks
from connectors.store_setup import init_store
from orchestration import stages
from orchestration.resources import TetherContext
from sharing.keys import write_new_keys
from transforms.consecutive import consecutive_unauthorised_days

AS_OF = "2027-03-26T18:00"


def _marks(ctx: TetherContext) -> pd.DataFrame:
    """Three pupils over the year to date: N every school day since September (a run far longer
    than the window), N since March, and a present pupil."""
    calendar, rows = ctx.config.calendar, []
    day, last = dt.date(2026, 9, 3), dt.date(2027, 3, 26)
    while day <= last:
        if calendar.is_school_day("8864001", day):
            for pupil, mark in (("a", "N"), ("b", "N" if day >= dt.date(2027, 3, 1) else "/"), ("c", "/")):
                for session in ("AM", "PM"):
                    rows.append({"laestab": "8864001", "pupil_ref": pupil * 64, "session_date": day,
                                 "session": session, "mark": mark,
                                 "category": "unauthorised" if mark == "N" else "present", "minutes_late": None,
                                 "recorded_at": pd.Timestamp("2027-03-26T16:00Z"), "source_id": "s",
                                 "file_id": "f" * 64, "row_number": len(rows) + 1})
        day += dt.timedelta(days=1)
    return pd.DataFrame(rows)


def test_a_run_longer_than_the_window_is_counted_over_the_whole_history(tmp_path, monkeypatch):
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    init_store(url)[0].dispose()
    ctx = TetherContext(url, None, str(tmp_path / "data"), AS_OF)
    marks = _marks(ctx)
    stage_marks(ctx.store, marks)
    want = consecutive_unauthorised_days(marks, ctx.config.calendar, as_of=ctx.as_of)
    got = stages.current_runs(ctx)
    key = ["laestab", "pupil_ref"]
    left_out = want[~want["pupil_ref"].isin(got["pupil_ref"])]
    assert (left_out["consecutive_unauthorised_days"] == 0).all()    # no run mark recently: no run
    pd.testing.assert_frame_equal(got.sort_values(key, ignore_index=True),
                                  want[want["pupil_ref"].isin(got["pupil_ref"])].sort_values(key, ignore_index=True),
                                  check_dtype=False)
    runs = dict(zip(got["pupil_ref"].str[0], got["consecutive_unauthorised_days"]))
    assert runs["a"] > stages.RUN_WINDOW_DAYS * 5 // 7 > runs["b"] > 0 and "c" not in runs

"""The store on both engines: idempotent upserts, supersession by time, nulls, dates, replace."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from schemas.tables import attendance_measures, flags, outbox, quarantine, staged_marks, staged_pupils

UTC = dt.timezone.utc


def _marks(marks: list[str], recorded_at: str, pupils: list[str] | None = None) -> pd.DataFrame:
    pupils = pupils or [f"p{i}" for i in range(len(marks))]
    return pd.DataFrame({
        "laestab": "8881234", "pupil_ref": pupils, "session_date": dt.date(2026, 9, 3), "session": "AM",
        "mark": marks, "category": ["present" if m == "/" else "unauthorised" for m in marks],
        "minutes_late": None, "recorded_at": pd.Timestamp(recorded_at, tz="UTC"),
        "source_id": "mis-a", "file_id": "f1", "row_number": range(1, len(marks) + 1),
    })


def test_upsert_twice_is_the_same_as_once(store):
    df = _marks(["/", "N", "O"], "2026-09-03 08:50")
    assert store.upsert(staged_marks, df) == 3
    first = store.read(staged_marks)
    assert store.upsert(staged_marks, df) == 0  # nothing changed, nothing rewritten
    pd.testing.assert_frame_equal(store.read(staged_marks), first)
    assert first["mark"].tolist() == ["/", "N", "O"]


def test_upsert_updates_changed_rows_and_inserts_new_ones(store):
    store.upsert(staged_marks, _marks(["/", "N"], "2026-09-03 08:50"))
    changed = _marks(["/", "L", "/"], "2026-09-03 08:50")  # p1 changed, p2 new
    assert store.upsert(staged_marks, changed) == 2
    assert store.read(staged_marks)["mark"].tolist() == ["/", "L", "/"]


def test_a_later_mark_supersedes_and_an_older_one_changes_nothing(store):
    store.upsert(staged_marks, _marks(["N"], "2026-09-03 09:00"), newer_column="recorded_at")
    assert store.upsert(staged_marks, _marks(["L"], "2026-09-03 09:20"), newer_column="recorded_at") == 1
    assert store.upsert(staged_marks, _marks(["O"], "2026-09-03 08:55"), newer_column="recorded_at") == 0
    row = store.read(staged_marks).iloc[0]
    assert row["mark"] == "L"
    assert row["recorded_at"] == pd.Timestamp("2026-09-03 09:20", tz="UTC")


def test_within_one_frame_the_newest_row_for_a_key_wins(store):
    df = pd.concat([_marks(["L"], "2026-09-03 09:20"), _marks(["N"], "2026-09-03 09:00")])
    assert store.upsert(staged_marks, df, newer_column="recorded_at") == 1
    assert store.read(staged_marks)["mark"].tolist() == ["L"]


def _pupils() -> pd.DataFrame:
    return pd.DataFrame({
        "laestab": ["8881234", "8881234", "8881234"],
        "pupil_ref": np.array(["a", "b", "c"], dtype=object),
        "upn_token": ["t1", None, np.nan],
        "upn_valid": [True, np.bool_(False), None],
        "nhs_valid": pd.array([True, pd.NA, False], dtype="boolean"),
        "identity_enc": [b"\x00\x01", None, b"\\x"],
        "admission_date": [pd.Timestamp("2026-09-01"), pd.NaT, "2025-09-04"],
        "leaving_date": [None, dt.date(2026, 12, 18), None],
        "fsm_eligible": [None, None, None],
        "extract_date": [dt.date(2026, 9, 3)] * 3,
        "source_id": "mis-a-pupils", "file_id": "f2",
        "row_number": np.array([1, 2, 3], dtype=np.int64),
    })


def test_nulls_of_every_kind_become_null_and_types_round_trip(store):
    assert store.upsert(staged_pupils, _pupils()) == 3
    got = store.read(staged_pupils).set_index("pupil_ref")
    assert got.loc["a", "upn_token"] == "t1"
    assert got.loc["b", "upn_token"] is None and got.loc["c", "upn_token"] is None
    assert got["upn_valid"].tolist() == [True, False, None]
    assert got["nhs_valid"].tolist() == [True, None, False]
    assert got["fsm_eligible"].tolist() == [None, None, None]
    assert got["identity_enc"].tolist() == [b"\x00\x01", None, b"\\x"]
    assert got["admission_date"].tolist() == [dt.date(2026, 9, 1), None, dt.date(2025, 9, 4)]
    assert got["leaving_date"].tolist() == [None, dt.date(2026, 12, 18), None]
    assert got["sex"].tolist() == [None, None, None]  # a column not given at all
    assert got["row_number"].dtype == np.int64
    assert got["row_number"].tolist() == [1, 2, 3]


def test_nullable_integers_come_back_as_nullable_ints(store):
    df = _marks(["L", "N"], "2026-09-03 08:50")
    df["minutes_late"] = [12.0, np.nan]  # NaN upcasts the column to float in pandas
    store.upsert(staged_marks, df)
    got = store.read(staged_marks)
    assert str(got["minutes_late"].dtype) == "Int64"
    assert got["minutes_late"].iloc[0] == 12 and got["minutes_late"].isna().iloc[1]


def test_dates_and_datetimes_round_trip_as_dates_and_utc(store):
    london = "Europe/London"
    stamps = [
        pd.Timestamp("2026-09-03 08:45", tz=london),            # BST: 07:45 UTC
        dt.datetime(2026, 12, 1, 8, 45, tzinfo=dt.timezone(dt.timedelta(hours=-5))),  # 13:45 UTC
        dt.datetime(2026, 10, 25, 1, 30),                       # naive: taken as UTC
        "2026-09-03T09:10:00+01:00",                            # text: 08:10 UTC
    ]
    df = _marks(["/", "/", "/", "/"], "2026-09-03 00:00")
    df["recorded_at"] = stamps
    df["session_date"] = [dt.date(2026, 9, 3), pd.Timestamp("2026-12-01"), "2026-10-25", np.datetime64("2026-09-03")]
    df["pupil_ref"] = ["a", "b", "c", "d"]
    store.upsert(staged_marks, df)
    got = store.read(staged_marks).set_index("pupil_ref")
    assert str(got["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert got["recorded_at"].tolist() == [
        pd.Timestamp("2026-09-03 07:45", tz="UTC"), pd.Timestamp("2026-12-01 13:45", tz="UTC"),
        pd.Timestamp("2026-10-25 01:30", tz="UTC"), pd.Timestamp("2026-09-03 08:10", tz="UTC"),
    ]
    assert got["session_date"].tolist() == [dt.date(2026, 9, 3), dt.date(2026, 12, 1), dt.date(2026, 10, 25),
                                            dt.date(2026, 9, 3)]
    assert all(type(d) is dt.date for d in got["session_date"])
    on_day = store.read(staged_marks, staged_marks.c.session_date == dt.date(2026, 9, 3), columns=["pupil_ref"])
    assert on_day["pupil_ref"].tolist() == ["a", "d"]


def test_datetimes_in_where_clauses_mean_the_same_instant_on_both_engines(store):
    df = _marks(["/", "N", "L"], "2026-09-03 00:00")
    df["recorded_at"] = pd.to_datetime(["2026-09-03 07:59", "2026-09-03 08:00", "2026-09-03 08:01"], utc=True)
    store.upsert(staged_marks, df)
    at = staged_marks.c.recorded_at
    nine_london = pd.Timestamp("2026-09-03 09:00", tz="Europe/London")  # 08:00 UTC
    assert store.read(staged_marks, at >= nine_london)["pupil_ref"].tolist() == ["p1", "p2"]
    assert store.read(staged_marks, at < nine_london.to_pydatetime())["pupil_ref"].tolist() == ["p0"]
    naive_utc = dt.datetime(2026, 9, 3, 8, 0)  # naive: UTC
    assert store.read(staged_marks, at == naive_utc)["pupil_ref"].tolist() == ["p1"]
    assert store.records(staged_marks, at == naive_utc)[0]["recorded_at"] == dt.datetime(2026, 9, 3, 8, tzinfo=UTC)


def test_a_datetime_null_reads_back_as_nat(store):
    store.insert(outbox, [{"delivery_id": "d1", "flag_id": "f1", "recipient_kind": "virtual_school",
                           "recipient_id": "vs", "channel": "email", "payload_enc": b"x", "fields": "[]",
                           "status": "pending", "created_at": dt.datetime(2026, 9, 3, 9, 0, tzinfo=UTC)}])
    got = store.read(outbox)
    assert got["delivered_at"].isna().all()
    assert got["attempts"].tolist() == [0]  # the column's default applies on both engines


def _measures(pupils: list[str], period: str, rate: float) -> pd.DataFrame:
    n = len(pupils)
    return pd.DataFrame({
        "laestab": "8881234", "pupil_ref": pupils, "period": period, "child_key": None,
        "period_start": dt.date(2026, 9, 3), "period_end": dt.date(2026, 12, 18),
        "possible_sessions": 140, "present_sessions": 126, "aea_sessions": 0, "authorised_sessions": 7,
        "unauthorised_sessions": 7, "attendance_rate": rate, "absence_rate": 1 - rate,
        "persistent_absence": [True] * n, "severe_absence": [False] * n, "days_missed": 7.0,
        "suspension_sessions": 0, "part_time_sessions": 0, "consecutive_unauthorised_days": 0,
        "as_of": pd.Timestamp("2026-12-18 18:00", tz="UTC"),
    })


def test_replace_rebuilds_all_or_only_the_slice(store):
    store.replace(attendance_measures, pd.concat([_measures(["a", "b"], "autumn", 0.9),
                                                  _measures(["a"], "academic_year", 0.9)]))
    assert store.replace(attendance_measures, _measures(["c"], "autumn", 0.8),
                         where=attendance_measures.c.period == "autumn") == 1
    got = store.read(attendance_measures)
    assert list(zip(got["pupil_ref"], got["period"])) == [("a", "academic_year"), ("c", "autumn")]
    assert got["persistent_absence"].dtype == bool
    assert got["attendance_rate"].tolist() == [0.9, 0.8]
    assert store.replace(attendance_measures, _measures([], "autumn", 0.8)) == 0
    assert store.read(attendance_measures).empty


def test_insert_appends_and_can_skip_known_keys(store):
    rows = [{"source_id": "s", "file_id": "f", "file_name": "x.csv", "row_number": i, "field": "mark",
             "reason": "unknown code", "quarantined_at": dt.datetime(2026, 9, 3, tzinfo=UTC)} for i in (1, 2)]
    assert store.insert(quarantine, rows) == 2
    assert store.insert(quarantine, pd.DataFrame(rows)) == 2
    got = store.read(quarantine)
    assert got["quarantine_id"].tolist() == [1, 2, 3, 4]
    flag = {"flag_id": "x", "child_key": "c", "rule": "r", "session_date": dt.date(2026, 9, 3), "session": "AM",
            "evidence": "{}", "raised_at": dt.datetime(2026, 9, 3, 9, tzinfo=UTC)}
    assert store.insert(flags, [flag], ignore_conflicts=True) == 1
    assert store.insert(flags, [flag, {**flag, "flag_id": "y"}], ignore_conflicts=True) == 1


def test_bulk_loads_carry_awkward_text_and_bytes(store):
    n = 1_200  # past the COPY threshold on PostgreSQL
    awkward = 'tab\there, new\nline, back\\slash, "quote", \\N, comma,'
    df = pd.DataFrame({
        "flag_id": [f"f{i:05d}" for i in range(n)], "child_key": "c", "rule": "unexplained_absence_today",
        "session_date": dt.date(2026, 9, 3), "session": "AM", "laestab": [None] * (n - 1) + ["8881234"],
        "evidence": [awkward] * n, "raised_at": pd.Timestamp("2026-09-03 09:15", tz="Europe/London"),
    })
    assert store.upsert(flags, df) == n
    assert store.upsert(flags, df) == 0
    df.loc[0, "evidence"] = "{}"
    assert store.upsert(flags, df) == 1
    got = store.read(flags)
    assert len(got) == n and got["evidence"].iloc[1] == awkward and got["evidence"].iloc[0] == "{}"
    assert got["laestab"].iloc[0] is None and got["laestab"].iloc[-1] == "8881234"
    assert (got["raised_at"] == pd.Timestamp("2026-09-03 08:15", tz="UTC")).all()
    blobs = pd.DataFrame({"delivery_id": [f"d{i}" for i in range(n)], "flag_id": "f", "recipient_kind": "k",
                          "recipient_id": "r", "channel": "email", "payload_enc": [b"\x00\\\t\n\xff"] * n,
                          "fields": "[]", "status": "pending", "created_at": dt.datetime(2026, 9, 3, tzinfo=UTC)})
    assert store.insert(outbox, blobs) == n
    out = store.read(outbox, columns=["payload_enc", "attempts"])
    assert set(out["payload_enc"]) == {b"\x00\\\t\n\xff"} and set(out["attempts"]) == {0}


def test_writes_inside_one_transaction_roll_back_together(store):
    with pytest.raises(RuntimeError):
        with store.begin():
            store.upsert(staged_marks, _marks(["N"], "2026-09-03 09:00"))
            assert len(store.read(staged_marks)) == 1  # visible inside the transaction
            raise RuntimeError("boom")
    assert store.read(staged_marks).empty


def test_unknown_columns_and_missing_keys_are_refused(store):
    with pytest.raises(ValueError, match="columns not in the table"):
        store.upsert(staged_marks, _marks(["N"], "2026-09-03 09:00").assign(surname="x"))
    with pytest.raises(ValueError, match="primary key"):
        store.upsert(staged_marks, _marks(["N"], "2026-09-03 09:00").drop(columns="session"))

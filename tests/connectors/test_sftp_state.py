"""The SFTP poll state in the store: what one poll tells the next, on any machine, never a file's name."""
from __future__ import annotations

import datetime as dt

from connectors.sftp import RemoteEntry, select_complete
from connectors.sftp_state import LANDED, OBSERVED, name_key, poll_state_get, poll_state_set
from schemas.tables import sftp_poll_state

KEY = bytes(range(32))
AT = dt.datetime(2026, 11, 30, 9, 45, tzinfo=dt.timezone.utc)
CHILD_NAMED = "A123456789012_Smith_attendance_20261130.csv"


def key(name: str) -> str:
    return name_key(KEY, name)


def test_a_stored_state_reads_back_as_the_poll_left_it(store):
    assert poll_state_get(store, "sftp_a") == {OBSERVED: {}, LANDED: {}}
    state = {OBSERVED: {key("a.csv"): {"size": 10, "mtime": 1_700_000_000, "since": 1_796_000_000.25}},
             LANDED: {key("b.csv"): [20, 1_700_000_100]}}
    poll_state_set(store, "sftp_a", state, AT)
    assert poll_state_get(store, "sftp_a") == state
    assert poll_state_get(store, "sftp_b") == {OBSERVED: {}, LANDED: {}}      # per source


def test_setting_the_state_replaces_what_was_stored_for_that_source_only(store):
    poll_state_set(store, "sftp_a", {LANDED: {key("a.csv"): [1, 2], key("b.csv"): [3, 4]}}, AT)
    poll_state_set(store, "sftp_b", {LANDED: {key("a.csv"): [5, 6]}}, AT)
    poll_state_set(store, "sftp_a", {LANDED: {key("b.csv"): [3, 4]}}, AT)     # a.csv has gone
    assert poll_state_get(store, "sftp_a")[LANDED] == {key("b.csv"): [3, 4]}
    assert poll_state_get(store, "sftp_b")[LANDED] == {key("a.csv"): [5, 6]}
    poll_state_set(store, "sftp_a", {}, AT)
    assert poll_state_get(store, "sftp_a") == {OBSERVED: {}, LANDED: {}}


def test_a_file_is_known_by_a_keyed_hash_of_its_exact_name_never_by_the_name(store):
    assert key(CHILD_NAMED) != key(CHILD_NAMED.replace("A1234", "A1235"))
    assert key(CHILD_NAMED) != name_key(bytes(32), CHILD_NAMED)               # keyed, not a bare hash
    assert len(key(CHILD_NAMED)) == 64
    poll_state_set(store, "sftp_a", {LANDED: {key(CHILD_NAMED): [1, 2]},
                                     OBSERVED: {key("x" + CHILD_NAMED): {"size": 1, "mtime": 2, "since": 3.0}}}, AT)
    stored = " ".join(str(v) for row in store.records(sftp_poll_state) for v in row.values())
    assert "A123456789012" not in stored and "Smith" not in stored and "attendance" not in stored


def test_stability_carries_over_from_one_worker_to_another_through_the_store(store):
    entry = RemoteEntry("a.csv", 100, 1_000)
    first = {}
    assert select_complete([entry], patterns=["*.csv"], completeness="stable", stable_seconds=30, state=first,
                           now=100.0, state_key=key) == ([], ["a.csv"])
    poll_state_set(store, "sftp_a", first, AT)
    other_worker = poll_state_get(store, "sftp_a")
    complete, _ = select_complete([entry], patterns=["*.csv"], completeness="stable", stable_seconds=30,
                                  state=other_worker, now=130.0, state_key=key)
    assert complete == [entry]

"""No alert is ever queued without its audit entry, even when the process is killed in between.

The delivery stage runs in a child process that is killed (SIGKILL) at the moment its outbox rows
are written and its audit entries are next: afterwards the store holds both or neither, the audit
chain verifies, and a rerun converges to every delivery queued and audited exactly once.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from connectors.store_setup import init_store
from pathlib import Path

import pytest
from zoneinfo import ZoneInfo

from connectors.outbox import read_audit, unaudited_deliveries
from orchestration import stages
from orchestration.resources import TetherContext
from schemas import tables as t
from sharing.audit import verify
from sharing.keys import write_new_keys
from synthetic.generate import generate_la

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))

pytestmark = pytest.mark.integration

# The child: the delivery stage, killed where the outbox rows are written and the audit entries next.
CRASH_AFTER_OUTBOX = """
import os, signal, sys
from connectors import outbox
from orchestration import stages
from orchestration.resources import TetherContext
from schemas import tables as t

ctx = TetherContext(os.environ["TETHER_DATABASE_URL"], os.environ["TETHER_CONFIG_DIR"],
                    os.environ["TETHER_DATA_DIR"], os.environ["TETHER_AS_OF"])

def killed_before_the_audit(store, entries):
    queued = len(store.read(t.outbox))          # what this process has written so far
    with open(sys.argv[1], "w") as seen:
        seen.write(f"{queued} {len(entries)}")
    os.kill(os.getpid(), signal.SIGKILL)

outbox.append_audit = killed_before_the_audit
stages.queue_deliveries(ctx)
"""


@pytest.fixture(scope="module")
def small_la(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("la")
    generate_la(root, seed=11, n_schools=3, n_pupils=300, as_of=AS_OF)
    return root


@pytest.fixture(params=["sqlite", "postgresql"])
def flagged(request, small_la, tmp_path, monkeypatch):
    """A deployment whose flags are raised and whose deliveries are not yet queued."""
    url = (f"sqlite:///{tmp_path / 'tether.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("fresh_pg_url"))
    env = {"TETHER_CONFIG_DIR": str(small_la / "config"), "TETHER_DATA_DIR": str(tmp_path / "data"),
           "TETHER_DATABASE_URL": url, "TETHER_AS_OF": AS_OF.isoformat(), **write_new_keys(tmp_path / "keys")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    init_store(url, env["TETHER_DATA_DIR"])[0].dispose()          # as `tether init` does
    ctx = TetherContext(url, env["TETHER_CONFIG_DIR"], env["TETHER_DATA_DIR"], env["TETHER_AS_OF"])
    for source in ctx.config.sources.values():
        stages.land_source(ctx, source)
        stages.stage_source(ctx, source)
    for stage in (stages.link, stages.build_record, stages.compute_measures, stages.compute_cohorts,
                  stages.raise_flags):
        stage(ctx)
    yield ctx, env
    ctx.store.dispose()


def test_a_process_killed_between_outbox_and_audit_leaves_neither_and_a_rerun_converges(flagged, tmp_path):
    ctx, env = flagged
    seen = tmp_path / "seen_at_the_kill"
    child = subprocess.run([sys.executable, "-c", CRASH_AFTER_OUTBOX, str(seen)], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-2000:]
    queued_in_child, entries_due = map(int, seen.read_text().split())
    assert queued_in_child > 0 and entries_due == queued_in_child   # it died with rows written, unaudited

    store = ctx.store
    queued = set(store.read(t.outbox)["delivery_id"])
    audited = [e for e in read_audit(store) if e["action"] == "alert_queued"]
    assert queued == {e["ref"] for e in audited}                      # both or neither: here neither
    assert queued == set() and verify(read_audit(store)) == []

    first = stages.queue_deliveries(ctx)
    assert first["deliveries_new"] == queued_in_child
    again = stages.queue_deliveries(ctx)
    assert again["deliveries_new"] == 0
    queued = store.read(t.outbox)["delivery_id"].tolist()
    refs = [e["ref"] for e in read_audit(store) if e["action"] == "alert_queued"]
    assert len(queued) == queued_in_child and sorted(refs) == sorted(queued)   # each once, each audited
    assert unaudited_deliveries(store) == [] and verify(read_audit(store)) == []

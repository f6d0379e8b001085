"""Statutory returns staged beside the case-management extract: one record per child, the
extract winning where both hold it, adoption making the pre-adoption record restricted."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from connectors.store_setup import init_store
from orchestration import stages
from orchestration.resources import TetherContext
from schemas import tables as t
from sharing.crypto import decrypt_json
from sharing.keys import write_new_keys
from synthetic.statutory import write_cin_census, write_ssda903
from transforms.pseudonymise import SC_PERSON_NS, record_ref

pytestmark = pytest.mark.integration

SOURCES = """
[sources.social_care]
transport = "folder"
path = "inbox"
[[sources.social_care.files]]
pattern = "sc_persons_*.csv"
layout = "sc-persons"
[[sources.social_care.files]]
pattern = "sc_episodes_*.csv"
layout = "sc-episodes"
[[sources.social_care.files]]
pattern = "cin_census_*.xml"
layout = "cin-census"
[[sources.social_care.files]]
pattern = "ssda903_header_*.csv"
layout = "ssda903-header"
[[sources.social_care.files]]
pattern = "ssda903_episodes_*.csv"
layout = "ssda903-episodes"
"""
# LA child ids: SC-1 in the extract and the census; SC-2 only in the census; SC-3 adopted (SSDA903)
UPN_1, UPN_2, UPN_3 = "Q886400026001", "E886400026002", "U886400026003"


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch) -> TetherContext:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sources.toml").write_text(SOURCES)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "sc_persons_20261127.csv").write_text(
        "PersonID,UPN,NHSNumber,Forename,Surname,DOB,Sex,Postcode,Restricted\n"
        f"SC-1,{UPN_1},,Jayden,Brook,2013-04-02,M,CT1 1AA,N\n")
    (inbox / "sc_episodes_20261127.csv").write_text(
        "PersonID,EpisodeID,EpisodeType,StartDate,EndDate\n"
        "SC-1,EP-1,CIN,2026-01-05,\n")
    write_cin_census(inbox / "cin_census_20261127.xml", [
        {"person_id": "SC-1", "upn": UPN_1, "dob": dt.date(2013, 4, 2), "sex": "M",
         "cin_details": [{"referral_date": dt.date(2026, 1, 5), "cpp": [{"start_date": dt.date(2026, 2, 1)}]}]},
        {"person_id": "SC-2", "upn": UPN_2, "dob": dt.date(2014, 6, 9), "sex": "F",
         "cin_details": [{"referral_date": dt.date(2026, 9, 15)}]}])
    write_ssda903(inbox / "ssda903_header_20261127.csv", inbox / "ssda903_episodes_20261127.csv",
                  [{"person_id": "SC-3", "sex": "F", "dob": dt.date(2012, 1, 20), "upn": UPN_3}],
                  [{"person_id": "SC-3", "decom": dt.date(2022, 3, 1), "rne": "S", "ls": "C2", "cin": "N1",
                    "place": "U1", "dec": dt.date(2024, 5, 31), "rec": "E11"}])
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    init_store(f"sqlite:///{tmp_path / 'tether.sqlite'}")[0].dispose()
    context = TetherContext(f"sqlite:///{tmp_path / 'tether.sqlite'}", str(tmp_path / "config"),
                            str(tmp_path / "data"), "2026-11-30T09:45")
    source = context.config.sources["social_care"]
    stages.land_source(context, source)
    figures = stages.stage_source(context, source)
    assert figures["rows_read"] == figures["rows_staged"] and figures["rows_quarantined"] == 0
    stages.link(context)
    stages.build_record(context)
    stages.compute_cohorts(context)
    return context


def _ref(ctx, person_id):
    return record_ref(ctx.keys.token_key, SC_PERSON_NS, person_id)


def test_a_child_in_both_is_one_person_and_the_extract_wins(ctx):
    persons = ctx.store.read(t.staged_sc_persons).set_index("person_ref")
    assert len(persons) == 3
    extract_row = persons.loc[_ref(ctx, "SC-1")]
    assert extract_row["source_id"] == "social_care"
    assert decrypt_json(ctx.keys.identity_key, bytes(extract_row["identity_enc"]))["forename"] == "Jayden"
    _, episodes = stages.social_care(ctx)
    sc1 = episodes[episodes["person_ref"] == _ref(ctx, "SC-1")]
    assert sorted(sc1["episode_type"]) == ["CIN", "CPP"]                    # the census CIN is the extract's EP-1
    assert sc1.loc[sc1["episode_type"] == "CIN", "episode_id"].tolist() == ["EP-1"]


def test_returns_feed_the_cohorts(ctx):
    links = ctx.store.read(t.child_links).set_index("record_ref")["child_key"]
    cohorts = ctx.store.read(t.cohort_membership)
    status = {(r.child_key, r.cohort): r.status for r in cohorts.itertuples()}
    assert status[(links[_ref(ctx, "SC-1")], "current_cwsw")] == "CPP"
    assert status[(links[_ref(ctx, "SC-2")], "current_cwsw")] == "CIN"      # known only from the census
    assert status[(links[_ref(ctx, "SC-3")], "ever6_cwsw")] == "CLA"


def test_adoption_in_ssda903_makes_the_pre_adoption_record_restricted(ctx):
    links = ctx.store.read(t.child_links).set_index("record_ref")["child_key"]
    record = ctx.store.read(t.child_record).set_index("child_key")
    assert bool(record.loc[links[_ref(ctx, "SC-3")], "restricted"])
    assert not bool(record.loc[links[_ref(ctx, "SC-1")], "restricted"])
    episode_ids = " ".join(ctx.store.read(t.staged_sc_episodes)["episode_id"])
    assert "SC-2" not in episode_ids and "SC-3" not in episode_ids          # ids carry tokens, not LA ids

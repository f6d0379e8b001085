"""Linkage of a synthetic LA is exactly what the all-pairs implementation gave before linkage was
made linear: same child_key for every record, same linked_on, same identifier conflicts.

The LA's feeds are read through the real ingest (fixed keys, so tokens and child_keys are fixed)
from the first and the last file of each series: the roll at the start of term and now, every
social-care person and CAMHS referral. EXPECTED was computed by `transforms/linkage.py` as of
commit 88b9778 (the all-pairs version) on these frames. If the synthetic generator or ingest
changes, recompute it with that version (`git show 88b9778:transforms/linkage.py`) on the new
frames — never with the code under test.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest
from zoneinfo import ZoneInfo

from schemas.config import load_config
from sharing.keys import KeyRing
from synthetic.generate import generate_la
from transforms.ingest import ingest_file
from transforms.linkage import MAX_HOLDERS, identifier_conflicts, link_records, link_with_conflicts
from transforms.linkage_tokens import collect
from transforms.quality import QualityRules
from transforms.statutory.merge import staged_social_care

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))
KEYS = KeyRing(token_key=b"\x11" * 32, identity_key=b"\x22" * 32)

EXPECTED = {
    "records": 947, "children": 837,
    "linked_on": {"name_dob": 66, "nhs": 5, "self": 732, "upn": 144},
    "conflicts": {"linked": 16, "not linked": 2},
    "sha256": "1867ce9cbd01855fa80449b4098cd2e3b0bca8fb23778d81bcb99687487ac3c5",
}


def staged_frames(la: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Staged pupils, social-care persons (restricted as staging marks them) and CAMHS referrals."""
    config = load_config(la / "config")
    quality = QualityRules.from_mapping(config.data_quality)
    staged: dict[str, list[pd.DataFrame]] = {}
    for source in config.sources.values():
        series: dict[str, list[Path]] = {}
        for path in sorted((la / "inbox" / source.source_id).iterdir()):
            if source.layout_for(path.name):
                series.setdefault(re.sub(r"_\d{8}(T\d{4})?\.csv$", "", path.name), []).append(path)
        for path in sorted({p for files in series.values() for p in (files[0], files[-1])}):
            result = ingest_file(path.read_bytes(), file_name=path.name, source_id=source.source_id,
                                 file_id=path.name, layout=config.layout(source.layout_for(path.name)),
                                 codes=config.codes, keys=KEYS, received_at=AS_OF, schools=set(config.schools),
                                 quality=quality)
            for table, frame in {result.table: result.staged, **result.extra}.items():
                staged.setdefault(table, []).append(frame)
    frames = {table: pd.concat(parts, ignore_index=True) for table, parts in staged.items()}
    pupils = frames["staged_pupils"].drop_duplicates(["laestab", "pupil_ref"], keep="last", ignore_index=True)
    persons, _ = staged_social_care(frames["staged_sc_persons"], frames["staged_sc_episodes"])
    return pupils, persons, frames["staged_camhs_referrals"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    la = tmp_path_factory.mktemp("linkage") / "la"
    generate_la(la, seed=11, n_schools=4, n_pupils=800, as_of=AS_OF)
    return staged_frames(la)


def fingerprint(links: pd.DataFrame, conflicts: pd.DataFrame) -> dict:
    return {
        "records": len(links), "children": links["child_key"].nunique(),
        "linked_on": links["linked_on"].value_counts().sort_index().to_dict(),
        "conflicts": {"linked": int(conflicts["linked"].sum()),
                      "not linked": int((~conflicts["linked"].astype(bool)).sum())},
        "sha256": hashlib.sha256(links.to_csv(index=False).encode() + b"\n"
                                 + conflicts.to_csv(index=False).encode()).hexdigest(),
    }


def test_synthetic_la_links_exactly_as_before(frames):
    links, conflicts = link_with_conflicts(*frames)
    assert fingerprint(links, conflicts) == EXPECTED


def test_synthetic_la_holds_no_placeholder_token(frames):
    # the limit never bites on real-looking data: no token is near MAX_HOLDERS records of one agency,
    # and a limit of exactly the most records holding one token changes nothing
    records = collect(*frames)
    tokens = records.tokens.assign(kind=records.kind[records.tokens["record"].to_numpy()])
    most = int(tokens.groupby(["rule", "token", "kind"]).size().max())
    assert 2 <= most < MAX_HOLDERS
    links, conflicts = link_with_conflicts(*frames)
    at_most, found = link_with_conflicts(*frames, max_holders=most)
    pd.testing.assert_frame_equal(at_most, links)
    pd.testing.assert_frame_equal(found, conflicts)
    assert not conflicts["reason"].str.contains("too many for one child").any()


def test_link_records_and_identifier_conflicts_agree_with_the_one_pass(frames):
    links, conflicts = link_with_conflicts(*frames)
    pd.testing.assert_frame_equal(link_records(*frames), links)
    pd.testing.assert_frame_equal(identifier_conflicts(*frames), conflicts)

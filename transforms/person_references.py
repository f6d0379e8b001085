"""Social-care episodes and allocations whose PersonID is in no persons file.

Such a row is a data-quality issue (field `person_id`), not a quarantined row: the row is kept as
staged, and it counts for no child, because a child enters the record only through a person (or
pupil, or patient) record. It is not quarantined when its file is read, because the persons and
the episodes arrive as separate files — often on different days, and a person may come from a
statutory return instead of the extract — so whether the person exists is only known when the
record is linked, and a row quarantined at reading would be lost for good when its person simply
arrived later. The check runs each time the record is linked; once the person arrives the
episode counts for that child (the issue recorded earlier stays in the history).
"""
from __future__ import annotations

import pandas as pd

ISSUE_COLUMNS = ["source_id", "file_id", "row_number", "field", "issue"]
_WHAT = {"episode": "the episode counts for no child", "allocation": "the allocation reaches no child's worker"}


def rows_without_person(persons: pd.DataFrame, episodes: pd.DataFrame, allocations: pd.DataFrame) -> pd.DataFrame:
    """One issue row (source_id, file_id, row_number, field, issue) per staged episode or
    allocation whose person_ref is not the person_ref of any staged social-care person."""
    known = set(persons["person_ref"].dropna()) if "person_ref" in persons.columns else set()
    found = []
    for kind, frame in (("episode", episodes), ("allocation", allocations)):
        if frame is None or frame.empty:
            continue
        orphan = frame[~frame["person_ref"].isin(known)]
        issue = f"PersonID is not in any social-care persons file; {_WHAT[kind]} until the person is sent"
        for row in orphan.itertuples(index=False):
            found.append({"source_id": row.source_id, "file_id": row.file_id,
                          "row_number": None if pd.isna(row.row_number) else int(row.row_number),
                          "field": "person_id", "issue": issue})
    return pd.DataFrame(found, columns=ISSUE_COLUMNS)

"""Social-care episodes and allocations for a PersonID in no persons file are data-quality issues."""
import pandas as pd

from transforms.person_references import ISSUE_COLUMNS, rows_without_person


def staged(rows, extra):
    return pd.DataFrame([{"source_id": "social_care", "file_id": f, "row_number": n, "person_ref": p, **extra}
                         for f, n, p in rows])


def test_episodes_and_allocations_without_a_person_are_reported_by_file_and_row():
    persons = pd.DataFrame({"person_ref": ["p1", "p2"]})
    episodes = staged([("e", 1, "p1"), ("e", 2, "ghost"), ("cin", 4, "p2")], {"episode_id": "x"})
    allocations = staged([("a", 1, "p2"), ("a", 2, "ghost")], {"worker_id": "w"})
    found = rows_without_person(persons, episodes, allocations)
    assert list(found.columns) == ISSUE_COLUMNS
    assert list(zip(found["file_id"], found["row_number"], found["field"])) == [
        ("e", 2, "person_id"), ("a", 2, "person_id")]
    assert found["issue"].iloc[0] == ("PersonID is not in any social-care persons file; the episode counts "
                                      "for no child until the person is sent")
    assert "allocation" in found["issue"].iloc[1]


def test_nothing_to_report():
    empty = pd.DataFrame(columns=["person_ref"])
    assert rows_without_person(empty, pd.DataFrame(), pd.DataFrame()).empty
    assert rows_without_person(pd.DataFrame({"person_ref": ["p1"]}),
                               staged([("e", 1, "p1")], {}), staged([], {})).empty

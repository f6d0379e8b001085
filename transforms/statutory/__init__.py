"""Statutory returns read as social-care feeds (docs/layouts.md#statutory-returns).

Every local authority produces two statutory returns that Tether also reads, so that a child whose
case-management record is late, incomplete or missing is still known to be (or to have been) a
child with a social worker:

- the Children in Need census (XML): one `Child` per child, with `CINdetails` episodes of need and
  the `ChildProtectionPlans` inside them -> CIN and CPP episodes;
- the SSDA903 looked-after children return (CSV header and episodes tables) -> CLA episodes.

The readers turn a file's bytes into canonical `sc_persons` / `sc_episodes` frames (plaintext, in
memory only: the pseudonymiser turns them into staged tables) plus quarantine entries. Neither
return carries names or postcodes; both link to the case-management extract by LA child id, and
`merge_returns_with_extract` makes a record found in both one record, the extract winning.

Adoption is the privacy-critical fact here (docs/dfe-rules.md#identifiers, #information-sharing): an SSDA903 episode that ended
`E11`/`E12` (adopted), or a CIN episode closed `RC1` (adopted), makes the child's pre-adoption record
restricted. `adopted_person_ids` exposes that so the caller can mark persons read from another file.

Episode ids made here embed the LA child id (`cla:<CHILD>:<DECOM>`): call `pseudonymise_episode_ids`
on the episodes before staging them, or the id would be stored in plaintext.
"""
from transforms.statutory.cin_census import read_cin_census
from transforms.statutory.episode_ids import episode_id, pseudonymise_episode_ids
from transforms.statutory.merge import adopted_person_ids, mark_restricted, merge_returns_with_extract
from transforms.statutory.result import (
    EPISODE_COLUMNS, PERSON_COLUMNS, XML_DECLARATIONS_REFUSED, Quarantined, ReturnRead,
)
from transforms.statutory.ssda903 import read_ssda903_episodes, read_ssda903_header

__all__ = [
    "EPISODE_COLUMNS", "PERSON_COLUMNS", "XML_DECLARATIONS_REFUSED", "Quarantined", "ReturnRead",
    "adopted_person_ids", "episode_id", "mark_restricted", "merge_returns_with_extract",
    "pseudonymise_episode_ids",
    "read_cin_census", "read_ssda903_episodes", "read_ssda903_header",
]

"""Deterministic linkage on keyed tokens: every source record mapped to a pseudonymous child_key.

Records (a school enrolment, a social-care person, a CAMHS patient) are joined when they share a
token, strongest key first: UPN (a school's former UPN also matches a current UPN), then NHS
number, then the exact forename + surname + date-of-birth key. This is the careful, explainable
first pass; probabilistic matching of the rest (and a review queue) is a later stage.

Precision comes first — a wrong link sends one child's safeguarding alert about another:

- Only identifiers that passed their check-digit test are used (`upn_valid` / `nhs_valid` False
  means the token is ignored for linking and for conflicts; a missing flag column or a null flag
  counts as not checked and the token is used). Former UPNs carry no flag and are always used.
- A restricted social-care record (adoption-sensitive, sealed) is never linked to anything: it
  gets its own child_key, linked_on 'self'.
- **Conflict rule.** A token joins groups only if no two of the groups it would join conflict.
  Two groups conflict when both hold UPNs and share none, or both hold NHS numbers and share none
  (different valid strong identifiers mean different children, or an identity change that a
  person must review). On the weakest key (name + date of birth) two groups also conflict when
  each holds a record from the same register — two social-care persons, two CAMHS patients, or
  two enrolments at the same school — because one register holding two ids is itself evidence of
  two children. When a token's groups conflict the token is not used at all (it is ambiguous),
  so e.g. one pupil matching two social-care persons by name and DOB links to neither.
- **A shared identifier is not enough when the same kind of register disagrees on who it is.**
  On a strong key (UPN, NHS number) two groups also conflict when each holds a record of the same
  kind (two school enrolments, two social-care persons, two CAMHS patients) with a name + date of
  birth key and those keys share none. Schools pass a pupil's legal name and date of birth on with
  the UPN when the pupil moves, so two enrolments under one UPN with different names and dates of
  birth are two children sharing an identifier (a mistyped UPN that still passes its check letter,
  a re-issued number) or an identity change: a person must look before they are joined.
  Across agencies names are keyed independently (nicknames, typos, swapped names are common), so
  there a disagreeing name + date of birth does not stop a UPN or NHS link; it is reported instead.
- A pupil on roll at two schools (a move) with the same UPN is one child (when the schools agree
  on name and date of birth, or one of them has no name + date-of-birth key).

`identifier_conflicts` reports, one row per record, every strong-identifier token refused by the
conflict rule (`linked` False) and every cross-agency UPN / NHS link made although the records'
name + date-of-birth keys disagree (`linked` True, for review), with the record's provenance when
the input frames carry it: neither is ever silent.

child_key is sha256 of "<source_kind>|<record_ref>" of the group's first member in sorted
(source_kind, record_ref) order: the same inputs always give the same keys.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

LINK_COLUMNS = ["source_kind", "record_ref", "laestab", "child_key", "linked_on"]
CONFLICT_COLUMNS = ["source_kind", "record_ref", "laestab", "identifier", "linked", "reason",
                    "source_id", "file_id", "row_number"]
RULES = ("upn", "nhs", "name_dob")          # strongest first
STRONG = ("upn", "nhs")
SCHOOL, SOCIAL_CARE, HEALTH = "school", "social_care", "health"
_IDENTIFIER_LABEL = {"upn": "UPN", "nhs": "NHS number"}
_WHY = {
    "name_dob": "name or date of birth differs",
    "upn": "UPNs differ",
    "nhs": "NHS numbers differ",
}


@dataclass
class _Record:
    kind: str
    ref: str
    laestab: str | None = None
    restricted: bool = False
    keys: dict[str, set[str]] = field(default_factory=lambda: {r: set() for r in RULES})
    provenance: dict = field(default_factory=dict)     # source_id, file_id, row_number (if known)

    @property
    def ident(self) -> tuple[str, str]:
        return (self.kind, self.ref)

    @property
    def register(self) -> tuple[str, str | None]:
        """The register that issued the record's id: one school's roll, the CMS, the trust."""
        return (self.kind, self.laestab if self.kind == SCHOOL else None)


def _present(value) -> bool:
    return value is not None and not pd.isna(value) and str(value) != ""


def _usable(row: dict, token_col: str, valid_col: str | None) -> str | None:
    value = row.get(token_col)
    if not _present(value):
        return None
    if valid_col is not None:
        valid = row.get(valid_col)
        if _present(valid) and not bool(valid):
            return None
    return str(value)


def _collect(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame) -> dict[tuple, _Record]:
    records: dict[tuple, _Record] = {}

    def add(kind: str, ref: str, row: dict, spec: list[tuple[str, str, str | None]],
            laestab: str | None = None, restricted: bool = False) -> None:
        rec = records.setdefault((kind, ref), _Record(kind, ref, laestab))
        rec.restricted = rec.restricted or restricted
        if not rec.provenance:
            rec.provenance = {c: row.get(c) for c in ("source_id", "file_id", "row_number") if _present(row.get(c))}
        for rule, token_col, valid_col in spec:
            tok = _usable(row, token_col, valid_col)
            if tok:
                rec.keys[rule].add(tok)

    for row in pupils.to_dict("records"):
        add(SCHOOL, str(row["pupil_ref"]), row, [
            ("upn", "upn_token", "upn_valid"), ("upn", "former_upn_token", None),
            ("nhs", "nhs_token", "nhs_valid"), ("name_dob", "name_dob_token", None),
        ], laestab=str(row["laestab"]))
    for row in sc_persons.to_dict("records"):
        restricted = row.get("restricted")
        add(SOCIAL_CARE, str(row["person_ref"]), row, [
            ("upn", "upn_token", "upn_valid"), ("nhs", "nhs_token", "nhs_valid"),
            ("name_dob", "name_dob_token", None),
        ], restricted=bool(restricted) if _present(restricted) else False)
    for row in camhs.to_dict("records"):
        add(HEALTH, str(row["patient_ref"]), row, [
            ("nhs", "nhs_token", "nhs_valid"), ("name_dob", "name_dob_token", None),
        ])
    return records


class _Groups:
    """Union-find over records, tracking each group's strong identifiers and registers."""

    def __init__(self, records: list[_Record]):
        self.parent = {r.ident: r.ident for r in records}
        self.upns = {r.ident: set(r.keys["upn"]) for r in records}
        self.nhs = {r.ident: set(r.keys["nhs"]) for r in records}
        self.names = {r.ident: {(r.kind, tok) for tok in r.keys["name_dob"]} for r in records}
        self.registers = {r.ident: {r.register} for r in records}

    def find(self, ident: tuple) -> tuple:
        while self.parent[ident] != ident:
            self.parent[ident] = self.parent[self.parent[ident]]
            ident = self.parent[ident]
        return ident

    def conflict(self, a: tuple, b: tuple, rule: str) -> str | None:
        """Why groups `a` and `b` must not be joined on a `rule` token ('upn', 'nhs', 'name_dob',
        'register'), or None when they may."""
        if self.upns[a] and self.upns[b] and not self.upns[a] & self.upns[b]:
            return "upn"
        if self.nhs[a] and self.nhs[b] and not self.nhs[a] & self.nhs[b]:
            return "nhs"
        if rule in STRONG and self.same_register_kind_disagrees(a, b):
            return "name_dob"
        if rule == "name_dob" and self.registers[a] & self.registers[b]:
            return "register"
        return None

    def same_register_kind_disagrees(self, a: tuple, b: tuple) -> bool:
        """Both groups hold name + DOB keys from the same kind of record, and share none of them."""
        for kind in {k for k, _ in self.names[a]} & {k for k, _ in self.names[b]}:
            mine = {tok for k, tok in self.names[a] if k == kind}
            theirs = {tok for k, tok in self.names[b] if k == kind}
            if not mine & theirs:
                return True
        return False

    def names_disagree(self, a: tuple, b: tuple) -> bool:
        """Both groups hold name + DOB keys (of any kind of record) and share none of them."""
        mine, theirs = {tok for _, tok in self.names[a]}, {tok for _, tok in self.names[b]}
        return bool(mine and theirs and not mine & theirs)

    def union(self, a: tuple, b: tuple) -> None:
        keep, gone = sorted((a, b))
        self.parent[gone] = keep
        for attr in (self.upns, self.nhs, self.names, self.registers):
            attr[keep] |= attr.pop(gone)


def _child_key(first: tuple[str, str]) -> str:
    return hashlib.sha256(f"{first[0]}|{first[1]}".encode("utf-8")).hexdigest()


def link_records(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame) -> pd.DataFrame:
    """The child_links table: source_kind, record_ref, laestab, child_key, linked_on.

    `linked_on` is the strongest key ('upn' > 'nhs' > 'name_dob') the record shares with another
    member of its group, or 'self' for a record that stands alone. See the module docstring for
    the conflict rule that keeps different children apart.
    """
    return link_with_conflicts(pupils, sc_persons, camhs)[0]


def identifier_conflicts(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame) -> pd.DataFrame:
    """Records whose UPN or NHS number token needs a person's eye, one row per record and identifier.

    `linked` False: the conflict rule refused to link on the token (different children sharing an
    identifier, or an identity change). `linked` True: records of different agencies were linked on
    it although their name + date-of-birth keys disagree (nickname, typo — or a wrong identifier).
    Columns (CONFLICT_COLUMNS): source_kind, record_ref, laestab, identifier ('upn' | 'nhs'),
    linked, reason (names no identity value), and the record's source_id, file_id and row_number
    when the input frame carries them (the staged tables do), else None. A sealed (restricted)
    record is never reported: it is never linked at all.
    """
    return link_with_conflicts(pupils, sc_persons, camhs)[1]


def link_with_conflicts(pupils: pd.DataFrame, sc_persons: pd.DataFrame,
                        camhs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`link_records` and `identifier_conflicts` from one pass over the records."""
    records = _collect(pupils, sc_persons, camhs)
    linkable = [r for r in records.values() if not r.restricted]
    by_ident = {r.ident: r for r in linkable}
    groups = _Groups(linkable)
    refused: dict[tuple[tuple, str], set[str]] = {}     # (record, rule) -> why not linked
    disputed: set[tuple[tuple, str]] = set()            # (record, rule) linked though names differ

    for rule in RULES:
        holders: dict[str, list[tuple]] = {}
        for rec in sorted(linkable, key=lambda r: r.ident):
            for tok in rec.keys[rule]:
                holders.setdefault(tok, []).append(rec.ident)
        for tok in sorted(holders):
            roots = sorted({groups.find(i) for i in holders[tok]})
            if len(roots) < 2:
                continue
            whys = {why for i, a in enumerate(roots) for b in roots[i + 1:]
                    if (why := groups.conflict(a, b, rule)) is not None}
            if whys:
                if rule in STRONG:
                    for ident in holders[tok]:
                        refused.setdefault((ident, rule), set()).update(whys)
                continue
            if rule in STRONG and any(groups.names_disagree(a, b) for i, a in enumerate(roots) for b in roots[i + 1:]):
                disputed.update((ident, rule) for ident in holders[tok])
            for other in roots[1:]:
                groups.union(groups.find(roots[0]), groups.find(other))

    members: dict[tuple, list[_Record]] = {}
    for rec in linkable:
        members.setdefault(groups.find(rec.ident), []).append(rec)

    rows = []
    for group in members.values():
        key = _child_key(min(r.ident for r in group))
        for rec in group:
            rows.append(_row(rec, key, _linked_on(rec, group)))
    for rec in records.values():
        if rec.restricted:
            rows.append(_row(rec, _child_key(rec.ident), "self"))
    links = pd.DataFrame(rows, columns=LINK_COLUMNS)
    links = links.sort_values(["child_key", "source_kind", "record_ref"], ignore_index=True)

    conflict_rows = []
    for ident, rule in sorted(set(refused) | disputed):
        rec = by_ident[ident]
        label = _IDENTIFIER_LABEL[rule]
        linked = (ident, rule) not in refused
        if linked:
            reason = (f"{label} shared with a record of another agency whose name or date of birth differs: "
                      f"linked on this {label}; review that they are the same child")
        else:
            because = " and ".join(_WHY[w] for w in sorted(refused[(ident, rule)]))
            reason = (f"{label} shared with another record but {because}: not linked on this {label} "
                      f"(two children sharing one identifier, or an identity change to review)")
        conflict_rows.append({
            "source_kind": rec.kind, "record_ref": rec.ref, "laestab": rec.laestab, "identifier": rule,
            "linked": linked, "reason": reason,
            "source_id": rec.provenance.get("source_id"), "file_id": rec.provenance.get("file_id"),
            "row_number": int(rec.provenance["row_number"]) if "row_number" in rec.provenance else None,
        })
    conflicts = pd.DataFrame(conflict_rows, columns=CONFLICT_COLUMNS)
    conflicts["row_number"] = pd.Series([r["row_number"] for r in conflict_rows], dtype=object)
    return links, conflicts


def _linked_on(rec: _Record, group: list[_Record]) -> str:
    for rule in RULES:
        if any(rec.keys[rule] & other.keys[rule] for other in group if other is not rec):
            return rule
    return "self"


def _row(rec: _Record, child_key: str, linked_on: str) -> dict:
    return {"source_kind": rec.kind, "record_ref": rec.ref, "laestab": rec.laestab,
            "child_key": child_key, "linked_on": linked_on}

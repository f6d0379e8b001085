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
- **A token held by too many records is no one's.** A UPN, NHS number or name + date-of-birth key
  held by more than `MAX_HOLDERS` (25) records of one agency — a school MIS's default UPN, a
  trust's dummy NHS number, a common name with a default date of birth — cannot be one child's
  (one child has a handful of enrolments at most, and one social-care or CAMHS record). It is
  treated as absent, as if it had failed its check: it links no records, blocks no link, and no
  record's `linked_on` is claimed from it. A UPN or NHS number treated so is reported once per
  agency holding it, on that agency's first record (in record_ref order): the reason gives how
  many records hold it, and the data team corrects it in the source system — not a row per record
  or per pair of records. (A name + date-of-birth key has no identifier field to report against
  and only goes unused; the data-quality rules already keep placeholder names and impossible
  dates of birth out of the key.) `max_holders` overrides the limit.

`identifier_conflicts` reports, one row per record, every strong-identifier token refused by the
conflict rule (`linked` False) and every cross-agency UPN / NHS link made although the records'
name + date-of-birth keys disagree (`linked` True, for review), and each placeholder UPN or NHS
number once per agency (`linked` False), with the record's provenance when the input frames
carry it: none is ever silent.

child_key is sha256 of "<source_kind>|<record_ref>" of the group's first member in sorted
(source_kind, record_ref) order: the same inputs always give the same keys.

Time is linear in the records (plus sorting): records and tokens are read in bulk
(transforms/linkage_tokens.py), only tokens held by two or more records are considered, in sorted
order per rule, and the all-pairs conflict check of a token's groups is over at most
`MAX_HOLDERS` records of each agency.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from transforms.linkage_tokens import HEALTH, RULES, SCHOOL, SOCIAL_CARE, Records, collect

LINK_COLUMNS = ["source_kind", "record_ref", "laestab", "child_key", "linked_on"]
CONFLICT_COLUMNS = ["source_kind", "record_ref", "laestab", "identifier", "linked", "reason",
                    "source_id", "file_id", "row_number"]
STRONG = ("upn", "nhs")
MAX_HOLDERS = 25        # records of one agency a token may be held by and still identify one child
_IDENTIFIER_LABEL = {"upn": "UPN", "nhs": "NHS number"}
_WHY = {
    "name_dob": "name or date of birth differs",
    "upn": "UPNs differ",
    "nhs": "NHS numbers differ",
}
_AGENCY_RECORD = {SCHOOL: "school enrolment", SOCIAL_CARE: "social-care person", HEALTH: "CAMHS patient"}
_UPN, _NHS = RULES.index("upn"), RULES.index("nhs")     # rule numbers: places in RULES


class _Groups:
    """Union-find over the records that share a token with another, tracking each group's UPNs,
    NHS numbers, name + DOB keys (by kind of record) and registers. A group's root is its first
    record in (source_kind, record_ref) order, whose child_key the group takes."""

    def __init__(self, members: np.ndarray, records: Records, keys: pd.DataFrame):
        kinds, laestabs = records.kind.tolist(), records.laestab.tolist()
        self.parent = {i: i for i in members.tolist()}
        self.upns: dict[int, set[int]] = {i: set() for i in self.parent}      # token numbers
        self.nhs: dict[int, set[int]] = {i: set() for i in self.parent}
        self.names: dict[int, dict[str, set[int]]] = {i: {} for i in self.parent}
        self.name_tokens: dict[int, set[int]] = {i: set() for i in self.parent}
        self.registers = {i: {(kinds[i], laestabs[i] if kinds[i] == SCHOOL else None)} for i in self.parent}
        for i, rule, tok in zip(keys["record"].tolist(), keys["rule"].tolist(), keys["token"].tolist()):
            if rule == _UPN:
                self.upns[i].add(tok)
            elif rule == _NHS:
                self.nhs[i].add(tok)
            else:
                self.names[i].setdefault(kinds[i], set()).add(tok)
                self.name_tokens[i].add(tok)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def conflict(self, a: int, b: int, rule: str) -> str | None:
        """Why groups `a` and `b` must not be joined on a `rule` token ('upn', 'nhs', 'name_dob',
        'register'), or None when they may."""
        if self.upns[a] and self.upns[b] and self.upns[a].isdisjoint(self.upns[b]):
            return "upn"
        if self.nhs[a] and self.nhs[b] and self.nhs[a].isdisjoint(self.nhs[b]):
            return "nhs"
        if rule in STRONG and self.same_register_kind_disagrees(a, b):
            return "name_dob"
        if rule == "name_dob" and not self.registers[a].isdisjoint(self.registers[b]):
            return "register"
        return None

    def same_register_kind_disagrees(self, a: int, b: int) -> bool:
        """Both groups hold name + DOB keys from the same kind of record, and share none of them."""
        mine, theirs = self.names[a], self.names[b]
        return any(mine[kind].isdisjoint(theirs[kind]) for kind in mine.keys() & theirs.keys())

    def names_disagree(self, a: int, b: int) -> bool:
        """Both groups hold name + DOB keys (of any kind of record) and share none of them."""
        mine, theirs = self.name_tokens[a], self.name_tokens[b]
        return bool(mine and theirs and mine.isdisjoint(theirs))

    def union(self, a: int, b: int) -> None:
        keep, gone = (a, b) if a < b else (b, a)
        self.parent[gone] = keep
        for attr in (self.upns, self.nhs, self.name_tokens, self.registers):
            attr[keep] = _merged(attr[keep], attr.pop(gone))
        names, theirs = self.names[keep], self.names.pop(gone)
        for kind, toks in theirs.items():
            names[kind] = _merged(names[kind], toks) if kind in names else toks


def _merged(mine: set, theirs: set) -> set:
    """The union of two sets, built by adding the smaller to the larger (either may be reused)."""
    if len(mine) < len(theirs):
        mine, theirs = theirs, mine
    mine |= theirs
    return mine


def _child_key(kind: str, ref: str) -> str:
    return hashlib.sha256(f"{kind}|{ref}".encode("utf-8")).hexdigest()


def link_records(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame, *,
                 max_holders: int = MAX_HOLDERS) -> pd.DataFrame:
    """The child_links table: source_kind, record_ref, laestab, child_key, linked_on.

    `linked_on` is the strongest key ('upn' > 'nhs' > 'name_dob') the record shares with another
    member of its group, or 'self' for a record that stands alone. See the module docstring for
    the conflict rule that keeps different children apart, and for `max_holders`.
    """
    return link_with_conflicts(pupils, sc_persons, camhs, max_holders=max_holders)[0]


def identifier_conflicts(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame, *,
                         max_holders: int = MAX_HOLDERS) -> pd.DataFrame:
    """Records whose UPN or NHS number token needs a person's eye, one row per record and identifier.

    `linked` False: the conflict rule refused to link on the token (different children sharing an
    identifier, or an identity change), or the token is held by too many records to be anyone's
    (reported once per agency, on its first record). `linked` True: records of different agencies
    were linked on it although their name + date-of-birth keys disagree (nickname, typo — or a
    wrong identifier). Columns (CONFLICT_COLUMNS): source_kind, record_ref, laestab, identifier
    ('upn' | 'nhs'), linked, reason (names no identity value), and the record's source_id, file_id
    and row_number when the input frame carries them (the staged tables do), else None. A sealed
    (restricted) record is never reported: it is never linked at all.
    """
    return link_with_conflicts(pupils, sc_persons, camhs, max_holders=max_holders)[1]


def link_with_conflicts(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame, *,
                        max_holders: int = MAX_HOLDERS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`link_records` and `identifier_conflicts` from one pass over the records."""
    if max_holders < 1:
        raise ValueError(f"max_holders is {max_holders}: give at least 1 (records of one agency a token may identify)")
    records = collect(pupils, sc_persons, camhs)
    keys, shared, placeholders = _keys(records, max_holders)
    members = np.unique(shared["record"].to_numpy())      # the records that share a token with another
    member_keys = keys[np.isin(keys["record"].to_numpy(), members)]
    groups = _Groups(members, records, member_keys)
    refused: dict[tuple[int, str], set[str]] = {}     # (record, rule) -> why not linked
    disputed: set[tuple[int, str]] = set()            # (record, rule) linked though names differ

    texts = records.texts.tolist()
    for rule_number, rule in enumerate(RULES):
        holders: dict[int, list[int]] = {}
        of_rule = shared[shared["rule"].to_numpy() == rule_number]
        for tok, i in zip(of_rule["token"].tolist(), of_rule["record"].tolist()):
            holders.setdefault(tok, []).append(i)
        for tok in sorted(holders, key=texts.__getitem__):     # in token order
            holding = sorted(holders[tok])
            roots = sorted({groups.find(i) for i in holding})
            if len(roots) < 2:
                continue
            # All pairs, but of a bounded number of groups: a token is held by at most
            # `max_holders` records of each of the three agencies (more make it a placeholder).
            whys = {why for n, a in enumerate(roots) for b in roots[n + 1:]
                    if (why := groups.conflict(a, b, rule)) is not None}
            if whys:
                if rule in STRONG:
                    for i in holding:
                        refused.setdefault((i, rule), set()).update(whys)
                continue
            if rule in STRONG and any(groups.names_disagree(a, b) for n, a in enumerate(roots) for b in roots[n + 1:]):
                disputed.update((i, rule) for i in holding)
            for other in roots[1:]:
                groups.union(groups.find(roots[0]), groups.find(other))

    root = np.arange(len(records))
    if len(members):
        root[members] = [groups.find(i) for i in members.tolist()]
    links = _links(records, root, _linked_on(len(records), member_keys, root))
    conflicts = _conflicts(records, refused, disputed, placeholders, max_holders)
    return links, conflicts


def _keys(records: Records, max_holders: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tokens linkage uses (`keys`), those of them held by more than one record (`shared`), and
    the placeholders: per token held by more than `max_holders` records of one agency, and per
    agency holding it, the number of its records holding it and the first of them (columns
    rule, token, kind, holders, first, all_holders). Placeholders are left out of the keys."""
    tokens = records.tokens
    shared = tokens[tokens.duplicated(["rule", "token"], keep=False)]
    per_agency = (shared.assign(kind=records.kind[shared["record"].to_numpy()])
                  .groupby(["rule", "token", "kind"], sort=True)["record"].agg(["size", "min"])
                  .reset_index().rename(columns={"size": "holders", "min": "first"}))
    too_many = per_agency.loc[per_agency["holders"] > max_holders, ["rule", "token"]].drop_duplicates()
    if len(too_many) == 0:
        return tokens, shared, per_agency.iloc[:0].assign(all_holders=0)
    placeholders = per_agency.merge(too_many, on=["rule", "token"])
    placeholders["all_holders"] = placeholders.groupby(["rule", "token"])["holders"].transform("sum")
    width = len(records.texts)
    unused = too_many["rule"].to_numpy(np.int64) * width + too_many["token"].to_numpy()

    def without(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~np.isin(frame["rule"].to_numpy(np.int64) * width + frame["token"].to_numpy(), unused)]
    return without(tokens), without(shared), placeholders


def _linked_on(n_records: int, mine: pd.DataFrame, root: np.ndarray) -> np.ndarray:
    """Per record, the strongest rule on which it holds a token another record of its group holds
    too (`mine`: the keys of every record in a group of more than one), else 'self'."""
    linked_on = np.full(n_records, "self", dtype=object)
    if len(mine) == 0:
        return linked_on
    mine = mine.assign(root=root[mine["record"].to_numpy()])
    holders = mine.groupby(["root", "rule", "token"], sort=False)["record"].transform("size")
    strongest = mine.loc[holders.to_numpy() > 1].groupby("record")["rule"].min()
    linked_on[strongest.index.to_numpy()] = np.array(RULES, dtype=object)[strongest.to_numpy()]
    return linked_on


def _links(records: Records, root: np.ndarray, linked_on: np.ndarray) -> pd.DataFrame:
    """The child_links rows, in (child_key, source_kind, record_ref) order."""
    kinds, refs = records.kind.tolist(), records.ref.tolist()
    key_of = {r: _child_key(kinds[r], refs[r]) for r in np.unique(root).tolist()}
    child_key = np.array([key_of[r] for r in root.tolist()], dtype=object)
    # records are numbered in (source_kind, record_ref) order: a stable sort by key keeps it within a child
    order = np.argsort(child_key.astype(str), kind="stable")
    return pd.DataFrame({"source_kind": records.kind[order], "record_ref": records.ref[order],
                         "laestab": records.laestab[order], "child_key": child_key[order],
                         "linked_on": linked_on[order]}, columns=LINK_COLUMNS)


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}" if n == 1 else f"{n:,} {thing}s"


def _conflicts(records: Records, refused: dict, disputed: set, placeholders: pd.DataFrame,
               max_holders: int) -> pd.DataFrame:
    """The identifier_conflicts rows: refused and disputed tokens per record, placeholders once per agency."""
    found = []           # (record, identifier, linked, reason)
    for i, rule in set(refused) | disputed:
        label = _IDENTIFIER_LABEL[rule]
        if (i, rule) not in refused:
            found.append((i, rule, True,
                          f"{label} shared with a record of another agency whose name or date of birth differs: "
                          f"linked on this {label}; review that they are the same child"))
            continue
        because = " and ".join(_WHY[w] for w in sorted(refused[(i, rule)]))
        found.append((i, rule, False,
                      f"{label} shared with another record but {because}: not linked on this {label} "
                      f"(two children sharing one identifier, or an identity change to review)"))
    for p in placeholders.itertuples(index=False):
        rule = RULES[p.rule]
        if rule not in STRONG:
            continue        # no identifier to report it against: a name + DOB key only goes unused
        label, others = _IDENTIFIER_LABEL[rule], p.all_holders - p.holders
        besides = f" and {_count(others, 'record')} of other agencies" if others else ""
        found.append((int(p.first), rule, False,
                      f"{label} held by {_count(p.holders, _AGENCY_RECORD[p.kind])}{besides}: too many for one child "
                      f"(more than {max_holders:,} in one agency; a placeholder or default value?), so not used "
                      f"to link or compare any of them; reported once, on this agency's first record holding it: "
                      f"correct it wherever the source system holds it"))
    found.sort(key=lambda f: (f[0], f[1], f[3]))
    provenance = records.provenance({f[0] for f in found})
    rows = []
    for i, rule, linked, reason in found:
        prov = provenance.get(i, {})
        rows.append({
            "source_kind": records.kind[i], "record_ref": records.ref[i], "laestab": records.laestab[i],
            "identifier": rule, "linked": linked, "reason": reason,
            "source_id": prov.get("source_id"), "file_id": prov.get("file_id"),
            "row_number": int(prov["row_number"]) if "row_number" in prov else None,
        })
    conflicts = pd.DataFrame(rows, columns=CONFLICT_COLUMNS)
    conflicts["row_number"] = pd.Series([r["row_number"] for r in rows], dtype=object)
    return conflicts

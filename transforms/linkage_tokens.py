"""The records linkage works on and the tokens each holds, read from the staged frames in bulk.

A record is one school enrolment (staged pupil), one social-care person or one CAMHS patient (a
patient with several referrals is one record). Its tokens are its usable keys per rule: 'upn'
(the UPN and, for a pupil, the former UPN), 'nhs' and 'name_dob'. A UPN or NHS number whose check
flag (`upn_valid`, `nhs_valid`) is False is not usable; an absent flag column or a null flag counts
as not checked, and the token is used. Restricted (sealed) records hold no tokens: they are never
linked. Rules and meaning: transforms/linkage.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RULES = ("upn", "nhs", "name_dob")          # strongest first
SCHOOL, SOCIAL_CARE, HEALTH = "school", "social_care", "health"
PROVENANCE = ("source_id", "file_id", "row_number")

# Each kind of record: its frame's id column and its tokens as (rule, token column, check-flag column).
_SOURCES = (
    (SCHOOL, "pupil_ref", (("upn", "upn_token", "upn_valid"), ("upn", "former_upn_token", None),
                           ("nhs", "nhs_token", "nhs_valid"), ("name_dob", "name_dob_token", None))),
    (SOCIAL_CARE, "person_ref", (("upn", "upn_token", "upn_valid"), ("nhs", "nhs_token", "nhs_valid"),
                                 ("name_dob", "name_dob_token", None))),
    (HEALTH, "patient_ref", (("nhs", "nhs_token", "nhs_valid"), ("name_dob", "name_dob_token", None))),
)


@dataclass
class Records:
    """Every record in (kind, ref) order — a record's number is its place in that order — and
    `tokens`, one row per record, rule and token (columns record, rule, token; rule is the place in
    RULES, token the place of its text in `texts`), without restricted records."""
    kind: np.ndarray            # str per record
    ref: np.ndarray             # str per record
    laestab: np.ndarray         # the school's LAESTAB for an enrolment, else None
    restricted: np.ndarray      # bool per record
    tokens: pd.DataFrame
    texts: np.ndarray           # the token itself (str) per token number
    _frames: dict               # kind -> (frame, its refs as str), for provenance

    def __len__(self) -> int:
        return len(self.ref)

    def provenance(self, numbers: set[int]) -> dict[int, dict]:
        """source_id, file_id and row_number of the named records, where their frame carries them:
        those of the record's first row that has any of them."""
        out: dict[int, dict] = {}
        for kind, (frame, refs) in self._frames.items():
            wanted = {self.ref[i]: i for i in numbers if self.kind[i] == kind}
            columns = [c for c in PROVENANCE if c in frame.columns]
            if not wanted or not columns:
                continue
            values = {c: frame[c].tolist() for c in columns}
            for pos, ref in enumerate(refs):
                number = wanted.get(ref)
                if number is None or out.get(number):
                    continue
                out[number] = {c: values[c][pos] for c in columns if _present_one(values[c][pos])}
        return out


def _present_one(value) -> bool:
    return value is not None and not pd.isna(value) and str(value) != ""


def _present(values: np.ndarray) -> np.ndarray:
    """Per value: not None, NaN, NA or the empty string."""
    mask = ~pd.isna(values)
    mask[mask] = values[mask] != ""
    return mask


def collect(pupils: pd.DataFrame, sc_persons: pd.DataFrame, camhs: pd.DataFrame) -> Records:
    """The records of the three staged frames and their usable tokens."""
    per_kind = {}
    for (kind, ref_col, spec), frame in zip(_SOURCES, (pupils, sc_persons, camhs)):
        empty = not len(frame)      # an empty frame may come without its columns
        refs = [] if empty else [str(v) for v in frame[ref_col].tolist()]
        first: dict[str, int] = {}
        for pos, ref in enumerate(refs):
            first.setdefault(ref, pos)
        restricted: set[str] = set()
        if kind == SOCIAL_CARE and not empty and "restricted" in frame.columns:
            flags = frame["restricted"].to_numpy(dtype=object)
            present = _present(flags)
            restricted = {refs[p] for p, flag in zip(np.flatnonzero(present), flags[present]) if bool(flag)}
        laestabs = None if kind != SCHOOL else [] if empty else [str(v) for v in frame["laestab"].tolist()]
        positions, rules, tokens = [], [], []
        for rule, token_col, valid_col in spec:
            if empty or token_col not in frame.columns:
                continue
            values = frame[token_col].to_numpy(dtype=object)
            usable = _present(values)
            if valid_col is not None and valid_col in frame.columns:
                flags = frame[valid_col].to_numpy(dtype=object)
                checked = np.flatnonzero(_present(flags))
                failed = checked[[not bool(v) for v in flags[checked]]]
                usable[failed] = False
            where = np.flatnonzero(usable)
            positions.append(where)
            rules.append(np.full(len(where), RULES.index(rule), dtype=np.int8))
            tokens.append([str(v) for v in values[where]])
        per_kind[kind] = (frame, refs, first, restricted, laestabs, positions, rules, tokens)

    kinds, refs_out, laestab_out, restricted_out = [], [], [], []
    numbers, rule_parts, text_parts = [], [], []
    for kind in sorted(per_kind):
        frame, refs, first, restricted, laestabs, positions, rules, tokens = per_kind[kind]
        base = len(refs_out)
        ordered = sorted(first)
        kinds += [kind] * len(ordered)
        refs_out += ordered
        laestab_out += [laestabs[first[r]] for r in ordered] if laestabs is not None else [None] * len(ordered)
        restricted_out += [r in restricted for r in ordered]
        of_row = base + pd.Index(ordered, dtype=object).get_indexer(pd.Index(refs, dtype=object))
        for where, rule, toks in zip(positions, rules, tokens):
            numbers.append(of_row[where])
            rule_parts.append(rule)
            text_parts += toks
    restricted_arr = np.array(restricted_out, dtype=bool)
    codes, texts = pd.factorize(pd.Series(text_parts, dtype=object))
    table = pd.DataFrame({"record": np.concatenate(numbers) if numbers else np.array([], dtype=np.int64),
                          "rule": np.concatenate(rule_parts) if rule_parts else np.array([], dtype=np.int8),
                          "token": codes.astype(np.int64)})
    table = table[~restricted_arr[table["record"].to_numpy()]]
    table = table.drop_duplicates(ignore_index=True)
    return Records(np.array(kinds, dtype=object), np.array(refs_out, dtype=object),
                   np.array(laestab_out, dtype=object), restricted_arr, table, np.asarray(texts, dtype=object),
                   {kind: (v[0], v[1]) for kind, v in per_kind.items()})

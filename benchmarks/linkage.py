"""Linkage time (transforms.linkage.link_with_conflicts) on a shared token and on whole rolls.

Shared token: N pupils at N/300 schools share one name + date-of-birth key (a default date of birth
with a common name) and N more share one placeholder UPN, beside N ordinary pupils; at three sizes,
with the ratio of time per doubling of N (2.0 is linear, 4.0 quadratic). Rolls: frames shaped like
the synthetic LA's staged tables (300 pupils a school; movers, temporary and former UPNs, names
and UPNs shared by two children, missing and invalid identifiers; social-care persons and CAMHS
patients of whom most are pupils, with the nicknames and typos of another agency's records),
built with numpy in seconds.

`--baseline FILE` also times another implementation of the module (e.g. the one before a change:
`git show <commit>:transforms/linkage.py > /tmp/old.py`) on the rolls and on the shared token at
the sizes of `--baseline-shared` (an all-pairs implementation takes minutes from about 5,000), and
checks that both give the same links and conflicts on the rolls.

Usage: .venv/bin/python benchmarks/linkage.py [--shared 1000,10000,50000] [--rolls 15000,150000]
       [--repeats 3] [--baseline FILE] [--baseline-shared 500,1000,2000]

Figures, 2 December 2026, 2 shared cores (other sessions running), against the all-pairs version
of 88b9778: shared token 1,000 / 10,000 / 50,000: 0.11 / 0.94 / 5.9 s (1.90 and 2.22 per
doubling; the all-pairs version: 0.78 / 3.5 / 13.6 s at 500 / 1,000 / 2,000, about 4 per
doubling). Rolls of 15,000 and 150,000 pupils: 0.24 s and 3.9 s (all-pairs: 1.9 s and 22.7 s),
the same links and conflicts.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import os
import platform
import statistics
import sys
import time

import numpy as np
import pandas as pd

# Run as a script, this folder is sys.path[0] (its connectors.py would shadow the `connectors`
# package); the checkout this file is in is measured, not an installed copy.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

PUPILS_PER_SCHOOL = 300


def _tokens(prefix: str, ids: np.ndarray) -> np.ndarray:
    """64-hex tokens, like the keyed tokens of staging, one per id (equal ids, equal tokens)."""
    return np.array([hashlib.sha256(f"{prefix}:{i}".encode()).hexdigest() for i in ids.tolist()], dtype=object)


def _blank(values: np.ndarray, drop: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[drop] = None
    return out


def roll_frames(n_pupils: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Staged pupils, social-care persons and CAMHS referrals for an LA of `n_pupils` children at school."""
    rng = np.random.default_rng(seed)
    n_schools = max(1, n_pupils // PUPILS_PER_SCHOOL)
    child = np.arange(n_pupils)
    school = rng.integers(0, n_schools, n_pupils)
    # 2 % moved school this year: a second enrolment elsewhere, same UPN and name (a fifth of
    # them with a temporary UPN at the first school, carried as the former UPN at the second).
    movers = rng.choice(n_pupils, n_pupils // 50, replace=False)
    enrol_child = np.concatenate([child, movers])
    enrol_school = np.concatenate([school, (school[movers] + 1 + rng.integers(0, max(1, n_schools - 1), len(movers)))
                                   % n_schools])
    n = len(enrol_child)
    upn_id = enrol_child.astype(object).copy()
    former = np.full(n, None, dtype=object)
    temp = movers[: len(movers) // 5]
    upn_id[temp] = [f"temp{c}" for c in temp]
    former[n_pupils + np.arange(len(temp))] = _tokens("upn", np.array([f"temp{c}" for c in temp], dtype=object))
    # 0.2 % share a name and date of birth with another child; 0.1 % carry another pupil's UPN
    # (mistyped, still passing its check letter): both are conflicts the rules must refuse.
    name_id = enrol_child.astype(object).copy()
    same_name = rng.choice(n, n // 500, replace=False)
    name_id[same_name] = rng.integers(0, n_pupils, len(same_name))
    clash = rng.choice(n, n // 1000, replace=False)
    upn_id[clash] = rng.integers(0, n_pupils, len(clash))
    nhs_id = enrol_child.copy()
    upn = _tokens("upn", upn_id)
    upn_missing = rng.random(n) < 0.01
    upn_valid = np.where(upn_missing, None, rng.random(n) >= 0.003).astype(object)
    upn = _blank(upn, upn_missing)
    nhs_missing = rng.random(n) < 0.6          # most school MIS extracts carry no NHS number
    nhs = _blank(_tokens("nhs", nhs_id), nhs_missing)
    nhs_valid = np.where(nhs_missing, None, True).astype(object)
    name_missing = rng.random(n) < 0.005       # placeholder name or impossible date of birth
    name_dob = _blank(_tokens("name", name_id), name_missing)
    laestab = np.array([f"886{s:04d}" for s in range(n_schools)], dtype=object)[enrol_school]
    pupils = pd.DataFrame({
        "laestab": laestab, "pupil_ref": _tokens("pupil", np.arange(n)), "upn_token": upn, "upn_valid": upn_valid,
        "former_upn_token": former, "nhs_token": nhs, "nhs_valid": nhs_valid, "name_dob_token": name_dob,
        "source_id": "school_mis_a", "file_id": "f-pupils", "row_number": np.arange(1, n + 1)})

    def agency(share: float, from_school: float, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Children known to an agency: most are pupils, the rest are not on any roll."""
        k = max(1, int(n_pupils * share))
        known = rng.choice(n_pupils, int(k * from_school), replace=False)
        others = n_pupils + 10**7 + np.arange(k - len(known))   # children at no school of the LA
        who = np.concatenate([known, others])
        names = who.astype(object).copy()
        renamed = rng.random(len(who)) < 0.08                  # nickname, typo, swapped names
        names[renamed] = [f"{prefix}-alias{w}" for w in who[renamed]]
        return who, names, rng.random(len(who))

    who, names, r = agency(0.06, 0.8, "sc")
    persons = pd.DataFrame({
        "person_ref": _tokens("person", np.arange(len(who))),
        "upn_token": _blank(_tokens("upn", who.astype(object)), r < 0.15), "upn_valid": np.where(r < 0.15, None, True),
        "nhs_token": _blank(_tokens("nhs", who), r > 0.8), "nhs_valid": np.where(r > 0.8, None, True),
        "name_dob_token": _tokens("name", names), "restricted": rng.random(len(who)) < 0.01,
        "source_id": "social_care", "file_id": "f-persons", "row_number": np.arange(1, len(who) + 1)})
    who, names, r = agency(0.03, 0.7, "camhs")
    camhs = pd.DataFrame({
        "referral_id": [f"r{i}" for i in range(len(who))], "patient_ref": _tokens("patient", np.arange(len(who))),
        "nhs_token": _blank(_tokens("nhs", who), r < 0.1), "nhs_valid": np.where(r < 0.1, None, True),
        "name_dob_token": _tokens("name", names),
        "source_id": "camhs", "file_id": "f-camhs", "row_number": np.arange(1, len(who) + 1)})
    return pupils, persons, camhs


def shared_token_frames(n_shared: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`n_shared` pupils sharing one name + DOB key and `n_shared` sharing one UPN, beside `n_shared` ordinary ones."""
    pupils, persons, camhs = roll_frames(n_shared, seed=2)
    pupils = pupils.iloc[:n_shared].copy()
    n_schools = max(1, n_shared // PUPILS_PER_SCHOOL)
    same_name = pupils.assign(pupil_ref=_tokens("same-name", np.arange(n_shared)), upn_token=None, upn_valid=None,
                              former_upn_token=None, nhs_token=None, nhs_valid=None,
                              name_dob_token=hashlib.sha256(b"JOHN SMITH 2000-01-01").hexdigest(),
                              laestab=[f"886{i % n_schools:04d}" for i in range(n_shared)])
    same_upn = pupils.assign(pupil_ref=_tokens("same-upn", np.arange(n_shared)),
                             upn_token=hashlib.sha256(b"placeholder UPN").hexdigest(), upn_valid=True,
                             former_upn_token=None, name_dob_token=_tokens("same-upn-name", np.arange(n_shared)))
    return pd.concat([pupils, same_name, same_upn], ignore_index=True), persons, camhs


def _load(path: str | None):
    if path is None:
        from transforms import linkage
        return linkage
    spec = importlib.util.spec_from_file_location("linkage_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default="1000,10000,50000", help="sizes N of the shared-token case")
    p.add_argument("--rolls", default="15000,150000", help="pupils on roll")
    p.add_argument("--repeats", type=int, default=3, help="median of this many runs (1 at 150,000 and over)")
    p.add_argument("--baseline", help="another linkage.py to time beside this checkout's")
    p.add_argument("--baseline-shared", default="500,1000,2000", help="shared-token sizes for the baseline")
    args = p.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, {platform.platform()}")
    print(f"date: {dt.date.today()}")
    impls = [("this checkout", _load(None), args.shared)]
    if args.baseline:
        impls.append((f"baseline {os.path.basename(args.baseline)}", _load(args.baseline), args.baseline_shared))

    print("\nshared token: N pupils share one name + DOB key, N one UPN, beside N ordinary pupils")
    print(f"{'implementation':<28}{'N':>8}{'records':>10}{'seconds':>10}{'x per doubling':>16}")
    for label, module, sizes in impls:
        previous = None
        for n in [int(s) for s in sizes.split(",")]:
            frames = shared_token_frames(n)
            secs = _time(lambda: module.link_with_conflicts(*frames), 1 if n >= 10000 else args.repeats)
            growth = ""
            if previous is not None:
                growth = f"{(secs / previous[1]) ** (1 / np.log2(n / previous[0])):.2f}"
            print(f"{label:<28}{n:>8}{sum(map(len, frames)):>10}{secs:>10.3f}{growth:>16}", flush=True)
            previous = (n, secs)

    print("\nrolls: synthetic-like staged pupils, social-care persons and CAMHS referrals")
    print(f"{'implementation':<28}{'pupils':>8}{'records':>10}{'seconds':>10}{'records/s':>12}")
    for n in [int(s) for s in args.rolls.split(",")]:
        frames = roll_frames(n)
        outputs = []
        for label, module, _ in impls:
            out = []
            secs = _time(lambda: out.append(module.link_with_conflicts(*frames)), 1 if n >= 150000 else args.repeats)
            outputs.append(out[-1])
            records = sum(map(len, frames))
            print(f"{label:<28}{n:>8}{records:>10}{secs:>10.3f}{records / secs:>12,.0f}", flush=True)
        if len(outputs) == 2:
            same = all(a.equals(b) for a, b in zip(outputs[0], outputs[1]))
            links, conflicts = outputs[0]
            print(f"{'':<28}{n:>8}  same links and conflicts as the baseline: {same} "
                  f"({links['child_key'].nunique()} children, {len(conflicts)} conflict rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

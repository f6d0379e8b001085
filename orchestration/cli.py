"""The `tether` command line: synth, demo, init, run, status, keys, audit, dev."""
from __future__ import annotations

import argparse

import json
import os
import shutil
import sys
import time
from pathlib import Path

from schemas.errors import TetherError
from sharing.private_files import PRIVATE_UMASK, private_dir

DEMO_AS_OF = "2026-11-30T09:45"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _context():
    from orchestration.resources import TetherContext
    missing = [v for v in ("TETHER_DATABASE_URL", "TETHER_CONFIG_DIR", "TETHER_DATA_DIR") if not os.environ.get(v)]
    if missing:
        sys.exit(f"tether: set {', '.join(missing)} (see README: Operating Tether); "
                 f"`tether demo` sets them up for a synthetic LA")
    return TetherContext(os.environ["TETHER_DATABASE_URL"], os.environ["TETHER_CONFIG_DIR"],
                         os.environ["TETHER_DATA_DIR"], os.environ.get("TETHER_AS_OF"))


def demo_environment(root: Path, as_of: str) -> dict[str, str]:
    """The environment variables of a demo deployment rooted at `root`."""
    from sharing.keys import write_new_keys
    env = {
        "TETHER_CONFIG_DIR": str((root / "la" / "config").resolve()),
        "TETHER_DATA_DIR": str((root / "data").resolve()),
        "TETHER_DATABASE_URL": os.environ.get("TETHER_DATABASE_URL") or f"sqlite:///{(root / 'tether.sqlite').resolve()}",
        "TETHER_AS_OF": as_of,
        **write_new_keys(root / "keys"),
    }
    return env


def cmd_synth(args) -> int:
    from synthetic.generate import generate_la
    from orchestration.resources import parse_as_of
    t0 = time.monotonic()
    report = generate_la(Path(args.out), seed=args.seed, n_schools=args.schools, n_pupils=args.pupils,
                         as_of=parse_as_of(args.as_of), progress=lambda m: _say(f"  synth: {m}"))
    _say(f"synthetic LA written to {args.out} in {time.monotonic() - t0:.1f}s")
    print("\n".join(report.summary()))
    return 0


def cmd_demo(args) -> int:
    from synthetic.generate import generate_la
    from orchestration.resources import parse_as_of
    from orchestration.runner import run_job
    from orchestration.summary import collect, render

    root = Path(args.dir)
    if root.exists():
        shutil.rmtree(root)
    private_dir(root)
    t0 = time.monotonic()
    _say(f"1/3 generating a synthetic LA ({args.schools} schools, {args.pupils} pupils, as of {args.as_of}) in {root}")
    generate_la(root / "la", seed=args.seed, n_schools=args.schools, n_pupils=args.pupils,
                as_of=parse_as_of(args.as_of), progress=lambda m: _say(f"  {m}"))
    env = demo_environment(root, args.as_of)
    os.environ.update(env)
    _context().keys       # records the new keys in an empty store; refuses a store built with others
    _say(f"2/3 running every asset through Dagster (store: {env['TETHER_DATABASE_URL']})")
    result = run_job("full_refresh")
    ctx = _context()
    _say(f"3/3 summarising ({time.monotonic() - t0:.0f}s so far)\n")
    print(render(collect(ctx.store, ctx.config, ctx.as_of)))
    env_file = root / "tether.env"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    print(f"\nThe demo deployment's environment is in {env_file} (`source` it to use `tether status` or `make dev`).")
    if not result.success:
        _say("tether demo: some steps or blocking checks failed; see above and the Dagster UI (make dev)")
        return 1
    return 0


def cmd_run(args) -> int:
    from orchestration.runner import run_job
    from orchestration.summary import collect, render
    _context().keys       # refuses keys the store was not built with, before any step runs
    result = run_job(args.job)
    ctx = _context()
    print(render(collect(ctx.store, ctx.config, ctx.as_of)))
    return 0 if result.success else 1


def cmd_status(args) -> int:
    from orchestration.summary import collect, render
    ctx = _context()
    s = collect(ctx.store, ctx.config, ctx.as_of)
    print(json.dumps(s, default=str, indent=2) if args.json else render(s))
    return 0


def cmd_init(args) -> int:
    """Create (or bring up to date) the store and record the keys it is built with."""
    from connectors.store_keys import store_label
    ctx = _context()
    ctx.keys
    print(f"store at {store_label(ctx.store)} ready; built with token key {ctx.keys.token_key_id} and "
          f"identity key {ctx.keys.identity_key_id}")
    return 0


def cmd_keys(args) -> int:
    from sharing.keys import write_new_keys
    for k, v in write_new_keys(Path(args.dir)).items():
        print(f"export {k}={v}")
    return 0


def cmd_audit_verify(args) -> int:
    from schemas import tables as t
    from sharing.audit import verify
    ctx = _context()
    entries = ctx.store.read(t.audit_log).sort_values("seq").to_dict("records")
    problems = verify(entries)
    if problems:
        print(f"audit log NOT intact: {len(problems)} problem(s)")
        for p in problems[:50]:
            print(f"  {p}")
        return 1
    print(f"audit log intact: {len(entries)} entries, hash chain verified")
    return 0


def cmd_dev(args) -> int:
    env_file = Path(args.dir) / "tether.env"
    if not env_file.exists():
        _say(f"no demo deployment at {args.dir}: run `make demo` first (or set the TETHER_* variables)")
        return 1
    for line in env_file.read_text().splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        os.environ.setdefault(k, v)
    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    os.execv(dagster, [dagster, "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(args.port)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tether", description="Tether: multi-agency attendance data layer")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic local authority (feeds, config, ground truth)")
    s.add_argument("out")
    d = sub.add_parser("demo", help="generate a synthetic LA, run every asset, print the summary")
    d.add_argument("--dir", default="var/demo")
    for q in (s, d):
        q.add_argument("--seed", type=int, default=1)
        q.add_argument("--schools", type=int, default=12)
        q.add_argument("--pupils", type=int, default=6000)
        q.add_argument("--as-of", default=DEMO_AS_OF, help="reference time, Europe/London (default %(default)s)")
    s.set_defaults(func=cmd_synth)
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run a job in-process against the configured deployment")
    r.add_argument("--job", default="full_refresh")
    r.set_defaults(func=cmd_run)
    st = sub.add_parser("status", help="operator summary: feeds, quarantine, freshness, cohorts, flags")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    k = sub.add_parser("keys", help="key management")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ki = ksub.add_parser("init", help="create a token key and an identity key as files")
    ki.add_argument("dir")
    ki.set_defaults(func=cmd_keys)
    a = sub.add_parser("audit", help="the disclosure audit log")
    asub = a.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="verify the audit log's hash chain")
    av.set_defaults(func=cmd_audit_verify)
    dv = sub.add_parser("dev", help="dagster dev on the demo deployment")
    dv.add_argument("--dir", default="var/demo")
    dv.add_argument("--port", type=int, default=3000)
    dv.set_defaults(func=cmd_dev)

    ini = sub.add_parser("init", help="create the store and record the keys it is built with")
    ini.set_defaults(func=cmd_init)

    args = p.parse_args(argv)
    os.umask(PRIVATE_UMASK)     # what Tether and Dagster create (store, landing, dagster_home, var/) is owner-only
    try:
        return args.func(args)
    except TetherError as exc:
        _say(f"tether: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

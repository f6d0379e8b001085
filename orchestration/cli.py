"""The `tether` command line: init, config check, synth, demo, run, status, restage, keys, audit, dev.

Exit status (the same for every subcommand, so cron and monitoring can rely on it):

    0  all well
    1  attention needed: `tether status` found a school or source late or never sent, a file
       failed, rows quarantined or an asset check failed; or a run had failed steps
    2  usage or configuration error: a wrong option, a missing TETHER_* variable, a configuration
       file that cannot be used, `tether demo --dir` pointing at a folder it did not create
    3  a failure the operator must fix before the next run: the store unreachable, a key missing
       or unreadable, a source's connection refused (SFTP, ODBC)

Errors are one line, `tether: <what happened>; <what to do>`, without a traceback; set
TETHER_DEBUG=1 to see the traceback as well.
"""
from __future__ import annotations

import argparse

import json
import os
import shutil
import sys
import time
from pathlib import Path

from sharing.private_files import PRIVATE_UMASK, private_dir

DEMO_AS_OF = "2026-11-30T09:45"
DEMO_MARKER = ".tether-demo"

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3

EXIT_CODES_HELP = """exit status:
  0  all well
  1  attention needed (status: a school or source late, a file failed, rows quarantined,
     a check failed; run: a step failed)
  2  usage or configuration error
  3  a failure the operator must fix (store unreachable, key missing, source connection refused)

Errors are one line without a traceback; TETHER_DEBUG=1 shows the traceback."""


class UsageError(ValueError):
    """A command that cannot be carried out as asked; the message says what to do instead."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tether")
    except PackageNotFoundError:
        return "unknown (not installed; run `make install`)"


def _context():
    from orchestration.resources import TetherContext
    missing = [v for v in ("TETHER_DATABASE_URL", "TETHER_CONFIG_DIR", "TETHER_DATA_DIR") if not os.environ.get(v)]
    if missing:
        raise UsageError(f"set {', '.join(missing)} (see README: Operating Tether); "
                          f"`tether demo` sets them up for a synthetic LA")
    from connectors.store_setup import check_database_url
    check_database_url(os.environ["TETHER_DATABASE_URL"])     # refused before any work starts
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


def prepare_demo_dir(root: Path) -> None:
    """Make `root` an empty demo folder, marked as made by the demo.

    A folder the demo made before (it holds the marker) is replaced; an empty folder is used; any
    other existing path is refused, so a mistyped --dir never deletes someone's files."""
    if root.exists() or root.is_symlink():
        if not root.is_dir() or root.is_symlink():
            raise UsageError(f"--dir {root} exists and is not a folder; choose another --dir")
        if (root / DEMO_MARKER).is_file():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise UsageError(f"--dir {root} exists and was not made by `tether demo` (no {DEMO_MARKER} "
                             f"file in it); refusing to delete it: choose another --dir, or remove it yourself")
    private_dir(root)
    (root / DEMO_MARKER).write_text("made by `tether demo`; `tether demo` replaces this folder when run again\n")


def _generate(out: Path, args):
    from orchestration.progress import Phases
    from orchestration.resources import parse_as_of
    from synthetic.generate import generate_la
    with Phases("synth") as phases:
        return generate_la(out, seed=args.seed, n_schools=args.schools, n_pupils=args.pupils,
                           as_of=parse_as_of(args.as_of), progress=phases)


def _run_exit_code(results) -> int:
    from orchestration.runner import step_failures
    failures = [f for r in results for f in step_failures(r)]
    if any(f.operator_must_fix for f in failures):
        _say(f"tether: {len(failures)} step(s) failed on a key, the store or a source connection "
             f"(causes above); fix that and run again")
        return EXIT_FAILURE
    if not all(r.success for r in results):
        _say("tether: some steps or blocking checks failed (causes above); see the Dagster UI (make dev)")
        return EXIT_ATTENTION
    return EXIT_OK


def cmd_synth(args) -> int:
    t0 = time.monotonic()
    report = _generate(Path(args.out), args)
    _say(f"synthetic LA written to {args.out} in {time.monotonic() - t0:.1f}s")
    print("\n".join(report.summary()))
    return EXIT_OK


def cmd_demo(args) -> int:
    from orchestration.runner import latest_check_failures, run_jobs
    from orchestration.summary import collect, render

    root = Path(args.dir)
    prepare_demo_dir(root)
    t0 = time.monotonic()
    _say(f"1/3 generating a synthetic LA ({args.schools} schools, {args.pupils} pupils, as of {args.as_of}) in {root}")
    _generate(root / "la", args)
    env = demo_environment(root, args.as_of)
    os.environ.update(env)
    _say(f"  {_init_store(env['TETHER_DATABASE_URL'], env['TETHER_DATA_DIR'])}")
    _context().keys       # records the new keys in the new store
    _say(f"2/3 running every asset through Dagster (store: {env['TETHER_DATABASE_URL']})")
    results = run_jobs("full_refresh")
    ctx = _context()
    _say(f"3/3 summarising ({time.monotonic() - t0:.0f}s so far)\n")
    print(render(collect(ctx.store, ctx.config, ctx.as_of, latest_check_failures(ctx.config))))
    env_file = root / "tether.env"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    print(f"\nThe demo deployment's environment is in {env_file} (`source` it to use `tether status` or `make dev`).")
    return _run_exit_code(results)


def _init_store(url: str, data_dir: str | None) -> str:
    """Create or migrate the store; says which (the URL shown without its password)."""
    from connectors.store_setup import init_store
    from sqlalchemy.engine import make_url
    store, is_new = init_store(url, data_dir)
    where = make_url(url).render_as_string(hide_password=True)
    store.dispose()
    return (f"created a new store at {where}, migrated to the newest schema" if is_new
            else f"the store at {where} already existed; migrated it to the newest schema")


def cmd_init(args) -> int:
    """Create and migrate the store of TETHER_DATABASE_URL (and the data folder, owner-only), and
    record the keys it is built with when they are configured."""
    from connectors.store_setup import check_database_url
    check_database_url(os.environ.get("TETHER_DATABASE_URL"), must_exist=False)
    print(_init_store(os.environ["TETHER_DATABASE_URL"], os.environ.get("TETHER_DATA_DIR") or None))
    if any(os.environ.get(f"TETHER_{k}_KEY{f}") for k in ("TOKEN", "IDENTITY") for f in ("", "_FILE")):
        ctx = _context()
        keys = ctx.keys           # records them in a new store; refuses others in an existing one
        print(f"built with token key {keys.token_key_id} and identity key {keys.identity_key_id}")
    return EXIT_OK


def cmd_config_check(args) -> int:
    """Validate a configuration folder; problems and warnings one line each (exit 2 on a problem)."""
    from schemas.config_check import check_config
    folder = args.dir or os.environ.get("TETHER_CONFIG_DIR")
    if not folder:
        _say("tether: give the configuration folder (tether config check DIR) or set TETHER_CONFIG_DIR")
        return EXIT_USAGE
    report = check_config(folder, os.environ)
    for line in report.problems:
        print(line)
    for line in report.warnings:
        print(f"warning: {line}")
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_USAGE


def cmd_run(args) -> int:
    ctx = _context()
    ctx.keys                      # a missing or unreadable key stops here, before any step runs
    from orchestration.runner import latest_check_failures, run_jobs
    from orchestration.summary import collect, render
    results = run_jobs(args.job)
    ctx = _context()
    print(render(collect(ctx.store, ctx.config, ctx.as_of, latest_check_failures(ctx.config))))
    return _run_exit_code(results)


def cmd_status(args) -> int:
    from orchestration.runner import latest_check_failures
    from orchestration.summary import collect, render, render_attention
    ctx = _context()
    s = collect(ctx.store, ctx.config, ctx.as_of, latest_check_failures(ctx.config))
    if args.json:
        print(json.dumps(s, default=str, indent=2))
    elif args.quiet:
        if s["attention"]:
            print("\n".join(render_attention(s)))
    else:
        print(render(s))
    return EXIT_ATTENTION if s["attention"] else EXIT_OK


def cmd_restage(args) -> int:
    """Re-read a source's landed files under the current layout, then refresh the record."""
    from orchestration.runner import RECORD_REFRESH, run_job
    from orchestration.stages import restage_source
    ctx = _context()
    source = ctx.config.sources.get(args.source)
    if source is None:
        raise UsageError(f"no source {args.source!r} in {ctx.config_dir}/sources.toml; "
                         f"known sources: {', '.join(sorted(ctx.config.sources)) or 'none'}")
    what = f"matching {args.file!r}" if args.file else "that failed or were quarantined whole"
    _say(f"re-reading the landed files of source {source.source_id} {what}, under the current configuration")
    figures = restage_source(ctx, source, args.file)
    if args.json:
        print(json.dumps(figures, default=str, indent=2))
    files = figures["files"]
    if not files and not figures["errors"]:
        _say(f"tether restage: no staged or failed file of source {source.source_id} matches {args.file!r}; "
             f"`tether status` lists the feeds" if args.file else
             f"nothing to re-stage: no file of source {source.source_id} failed or was quarantined whole")
        return EXIT_ATTENTION if args.file else EXIT_OK
    if not args.json:
        print(f"Re-staged source {source.source_id}: {len(files)} file(s) re-read, "
              f"{figures['files_now_staged']} now staged, {figures['files_still_failed']} still failed")
        for f in files:
            line = (f"  {f['file_name']}  {f['file_id'][:12]}  {f['status_before']} -> {f['status']}  read "
                    f"{f['rows_read']}, staged {f['rows_staged']}, quarantined {f['rows_quarantined']}")
            if f["quarantine_rows_superseded"]:
                line += f"; {f['quarantine_rows_superseded']} old quarantine rows superseded"
            if not f["changed"]:
                line += "; unchanged"
            print(line + (f"\n      still refused: {f['error']}" if f["error"] else ""))
        print(f"Rows now staged: {figures['rows_staged']} ({figures['rows_newly_staged']} newly); still quarantined: "
              f"{figures['rows_quarantined']}; old quarantine rows superseded: {figures['quarantine_rows_superseded']} "
              f"(kept in the store, no longer counted)")
    for error in figures["errors"]:
        _say(f"tether restage: not re-read: {error}")
    if not figures["files_changed"]:
        _say("nothing changed: the record needs no refresh")
    elif args.no_refresh:
        _say(f"the record, signals and flags do not reflect this yet: run `tether run --job {RECORD_REFRESH}`")
    else:
        _say("refreshing the record, signals, flags and outbox")
        if not run_job(RECORD_REFRESH).success:
            _say("tether restage: the record refresh failed; see above and the Dagster UI (make dev)")
            return EXIT_ATTENTION
    return EXIT_ATTENTION if figures["errors"] else EXIT_OK


def cmd_keys(args) -> int:
    from sharing.keys import write_new_keys
    for k, v in write_new_keys(Path(args.dir)).items():
        print(f"export {k}={v}")
    return EXIT_OK


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
        return EXIT_ATTENTION
    print(f"audit log intact: {len(entries)} entries, hash chain verified")
    return EXIT_OK


def cmd_dev(args) -> int:
    env_file = Path(args.dir) / "tether.env"
    if not env_file.exists():
        raise UsageError(f"no demo deployment at {args.dir}: run `make demo` first (or set the TETHER_* variables)")
    for line in env_file.read_text().splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        os.environ.setdefault(k, v)
    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    os.execv(dagster, [dagster, "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(args.port)])


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the exit-status table as written and shows each option's default (not a flag's)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or isinstance(action, argparse._VersionAction):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The `tether` argument parser: every subcommand and option carries its help."""
    p = argparse.ArgumentParser(prog="tether", description="Tether: multi-agency attendance data layer",
                                epilog=EXIT_CODES_HELP, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"tether {_version()}",
                   help="print Tether's version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="what to do (`tether COMMAND --help` for its options)")

    def command(subparsers, name: str, help_text: str, func) -> argparse.ArgumentParser:
        q = subparsers.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                                  epilog=EXIT_CODES_HELP, formatter_class=_Formatter)
        if func is not None:
            q.set_defaults(func=func)
        return q

    command(sub, "init", "create and migrate the store named by TETHER_DATABASE_URL (and the TETHER_DATA_DIR "
                         "folder, owner-only); on an existing store, migrate it", cmd_init)
    c = command(sub, "config", "the LA configuration folder", None)
    csub = c.add_subparsers(dest="config_command", required=True, metavar="CONFIG_COMMAND",
                            help="what to do with the configuration")
    cc = command(csub, "check", "validate a configuration folder without running anything (exit 0 when usable, "
                                "2 when not); warn about environment variables it names that are not set",
                 cmd_config_check)
    cc.add_argument("dir", nargs="?", default=None, help="the configuration folder (default: $TETHER_CONFIG_DIR)")

    s = command(sub, "synth", "write a synthetic local authority (feeds, config, ground truth)", cmd_synth)
    s.add_argument("out", help="folder to write the synthetic LA into (created; generated folders replaced)")
    d = command(sub, "demo", "generate a synthetic LA, run every asset, print the summary", cmd_demo)
    d.add_argument("--dir", default="var/demo",
                   help=f"the demo deployment's folder; replaced if an earlier demo made it (it holds "
                        f"{DEMO_MARKER}), refused if it holds anything else")
    for q in (s, d):
        q.add_argument("--seed", type=int, default=1, help="random seed: the same seed writes the same LA")
        q.add_argument("--schools", type=int, default=12, help="number of schools")
        q.add_argument("--pupils", type=int, default=6000, help="number of pupils across all schools")
        q.add_argument("--as-of", default=DEMO_AS_OF, help="reference time, Europe/London")

    r = command(sub, "run", "run a job in-process against the configured deployment", cmd_run)
    r.add_argument("--job", default="full_refresh",
                   help="the Dagster job: full_refresh, record_refresh or ingest_<source>")
    st = command(sub, "status", "operator summary: feeds, quarantine, freshness, cohorts, flags; "
                                "exit status 1 when something needs attention", cmd_status)
    out = st.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the summary as JSON (with an `attention` list) instead of text")
    out.add_argument("--quiet", "-q", action="store_true",
                     help="print only what needs attention (nothing when all is well), e.g. for cron mail")
    rs = command(sub, "restage", "re-read landed files that failed (e.g. after a layout fix) under the current "
                                 "configuration, without the school resending them", cmd_restage)
    rs.add_argument("--source", required=True, help="the source id (as in sources.toml) whose files to re-read")
    rs.add_argument("--file", help="only the files this names: a file name, a glob such as '*_20261127.csv', or a "
                                   "file_id prefix; may name a staged file with quarantined rows (default: every "
                                   "file of the source that failed or had every row quarantined)")
    rs.add_argument("--no-refresh", action="store_true",
                    help="do not run the record_refresh job afterwards (the record, measures and flags then "
                         "do not yet reflect the re-staged rows)")
    rs.add_argument("--json", action="store_true", help="print what was re-read as JSON")

    k = command(sub, "keys", "key management", None)
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND",
                            help="what to do with keys")
    ki = command(ksub, "init", "create a token key and an identity key as files", cmd_keys)
    ki.add_argument("dir", help="folder for the key files (mode 0600); existing key files are kept")
    a = command(sub, "audit", "the disclosure audit log", None)
    asub = a.add_subparsers(dest="audit_command", required=True, metavar="AUDIT_COMMAND",
                            help="what to do with the audit log")
    command(asub, "verify", "verify the audit log's hash chain", cmd_audit_verify)
    dv = command(sub, "dev", "dagster dev (the Dagster UI) on the demo deployment", cmd_dev)
    dv.add_argument("--dir", default="var/demo", help="the demo deployment's folder (made by `tether demo`)")
    dv.add_argument("--port", type=int, default=3000, help="port of the Dagster UI on 127.0.0.1")
    return p


def _operator_error(exc: BaseException) -> tuple[int, str] | None:
    """The exit status and one line for an error the operator can act on; None for anything else."""
    from sqlalchemy import exc as sa
    from sqlalchemy.engine import make_url

    from connectors.odbc import OdbcSourceError
    from orchestration.runner import UnknownJob
    from connectors.sftp import HostKeyError, SftpSourceError
    from schemas.config import ConfigError
    from schemas.errors import TetherError
    from sharing.keys import KeyError_
    from sharing.scrub import scrub_text

    def first_line(value: object) -> str:
        lines = str(value).strip().splitlines()
        return scrub_text(lines[0] if lines else type(value).__name__)

    if isinstance(exc, (UsageError, UnknownJob)):
        return EXIT_USAGE, first_line(exc)
    if isinstance(exc, ConfigError):       # its message names the file, the key and what to do
        return EXIT_USAGE, " ".join(str(exc).split())
    if isinstance(exc, KeyError_):
        return EXIT_FAILURE, (f"{first_line(exc)}; the keys are TETHER_TOKEN_KEY[_FILE] and "
                              f"TETHER_IDENTITY_KEY[_FILE] (README: Environment)")
    if isinstance(exc, OdbcSourceError):
        return EXIT_FAILURE, f"{first_line(exc)}; fix the ODBC source and run again"
    if isinstance(exc, (SftpSourceError, HostKeyError)):
        return EXIT_FAILURE, f"{first_line(exc)}; fix the SFTP source and run again"
    if isinstance(exc, sa.ArgumentError):
        return EXIT_USAGE, (f"TETHER_DATABASE_URL cannot be used ({first_line(exc)}); set it to "
                            f"postgresql+psycopg2://... or sqlite:///PATH")
    if isinstance(exc, (sa.OperationalError, sa.DBAPIError)):
        url = os.environ.get("TETHER_DATABASE_URL", "")
        try:
            where = make_url(url).render_as_string(hide_password=True) if url else "(TETHER_DATABASE_URL unset)"
        except sa.ArgumentError:
            where = "(TETHER_DATABASE_URL unreadable)"
        cause = first_line(exc.orig if exc.orig is not None else exc)
        return EXIT_FAILURE, (f"the store at {where} could not be used ({type(exc).__name__}: {cause}); "
                              f"check TETHER_DATABASE_URL and that the database is running, then run again")
    if isinstance(exc, TetherError):
        return EXIT_FAILURE, first_line(exc)
    if isinstance(exc, OSError) and exc.filename:
        return EXIT_FAILURE, f"{exc.strerror or type(exc).__name__}: {exc.filename}; check the path and its permissions"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(PRIVATE_UMASK)     # what Tether and Dagster create (store, landing, dagster_home, var/) is owner-only
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _say("tether: interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("TETHER_DEBUG") == "1":
            raise
        known = _operator_error(exc)
        if known is None:
            raise
        code, line = known
        _say(f"tether: {line}")
        return code


if __name__ == "__main__":
    sys.exit(main())

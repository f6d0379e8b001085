"""Dagster assets: one landing and one staged asset per source, then the shared record.

Assets write to the Tether store and return only figures (no DataFrames pass through Dagster's
IO manager, so no identity ever lands in Dagster storage).
"""

import dagster as dg
from pydantic import Field

from orchestration import stages
from orchestration.locks import run_exclusively
from orchestration.resources import TetherResource
from schemas.config import Source, TetherConfig


def _meta(figures: dict) -> dict:
    return {k: (dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v) for k, v in figures.items()}


class StageConfig(dg.Config):
    """Run configuration of a `staged/<source>` asset: normally it stages new files; `restage`
    re-reads files already landed, under the current layout (see `tether restage`)."""

    restage: bool = Field(default=False, description=(
        "Re-read landed files that failed or had every row quarantined, under the current configuration "
        "and layout, instead of staging new files; the old failure is superseded (kept, marked, no longer "
        "counted). The school need not send the file again."))
    file: str = Field(default="", description=(
        "With restage: only the files this names, as a file name, a glob (e.g. '*_20261127.csv') or a "
        "file_id prefix; a staged file with quarantined rows may be named too. Empty: every failed file."))


def _restaged(source: Source, figures: dict) -> dg.MaterializeResult:
    """The asset's result after a re-staging; raises when a file could not be re-read at all."""
    files = figures.pop("files")
    meta = _meta(figures) | {"files": dg.MetadataValue.json([
        {k: f[k] for k in ("file_name", "file_id", "status_before", "status", "rows_read", "rows_staged",
                           "rows_quarantined", "quarantine_rows_superseded", "error")} for f in files])}
    if figures["errors"]:
        raise dg.Failure(description=f"source {source.source_id}: {len(figures['errors'])} file(s) could not be "
                                     f"re-read; the others were: see metadata", metadata=meta)
    return dg.MaterializeResult(metadata=meta)


def source_assets(source: Source) -> list[dg.AssetsDefinition]:
    sid = source.source_id
    files = ", ".join(f"`{f.pattern}` as layout `{f.layout}`" for f in source.files)
    transport = {"folder": "a local landing folder", "sftp": "SFTP", "odbc": "an ODBC database"}.get(
        source.transport, source.transport)

    @dg.asset(key=["landing", sid], group_name="landing", compute_kind=source.transport,
              description=(
                  f"Files from **{sid}** ({transport}) as received: {files}. Each complete file is "
                  f"checksummed, encrypted at rest and recorded in the landing manifest exactly once; "
                  f"a file delivered twice is landed once. {source.description}"))
    def landed(tether: TetherResource) -> dg.MaterializeResult:
        figures = run_exclusively(tether.ctx, "land", stages.land_source, source, source=sid)
        return dg.MaterializeResult(metadata=_meta(figures))

    @dg.asset(key=["staged", sid], deps=[landed], group_name="staged", compute_kind="pandas",
              description=(
                  f"Rows from **{sid}** read through their layout, validated against the canonical "
                  f"contracts and pseudonymised: identifiers become keyed tokens, identity is encrypted, "
                  f"clinical fields are dropped. Bad rows go to quarantine with file, row, field and "
                  f"reason; for every file rows read = rows staged + superseded + quarantined. With run "
                  f"config `restage: true` (the `restage_{sid}` job) it re-reads landed files that failed or "
                  f"were quarantined whole under the current layout instead, superseding the old failure."))
    def staged(tether: TetherResource, config: StageConfig) -> dg.MaterializeResult:
        if config.restage:
            figures = run_exclusively(tether.ctx, "stage", stages.restage_source, source, config.file or None,
                                      source=sid)
            return _restaged(source, figures)
        figures = run_exclusively(tether.ctx, "stage", stages.stage_source, source, source=sid)
        return dg.MaterializeResult(metadata=_meta(figures))

    return [landed, staged]


def child_links_asset(staged_keys: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=["linked", "child_links"], deps=staged_keys, group_name="linked", compute_kind="pandas")
    def child_links(tether: TetherResource) -> dg.MaterializeResult:
        """Every school, social-care and CAMHS record mapped to a pseudonymous child key.

        Records link on exact keyed tokens only: UPN, NHS number, or forename + surname + date
        of birth. A restricted (adoption-sensitive) social-care record is never linked to anything.
        """
        return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "link", stages.link)))

    return child_links


CHILD_LINKS = dg.AssetKey(["linked", "child_links"])


@dg.asset(key=["record", "child_record"], deps=[CHILD_LINKS], group_name="record", compute_kind="pandas")
def child_record(tether: TetherResource) -> dg.MaterializeResult:
    """The multi-agency child record: current school, year group, SEN and FSM, social-care
    record, whether the child is restricted, and open CAMHS involvement (yes/no, since, team
    contact — never clinical detail)."""
    return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "record", stages.build_record)))


@dg.asset(key=["signals", "attendance_measures"], deps=[CHILD_LINKS], group_name="signals", compute_kind="pandas")
def attendance_measures(tether: TetherResource) -> dg.MaterializeResult:
    """DfE attendance measures per enrolment for the academic year and the current term:
    possible sessions, attendance and absence rates, persistent absence (>= 10 %), severe
    absence (>= 50 %), days of learning missed, suspensions, part-time timetable sessions and the
    current run of consecutive unauthorised school days. Sessions a school has not sent are not
    counted: unknown is never present."""
    return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "measures", stages.compute_measures)))


@dg.asset(key=["signals", "cohort_membership"], deps=[child_record], group_name="signals", compute_kind="pandas")
def cohort_membership(tether: TetherResource) -> dg.MaterializeResult:
    """Cohorts as of the reference date: children with a social worker now (open CIN, CPP or
    CLA), the Ever6 CWSW cohort (any such episode in the last six years, short breaks excluded),
    looked-after children, EHCP and SEN support — with the CLA > CPP > CIN status."""
    return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "cohorts", stages.compute_cohorts)))


@dg.asset(key=["flags", "absence_flags"], deps=[attendance_measures, cohort_membership],
          group_name="flags", compute_kind="pandas")
def absence_flags(tether: TetherResource) -> dg.MaterializeResult:
    """Today's flags from the rules in flag_rules.toml — `unexplained_absence_today` (N or O, or
    no mark once the register has closed) and `suspension` (E) for children with a social
    worker. Each flag is raised once per child, rule, date and session, with pseudonymous
    evidence. Schools that have sent nothing today raise no 'no mark' flags: they show as late."""
    return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "flags", stages.raise_flags)))


@dg.asset(key=["outbox", "deliveries"], deps=[absence_flags], group_name="outbox", compute_kind="pandas")
def deliveries(tether: TetherResource) -> dg.MaterializeResult:
    """Each flag addressed to the allocated social worker (or the team's duty inbox when no worker
    is allocated, and the Virtual School for a looked-after child), reduced to what the
    data-sharing policy allows for that recipient and channel, queued once (encrypted until sent)
    and recorded in the tamper-evident audit log."""
    return dg.MaterializeResult(metadata=_meta(run_exclusively(tether.ctx, "deliveries", stages.queue_deliveries)))


def all_assets(config: TetherConfig) -> list[dg.AssetsDefinition]:
    """Every asset for this LA's configuration: per-source landing and staging, then the record."""
    per_source = [a for source in config.sources.values() for a in source_assets(source)]
    staged_keys = [dg.AssetKey(["staged", sid]) for sid in config.sources]
    return per_source + [child_links_asset(staged_keys), child_record, attendance_measures,
                         cohort_membership, absence_flags, deliveries]

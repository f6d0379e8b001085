"""SQLAlchemy metadata for the Tether store: the contract every stage writes to.

Nothing here holds plaintext identity: identifiers are keyed HMAC tokens (`*_token`, `*_ref`),
identity fields are encrypted together in `identity_enc`, and quarantined payloads in
`payload_enc`. Schema changes go through the Alembic migrations in `schemas/migrations`.
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean, Column, Date, DateTime, Float, Integer, LargeBinary, MetaData, String, Table, Text,
    BigInteger, Index, text,
)

metadata = MetaData()

_TOKEN = String(64)


def _provenance() -> list[Column]:
    """Where a staged row came from: source, file (manifest id) and 1-based data row number."""
    return [
        Column("source_id", String(100), nullable=False),
        Column("file_id", String(64), nullable=False),
        Column("row_number", Integer, nullable=False),
    ]


landing_manifest = Table(
    "landing_manifest", metadata,
    Column("file_id", String(64), primary_key=True, comment="sha256 of the bytes received"),
    Column("source_id", String(100), nullable=False),
    Column("file_name", String(400), nullable=False),
    Column("layout", String(100)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("landing_path", String(1000), nullable=False),
    Column("status", String(20), nullable=False, comment="landed | staged | failed"),
    Column("rows_read", Integer),
    Column("rows_staged", Integer),
    Column("rows_quarantined", Integer),
    Column("rows_superseded", Integer, comment="earlier marks of a session replaced by a later edit in the same file"),
    Column("contract_checked_at", DateTime(timezone=True),
           comment="when the staged_contract check last proved this file's staged rows"),
    Column("staged_at", DateTime(timezone=True)),
    Column("error", Text),
    Column("restaged_at", DateTime(timezone=True), comment="when the file was last re-read by tether restage"),
    Index("ix_manifest_source_status", "source_id", "status"),
)

quarantine = Table(
    "quarantine", metadata,
    Column("quarantine_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", String(100), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("file_name", String(400), nullable=False),
    Column("row_number", Integer, comment="1-based data row; null when the whole file failed"),
    Column("field", String(100)),
    Column("reason", Text, nullable=False),
    Column("payload_enc", LargeBinary, comment="the raw row (or file) encrypted"),
    Column("quarantined_at", DateTime(timezone=True), nullable=False),
    Column("superseded_at", DateTime(timezone=True),
           comment="when a re-staging of the file no longer found this; null while in force"),
    Index("ix_quarantine_file", "file_id"),
)

data_quality_issues = Table(
    "data_quality_issues", metadata,
    Column("issue_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", String(100), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("file_name", String(400), nullable=False),
    Column("row_number", Integer),
    Column("field", String(100)),
    Column("issue", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("superseded_at", DateTime(timezone=True),
           comment="when a re-staging of the file no longer found this; null while in force"),
    Index("ix_dq_file", "file_id"),
)

staged_pupils = Table(
    "staged_pupils", metadata,
    Column("laestab", String(7), primary_key=True),
    Column("pupil_ref", _TOKEN, primary_key=True, comment="token of LAESTAB + school pupil id"),
    Column("upn_token", _TOKEN),
    Column("upn_valid", Boolean),
    Column("former_upn_token", _TOKEN),
    Column("nhs_token", _TOKEN),
    Column("nhs_valid", Boolean),
    Column("name_dob_token", _TOKEN),
    Column("identity_enc", LargeBinary),
    Column("key_id", String(40)),
    Column("sex", String(1)),
    Column("year_group", String(4)),
    Column("reg_group", String(40)),
    Column("admission_date", Date),
    Column("leaving_date", Date),
    Column("sen_provision", String(1), comment="N none, K SEN support, E EHC plan; null unknown"),
    Column("fsm_eligible", Boolean, comment="null when the school's feed does not say"),
    Column("destination_laestab", String(7)),
    Column("extract_date", Date, nullable=False),
    *_provenance(),
)

staged_marks = Table(
    "staged_marks", metadata,
    Column("laestab", String(7), primary_key=True),
    Column("pupil_ref", _TOKEN, primary_key=True),
    Column("session_date", Date, primary_key=True),
    Column("session", String(2), primary_key=True, comment="AM | PM"),
    Column("mark", String(2), nullable=False, comment="the code in force (withdrawn codes mapped)"),
    Column("category", String(20), nullable=False),
    Column("minutes_late", Integer),
    Column("recorded_at", DateTime(timezone=True), nullable=False,
           comment="when the school recorded the mark (Updated At, else the extract time)"),
    *_provenance(),
    Index("ix_marks_date", "session_date"),
    Index("ix_marks_school_date", "laestab", "session_date"),
)

attendance_weeks = Table(
    "attendance_weeks", metadata,
    Column("laestab", String(7), primary_key=True),
    Column("pupil_ref", _TOKEN, primary_key=True),
    Column("week_start", Date, primary_key=True, comment="the Monday of the week"),
    Column("possible_sessions", Integer, nullable=False),
    Column("present_sessions", Integer, nullable=False),
    Column("aea_sessions", Integer, nullable=False),
    Column("authorised_sessions", Integer, nullable=False),
    Column("unauthorised_sessions", Integer, nullable=False),
    Column("suspension_sessions", Integer, nullable=False),
    Column("part_time_sessions", Integer, nullable=False),
    comment="Each enrolment's sessions by category per week, kept up to date as marks are staged: "
            "measures add up weeks instead of a year of marks",
)

school_registers = Table(
    "school_registers", metadata,
    Column("laestab", String(7), primary_key=True),
    Column("session_date", Date, primary_key=True),
    Column("session", String(2), primary_key=True, comment="AM | PM"),
    Column("last_recorded_at", DateTime(timezone=True), nullable=False,
           comment="the latest recorded_at of any mark staged for this school and session"),
    comment="Which registers each school has sent: freshness reads this, never a scan of every mark",
)

staged_sc_persons = Table(
    "staged_sc_persons", metadata,
    Column("person_ref", _TOKEN, primary_key=True, comment="token of the LA child id"),
    Column("upn_token", _TOKEN),
    Column("upn_valid", Boolean),
    Column("nhs_token", _TOKEN),
    Column("nhs_valid", Boolean),
    Column("name_dob_token", _TOKEN),
    Column("identity_enc", LargeBinary),
    Column("key_id", String(40)),
    Column("sex", String(1)),
    Column("restricted", Boolean, nullable=False),
    *_provenance(),
)

staged_sc_episodes = Table(
    "staged_sc_episodes", metadata,
    Column("episode_id", String(100), primary_key=True),
    Column("person_ref", _TOKEN, nullable=False),
    Column("episode_type", String(3), nullable=False, comment="CIN | CPP | CLA"),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    Column("legal_status", String(4)),
    Column("reason_ended", String(4)),
    *_provenance(),
)

staged_sc_allocations = Table(
    "staged_sc_allocations", metadata,
    Column("person_ref", _TOKEN, primary_key=True),
    Column("worker_id", String(100), primary_key=True),
    Column("start_date", Date, primary_key=True),
    Column("worker_name", String(200)),
    Column("worker_email", String(320)),
    Column("team_id", String(100)),
    Column("team_name", String(200)),
    Column("end_date", Date),
    *_provenance(),
)

staged_camhs_referrals = Table(
    "staged_camhs_referrals", metadata,
    Column("referral_id", String(100), primary_key=True),
    Column("patient_ref", _TOKEN, nullable=False, comment="token of the trust's local patient id"),
    Column("nhs_token", _TOKEN),
    Column("nhs_valid", Boolean),
    Column("name_dob_token", _TOKEN),
    Column("identity_enc", LargeBinary),
    Column("key_id", String(40)),
    Column("sex", String(1)),
    Column("referral_date", Date, nullable=False),
    Column("referral_status", String(10), nullable=False),
    Column("discharge_date", Date),
    Column("service_team", String(200)),
    Column("team_contact", String(320)),
    *_provenance(),
)

child_links = Table(
    "child_links", metadata,
    Column("source_kind", String(20), primary_key=True, comment="school | social_care | health"),
    Column("record_ref", _TOKEN, primary_key=True),
    Column("laestab", String(7), comment="for school records"),
    Column("child_key", _TOKEN, nullable=False),
    Column("linked_on", String(40), nullable=False, comment="the rule that linked it, or 'self'"),
    Index("ix_links_child", "child_key"),
)

child_record = Table(
    "child_record", metadata,
    Column("child_key", _TOKEN, primary_key=True),
    Column("laestab", String(7), comment="current school, if any"),
    Column("pupil_ref", _TOKEN),
    Column("year_group", String(4)),
    Column("sen_provision", String(1)),
    Column("fsm_eligible", Boolean),
    Column("person_ref", _TOKEN, comment="social-care record, if any"),
    Column("restricted", Boolean, nullable=False),
    Column("in_school_feed", Boolean, nullable=False),
    Column("in_social_care", Boolean, nullable=False),
    Column("in_health", Boolean, nullable=False),
    Column("camhs_open", Boolean, nullable=False),
    Column("camhs_since", Date),
    Column("camhs_team_contact", String(320)),
    Column("as_of", DateTime(timezone=True), nullable=False),
)

attendance_measures = Table(
    "attendance_measures", metadata,
    Column("laestab", String(7), primary_key=True),
    Column("pupil_ref", _TOKEN, primary_key=True),
    Column("period", String(20), primary_key=True, comment="academic_year | autumn | spring | summer"),
    Column("child_key", _TOKEN),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("possible_sessions", Integer, nullable=False),
    Column("present_sessions", Integer, nullable=False),
    Column("aea_sessions", Integer, nullable=False),
    Column("authorised_sessions", Integer, nullable=False),
    Column("unauthorised_sessions", Integer, nullable=False),
    Column("attendance_rate", Float),
    Column("absence_rate", Float),
    Column("persistent_absence", Boolean, nullable=False),
    Column("severe_absence", Boolean, nullable=False),
    Column("days_missed", Float, nullable=False),
    Column("suspension_sessions", Integer, nullable=False),
    Column("part_time_sessions", Integer, nullable=False),
    Column("consecutive_unauthorised_days", Integer, nullable=False),
    Column("as_of", DateTime(timezone=True), nullable=False),
)

cohort_membership = Table(
    "cohort_membership", metadata,
    Column("child_key", _TOKEN, primary_key=True),
    Column("cohort", String(30), primary_key=True, comment="current_cwsw | ever6_cwsw | cla | ehcp | sen_support"),
    Column("status", String(3), comment="CLA > CPP > CIN, the highest in the window"),
    Column("as_of", DateTime(timezone=True), nullable=False),
)

flags = Table(
    "flags", metadata,
    Column("flag_id", _TOKEN, primary_key=True, comment="hash of (child, rule, date, session)"),
    Column("child_key", _TOKEN, nullable=False),
    Column("rule", String(60), nullable=False),
    Column("session_date", Date, nullable=False),
    Column("session", String(2), nullable=False),
    Column("laestab", String(7)),
    Column("evidence", Text, nullable=False, comment="JSON, pseudonymous"),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("delivery_id", _TOKEN, primary_key=True, comment="hash of (flag, recipient, channel)"),
    Column("flag_id", _TOKEN, nullable=False),
    Column("recipient_kind", String(30), nullable=False, comment="allocated_worker | team_duty_inbox | virtual_school"),
    Column("recipient_id", String(100), nullable=False),
    Column("recipient_address", String(320)),
    Column("channel", String(30), nullable=False),
    Column("payload_enc", LargeBinary, nullable=False, comment="the message, encrypted until sent"),
    Column("fields", Text, nullable=False, comment="JSON list of the fields disclosed"),
    Column("status", String(20), nullable=False, comment="pending | delivered | failed"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index("ix_outbox_status", "status"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False, comment="alert_queued | alert_sent | record_viewed | extract"),
    Column("recipient", String(320)),
    Column("child_key", _TOKEN),
    Column("fields", Text, nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("lawful_basis", String(200), nullable=False),
    Column("ref", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

watermarks = Table(
    "watermarks", metadata,
    Column("source_id", String(100), primary_key=True),
    Column("relation", String(100), primary_key=True),
    Column("value", String(100), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

store_keys = Table(
    "store_keys", metadata,
    Column("purpose", String(20), primary_key=True, comment="token | identity"),
    Column("key_id", String(40), primary_key=True, comment="sharing.keys.key_id: a fingerprint, never the key"),
    Column("state", String(20), nullable=False, comment="current | retired (a rotation retires the old key)"),
    Column("first_used_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    Index("uq_store_keys_current", "purpose", unique=True,
          sqlite_where=text("state = 'current'"), postgresql_where=text("state = 'current'")),
)

unlanded_files = Table(
    "unlanded_files", metadata,
    Column("source_id", String(100), primary_key=True),
    Column("file_name", String(400), primary_key=True, comment="escaped (repr), never used as a path"),
    Column("state", String(20), nullable=False, comment="refused | unmatched | in_flight | stale_in_flight"),
    Column("reason", Text, nullable=False),
    Column("size_bytes", BigInteger),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
)

odbc_overlap_rows = Table(
    "odbc_overlap_rows", metadata,
    Column("source_id", String(100), primary_key=True),
    Column("relation", String(100), primary_key=True),
    Column("fingerprint", String(64), primary_key=True, comment="keyed HMAC of the row as extracted"),
    Column("watermark", String(100), nullable=False),
)

sftp_poll_state = Table(
    "sftp_poll_state", metadata,
    Column("source_id", String(100), primary_key=True),
    Column("kind", String(10), primary_key=True,
           comment="observed (waiting to be unchanged for stable_seconds) | landed (landed and left in place)"),
    Column("name_key", String(64), primary_key=True,
           comment="keyed HMAC of the remote file name (connectors.sftp_state.name_key), never the name"),
    Column("size_bytes", BigInteger, nullable=False),
    Column("mtime", BigInteger, nullable=False, comment="the server's modification time, epoch seconds"),
    Column("observed_since", DateTime(timezone=True), comment="observed: first seen with this size and mtime"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

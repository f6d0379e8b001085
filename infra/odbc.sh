#!/usr/bin/env bash
# unixODBC + the PostgreSQL ODBC driver (psqlODBC) against `tether_mis`, a hosted school MIS
# database in an MIS-like schema seeded from the synthetic LA, for the ODBC connector's tests.
#   - installs unixodbc / odbc-postgresql only when missing,
#   - registers the "PostgreSQL Unicode" driver in /etc/odbcinst.ini if unixODBC does not list it,
#   - creates and seeds the database (infra/seed_mis.py; skipped when already seeded),
#   - defines the system DSN `tether_mis` in /etc/odbc.ini (and a copy under var/services/odbc/),
#   - appends TETHER_TEST_ODBC_* to infra/services.env (replacing its own earlier lines).
# Root, no systemd, safe to run twice. Called by infra/services.sh once PostgreSQL is up.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
ENV_FILE="${TETHER_SERVICES_ENV:-$REPO/infra/services.env}"
PG_HOST="${TETHER_PG_HOST:-127.0.0.1}"
PG_PORT="${TETHER_PG_PORT:-5432}"
DB=tether_mis
DSN=tether_mis
DRIVER="PostgreSQL Unicode"
STATE="$REPO/var/services/odbc"
PYTHON="$REPO/.venv/bin/python"
export DEBIAN_FRONTEND=noninteractive

die() { echo "odbc: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "infra/odbc.sh must run as root (it installs packages and edits /etc/odbc*.ini)"
installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }

# --- packages ----------------------------------------------------------------------------------
missing=()
for pkg in unixodbc odbc-postgresql; do installed "$pkg" || missing+=("$pkg"); done
if (( ${#missing[@]} )); then
    echo "odbc: installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- driver registration (Debian's odbc-postgresql normally does this itself) -------------------
if ! odbcinst -q -d 2>/dev/null | grep -qxF "[$DRIVER]"; then
    lib="$(find /usr/lib -name psqlodbcw.so -print -quit 2>/dev/null || true)"
    [[ -n $lib ]] || die "psqlodbcw.so not found: is odbc-postgresql installed?"
    tmpl="$(mktemp)"
    printf '[%s]\nDescription=PostgreSQL ODBC driver (Unicode version)\nDriver=%s\n' "$DRIVER" "$lib" > "$tmpl"
    odbcinst -i -d -f "$tmpl" >/dev/null
    rm -f "$tmpl"
    echo "odbc: registered driver \"$DRIVER\" ($lib)"
fi
odbcinst -q -d | grep -qxF "[$DRIVER]" || die "driver \"$DRIVER\" is still not registered in odbcinst.ini"

# --- the MIS database ---------------------------------------------------------------------------
psql_admin() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -d postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
psql_admin -c 'select 1' >/dev/null || die "cannot connect to PostgreSQL as postgres on $PG_HOST:$PG_PORT (run infra/services.sh)"
if [[ "$(psql_admin -c "select 1 from pg_database where datname = '$DB'")" != 1 ]]; then
    psql_admin -c "create database $DB"
    echo "odbc: created database $DB"
fi
# A school MIS keeps local time: naive datetimes read over ODBC are then Europe/London.
psql_admin -c "alter database $DB set timezone to 'Europe/London'"
[[ -x $PYTHON ]] || die "$PYTHON not found: run \`make install\` first"
"$PYTHON" "$REPO/infra/seed_mis.py" --dsn "host=$PG_HOST port=$PG_PORT user=postgres dbname=$DB"

# --- the DSN ------------------------------------------------------------------------------------
mkdir -p "$STATE"
cat > "$STATE/odbc.ini" <<EOF
[$DSN]
Description=Tether test MIS (hosted, several schools) on PostgreSQL
Driver=$DRIVER
Servername=$PG_HOST
Port=$PG_PORT
Database=$DB
Username=postgres
UseDeclareFetch=1
Fetch=5000
EOF
# The system DSN file may be missing (removed by hand, or a package's conffile lost): odbcinst
# cannot write into a file that is not there.
SYSTEM_DSNS=$(odbcinst -j | sed -n 's/^SYSTEM DATA SOURCES\.*: //p')
[[ -z "$SYSTEM_DSNS" || -f "$SYSTEM_DSNS" ]] || install -m 0644 /dev/null "$SYSTEM_DSNS"
odbcinst -u -s -l -n "$DSN" >/dev/null 2>&1 || true      # replace, never duplicate
odbcinst -i -s -l -f "$STATE/odbc.ini" >/dev/null || die "could not register DSN $DSN in ${SYSTEM_DSNS:-the system DSN file}"
odbcinst -q -s -l -n "$DSN" >/dev/null || die "DSN $DSN was not registered in /etc/odbc.ini"

CONN="Driver={$DRIVER};Server=$PG_HOST;Port=$PG_PORT;Database=$DB;Uid=postgres;UseDeclareFetch=1;Fetch=5000;"
count="$(echo "select count(*) from mis_marks" | isql -b -d, -x0x09 "$DSN" 2>&1 | grep -Eo '^[0-9]+' | head -n1 || true)"
[[ -n $count && $count -gt 0 ]] || die "isql through DSN $DSN could not read mis_marks"
echo "odbc: DSN $DSN ready ($count marks readable through unixODBC + psqlODBC)"

# --- services.env: drop our earlier lines, then append ------------------------------------------
touch "$ENV_FILE"
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
grep -v -e '^export TETHER_TEST_ODBC_' -e '^# infra/odbc.sh' "$ENV_FILE" > "$tmp" || true
{
    echo "# infra/odbc.sh: unixODBC + psqlODBC against the seeded MIS database $DB"
    echo "export TETHER_TEST_ODBC_CONNECTION=\"$CONN\""
    echo "export TETHER_TEST_ODBC_DSN=$DSN"
} >> "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$ENV_FILE"

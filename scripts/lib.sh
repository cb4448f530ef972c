# Shared helpers for gantry's scripts. Source it; do not run it.
# shellcheck shell=bash

GANTRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/gantry/target}
# Builds check queries against the committed .sqlx/ data, never a live database.
export SQLX_OFFLINE=true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A tool the run needs. In CI (CI=true) a missing tool fails the run; on a developer's machine
# the step is skipped, loudly.
missing_tool() {
  if [ "${CI:-}" = "true" ]; then
    die "$1 is required in CI but could not be installed"
  fi
  printf '\n\033[1;33m!!! SKIPPED: %s is not available (%s). CI will not skip this.\033[0m\n\n' "$1" "$2" >&2
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ -z "${GANTRY_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq || return 1
    export GANTRY_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

require_rust() {
  command -v cargo >/dev/null || die "cargo is not installed: install Rust 1.94 or newer with rustup (https://rustup.rs)"
}

# A Python tool from PyPI, installed with pip when absent. Returns 1 when it cannot be had.
ensure_pip_tool() { # command package
  command -v "$1" >/dev/null && return 0
  log "installing $2 from PyPI"
  python3 -m pip install -q "$2" >&2 || python3 -m pip install -q --user "$2" >&2 || true
  hash -r
  command -v "$1" >/dev/null
}

pg_bin() { # name: a PostgreSQL server binary from PATH or Debian's versioned directory
  if command -v "$1" >/dev/null; then command -v "$1"; return; fi
  local found
  found=$(ls -1d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] && echo "$found"
}

server_answers() { # url
  command -v psql >/dev/null && psql "$1" -qtAc 'select 1' >/dev/null 2>&1
}

# Sets DATABASE_URL to a PostgreSQL server's maintenance database (trust auth): the one already
# given, one on 127.0.0.1:5432, or a cluster of our own in .data/pg (installing Debian's
# postgresql when the server binaries are absent).
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ] && server_answers "$DATABASE_URL"; then return; fi
  local local_url=postgres://postgres@127.0.0.1:5432/postgres
  if [ -z "${GANTRY_OWN_POSTGRES:-}" ] && server_answers "$local_url"; then
    export DATABASE_URL=$local_url
    return
  fi
  if [ -z "$(pg_bin initdb)" ] || ! command -v psql >/dev/null; then
    log "installing PostgreSQL (Debian package postgresql)"
    apt_install postgresql postgresql-client || die "cannot install PostgreSQL: install it and rerun"
  fi
  local initdb pg_ctl port=${GANTRY_PG_PORT:-54329} data="$GANTRY_ROOT/.data/pg" run=()
  initdb=$(pg_bin initdb) pg_ctl=$(pg_bin pg_ctl)
  if [ "$(id -u)" -eq 0 ]; then
    # The server refuses to run as root: run it as the postgres user, in a directory it can reach.
    id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /var/lib/postgresql postgres
    run=(runuser -u postgres --)
    mkdir -p "$GANTRY_ROOT/.data"
    if ! "${run[@]}" test -x "$GANTRY_ROOT/.data" 2>/dev/null; then
      data=/var/tmp/gantry-pg
    fi
  fi
  local url=postgres://postgres@127.0.0.1:$port/postgres
  if server_answers "$url"; then export DATABASE_URL=$url; return; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $data"
    mkdir -p "$data"
    [ ${#run[@]} -eq 0 ] || chown postgres "$data"
    "${run[@]}" "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on 127.0.0.1:$port"
  "${run[@]}" "$pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
    || die "PostgreSQL did not start; see $data/server.log"
  export DATABASE_URL=$url
}

# DATABASE_URL with its database replaced by $1, created when absent.
database_named() { # name
  local base=${DATABASE_URL%%\?*} query=""
  [[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
  local url="${base%/*}/$1$query"
  if ! server_answers "$url"; then
    psql "$DATABASE_URL" -qc "CREATE DATABASE \"$1\"" >/dev/null
  fi
  echo "$url"
}

# npm tools the tests use, pinned, installed once into a cache shared between clones:
# anvil (a real Ethereum node), solc (contract compiler), ethers (the independent SIWE signer),
# stripe (stripe-node: the independent Stripe webhook signer and the webhook benchmark peer).
export GANTRY_NPM=${GANTRY_NPM:-$HOME/.cache/gantry/npm}
NPM_TOOLS=(@foundry-rs/anvil-linux-amd64@1.7.1 solc@0.8.37 ethers@6.17.0 stripe@23.1.0 maildev@2.2.1)
ensure_npm_tools() {
  local marker="$GANTRY_NPM/.installed-$(printf '%s\n' "${NPM_TOOLS[@]}" | md5sum | cut -c1-12)"
  if [ ! -f "$marker" ]; then
    if ! command -v npm >/dev/null; then
      log "installing Node.js and npm (Debian packages nodejs, npm)"
      apt_install nodejs npm || return 1
    fi
    log "installing ${NPM_TOOLS[*]} into $GANTRY_NPM"
    mkdir -p "$GANTRY_NPM"
    (cd "$GANTRY_NPM" && npm install --no-audit --no-fund --silent "${NPM_TOOLS[@]}" >&2) || return 1
    touch "$marker"
  fi
  export ANVIL_BIN="$GANTRY_NPM/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
  [ -x "$ANVIL_BIN" ]
}

# npm tools only the benchmarks use (autocannon), pinned, in the same cache.
NPM_BENCH_TOOLS=(autocannon@8.0.0)
ensure_npm_bench_tools() {
  local marker="$GANTRY_NPM/.bench-$(printf '%s\n' "${NPM_BENCH_TOOLS[@]}" | md5sum | cut -c1-12)"
  if [ ! -f "$marker" ]; then
    log "installing ${NPM_BENCH_TOOLS[*]} into $GANTRY_NPM"
    (cd "$GANTRY_NPM" && npm install --no-audit --no-fund --silent "${NPM_TOOLS[@]}" "${NPM_BENCH_TOOLS[@]}" >&2) || return 1
    touch "$marker"
  fi
}

# schemathesis, pinned, in a virtualenv in the shared cache (like the npm tools).
SCHEMATHESIS_VERSION=4.32.5
PYOTP_VERSION=2.9.0

ensure_pyotp() { # a python3 that imports pyotp, exported as PYOTP_PYTHON
  if ! python3 -c 'import pyotp' 2>/dev/null; then
    log "installing pyotp $PYOTP_VERSION from PyPI"
    python3 -m pip install -q "pyotp==$PYOTP_VERSION" >&2 \
      || python3 -m pip install -q --user "pyotp==$PYOTP_VERSION" >&2 || true
  fi
  python3 -c 'import pyotp' 2>/dev/null || return 1
  PYOTP_PYTHON=$(command -v python3)
  export PYOTP_PYTHON
}

# factur-x (the reference library's EN 16931 XSD check and attachment extractor) and pypdf, for
# the invoice document tests.
FACTURX_VERSION=7.8
PYPDF_VERSION=7.1.1

ensure_facturx() { # a python3 that imports facturx and pypdf, exported as FACTURX_PYTHON
  if ! python3 -c 'import facturx, pypdf' 2>/dev/null; then
    log "installing factur-x $FACTURX_VERSION and pypdf $PYPDF_VERSION from PyPI"
    python3 -m pip install -q "factur-x==$FACTURX_VERSION" "pypdf==$PYPDF_VERSION" >&2 \
      || python3 -m pip install -q --user "factur-x==$FACTURX_VERSION" "pypdf==$PYPDF_VERSION" >&2 || true
  fi
  python3 -c 'import facturx, pypdf' 2>/dev/null || return 1
  FACTURX_PYTHON=$(command -v python3)
  export FACTURX_PYTHON
}

# pdftotext, from Debian's poppler-utils when it is missing: the invoice PDF tests read its text.
ensure_pdftotext() {
  command -v pdftotext >/dev/null && return 0
  log "installing poppler-utils (pdftotext) from Debian"
  apt_install poppler-utils >&2 || return 1
  command -v pdftotext >/dev/null
}

# Saxon HE (Debian's, with a Java runtime) runs the EN 16931 schematron that factur-x ships as
# XSLT 2, exported as SAXON_JAR.
ensure_saxon() {
  SAXON_JAR=/usr/share/java/Saxon-HE.jar
  if [ ! -f "$SAXON_JAR" ] || ! command -v java >/dev/null; then
    log "installing Saxon HE (libsaxonhe-java) from Debian"
    apt_install libsaxonhe-java default-jre-headless >&2 || return 1
  fi
  [ -f "$SAXON_JAR" ] && command -v java >/dev/null || return 1
  export SAXON_JAR
}

ensure_schemathesis() {
  local venv=${GANTRY_VENV:-$HOME/.cache/gantry/venv}
  export SCHEMATHESIS="$venv/bin/st"
  if [ -x "$SCHEMATHESIS" ] && "$SCHEMATHESIS" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $venv"
  if ! python3 -m venv "$venv" >&2; then
    apt_install python3-venv && python3 -m venv "$venv" >&2 || return 1
  fi
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2 || return 1
  [ -x "$SCHEMATHESIS" ]
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The js reference UnixFS importer (CID fixtures and scripts/bench-cid), pinned.
NPM_CID_TOOLS=(ipfs-unixfs-importer@17.1.1 blockstore-core@7.0.1)
ensure_npm_cid_tools() {
  local marker="$GANTRY_NPM/.cid-$(printf '%s\n' "${NPM_CID_TOOLS[@]}" | md5sum | cut -c1-12)"
  if [ ! -f "$marker" ]; then
    command -v npm >/dev/null || apt_install nodejs npm || return 1
    log "installing ${NPM_CID_TOOLS[*]} into $GANTRY_NPM"
    mkdir -p "$GANTRY_NPM"
    (cd "$GANTRY_NPM" && npm install --no-audit --no-fund --silent "${NPM_TOOLS[@]}" "${NPM_CID_TOOLS[@]}" >&2) || return 1
    touch "$marker"
  fi
}

# The moto server (PyPI moto[server]): AWS APIs (S3 for the IPFS blockstore) on a free loopback
# port, stopped when the calling script exits. Points the AWS SDK at it through
# AWS_ENDPOINT_URL, with moto's dummy credentials.
# maildev (installed with the npm tools): an SMTP server that keeps what it receives, with a web
# inbox and a REST API (GET /email). Exports MAIL_CATCHER_SMTP (smtp://127.0.0.1:PORT) and
# MAIL_CATCHER_WEB (http://127.0.0.1:PORT).
start_maildev() {
  ensure_npm_tools || return 1
  local smtp web
  smtp=$(free_port); web=$(free_port)
  mkdir -p "$GANTRY_ROOT/.data"
  "$GANTRY_NPM/node_modules/.bin/maildev" --ip 127.0.0.1 --smtp "$smtp" --web "$web" \
    >"$GANTRY_ROOT/.data/maildev.log" 2>&1 &
  MAILDEV_PID=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$web/email', timeout=1)" 2>/dev/null; then
      export MAIL_CATCHER_SMTP="smtp://127.0.0.1:$smtp" MAIL_CATCHER_WEB="http://127.0.0.1:$web"
      return 0
    fi
    sleep 0.2
  done
  log "maildev did not start: see .data/maildev.log"
  return 1
}

start_moto() {
  ensure_pip_tool moto_server "moto[server]" || return 1
  local port
  port=$(free_port)
  mkdir -p "$GANTRY_ROOT/.data"
  # scripts/moto-server is moto_server with DynamoDB's calls taken one at a time (atomic, as in
  # the real service); plain moto_server where its Python is not ours.
  if python3 -c 'import moto.moto_server.werkzeug_app' 2>/dev/null; then
    python3 "$GANTRY_ROOT/scripts/moto-server" -H 127.0.0.1 -p "$port" >"$GANTRY_ROOT/.data/moto.log" 2>&1 &
  else
    log "moto_server's Python is not python3: DynamoDB updates are not serialised"
    moto_server -H 127.0.0.1 -p "$port" >"$GANTRY_ROOT/.data/moto.log" 2>&1 &
  fi
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
      export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
      return 0
    fi
    sleep 0.2
  done
  log "moto did not start: see .data/moto.log"
  return 1
}

# Benchmarks: the release gateway (built by the caller) in the background with rate limits off
# (one client address would otherwise be throttled), on PORT over the database URL DB, with any
# further VAR=VALUE settings; the caller keeps `$!` to stop it.
start_bench_gateway() { # port db [VAR=VALUE...]
  local port=$1 db=$2
  shift 2
  env DATABASE_URL="$db" PORT="$port" RUST_LOG=warn RATE_LIMIT_PER_IP=0 \
    RATE_LIMIT_PER_IDENTIFIER=0 "$@" "$CARGO_TARGET_DIR/release/gantry-gateway" &
}

# Waits until every URL answers (up to 10 s each).
await_urls() { # url...
  local url
  for url in "$@"; do
    for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
  done
}

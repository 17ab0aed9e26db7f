#!/usr/bin/env bash
# Make sure Debian's chromium is installed at /usr/bin/chromium: the browser the e2e tests
# (tests/e2e, Playwright) drive. Fast and silent when it is there; otherwise installs the Debian
# package `chromium` with apt-get (non-interactive; `apt-get update` only if the first try fails).
# Exits 1 with a FATAL message when it is still missing.
set -euo pipefail
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo -n)
  else
    echo "FATAL: $CHROMIUM is missing and installing it needs root (no sudo here)." >&2
    echo "       Install the Debian package: apt-get install chromium" >&2
    exit 1
  fi
fi

if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium)
  echo "== installing Debian's chromium for the browser tests"
  if ! "${install[@]}"; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || true
    "${install[@]}" || true
  fi
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "FATAL: $CHROMIUM is missing and could not be installed (apt-get install chromium)." >&2
  exit 1
fi

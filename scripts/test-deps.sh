#!/usr/bin/env bash
# Makes sure the clients the tests drive are installed before `make test`: quick when they
# are; as root it installs what is missing (Debian packages with apt-get, the npm clients
# with npm ci); otherwise it names what is missing and the one command that installs it,
# because the tests that need a missing client skip (and fail under CI=true).
# Usage: scripts/test-deps.sh "APT PACKAGES"
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=$1
missing=()
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
command -v npm >/dev/null || missing+=(npm)
node_ok=1
if [ -f test/node/package-lock.json ]; then
  # npm ci writes node_modules/.package-lock.json; a lock file newer than it means stale.
  if [ ! -f test/node/node_modules/.package-lock.json ] || [ test/node/package-lock.json -nt test/node/node_modules/.package-lock.json ]; then
    node_ok=0
  fi
fi
if [ ${#missing[@]} -eq 0 ] && [ $node_ok -eq 1 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "test-deps: installing ${missing[*]:-} ${node_ok/1/}${node_ok/0/npm clients}"
  exec make deps
fi
echo "test-deps: missing: ${missing[*]:-}$( [ $node_ok -eq 0 ] && echo ' npm clients (test/node)')" >&2
echo "test-deps: install them with: sudo make deps" >&2
echo "test-deps: until then the tests that drive them skip (under CI=true they fail)." >&2

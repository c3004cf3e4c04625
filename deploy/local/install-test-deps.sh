#!/usr/bin/env bash
# Installs the real servers and tools the test suite uses, from Debian's packages, when they are missing:
# PostgreSQL (the SPGL exchange database in integration tests) and promtool (checks the alert rules).
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "==> installing ${need[*]} from Debian's packages"
# A concurrent apt run holds the lock for a while; wait for it rather than fail.
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"

#!/usr/bin/env bash
# Installs what msctl and its tests need on a Debian/Ubuntu host, and nothing that is
# already there. Safe to run repeatedly (it is called by ./msctl and scripts/test.sh).
#
#   debootstrap        builds the base image when no registry can be pulled from (offline)
#   postgresql-client  psql, used by the end-to-end tests
#   redis-tools        redis-cli, for troubleshooting and tests
#   tmux               drives `msctl dash` in its end-to-end test
#   libxml2-utils      xmllint, validates the scenario JUnit report against fixtures/junit/junit.xsd
set -euo pipefail

needed=(debootstrap postgresql-client redis-tools tmux libxml2-utils)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "msctl: these packages are missing: ${missing[*]}; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "msctl: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

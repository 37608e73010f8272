#!/usr/bin/env bash
# Installs the Debian packages `make test` needs (deploy/test-tools.txt) when they
# are missing: as root with apt-get, the first time only; otherwise it prints the
# exact command to run and exits 1, so a missing tool fails loudly instead of being
# skipped. Shared by the Makefile (`make test`, `make unit`) and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# nginx lives in /usr/sbin, which a non-root PATH often lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
while read -r binary package _; do
    [[ -z "$binary" || "$binary" == \#* ]] && continue
    if ! command -v "$binary" >/dev/null 2>&1; then
        [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
    fi
done <deploy/test-tools.txt

((${#missing[@]})) || exit 0

install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
    echo "bootstrap: make test needs the Debian packages: ${missing[*]}" >&2
    echo "bootstrap: install them as root, then run make test again:" >&2
    echo "    sudo sh -c '$install'" >&2
    exit 1
fi

echo "bootstrap: installing ${missing[*]} (first run only)"
start=$SECONDS
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "bootstrap: installed in $((SECONDS - start)) s"

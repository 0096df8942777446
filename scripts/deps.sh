#!/usr/bin/env bash
# Installs the Debian packages TruePort needs, only those that are missing.
set -euo pipefail

pkgs=(nginx nginx-dev libjwt-dev libyajl-dev libpq-dev uuid-dev libssl-dev
      postgresql libmicrohttpd-dev libpcre2-dev zlib1g-dev pkg-config make gcc
      libtest-base-perl libwww-perl libjson-xs-perl libdbd-pg-perl
      libtest-longstring-perl wrk curl ca-certificates)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$p")
done

# the mock provider and the SDK tests run on Node.js (any 18+)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]} (run as root to install)" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# the nginx package would start a system nginx on :80; we never need it
echo 'exit 101' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null

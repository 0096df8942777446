#!/usr/bin/env bash
# Build build/ngx_http_trueport_module.so against the installed nginx
# (Debian's nginx-dev: /usr/share/nginx/src with its conf_flags).
#
#   scripts/build-module.sh            configure when needed, then make
#   TRUEPORT_SANITIZE=1 scripts/...    add -fsanitize=address,undefined
#   TRUEPORT_BUILD=build-asan ...      another output folder (make test-asan
#                                      keeps its sanitized module apart)
#   NGX_SRC=/path/to/nginx/src         another nginx source tree
#
# All output goes to the build folder: configure runs with
# --builddir=<build>/nginx and the script fails if anything in the nginx
# source tree changed.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TRUEPORT_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OBJS=$BUILD/nginx
NGX_SRC=${NGX_SRC:-/usr/share/nginx/src}
MODULE=ngx_http_trueport_module

die() { echo "build-module: $*" >&2; exit 1; }

if [ ! -x "$NGX_SRC/configure" ] || [ ! -f "$NGX_SRC/conf_flags" ]; then
    die "$NGX_SRC has no configure/conf_flags (apt-get install nginx-dev)"
fi

# Debian's own flags (nginx -V), minus its -ffile-prefix-map
CC_OPT="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
CC_OPT="$CC_OPT -fPIC -Wdate-time -D_FORTIFY_SOURCE=2"
LD_OPT="-Wl,-z,relro -Wl,-z,now -fPIC"

if [ "${TRUEPORT_SANITIZE:-0}" = 1 ]; then
    # nginx itself is not instrumented: run it with
    # LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc
    # -print-file-name=libubsan.so)", for "nginx -s" too
    CC_OPT="$CC_OPT -fsanitize=address,undefined -fno-omit-frame-pointer"
    LD_OPT="$LD_OPT -fsanitize=address,undefined"
fi

# reconfigure when the flags change, not only when config does
STAMP=$OBJS/.trueport-flags
FLAGS="$NGX_SRC|$CC_OPT|$LD_OPT"

mkdir -p "$OBJS"
MARK=$OBJS/.build-start
touch "$MARK"

if [ ! -f "$OBJS/Makefile" ] || [ "$ROOT/config" -nt "$OBJS/Makefile" ] \
   || [ "$(cat "$STAMP" 2>/dev/null)" != "$FLAGS" ]
then
    (
        cd "$NGX_SRC"
        # shellcheck disable=SC1091
        . ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" \
            --with-cc-opt="$CC_OPT" \
            --with-ld-opt="$LD_OPT" \
            --add-dynamic-module="$ROOT" \
            --builddir="$OBJS"
    ) > "$OBJS/configure.log" 2>&1 \
        || { tail -n 30 "$OBJS/configure.log" >&2; die "configure failed"; }

    echo "$FLAGS" > "$STAMP"
fi

make -f "$OBJS/Makefile" -C "$NGX_SRC" -j"$(nproc)" modules

CHANGED=$(find "$NGX_SRC" -newer "$MARK" -print -quit)
[ -z "$CHANGED" ] || die "the build wrote into $NGX_SRC: $CHANGED"

# a new inode: a running nginx keeps its mapping of the old file intact
cp "$OBJS/$MODULE.so" "$BUILD/$MODULE.so.tmp"
mv "$BUILD/$MODULE.so.tmp" "$BUILD/$MODULE.so"

echo "build-module: $BUILD/$MODULE.so"

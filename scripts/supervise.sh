#!/usr/bin/env bash
# supervise.sh: keeps the sidecar running under `make run` (stack.sh) and in
# the container (docker-entrypoint.sh), so that nginx goes on serving cached
# keys while it is down.  When the command exits it is started again after a
# back-off that begins at 0.5 s and doubles up to 30 s; a run of 60 s or
# more counts as stable and resets it.  Each exit (status or signal) and
# each restart is logged on stderr in the sidecar's own line format.
# SIGTERM (or SIGHUP; SIGINT unless the shell that started us ignores it)
# stops the command (SIGTERM, SIGKILL after 10 s) and then the supervisor,
# with status 0.
#
# usage: supervise.sh [--child-pidfile FILE] [--] COMMAND [ARG...]
#   --child-pidfile FILE   holds the running command's pid (removed at exit)
# TRUEPORT_SUPERVISE_STABLE: seconds of running that reset the back-off (60)
set -uo pipefail

DELAY_MIN_MS=500
DELAY_MAX_MS=30000
STABLE_S=${TRUEPORT_SUPERVISE_STABLE:-60}
STOP_KILL_S=10

child_pidfile=
while [ $# -gt 0 ]; do
    case $1 in
    --child-pidfile) child_pidfile=${2:?--child-pidfile FILE}; shift 2 ;;
    --) shift; break ;;
    -*) echo "supervise.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: supervise.sh [--child-pidfile FILE] [--] COMMAND [ARG...]" >&2
    exit 2
fi
name=${1##*/}

log() {    # log LEVEL KEY=VALUE...
    local level=$1
    shift
    printf 'ts=%s level=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" \
        "$level" "$*" >&2
}

# 500 -> "0.5", 30000 -> "30"
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)) | sed 's/\.\?0*$//'; }

child='' sleeper='' stopping=0
# shellcheck disable=SC2317  # (a trap handler)
on_signal() {
    stopping=1
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap on_signal TERM INT HUP

delay=$DELAY_MIN_MS
while [ "$stopping" = 0 ]; do
    started=$SECONDS
    "$@" &
    child=$!
    [ -n "$child_pidfile" ] && echo "$child" >"$child_pidfile"
    log info "msg=\"supervisor: started\" cmd=$name pid=$child"
    # a signal that came before $child was set
    [ "$stopping" = 1 ] && kill -TERM "$child" 2>/dev/null

    # only our traps (which set $stopping) end wait before the command
    # does; 2>/dev/null drops bash's own "Killed" line (logged below)
    wait "$child" 2>/dev/null
    st=$?
    if [ "$stopping" = 1 ]; then
        for ((i = 0; i < STOP_KILL_S * 10; i++)); do
            kill -0 "$child" 2>/dev/null || break
            sleep 0.1
        done
        if kill -KILL "$child" 2>/dev/null; then
            log warn "msg=\"supervisor: no exit ${STOP_KILL_S}s after" \
                "SIGTERM, killed\" cmd=$name pid=$child"
            wait "$child" 2>/dev/null
        fi
        break
    fi

    ran=$((SECONDS - started))
    if [ "$ran" -ge "$STABLE_S" ]; then
        delay=$DELAY_MIN_MS
    fi
    if [ "$st" -gt 128 ]; then
        how="signal=$(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128)))"
    else
        how="status=$st"
    fi
    log error "msg=\"supervisor: exited, restarting\" cmd=$name pid=$child" \
        "$how ran=${ran}s restart_in=$(secs "$delay")s"

    sleep "$(secs "$delay")" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
    delay=$((delay * 2 > DELAY_MAX_MS ? DELAY_MAX_MS : delay * 2))
done

[ -n "$child_pidfile" ] && rm -f "$child_pidfile"
log info "msg=\"supervisor: stopped\" cmd=$name"
exit 0

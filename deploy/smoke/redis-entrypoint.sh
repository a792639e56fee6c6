#!/bin/sh
# The part of the official image's docker-entrypoint.sh the compose stack relies on: as root,
# own /data and drop to `redis`. The official image builds Redis with protected mode off (it is
# reached from other containers, without a password); Debian's is on, so it is turned off here.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis .
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"

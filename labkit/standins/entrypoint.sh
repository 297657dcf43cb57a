#!/bin/sh
# Like the official images: a first argument that is an option is passed to the daemon.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- "$DAEMON" "$@"
fi
# Like the official redis image: without a config file, redis-server listens on every interface
# with protected mode off (containers reach it over the Docker network), even with a `command:`.
if [ "$1" = redis-server ] && ! echo "$*" | grep -q -- '--protected-mode\|\.conf'; then
  set -- "$@" --protected-mode no
fi
exec "$@"

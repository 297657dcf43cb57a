#!/bin/sh
# Like the official images: a first argument that is an option is passed to the daemon.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- "$DAEMON" "$@"
fi
exec "$@"

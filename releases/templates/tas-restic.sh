#!/bin/sh
# {{ managed }}
# tas-restic ARGS...: restic on the off-site repository the env file names, as the app user
# (it owns the dumps and the repository's cache-less access), e.g.
#   sudo tas-restic snapshots
#   sudo tas-restic restore latest --target /tmp/offsite
# RESTIC_REPOSITORY and RESTIC_PASSWORD are read from {{ env_file }} and passed in the
# environment, never on a command line. Exit status 3: no off-site repository configured.
set -eu
env_file={{ env_file }}
value() {
  sed -n "s/^$1=//p" "$env_file" | tail -n 1
}
RESTIC_REPOSITORY=$(value RESTIC_REPOSITORY)
RESTIC_PASSWORD=$(value RESTIC_PASSWORD)
if [ -z "$RESTIC_REPOSITORY" ]; then
  echo "tas-restic: no off-site repository configured (RESTIC_REPOSITORY in $env_file)" >&2
  exit 3
fi
export RESTIC_REPOSITORY RESTIC_PASSWORD
cd /
if [ "$(id -u)" = 0 ]; then
  exec runuser -u {{ app_user }} -- restic --no-cache "$@"
fi
exec restic --no-cache "$@"

#!/bin/sh
# {{ managed }}
# Dump the app's database into {{ backup_dir }}, prove the dump readable, print its path.
#   tas-backup                    nightly (the timer, `invoke backup`): tas-<stamp>.dump; the
#                                 newest {{ backup_keep }} nightly dumps are kept, older ones deleted
#   tas-backup predeploy RELEASE  before a deploy migrates: tas-predeploy-<stamp>-RELEASE.dump,
#                                 RELEASE being the release whose schema it holds. Never deleted
#                                 here: the deploy's cleanup deletes it once RELEASE is gone.
# Dumps of other names (tas-pre-restore-*, taken by tas-restore) are left alone.
# Every dump gets <dump>.counts.json next to it: the rows per table, counted in the dump's
# own snapshot ({{ dump_script }}); the restore drill (tas-drill) compares with them.
# A nightly dump is then copied off-site when RESTIC_REPOSITORY is set (tas-backup.service
# reads it and RESTIC_PASSWORD from the env file): `restic backup` of the dump and its
# counts, then `restic forget --prune` with the off-site retention. Last, {{ status_file }}
# records the good backup (its time, dump and snapshot): /healthz reports its age.
# Runs as the `tas` user (peer authentication over the unix socket).
set -eu
umask 077
dir={{ backup_dir }}
keep={{ backup_keep }}
kind=${1:-nightly}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
case "$kind" in
  nightly) name="tas-$stamp.dump" ;;
  predeploy)
    release=${2:-}
    case "$release" in
      "" | [.-]* | *[!A-Za-z0-9._+-]*)
        echo "tas-backup: predeploy needs a release name (letters, digits, . _ + -)" >&2
        exit 2
        ;;
    esac
    name="tas-predeploy-$stamp-$release.dump"
    ;;
  *)
    echo "usage: tas-backup [nightly | predeploy RELEASE]" >&2
    exit 2
    ;;
esac
partial="$dir/.$name.partial"
counts_partial="$dir/.$name.counts.partial"
final="$dir/$name"
trap 'rm -f "$partial" "$counts_partial"' EXIT
{{ dump_script }} {{ database }} "$partial" "$counts_partial"
# A dump pg_restore cannot list is no backup: fail loudly and keep the old ones.
pg_restore --list "$partial" >/dev/null
mv "$counts_partial" "$final.counts.json"
mv "$partial" "$final"
if [ "$kind" = nightly ]; then
  # Nightly dumps only, oldest first (a glob sorts by name, and names by time).
  set --
  for f in "$dir"/tas-[0-9]*Z.dump; do
    case "${f##*/}" in
      tas-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.dump)
        set -- "$@" "$f" ;;
    esac
  done
  excess=$(($# - keep))
  while [ "$excess" -gt 0 ]; do
    rm -f -- "$1" "$1.counts.json"
    shift
    excess=$((excess - 1))
  done
fi
echo "$final"
[ "$kind" = nightly ] || exit 0

snapshot=""
if [ -n "${RESTIC_REPOSITORY:-}" ]; then
  # restic reads RESTIC_REPOSITORY and RESTIC_PASSWORD from the environment (never argv).
  summary=$(restic backup --json --tag tas --host tas -- "$final" "$final.counts.json" |
    grep '"message_type":"summary"' || true)
  snapshot=$(printf '%s\n' "$summary" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
  if [ -z "$snapshot" ]; then
    echo "tas-backup: the off-site copy (restic backup to $RESTIC_REPOSITORY) failed" >&2
    exit 1
  fi
  echo "offsite snapshot $snapshot"
  restic forget --quiet --prune --tag tas --host tas \
    --keep-daily {{ offsite_keep_daily }} --keep-weekly {{ offsite_keep_weekly }} \
    --keep-monthly {{ offsite_keep_monthly }}
else
  echo "offsite: not configured (no RESTIC_REPOSITORY in the env file)"
fi
status_partial="{{ status_file }}.partial"
printf '{"finished_at": %s, "dump": "%s", "offsite_snapshot": "%s"}\n' \
  "$(date -u +%s)" "$name" "$snapshot" >"$status_partial"
mv "$status_partial" {{ status_file }}

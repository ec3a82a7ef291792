#!/bin/sh
# {{ managed }}
# Dump the app's database into {{ backup_dir }}, prove the dump readable, print its path.
#   tas-backup                    nightly (the timer, `invoke backup`): tas-<stamp>.dump; the
#                                 newest {{ backup_keep }} nightly dumps are kept, older ones deleted
#   tas-backup predeploy RELEASE  before a deploy migrates: tas-predeploy-<stamp>-RELEASE.dump,
#                                 RELEASE being the release whose schema it holds. Never deleted
#                                 here: the deploy's cleanup deletes it once RELEASE is gone.
# Dumps of other names (tas-pre-restore-*, taken by tas-restore) are left alone.
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
final="$dir/$name"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --dbname={{ database }} --file="$partial"
# A dump pg_restore cannot list is no backup: fail loudly and keep the old ones.
pg_restore --list "$partial" >/dev/null
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
    rm -f -- "$1"
    shift
    excess=$((excess - 1))
  done
fi
echo "$final"

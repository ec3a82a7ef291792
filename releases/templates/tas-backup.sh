#!/bin/sh
# {{ managed }}
# Dump the app's database into {{ backup_dir }}, prove the dump readable, keep the newest
# {{ backup_keep }}. Runs as the `tas` user (peer authentication over the unix socket);
# prints the new file's path.
set -eu
dir={{ backup_dir }}
keep={{ backup_keep }}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial="$dir/.tas-$stamp.dump.partial"
final="$dir/tas-$stamp.dump"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --dbname={{ database }} --file="$partial"
# A dump pg_restore cannot list is no backup: fail loudly and keep the old ones.
pg_restore --list "$partial" >/dev/null
mv "$partial" "$final"
ls -1 "$dir"/tas-*.dump | sort | head -n "-$keep" | while read -r old; do rm -f -- "$old"; done
echo "$final"

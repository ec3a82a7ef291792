#!/bin/sh
# {{ managed }}
# Restore the app's database from a dump made by {{ backup_script }}. Run as root.
# The app is stopped (socket too, so no request re-activates it) for the restore: no
# write can land between the DROPs and the data, and no open connection holds a lock
# pg_restore --clean needs. It is started again whatever happens.
set -eu
file="$1"
pg_restore --list "$file" >/dev/null
was_active=$(systemctl is-active tas.service || true)
systemctl stop tas.socket tas.service
restart() {
  systemctl start tas.socket
  if [ "$was_active" = active ]; then systemctl start tas.service; fi
}
trap restart EXIT
runuser -u tas -- pg_restore --clean --if-exists --no-owner --single-transaction \
  --exit-on-error --dbname={{ database }} "$file"
echo "restored {{ database }} from $file"

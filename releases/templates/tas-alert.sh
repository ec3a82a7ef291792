#!/bin/sh
# {{ managed }}
# tas-alert UNIT: say in the journal (tag tas-alert) that UNIT failed; POST it to
# ALERT_WEBHOOK_URL when the env file sets one. Run by tas-alert@UNIT.service, which the
# backup, the restore drill and certbot's renewal name in OnFailure=.
set -u
unit=${1:-unknown}
host=$(cat /proc/sys/kernel/hostname)
message="ALERT: $unit failed on $host (journalctl -u $unit for why)"
echo "$message"
url=${ALERT_WEBHOOK_URL:-}
if [ -z "$url" ]; then
  exit 0
fi
# The unit name and host are plain names (systemd unit and host names carry no quotes).
body=$(printf '{"text": "%s", "unit": "%s", "host": "%s"}' "$message" "$unit" "$host")
if curl -fsS --max-time 10 -H 'Content-Type: application/json' --data "$body" "$url" >/dev/null; then
  echo "alert for $unit sent to the webhook"
else
  echo "the alert webhook failed (curl exit $?): the journal line above is the only alert"
  exit 1
fi

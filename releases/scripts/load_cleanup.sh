#!/bin/sh
# Undo what `invoke loadtest --host` set up for run RUN on this server:
#   load_cleanup.sh RUN
# 1. its key leaves nginx (requests carrying it are limited like anyone's again),
# 2. the sampler stops, 3. its accounts are deleted (only those listed for the run),
# 4. its safety timer is stopped. Run by the client at the end of a run, and by the
# timer `tas-load-cleanup-RUN.timer` when the client never came back (killed, connection
# lost). Safe to run twice. Exit status 0 only when every part worked.
set -u
run="$1"
case "$run" in
  *[!a-z0-9]* | "") echo "load_cleanup: bad run name: $run" >&2; exit 2 ;;
esac
status=0

rm -f "/etc/nginx/tas-load-keys/$run.conf"
if nginx -t -q; then
  systemctl reload nginx || status=1
else
  echo "load_cleanup: nginx -t failed; not reloading" >&2
  status=1
fi

systemctl stop "tas-load-sample-$run.service" 2>/dev/null || true

if ! systemd-run --wait --pipe --quiet --collect --uid=tas --gid=tas \
  -p EnvironmentFile=/srv/tas/shared/tas.env -p WorkingDirectory=/srv/tas/current \
  /srv/tas/current/venv/bin/python -m flask --app service.wsgi \
  load-accounts remove --run "$run" </dev/null; then
  echo "load_cleanup: removing the accounts of $run failed" >&2
  status=1
fi

if [ "$status" -eq 0 ]; then
  systemctl stop "tas-load-cleanup-$run.timer" 2>/dev/null || true
fi
exit "$status"

#!/bin/sh
# Take the deploy lock: an atomic mkdir of "$1", run as root on the server. The holder's
# information (JSON) comes on standard input. Exit 75: someone holds it; any other failure
# (a missing folder, a full disk) is an error with mkdir's own message, never "held".
# Then record the holder's SSH session: the first sshd ancestor of this shell, with its
# start time (which tells a reused PID apart).
#
# With "--renew TOKEN" (after the client reconnected: its old session is gone) only the
# session is recorded again, and only if the lock is still the one holding TOKEN (exit 75
# otherwise): a live holder must not look stale.
set -eu
lock="$1"
if [ "${2:-}" = "--renew" ]; then
  grep -qF -- "$3" "$lock/info.json" 2>/dev/null || exit 75
else
  if ! mkdir "$lock" 2>/dev/null; then
    [ -e "$lock" ] && exit 75
    mkdir "$lock" || exit 1
  fi
  cat > "$lock/info.json"
fi
p=$$
while [ "$p" -gt 1 ]; do
  case "$(cat "/proc/$p/comm")" in sshd*) break ;; esac
  p=$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f2)
done
echo "$p $(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f20)" > "$lock/session.new"
mv -f "$lock/session.new" "$lock/session"

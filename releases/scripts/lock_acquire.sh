#!/bin/sh
# Take the deploy lock: an atomic mkdir of "$1", run as root on the server. The holder's
# information (JSON) comes on standard input. Exit 75: someone holds it; any other failure
# (a missing folder, a full disk) is an error with mkdir's own message, never "held".
# Then record the holder's SSH session: the first sshd ancestor of this shell, with its
# start time (which tells a reused PID apart).
set -eu
lock="$1"
if ! mkdir "$lock" 2>/dev/null; then
  [ -e "$lock" ] && exit 75
  mkdir "$lock" || exit 1
fi
cat > "$lock/info.json"
p=$$
while [ "$p" -gt 1 ]; do
  case "$(cat "/proc/$p/comm")" in sshd*) break ;; esac
  p=$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f2)
done
echo "$p $(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f20)" > "$lock/session"

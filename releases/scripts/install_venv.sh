#!/bin/sh
# Give the release "$1" its venv with the locked dependencies of "$1/wheelhouse", as root.
#
# When another release on the server was installed from the very same requirements (same
# SHA-256, recorded in its venv), its venv is copied (cp -a keeps the compiled bytecode and
# its timestamps) and the project itself is uninstalled from the copy: the app wheel goes in
# afterwards. A venv runs from any place as long as it is started as <venv>/bin/python
# (sys.prefix follows the interpreter's path), which is how every unit starts it. Otherwise
# a fresh venv is made from the wheelhouse with no index, and compiled on every core.
# The venv is built under a temporary name and renamed at the end: a release whose venv
# exists is complete.
set -eu
release="$1"
project="$2"
requirements="$release/wheelhouse/requirements.txt"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
partial="$release/venv.partial"
rm -rf "$partial"
for other in "${release%/*}"/*/; do
  other="${other%/}"
  [ "$other" = "$release" ] && continue
  [ -x "$other/venv/bin/python" ] || continue
  [ "$(cat "$other/venv/.tas-requirements" 2>/dev/null)" = "$wanted" ] || continue
  if cp -a "$other/venv" "$partial" 2>/dev/null &&
    "$partial/bin/python" -m pip uninstall -q -y "$project" >/dev/null 2>&1 &&
    "$partial/bin/python" -c "import sys; assert sys.prefix == '$partial', sys.prefix"; then
    mv -T "$partial" "$release/venv"
    echo "copied from ${other##*/}"
    exit 0
  fi
  rm -rf "$partial"
done
python3 -m venv "$partial"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$partial/bin/python" -m pip install -q --no-index \
  --no-compile --find-links "$release/wheelhouse" --require-hashes -r "$requirements"
"$partial/bin/python" -m compileall -q -j 0 "$partial/lib" >/dev/null
echo "$wanted" > "$partial/.tas-requirements"
mv -T "$partial" "$release/venv"
echo "installed from the wheelhouse"

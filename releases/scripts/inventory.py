"""What a server holds, read in one go as root by its python3 (stdlib only).

Arguments: APP_ROOT RELEASES_DIR DATABASE FAILED_MARK. Prints one JSON object: every
release directory's manifest.json and deploy.json, the current and previous links, which
releases a running process uses (/proc/*/cwd, exe and maps), whether the database can be
read and its Alembic revision, and free disk space.
"""

import json
import os
import shutil
import subprocess
import sys

root, releases_dir, database, failed_mark = sys.argv[1:5]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def target(link):
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


releases = []
names = sorted(os.listdir(releases_dir)) if os.path.isdir(releases_dir) else []
for name in names:
    path = os.path.join(releases_dir, name)
    # ".deleting-*": a release being deleted (releases.steps.remove_releases).
    if name.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
        continue
    failed = None
    if os.path.exists(os.path.join(path, failed_mark)):
        failed = open(os.path.join(path, failed_mark)).read().strip() or "failed"
    releases.append(
        {
            "name": name,
            "manifest": load(os.path.join(path, "manifest.json")),
            "deploy": load(os.path.join(path, "deploy.json")),
            "failed": failed,
            "complete": os.path.exists(os.path.join(path, "venv", "bin", "python")),
        }
    )

in_use = set()
prefix = releases_dir + "/"
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    paths = []
    for link in ("cwd", "exe"):
        try:
            paths.append(os.readlink(f"/proc/{pid}/{link}"))
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/maps") as f:
            paths += [p[5].strip() for p in (line.split(None, 5) for line in f) if len(p) == 6]
    except OSError:
        pass
    for p in paths:
        if p.startswith(prefix):
            in_use.add(p[len(prefix) :].split("/", 1)[0])


def psql(sql):
    r = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-qtA", "-d", database, "-c", sql],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


revision = None
db_ok = psql("SELECT 1") == "1"
if db_ok and psql("SELECT to_regclass('public.alembic_version')"):
    revision = psql("SELECT version_num FROM alembic_version") or None
usage = shutil.disk_usage(root) if os.path.isdir(root) else None
print(
    json.dumps(
        {
            "releases": releases,
            "current": target(os.path.join(root, "current")),
            "previous": target(os.path.join(root, "previous")),
            "in_use": sorted(in_use),
            "db_ok": db_ok,
            "db_revision": revision,
            "disk_free": usage.free if usage else None,
            "disk_total": usage.total if usage else None,
        }
    )
)

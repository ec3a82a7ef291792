"""``alembic upgrade START:END --sql`` with the migrations of an exported release tree.

Run here by ``invoke deploy --dry-run`` as ``python offline_sql.py START END TREE`` with
TREE first on PYTHONPATH: the SQL is that release's, not this checkout's.
"""

import sys

from alembic import command

import db
from db import migrate

assert db.__file__.startswith(sys.argv[3]), db.__file__
start, end = sys.argv[1], sys.argv[2]
config = migrate.alembic_config("postgresql://offline@localhost/tas", configure_logging=False)
command.upgrade(config, f"{start}:{end}" if start else end, sql=True)

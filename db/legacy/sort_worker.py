"""The worker process of :class:`db.legacy.attempts.SortingWorker` (``python -m``).

A module of its own, which nothing imports: run as ``__main__`` it must not be the
module whose classes travel pickled between the two processes.
"""

from __future__ import annotations

import pickle
import sys

from db.legacy.attempts import sort_file


def main() -> None:
    path, header_cells, rules, progress = pickle.load(sys.stdin.buffer)  # noqa: S301
    sort_file(path, header_cells, rules, progress)


if __name__ == "__main__":
    main()

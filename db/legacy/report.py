"""The import report: per-file counts, problems (``file:line: column: reason``), notes."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

# A folder with a million bad rows must not produce a million-line report; the counts
# stay exact and the refused-rows CSV (with --skip-invalid) keeps every one.
MAX_LISTED = 1000

STATUS_IMPORTED = "imported"
STATUS_REFUSED = "refused"
STATUS_DRY_RUN = "dry-run"


@dataclass
class FileCounts:
    """What happened to the rows of one file.

    ``created``: new rows; ``updated``: rows imported before whose legacy row changed
    (see the package docstring); ``skipped``: already imported and unchanged, or not
    importable by design (deleted in the old app, exact duplicates); ``refused``: invalid.
    """

    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "refused": self.refused,
        }


@dataclass
class ImportReport:
    data_dir: str
    user_id: int
    username: str
    timezone: str
    dry_run: bool
    skip_invalid: bool
    status: str = STATUS_IMPORTED
    files: dict[str, FileCounts] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    # Files and columns of the old app read but with no home in the web app yet, and why.
    pending: list[str] = field(default_factory=list)
    backup_dir: str | None = None
    refused_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return self.status == STATUS_REFUSED

    def counts(self, filename: str) -> FileCounts:
        return self.files.setdefault(filename, FileCounts())

    def problem(self, filename: str, line: int, column: str, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(f"{filename}:{line}: {column or '-'}: {reason}")

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_LISTED:
            self.warnings.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "data_dir": self.data_dir,
            "user_id": self.user_id,
            "username": self.username,
            "timezone": self.timezone,
            "dry_run": self.dry_run,
            "skip_invalid": self.skip_invalid,
            "files": {name: counts.as_dict() for name, counts in self.files.items()},
            "problems": list(self.problems),
            "problem_count": self.problem_count,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "skipped_files": list(self.skipped_files),
            "ignored_files": list(self.ignored_files),
            "pending": list(self.pending),
            "backup_dir": self.backup_dir,
            "refused_files": list(self.refused_files),
            "seconds": round(self.seconds, 3),
        }

    def render_text(self) -> str:
        mode = " (dry run: nothing was changed)" if self.dry_run else ""
        lines = [
            f"Legacy import of {self.data_dir} for {self.username} "
            f"(times read as {self.timezone}){mode}",
            "",
            f"{'file':<22}{'created':>9}{'updated':>9}{'skipped':>9}{'refused':>9}",
        ]
        for name, c in self.files.items():
            lines.append(f"{name:<22}{c.created:>9}{c.updated:>9}{c.skipped:>9}{c.refused:>9}")
        for name in self.skipped_files:
            lines.append(f"{name:<22} skipped: the web version has no such feature")
        for name in self.ignored_files:
            lines.append(f"{name:<22} ignored: not a file of the old app")
        if self.pending:
            lines += ["", "Read but not imported yet:", *(f"- {p}" for p in self.pending)]
        if self.notes:
            lines += ["", *self.notes]
        if self.warnings:
            lines += ["", f"Warnings ({len(self.warnings)}):", *self.warnings]
        if self.problem_count:
            lines += ["", f"Problems ({self.problem_count}):", *self.problems]
            hidden = self.problem_count - len(self.problems)
            if hidden:
                lines.append(f"... and {hidden} more")
        lines += ["", self._verdict()]
        return "\n".join(lines)

    def _verdict(self) -> str:
        if self.status == STATUS_REFUSED:
            return (
                "Refused: nothing was imported. Fix the rows listed above, or import the "
                "valid rows only with the skip-invalid option."
            )
        if self.dry_run:
            verdict = "Dry run: this is what an import would do; nothing was changed."
            if self.problem_count and not self.skip_invalid:
                verdict = "Dry run: an import would be refused because of the problems above."
            return verdict
        parts = [f"Imported in {self.seconds:.1f} s."]
        if self.backup_dir:
            parts.append(f"Original files backed up in {self.backup_dir}.")
        if self.refused_files:
            parts.append("Refused rows written to " + ", ".join(self.refused_files) + ".")
        return " ".join(parts)

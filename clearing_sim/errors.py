"""The project's typed errors, and the exit code each maps to.

Owns: the split between bad input (exit 2: the user can fix it, never a traceback)
and a broken invariant or bug, or outputs the machine would not let us write (exit 1). Must never import the model or the CLI.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

import attrs

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input the user can fix: a scenario, a sweep file, a clearing file, a path."""

    exit_code = EXIT_BAD_INPUT


@attrs.frozen
class Problem:
    """One thing wrong with a scenario: where (dotted path and YAML line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "(top level)"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


class ScenarioError(InputError):
    """A scenario file that cannot be simulated; lists every problem found."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = tuple(problems)
        lines = [f"{source}: invalid scenario ({len(self.problems)} problem(s))"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# What a write fails with that no other folder or input would cure: the disk or quota is
# full, the file too large, the device failing. (A read-only or forbidden folder is the
# user's choice of folder.) The console and `--out` treat these as the machine's (exit 1).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


class WriteError(Exception):
    """The outputs could not be written: the disk filled, a folder became read-only. The
    machine's condition, neither bad input nor a bug: exit 1 with a one-line reason."""

    exit_code = EXIT_INTERNAL


class InvariantError(Exception):
    """An invariant of the simulation broke: a bug, never the user's fault (exit 1)."""

    exit_code = EXIT_INTERNAL

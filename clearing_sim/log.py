"""Logging: JSON lines into the run folder's `log.jsonl`, readable lines on the console.

Owns: structlog's configuration. The log is the one run-folder file allowed to differ
between identical runs (it carries wall-clock timestamps). Must never write to
stdout, which belongs to the CLI's tables.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog


class _Tee:
    """Write each event as a JSON line to a file; return the console rendering."""

    def __init__(self, fh: IO[str] | None, console: bool):
        self.fh = fh
        self.console = console
        self._json = structlog.processors.JSONRenderer(sort_keys=True)
        self._console = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    def __call__(self, logger: Any, name: str, event: dict) -> str:
        if self.fh is not None:
            self.fh.write(self._json(logger, name, dict(event)) + "\n")
            self.fh.flush()
        if not self.console:
            raise structlog.DropEvent
        shown = {k: v for k, v in event.items() if k != "timestamp"}
        return self._console(logger, name, shown)


def configure(log_file: IO[str] | None = None, console: bool = True, level: int = logging.INFO) -> None:
    """Route structlog events to `log_file` (JSON) and, if `console`, to stderr."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _Tee(log_file, console),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bind: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger("clearing_sim").bind(**bind)

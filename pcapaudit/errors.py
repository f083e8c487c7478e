"""Exceptions that end a run. Each message names the file, interface or flag at fault."""

from __future__ import annotations


class PcapAuditError(Exception):
    """Base class: the CLI prints ``str(exc)`` on one line and exits 2."""


class CaptureError(PcapAuditError):
    """A capture file or interface cannot be read (missing, bad magic, no permission...)."""


class RulesetError(PcapAuditError):
    """A ruleset file is invalid; the message reads ``file: path.to.field: problem``."""


class UsageError(PcapAuditError):
    """A bad flag or option value."""


class ConfigError(UsageError):
    """A bad config file (``--config``, ``audit(config=)``) or value in it: the message names the file."""


def one_line(e: object) -> str:
    """An error message on one line, whatever a hostile file name or ruleset value carries."""
    return str(e).replace("\r", "\\r").replace("\n", "\\n")

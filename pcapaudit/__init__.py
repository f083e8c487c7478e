"""pcapaudit: audit packet captures against Apple and MDM vendor network requirements.

>>> import pcapaudit
>>> result = pcapaudit.audit("captures/enrollment-troubleshooting.pcap")   # doctest: +SKIP
>>> result.findings, result.coverage, result.flows                          # doctest: +SKIP
"""

from pcapaudit.audit import AuditOptions, Auditor, audit
from pcapaudit.errors import CaptureError, PcapAuditError, RulesetError, UsageError
from pcapaudit.result import AuditResult
from pcapaudit.rules.loader import load_rulebook

try:
    from importlib.metadata import version as _version

    __version__ = _version("pcapaudit")
except Exception:  # noqa: BLE001 - run from a source tree that was never installed
    __version__ = "0+unknown"

audit_file = audit

__all__ = [
    "AuditOptions", "AuditResult", "Auditor", "CaptureError", "PcapAuditError", "RulesetError", "UsageError",
    "__version__", "audit", "audit_file", "load_rulebook",
]  # fmt: skip

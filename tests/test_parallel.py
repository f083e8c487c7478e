"""--jobs N gives the same report as one process (flows partitioned by client endpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions
from pcapaudit.parallel import audit_parallel, auto_jobs

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = [ROOT / "captures" / "enrollment-troubleshooting.pcap"] + sorted(
    (ROOT / "tests" / "scenarios").glob("*/input.pcap"))


def _view(r):
    flows = r.flows[["uid", "src_ip", "src_port", "dst_ip", "dst_port", "pkts_c2s", "pkts_s2c", "state", "sni",
                     "dns_name", "rule_id", "verdict", "tls_handshake"]]  # fmt: skip
    findings = sorted((f.identifier, f.count, f.severity) for f, _ in r.finding_records)
    cov = r.coverage[["rule_id", "status", "flows"]].sort_values("rule_id").reset_index(drop=True)
    return flows.reset_index(drop=True), findings, cov, r.stats.packets, r.dns_count


@pytest.mark.parametrize("path", CAPTURES, ids=[p.parent.name if p.name == "input.pcap" else p.stem for p in CAPTURES])
def test_parallel_equals_single(path):
    opts = AuditOptions(trust_issuers=("pcapaudit Lab Trust Services",), tenants={"jamf-pro.instance": "acme"})
    one = _view(audit_parallel(opts, [str(path)], 1))
    for jobs in (2, 3):
        many = _view(audit_parallel(opts, [str(path)], jobs))
        assert one[0].equals(many[0]), jobs  # flows
        assert one[1] == many[1], jobs  # findings (identifier, count, severity)
        assert one[2].equals(many[2]), jobs  # checklist
        assert one[3:] == many[3:], jobs  # packets, DNS transactions


def test_auto_jobs_small_files_stay_single(tmp_path):
    assert auto_jobs([str(CAPTURES[0])]) == 1
    assert auto_jobs(["-"]) == 1

"""A tenant's region, configured or inferred from its device-domain flows (findings.region_findings)."""

from __future__ import annotations

from pathlib import Path

import pcapaudit

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "kandji-region-mismatch" / "input.pcap"
UUID = "8b1d6e2f-3a4c-4b7d-8e9f-0a1b2c3d4e5f"
TRUST = ("pcapaudit Lab Trust Services",)


def _codes(r):
    return sorted(f.code for f, _u in r.finding_records)


def test_device_domain_flows_to_both_regions_are_said_when_no_region_is_set():
    """The scenario's device reaches its tenant's EU host and the US one, once each: a tie, from which no
    region can be inferred. Before, that gave no finding and no word: the region mismatch went unreported.
    Now an info note says both regions were reached and how to settle it."""
    r = pcapaudit.audit(str(SCENARIO), tenants={"kandji.uuid": UUID}, trust_issuers=TRUST)
    notes = [(f, u) for f, u in r.finding_records if f.code == "region_ambiguous"]
    assert len(notes) == 1, _codes(r)
    f, uids = notes[0]
    assert str(f.severity) == "info" and f.vendor == "kandji"
    assert "kandji.region" in f.message and "eu" in f.message and "us" in f.message
    assert len(uids) == 2 and set(uids) <= set(r.flows["uid"])
    assert "region_mismatch" not in _codes(r)


def test_a_configured_region_needs_no_note():
    r = pcapaudit.audit(str(SCENARIO), tenants={"kandji.uuid": UUID, "kandji.region": "eu"}, trust_issuers=TRUST)
    assert "region_ambiguous" not in _codes(r) and _codes(r).count("region_mismatch") == 2

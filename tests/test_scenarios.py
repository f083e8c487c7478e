"""Scenario captures recorded in the network lab (tests/scenarios/<name>/): each directory holds the
capture, its README, the lab's ground truth (truth.yaml) and expected.yaml, checked here with
suricata-verify-like semantics:

    args: [...]                 # extra CLI arguments (paths relative to the scenario directory)
    exit_code: 1
    findings:                   # the exact set of findings: kind code target (no extra ones allowed)
      - blocked syn_no_reply 1-courier.push.apple.com (17.57.146.20:5223)
    checks:
      - table: flows            # flows | findings | coverage | dns | weirds
        count: 1                # rows matching `match`
        match: {dst_port: 5223, state: no_reply, rule_id: apple.apns}
        comment: why this matters

Match values compare with ==; keys may end in __contains, __startswith, __gt, __gte, __lt, __lte, __in.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pcapaudit.cli import main

HERE = Path(__file__).resolve().parent / "scenarios"
SCENARIOS = sorted(p for p in HERE.iterdir() if (p / "expected.yaml").is_file()) if HERE.is_dir() else []
OPS = ("contains", "startswith", "endswith", "gt", "gte", "lt", "lte", "in", "ne")


def _cmp(value, op: str | None, want) -> bool:
    if value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        value = None
    if op is None:
        if value is None or want is None:
            return value is None and want is None
        if isinstance(want, bool):
            return bool(value) == want
        return str(value) == str(want)
    if op == "ne":
        return str(value) != str(want)
    if op == "in":
        return str(value) in [str(w) for w in want]
    if value is None:
        return False
    if op == "contains":
        return str(want) in str(value)
    if op == "startswith":
        return str(value).startswith(str(want))
    if op == "endswith":
        return str(value).endswith(str(want))
    v, w = float(value), float(want)
    return {"gt": v > w, "gte": v >= w, "lt": v < w, "lte": v <= w}[op]


def select(df: pd.DataFrame, match: dict) -> pd.DataFrame:
    """Rows of ``df`` satisfying every condition of ``match``."""
    mask = pd.Series(True, index=df.index)
    for key, want in match.items():
        col, _, op = key.partition("__")
        if op and op not in OPS:
            raise ValueError(f"unknown operator {op!r} in {key!r}")
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r} (have {', '.join(df.columns)})")
        hits = [_cmp(v, op or None, want) for v in df[col].tolist()]
        mask &= pd.Series(hits, index=df.index, dtype=bool)
    return df[mask]


def _audit(scn: Path, spec: dict, extra: list[str] | None = None):
    import pcapaudit
    from pcapaudit.audit import Auditor
    from pcapaudit.capture.pcapfile import CaptureFile
    from pcapaudit.cli import _options, build_parser

    args = [str(scn / spec.get("pcap", "input.pcap"))] + [
        str(scn / a) if a.endswith((".yaml", ".pcap")) else a for a in spec.get("args", [])
    ] + (extra or [])
    ns = build_parser().parse_args(["audit", *args])
    opts, _ = _options(ns)
    a = Auditor(opts)
    for c in ns.captures:
        a.run_file(CaptureFile(c))
    del pcapaudit
    return a.finish(), args


@pytest.mark.parametrize("scn", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario(scn: Path, capsys):
    spec = yaml.safe_load((scn / "expected.yaml").read_text())
    unknown = set(spec) - {"pcap", "args", "exit_code", "findings", "checks", "description"}
    assert not unknown, f"unknown keys in expected.yaml: {unknown}"
    result, args = _audit(scn, spec)
    assert not result.errors, result.errors
    got = sorted(f"{f.kind.value} {f.code} {f.target}" for f, _ in result.finding_records)
    want = sorted(spec.get("findings") or [])
    assert got == want, "findings differ:\n  unexpected: %s\n  missing: %s" % (
        sorted(set(got) - set(want)), sorted(set(want) - set(got)))
    for i, chk in enumerate(spec.get("checks") or []):
        bad = set(chk) - {"table", "count", "match", "comment"}
        assert not bad, f"check {i}: unknown keys {bad}"
        df = result.table(chk["table"])
        rows = select(df, chk.get("match") or {})
        assert len(rows) == chk["count"], (
            f"check {i} ({chk.get('comment', '')}): {len(rows)} rows match {chk.get('match')}, expected "
            f"{chk['count']}\n{rows.head(10).to_string()}")
    if "exit_code" in spec:
        assert main(["audit", *args, "-q", "-o", "/dev/null"]) == spec["exit_code"]
        capsys.readouterr()


def test_every_scenario_is_checked():
    dirs = [p for p in HERE.iterdir() if p.is_dir() and (p / "input.pcap").exists()] if HERE.is_dir() else []
    missing = [p.name for p in dirs if not (p / "expected.yaml").exists()]
    assert not missing, f"scenarios without expected.yaml: {missing}"
    for p in dirs:
        assert (p / "README.md").exists(), f"{p.name}: no README.md saying how the capture was made"

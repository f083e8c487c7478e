"""Draft an expected.yaml for a scenario directory from what pcapaudit reports now.

    python tests/tools/new_scenario.py tests/scenarios/NAME [--args "--config ../lab.yaml"]

The draft lists every finding and one flows check per vendor flow. A human must compare it with the
scenario's truth.yaml and README, delete what is not worth pinning, and fix anything that is wrong
before committing: the point of expected.yaml is that a person decided it is right.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.test_scenarios import _audit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--args", default="--config ../lab.yaml")
    ns = ap.parse_args()
    scn = Path(ns.scenario)
    spec = {"args": shlex.split(ns.args)}
    result, _ = _audit(scn, spec)
    spec["exit_code"] = 1 if any(int(f.severity) >= 2 for f, _ in result.finding_records) else 0
    spec["findings"] = sorted(f"{f.kind.value} {f.code} {f.target}" for f, _ in result.finding_records)
    checks = []
    for row in result.flows[result.flows.rule_id.notna()].itertuples():
        checks.append({"table": "flows", "count": 1, "match": {
            "dst_ip": row.dst_ip, "dst_port": int(row.dst_port), "rule_id": row.rule_id, "state": row.state}})
    spec["checks"] = checks
    print(yaml.safe_dump(spec, sort_keys=False, width=120))


if __name__ == "__main__":
    main()

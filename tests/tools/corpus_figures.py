#!/usr/bin/env python3
"""The corpus figures of the closing notes: SNI, packets per flow and DNS names matched against the
source tools' expectations, flows in all, and whether -j1 equals -j2 (and the core the Python engine).

    python tests/tools/corpus_figures.py [--engine core|fast] [--jobs] [--engines]

Counting follows tests/test_corpus.py (the same keys, the same known differences), but counts instead of
asserting, so one number per check. Needs ../shared/corpus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pcapaudit  # noqa: E402
from tests import test_corpus as tc  # noqa: E402


def figures(engine: str) -> dict:
    import json

    out = {"files": 0, "flows": 0, "sni": [0, 0], "pkts": [0, 0], "dns": [0, 0]}
    for ej in tc.EXPECTED:
        path = tc._pcap(ej)
        if not path.exists():
            continue
        exp = json.loads(ej.read_text())
        res = pcapaudit.audit(str(path), engine=engine)
        out["files"] += 1
        out["flows"] += len(res.flows)
        idx = tc._index(res)
        flows = tc._flows(res)
        for t in exp["tls"] + exp["quic"]:
            sni = t.get("sni")
            if not sni:
                continue
            want = {s.lower() for s in ([sni] if isinstance(sni, str) else sni)}
            k = tc._key(t["flow"]) if t.get("flow") else None
            got = {f.sni for f in (idx.get(k, []) if k else flows)}
            out["sni"][1] += 1
            out["sni"][0] += bool(got & want)
        for fl in exp["flows"]:
            if str(fl.get("proto", "")).lower() not in ("tcp", "udp", "icmp"):
                continue
            k = tc._key(fl)
            if k is None:
                continue
            want = (fl.get("c2s_pkts") or 0) + (fl.get("s2c_pkts") or 0) if "c2s_pkts" in fl else (
                (fl.get("src_packets") or 0) + (fl.get("dst_packets") or 0))
            totals = [f.total for f in idx.get(k, [])]
            out["pkts"][1] += 1
            out["pkts"][0] += want in totals or sum(totals) == want
        queries = set(res.dns["query"].dropna())
        for d in exp["dns"]:
            names = d.get("hosts") or ([d["query"]] if d.get("query") else [])
            names = [n.lower().rstrip(".") for n in names if n]
            if not names:
                continue
            out["dns"][1] += 1
            out["dns"][0] += any(n in queries for n in names) or any(
                tc._same_label_escape(n, q) for n in names for q in queries)
    return out


def same_report(path: str, a: dict, b: dict) -> bool:
    ra, rb = pcapaudit.audit(path, **a), pcapaudit.audit(path, **b)
    for name, by in (("flows", ["uid"]), ("findings", ["identifier"]), ("coverage", ["vendor", "rule_id"]),
                     ("dns", ["uid", "ts", "trans_id"])):  # fmt: skip
        x, y = getattr(ra, name), getattr(rb, name)
        if len(x) != len(y):
            return False
        cols = [c for c in x.columns if c != "uids"]
        x = x[cols].astype(str).sort_values(by).reset_index(drop=True)
        y = y[cols].astype(str).sort_values(by).reset_index(drop=True)
        if not x.equals(y):
            return False
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", default="core")
    p.add_argument("--jobs", action="store_true", help="also check -j1 == -j2 on every file")
    p.add_argument("--engines", action="store_true", help="also check the core against the Python engine")
    a = p.parse_args()
    f = figures(a.engine)
    print(f"{a.engine}: {f['files']} files, {f['flows']:,} flows; SNI {f['sni'][0]}/{f['sni'][1]}, packets per flow "
          f"{f['pkts'][0]:,}/{f['pkts'][1]:,}, DNS names {f['dns'][0]}/{f['dns'][1]}")  # fmt: skip
    paths = [str(tc._pcap(ej)) for ej in tc.EXPECTED if tc._pcap(ej).exists()]
    if a.jobs:
        from pcapaudit.parallel import audit_parallel
        from pcapaudit.audit import AuditOptions

        bad = []
        for path in paths:
            one = pcapaudit.audit(path, engine=a.engine)
            two = audit_parallel(AuditOptions(engine=a.engine), [path], 2)
            if not (one.flows.sort_values("uid").reset_index(drop=True).astype(str).equals(
                    two.flows.sort_values("uid").reset_index(drop=True).astype(str))):
                bad.append(path)
        print(f"-j1 == -j2 (flows table): {len(paths) - len(bad)}/{len(paths)}" + (f"; differ: {bad}" if bad else ""))
    if a.engines:
        bad = [p_ for p_ in paths if not same_report(p_, {"engine": "fast"}, {"engine": "core"})]
        print(f"core == Python engine (flows, findings, checklist, dns): {len(paths) - len(bad)}/{len(paths)}"
              + (f"; differ: {[Path(b).name for b in bad]}" if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

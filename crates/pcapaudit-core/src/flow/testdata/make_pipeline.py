"""Writes pipeline.txt: whole captures (the scenario captures and the bridged "tcpdump -i any" ones) through
the Python pipeline as Auditor.feed_batch runs it (decode, interface-copy dedup, flow engine), for the
end-to-end test in flow/tests.rs (capture reader + decoder + engine in Rust).

Run from the repository root: PYTHONPATH=. python crates/pcapaudit-core/src/flow/testdata/make_pipeline.py
Lines: "S path" (relative to the repository root), then the rows in emission order ("F", "D" as in
scenarios.txt, "W name uid" for every weird), then "T packets decoded not_ip copies".
"""

import importlib.util
from pathlib import Path

from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.decode import FAST, Decoder
from pcapaudit.dedup import InterfaceCopies
from pcapaudit.engine import EngineConfig, FlowEngine

here = Path(__file__).parent
spec = importlib.util.spec_from_file_location("ms", here / "make_scenarios.py")
files = sorted(Path("tests/scenarios").glob("*/input.pcap")) + sorted(Path("tests/assets/bridged").glob("*.pcap"))

out = []


def s(v):
    if v is None:
        return "-"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# the line writers of make_scenarios.py, without running it
src = (here / "make_scenarios.py").read_text()
ns: dict = {}
exec(src.split("out = []")[0], ns)  # noqa: S102 - our own generator's helper functions
flow_line, dns_line = ns["flow_line"], ns["dns_line"]

for path in files:
    out.append(f"S\t{path}")
    rows = []
    eng = FlowEngine(rows.append, rows.append, rows.append, EngineConfig())
    dec = Decoder("fast")
    copies = InterfaceCopies()
    packets = decoded = not_ip = 0
    src_ = CaptureFile(str(path))
    for b in src_.batches(first_index=packets):
        res = dec.decode(b)
        for row, name, detail in res.weirds:
            out.append(f"W\t{name}\t-")
        decoded += int((res.cols.status == FAST).sum())
        copies.drop(b.ts, res)
        eng.process(b, res)
        packets += len(b)
        not_ip += res.not_ip
        for r in rows:
            t = type(r).__name__
            out.append(flow_line(r) if t == "FlowRecord" else dns_line(r) if t == "DnsTransaction"
                       else f"W\t{r.name}\t{s(r.uid)}")
        rows.clear()
    eng.flush()
    for r in rows:
        t = type(r).__name__
        out.append(flow_line(r) if t == "FlowRecord" else dns_line(r) if t == "DnsTransaction"
                   else f"W\t{r.name}\t{s(r.uid)}")
    out.append(f"T\t{packets}\t{decoded}\t{not_ip}\t{copies.count}")
(here / "pipeline.txt").write_text("\n".join(out) + "\n")

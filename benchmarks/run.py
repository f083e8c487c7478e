#!/usr/bin/env python3
"""Benchmark runner: pcapaudit vs tshark vs nfstream on one synthetic capture.

    python benchmarks/run.py                       # 2M packets, 3 runs per tool
    python benchmarks/run.py --packets 20000 --repeat 1
    python benchmarks/run.py --capture my.pcap --truth my.truth.json
    python benchmarks/run.py --scale               # pcapaudit RSS on 200k / 1M / 2M packets
    python benchmarks/run.py --json-out results.json

Generated captures are cached under benchmarks/.cache/ (git-ignored) and reused
while benchmarks/gen_capture.py is unchanged.  Every timing is the median of
--repeat runs; peak RSS is the largest seen over those runs.  See README.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
GEN = HERE / "gen_capture.py"

sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import gen_capture  # noqa: E402  (constants only: TLS ports, version)

ALL_TOOLS = ("pcapaudit", "tshark", "tshark-ooo", "nfstream", "nfstream-nodpi")
TSHARK_FIELDS = ("frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "ip.dst", "ipv6.dst",
                 "tcp.dstport", "udp.dstport", "tcp.flags", "tls.handshake.extensions_server_name",
                 "dns.qry.name", "dns.a")

NFSTREAM_CHILD = r"""
import json, sys
from nfstream import NFStreamer
src, n_dissections, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kw = {"source": src, "statistical_analysis": False}
if n_dissections >= 0:
    kw["n_dissections"] = n_dissections
flows, sni = 0, []
for f in NFStreamer(**kw):
    flows += 1
    name = getattr(f, "requested_server_name", "")
    if name:
        sni.append([f.protocol, f.src_ip, f.src_port, f.dst_ip, f.dst_port, name])
with open(out, "w") as fh:
    json.dump({"flows": flows, "sni": sni}, fh)
print(flows)
"""


# ----------------------------------------------------------------------------
# process measurement
# ----------------------------------------------------------------------------

def _proc_table():
    """{pid: ppid} for every process (no psutil)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rp = data.rfind(b")")
        try:
            table[int(name)] = int(data[rp + 2:].split()[1])
        except (ValueError, IndexError):
            pass
    return table


def _status_kb(pid, keys=(b"VmRSS:", b"VmHWM:")):
    out = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                for k in keys:
                    if line.startswith(k):
                        out[k[:-1].decode()] = int(line.split()[1])
    except OSError:
        pass
    return out


class TreeSampler(threading.Thread):
    """Polls /proc every `interval` s: sum of VmRSS over the process tree, max VmHWM per process."""

    def __init__(self, root_pid, interval=0.05):
        super().__init__(daemon=True)
        self.root, self.interval = root_pid, interval
        self.peak_tree_kb = 0
        self.peak_proc_kb = 0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            table = _proc_table()
            kids = {}
            for pid, ppid in table.items():
                kids.setdefault(ppid, []).append(pid)
            tree, todo = [], [self.root]
            while todo:
                p = todo.pop()
                if p in table:
                    tree.append(p)
                todo.extend(kids.get(p, ()))
            total = 0
            for pid in tree:
                st = _status_kb(pid)
                total += st.get("VmRSS", 0)
                self.peak_proc_kb = max(self.peak_proc_kb, st.get("VmHWM", 0))
            self.peak_tree_kb = max(self.peak_tree_kb, total)
            self.max_procs = max(self.max_procs, len(tree))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


def measure(cmd, *, env=None, cwd=None, stdout_path=None, stderr_path=None, timeout=None):
    """Run cmd; return dict(wall, exit, rss_kb, rss_tree_kb, rss_proc_kb, procs, timed_out)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        sampler = TreeSampler(p.pid)
        sampler.start()
        timed_out = False
        timer = None
        if timeout:
            def kill():
                nonlocal timed_out
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            timer = threading.Timer(timeout, kill)
            timer.start()
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        sampler.stop()
        p.returncode = os.waitstatus_to_exitcode(status)
        # children the tool left behind (should not happen) are ended with its process group
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    finally:
        if stdout_path:
            out.close()
        if stderr_path:
            err.close()
    proc_kb = max(ru.ru_maxrss, sampler.peak_proc_kb)  # ru_maxrss: largest of the child and its waited-for descendants
    return {"wall": wall, "exit": p.returncode, "timed_out": timed_out,
            "rss_kb": max(sampler.peak_tree_kb, proc_kb), "rss_tree_kb": sampler.peak_tree_kb,
            "rss_proc_kb": proc_kb, "procs": sampler.max_procs}


# ----------------------------------------------------------------------------
# captures
# ----------------------------------------------------------------------------

def gen_hash():
    """Fingerprint of gen_capture.py's code (comments and docstrings excluded): cached captures
    are regenerated when the generator's behaviour may have changed, not when its docs did."""
    import ast
    import hashlib
    tree = ast.parse(GEN.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def ensure_capture(packets, seed, fmt, log):
    """Generate (or reuse) benchmarks/.cache/capture-<packets>-seed<seed>.<fmt> and its truth."""
    CACHE.mkdir(exist_ok=True)
    stem = CACHE / f"capture-{packets}-seed{seed}"
    cap = stem.with_suffix("." + fmt)
    truth = Path(str(stem) + ".truth.json")
    meta_p = Path(str(stem) + f".{fmt}.meta.json")
    h = gen_hash()
    if cap.exists() and truth.exists() and meta_p.exists():
        try:
            meta = json.loads(meta_p.read_text())
        except ValueError:
            meta = {}
        if meta.get("generator_fingerprint") == h and meta.get("size") == cap.stat().st_size:
            meta["cached"] = True
            log(f"reusing cached capture {rel(cap)} (generated in {meta.get('gen_seconds', 0):.1f} s)")
            return cap, truth, meta
    log(f"generating {rel(cap)} ({packets} packets, seed {seed}) ...")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(GEN), str(cap), "--packets", str(packets), "--seed", str(seed),
                        "--format", fmt, "--truth", str(truth)], stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"gen_capture.py failed:\n{r.stderr}")
    for line in r.stderr.splitlines():
        log("  " + line)
    meta = {"generator_fingerprint": h, "packets": packets, "seed": seed, "format": fmt,
            "size": cap.stat().st_size, "gen_seconds": round(dt, 2), "cached": False}
    meta_p.write_text(json.dumps(meta, indent=1))
    return cap, truth, meta


def rel(p):
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def count_packets(path):
    """Packet count of a pcap / pcapng file (capinfos when available, else tshark)."""
    if shutil.which("capinfos"):
        r = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if "Number of packets" in line:
                return int(line.split(":")[1].strip())
    return None


# ----------------------------------------------------------------------------
# tools
# ----------------------------------------------------------------------------

class Tool:
    def __init__(self, name, cmd=None, env=None, cwd=None, status="ok", why="", version=""):
        self.name, self.cmd, self.env, self.cwd = name, cmd, env, cwd
        self.status, self.why, self.version = status, why, version
        self.runs = []
        self.output = None  # path of the first run's output, for the correctness check


def resolve_pcapaudit(args):
    env = dict(os.environ)
    if args.pcapaudit_cmd:
        base = shlex.split(args.pcapaudit_cmd)
        if base and base[0] in ("python", "python3") and not shutil.which(base[0]):
            base[0] = sys.executable
    elif shutil.which("pcapaudit"):
        base = ["pcapaudit"]
    elif (REPO / "pcapaudit" / "__main__.py").exists():
        base = [sys.executable, "-m", "pcapaudit"]
    else:
        return Tool("pcapaudit", status="not installed",
                    why="no 'pcapaudit' on PATH and no pcapaudit/__main__.py in the repository")
    # let `python -m pcapaudit` find the package in the repository when it is not pip-installed
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if not (shutil.which(base[0]) or Path(base[0]).exists()):
        return Tool("pcapaudit", status="not installed", why=f"{base[0]!r} not found")
    try:
        r = subprocess.run(base + ["--help"], capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO))
    except (OSError, subprocess.TimeoutExpired) as e:
        return Tool("pcapaudit", status="not installed", why=f"{' '.join(base)} --help: {e}")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [""])[-1]
        return Tool("pcapaudit", status="not installed",
                    why=f"`{' '.join(base)} --help` exited {r.returncode}: {last[:200]}")
    version = ""
    try:
        v = subprocess.run(base + ["--version"], capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))
        if v.returncode == 0:
            version = (v.stdout.strip() or v.stderr.strip()).splitlines()[0][:80]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return Tool("pcapaudit", cmd=base, env=env, cwd=str(REPO), version=version)


def tshark_cmd(capture, ooo):
    cmd = ["tshark", "-r", str(capture), "-n"]
    if ooo:
        cmd += ["-o", "tcp.reassemble_out_of_order:TRUE"]
        for port in gen_capture.TLS_EXTRA_PORTS:
            cmd += ["-d", f"tcp.port=={port},tls"]
    cmd += ["-T", "fields"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    return cmd


def resolve_tshark(name):
    if not shutil.which("tshark"):
        return Tool(name, status="not installed", why="tshark not on PATH")
    v = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()
    return Tool(name, version=(v[0] if v else ""))


def nfstream_python(args):
    cands = [args.nfstream_python, os.environ.get("NFSTREAM_PYTHON"),
             str(CACHE / "nfstream-venv" / "bin" / "python"), sys.executable]
    tried = []
    for py in cands:
        if not py or py in tried or not (Path(py).exists() or shutil.which(py)):
            continue
        tried.append(py)
        r = subprocess.run([py, "-c", "import nfstream; print(nfstream.__version__)"], capture_output=True, text=True)
        if r.returncode == 0:
            return py, r.stdout.strip(), ""
    return None, "", "cannot import nfstream from " + ", ".join(tried)


def setup_nfstream(log):
    venv = CACHE / "nfstream-venv"
    CACHE.mkdir(exist_ok=True)
    log(f"creating {rel(venv)} and installing nfstream from PyPI ...")
    r = subprocess.run([sys.executable, "-m", "venv", str(venv)])
    if r.returncode == 0:
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "nfstream"])
    if r.returncode != 0:
        log("nfstream could not be installed; the runner will report it as not installed")


# ----------------------------------------------------------------------------
# correctness
# ----------------------------------------------------------------------------

def norm_ip(s):
    try:
        return str(ipaddress.ip_address(str(s).split("%")[0]))
    except ValueError:
        return str(s)


def norm_proto(p):
    p = str(p).lower()
    return {"6": "tcp", "17": "udp", "quic": "udp", "tls": "tcp"}.get(p, p)


def norm_name(n):
    return str(n).strip().rstrip(".").lower() if n else None


def truth_sni_flows(truth):
    return [r for r in truth["flows"] if r["kind"] in ("tls", "quic") and r.get("sni")]


def found_map_from_records(records):
    """{(proto, ip_a, port_a, ip_b, port_b): set(names)} keyed both ways round."""
    m = {}
    for proto, sip, sport, dip, dport, name in records:
        if not name:
            continue
        proto, sip, dip = norm_proto(proto), norm_ip(sip), norm_ip(dip)
        for k in ((proto, sip, int(sport), dip, int(dport)), (proto, dip, int(dport), sip, int(sport))):
            m.setdefault(k, set()).add(norm_name(name))
    return m


def compare_sni(truth, found, flow_keys=None):
    """Compare truth SNIs with {(proto, cip, cport, sip, sport): names}; flow_keys: keys of all flows output."""
    want = truth_sni_flows(truth)
    ok, missing, wrong = 0, [], []
    by = {"split": [0, 0], "out_of_order": [0, 0], "sni_straddles_split": [0, 0], "quic": [0, 0], "ipv6": [0, 0],
          "vlan": [0, 0]}
    for r in want:
        k = (r["proto"], norm_ip(r["client_ip"]), r["client_port"], norm_ip(r["server_ip"]), r["server_port"])
        names = found.get(k)
        hit = bool(names) and norm_name(r["sni"]) in names
        flags = {"split": r.get("split"), "out_of_order": r.get("out_of_order"),
                 "sni_straddles_split": r.get("sni_straddles_split"), "quic": r["kind"] == "quic",
                 "ipv6": ":" in r["client_ip"], "vlan": bool(r.get("vlan"))}
        for f, on in flags.items():
            if on:
                by[f][1] += 1
                by[f][0] += hit
        if hit:
            ok += 1
        else:
            entry = dict(r)
            if names:
                entry["found_sni"] = sorted(n for n in names if n)
                wrong.append(entry)
            else:
                entry["flow_in_output"] = None if flow_keys is None else (k in flow_keys)
                missing.append(entry)
    return {"truth_sni": len(want), "found": ok, "lost": len(want) - ok, "wrong_sni": len(wrong),
            "missing": missing, "wrong": wrong, "by_kind": {k: {"found": v[0], "of": v[1]} for k, v in by.items()}}


def pcapaudit_found(path):
    if str(path).endswith(".parquet"):
        import pandas as pd  # only needed for pcapaudit's own Parquet output

        df = pd.read_parquet(path, columns=["src_ip", "src_port", "dst_ip", "dst_port", "transport", "sni"])
        flows = [{k: (None if v is pd.NA else v) for k, v in r.items()} for r in df.astype(object).to_dict("records")]
    else:
        with open(path) as f:
            doc = json.load(f)
        flows = doc.get("flows", []) if isinstance(doc, dict) else doc
    recs, keys = [], set()
    for fl in flows:
        sip = fl.get("src_ip", fl.get("client_ip"))
        dip = fl.get("dst_ip", fl.get("server_ip"))
        sp = fl.get("src_port", fl.get("client_port"))
        dp = fl.get("dst_port", fl.get("server_port"))
        proto = norm_proto(fl.get("transport", fl.get("proto", "")))
        if sip is None or dip is None or sp is None or dp is None:
            continue
        try:
            sp, dp = int(sp), int(dp)
        except (TypeError, ValueError):
            continue
        a, b = norm_ip(sip), norm_ip(dip)
        keys.add((proto, a, sp, b, dp))
        keys.add((proto, b, dp, a, sp))
        recs.append((proto, a, sp, b, dp, fl.get("sni")))
    return found_map_from_records(recs), keys, len(flows)


DNS_ANSWER_DELAY = 0.2  # a truth query's answer is on the wire within this long (the truth keeps query times)


def dns_naming_check(truth, path):
    """DNS names on pcapaudit's flows against the truth.

    A truth TLS/QUIC flow is *nameable* when some client's query, made at least DNS_ANSWER_DELAY before
    the flow's first packet, was answered with the flow's server address. Such a flow should carry one
    of those query names in ``dns_names`` (names the address got only later must not appear first).
    ``own``: the flow's own client made such a query for the flow's SNI.
    """
    import bisect

    import pandas as pd

    answers: dict[str, list[tuple[float, str]]] = {}
    own: dict[tuple[str, str], list[float]] = {}
    for q in truth.get("dns", []):
        if q.get("rcode") != 0 or not q.get("answers"):
            continue
        for a in q["answers"]:
            answers.setdefault(norm_ip(a), []).append((q["ts"], q["qname"].lower().rstrip(".")))
            own.setdefault((q["client_ip"], norm_ip(a)), []).append(q["ts"])
    for v in answers.values():
        v.sort()
    df = pd.read_parquet(path, columns=["src_ip", "src_port", "dst_ip", "dst_port", "transport", "dns_name", "dns_names"])
    names = {}
    for r in df.astype(object).itertuples(index=False):
        key = (norm_proto(r.transport), norm_ip(r.src_ip), int(r.src_port), norm_ip(r.dst_ip), int(r.dst_port))
        names[key] = (None if r.dns_name is pd.NA else r.dns_name,
                      set() if r.dns_names is pd.NA or not r.dns_names else set(r.dns_names.split(";")))
    out = {"nameable": 0, "named": 0, "unnamed": 0, "wrong": 0, "own_lookup": 0, "own_named": 0, "examples": []}
    for f in truth["flows"]:
        if f["kind"] not in ("tls", "quic"):
            continue
        sip = norm_ip(f["server_ip"])
        lst = answers.get(sip, [])
        i = bisect.bisect_right(lst, (f["first_ts"] - DNS_ANSWER_DELAY, "\uffff"))
        before = {n for _, n in lst[:i]}
        if not before:
            continue
        out["nameable"] += 1
        key = (norm_proto(f["proto"]), norm_ip(f["client_ip"]), f["client_port"], sip, f["server_port"])
        got_name, got = names.get(key, (None, set()))
        is_own = any(t < f["first_ts"] - DNS_ANSWER_DELAY for t in own.get((f["client_ip"], sip), ()))
        out["own_lookup"] += is_own
        if got & before:
            out["named"] += 1
            out["own_named"] += is_own
        elif got_name is None:
            out["unnamed"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append(f"{f['client_ip']}:{f['client_port']} -> {sip}:{f['server_port']} unnamed "
                                       f"(answered before: {sorted(before)[:3]})")
        else:
            out["wrong"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append(f"{f['client_ip']}:{f['client_port']} -> {sip}:{f['server_port']} named "
                                       f"{got_name!r}, answered before: {sorted(before)[:3]}")
    return out


def tshark_found(path):
    recs = []
    with open(path, errors="replace") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 11 or not p[10]:
                continue
            src, dst = p[1] or p[2], p[5] or p[6]
            proto = "tcp" if p[3] else "udp"
            try:
                sp, dp = int(p[3] or p[4]), int(p[7] or p[8])
            except ValueError:
                continue
            for name in p[10].split(","):
                recs.append((proto, src, sp, dst, dp, name))
    return found_map_from_records(recs)


def nfstream_found(path):
    with open(path) as f:
        doc = json.load(f)
    recs = [(("tcp" if pr == 6 else "udp" if pr == 17 else str(pr)), s, sp, d, dp, n)
            for pr, s, sp, d, dp, n in doc["sni"]]
    return found_map_from_records(recs), doc["flows"]


# ----------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------

def fmt_mb(kb):
    return f"{kb / 1024:,.0f} MB" if kb else "-"


def summarize(tool, packets, size):
    ok = [r for r in tool.runs if not r["timed_out"]]
    if not ok:
        return None
    walls = [r["wall"] for r in ok]
    med = statistics.median(walls)
    return {"runs": len(tool.runs), "wall_median_s": round(med, 3), "wall_min_s": round(min(walls), 3),
            "wall_max_s": round(max(walls), 3), "packets_per_s": round(packets / med) if med else None,
            "mb_per_s": round(size / 1e6 / med, 2) if med else None,
            "peak_rss_kb": max(r["rss_kb"] for r in ok), "peak_rss_tree_kb": max(r["rss_tree_kb"] for r in ok),
            "peak_rss_proc_kb": max(r["rss_proc_kb"] for r in ok), "max_procs": max(r["procs"] for r in ok),
            "exit_codes": sorted({r["exit"] for r in tool.runs})}


def print_table(tools, packets, size, out=sys.stdout):
    hdr = f"{'tool':<16}{'runs':>5}{'wall (median)':>15}{'min':>9}{'max':>9}{'packets/s':>12}{'MB/s':>9}{'peak RSS':>11}{'procs':>6}  exit"
    print(hdr, file=out)
    print("-" * len(hdr), file=out)
    for t in tools:
        if t.status != "ok":
            print(f"{t.name:<16}  {t.name}: {t.status}" + (f" ({t.why})" if t.why else ""), file=out)
            continue
        s = t.summary
        if not s:
            print(f"{t.name:<16}  timed out", file=out)
            continue
        print(f"{t.name:<16}{s['runs']:>5}{s['wall_median_s']:>13.2f} s{s['wall_min_s']:>8.2f}s{s['wall_max_s']:>8.2f}s"
              f"{s['packets_per_s']:>12,}{s['mb_per_s']:>9.1f}{fmt_mb(s['peak_rss_kb']):>11}{s['max_procs']:>6}  "
              f"{','.join(map(str, s['exit_codes']))}", file=out)


def describe_missing(r):
    flags = [f for f in ("split", "out_of_order", "sni_straddles_split") if r.get(f)]
    if r.get("vlan"):
        flags.append(f"vlan{r['vlan']}")
    extra = ""
    if "found_sni" in r:
        extra = f" found={','.join(r['found_sni'])}"
    elif r.get("flow_in_output") is False:
        extra = " (flow not in output)"
    elif r.get("flow_in_output"):
        extra = " (flow in output without this SNI)"
    return (f"{r['proto']} {r['client_ip']}:{r['client_port']} -> {r['server_ip']}:{r['server_port']} "
            f"sni={r['sni']} {r['kind']}{' ' + ' '.join(flags) if flags else ''}{extra}")


def machine_info():
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return info


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

def run_tools(args, tools, capture, packets, size, work, log):
    if args.warm:
        log("warming the page cache (reading the capture once, untimed) ...")
        with open(capture, "rb") as f:
            while f.read(1 << 24):
                pass
    for t in tools:
        if t.status != "ok":
            log(f"{t.name}: {t.status}" + (f" ({t.why})" if t.why else ""))
            continue
        for i in range(args.repeat):
            tag = f"{t.name}.{i}"
            stdout_path = None
            stderr_path = work / f"{tag}.stderr"
            if t.name == "pcapaudit":
                if args.pcapaudit_format == "parquet":  # the flows table in Parquet: same audit, compact output
                    out = work / f"{tag}.flows.parquet"
                    cmd = t.cmd + ["audit", str(capture), "--format", "parquet", "--table", "flows", "-o", str(out)]
                else:
                    out = work / f"{tag}.json"
                    cmd = t.cmd + ["audit", str(capture), "--format", "json", "-o", str(out)]
                cmd += shlex.split(args.pcapaudit_args or "")
                env, cwd = t.env, t.cwd
            elif t.name.startswith("tshark"):
                cmd = tshark_cmd(capture, t.name == "tshark-ooo")
                out = stdout_path = work / f"{tag}.tsv"
                env, cwd = None, None
            else:
                out = work / f"{tag}.json"
                cmd = [t.cmd[0], "-c", NFSTREAM_CHILD, str(capture), "0" if t.name == "nfstream-nodpi" else "-1",
                       str(out)]
                env, cwd = None, None
            if i == 0:
                t.command = cmd if not t.name.startswith("nfstream") else (
                    [t.cmd[0], "-c", "<NFStreamer(source=FILE, statistical_analysis=False"
                     + (", n_dissections=0" if t.name == "nfstream-nodpi" else "") + ")>"])
            log(f"{t.name} run {i + 1}/{args.repeat}: {' '.join(shlex.quote(c) for c in t.command)}")
            r = measure(cmd, env=env, cwd=cwd, stdout_path=stdout_path, stderr_path=stderr_path,
                        timeout=args.timeout)
            t.runs.append(r)
            log(f"  {r['wall']:.2f} s, peak RSS {fmt_mb(r['rss_kb'])} (tree {fmt_mb(r['rss_tree_kb'])}, "
                f"largest process {fmt_mb(r['rss_proc_kb'])}, {r['procs']} processes), exit {r['exit']}"
                + (" TIMED OUT" if r["timed_out"] else ""))
            if r["exit"] != 0 or r["timed_out"]:
                tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
                for line in tail:
                    log("  | " + line)
            if i == 0:
                t.output = out if Path(out).exists() else None
            elif not args.keep and Path(out).exists():
                Path(out).unlink()  # keep only the first run's output
        t.summary = summarize(t, packets, size)


def correctness(tools, truth, log, results):
    want = truth_sni_flows(truth)
    print(f"\nCorrectness against the generator's truth: {len(want)} flows whose ClientHello / QUIC Initial "
          f"carries an SNI (split {sum(bool(r.get('split')) for r in want)}, out of order "
          f"{sum(bool(r.get('out_of_order')) for r in want)}, SNI straddling the split "
          f"{sum(bool(r.get('sni_straddles_split')) for r in want)}, QUIC {sum(r['kind'] == 'quic' for r in want)})")
    for t in tools:
        if t.status != "ok" or not t.runs:
            if t.name == "pcapaudit":
                print("pcapaudit: not run, SNI lost: n/a")
            continue
        if not t.output:
            print(f"{t.name}: no output file, SNI lost: n/a")
            continue
        extra = ""
        try:
            if t.name == "pcapaudit":
                found, keys, nflows = pcapaudit_found(t.output)
                extra = f", {nflows} flows in its output"
            elif t.name.startswith("tshark"):
                found, keys = tshark_found(t.output), None
            else:
                found, nflows = nfstream_found(t.output)
                keys = None
                extra = f", {nflows} flows (truth: {truth['summary'].get('flows')})"
                if t.name == "nfstream-nodpi":
                    print(f"{t.name}: {nflows} flows (truth: {truth['summary'].get('flows')}); "
                          "no DPI, so no SNI expected")
                    continue
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"{t.name}: cannot read output {t.output}: {e}; SNI lost: n/a")
            continue
        c = compare_sni(truth, found, keys)
        kinds = ", ".join(f"{k} {v['found']}/{v['of']}" for k, v in c["by_kind"].items())
        label = "SNI lost" if t.name == "pcapaudit" else f"{t.name} SNI lost"
        print(f"{t.name}: {c['found']}/{c['truth_sni']} truth SNIs found on the matching flow{extra}; "
              f"{c['wrong_sni']} with a different name; by kind: {kinds}")
        bad = c["wrong"] + c["missing"]
        if bad:
            print(f"  missing (first 10 of {len(bad)}):")
            for r in bad[:10]:
                print("   ", describe_missing(r))
        print(f"{label}: {c['lost']}")
        results.setdefault("correctness", {})[t.name] = {
            k: v for k, v in c.items() if k not in ("missing", "wrong")} | {
            "first_missing": [describe_missing(r) for r in bad[:10]]}
        if t.name == "pcapaudit" and str(t.output).endswith(".parquet") and truth.get("dns"):
            try:
                d = dns_naming_check(truth, t.output)
            except (OSError, ValueError, KeyError, TypeError) as e:
                print(f"pcapaudit DNS naming: cannot check ({e})")
                continue
            print(f"pcapaudit DNS naming: {d['nameable']} truth TLS/QUIC flows had their server address answered "
                  f"before they began ({d['own_lookup']} by their own client's lookup); {d['named']} carry one of "
                  f"those names ({d['own_named']} of the own-lookup ones), {d['unnamed']} no name, "
                  f"{d['wrong']} only other names")  # fmt: skip
            for ex in d["examples"]:
                print("   ", ex)
            print(f"DNS names lost: {d['unnamed'] + d['wrong']}")
            results["correctness"]["pcapaudit"]["dns_naming"] = d


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packets", type=int, default=2000000, help="capture size to generate (default 2000000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", choices=("pcap", "pcapng"), default="pcap", help="format of generated captures")
    p.add_argument("--capture", help="benchmark this file instead of a generated one")
    p.add_argument("--truth", help="truth JSON for --capture (default: <capture stem>.truth.json if present)")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool; the median wall time is reported (default 3)")
    p.add_argument("--tools", default="pcapaudit,tshark,nfstream",
                   help="comma list of " + ", ".join(ALL_TOOLS) + "; 'nfstream' runs both nfstream variants "
                   "(default pcapaudit,tshark,nfstream)")
    p.add_argument("--pcapaudit-cmd", help='command prefix for the analyzer, e.g. "python -m pcapaudit" '
                   "(default: pcapaudit on PATH, else python -m pcapaudit from this repository)")
    p.add_argument("--pcapaudit-args", default="", help="extra arguments appended to `pcapaudit audit ...`")
    p.add_argument("--nfstream-python", help="python interpreter that can import nfstream "
                   "(default: $NFSTREAM_PYTHON, benchmarks/.cache/nfstream-venv, this python)")
    p.add_argument("--setup-nfstream", action="store_true",
                   help="pip install nfstream into benchmarks/.cache/nfstream-venv first")
    p.add_argument("--scale", action="store_true", help="run pcapaudit on 200k, 1M and 2M packet captures and "
                   "print its peak RSS for each")
    p.add_argument("--scale-packets", default="200000,1000000,2000000", help="sizes for --scale")
    p.add_argument("--keep", action="store_true", help="keep the tools' outputs (printed path)")
    p.add_argument("--workdir", help="where tool outputs go (default: a new directory under /tmp)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed (default 3600)")
    p.add_argument("--no-warm", dest="warm", action="store_false", help="do not pre-read the capture into the page cache")
    p.add_argument("--json-out", help="write all figures to this JSON file")
    p.add_argument("--pcapaudit-format", choices=("parquet", "json"), default="parquet",
                   help="report format pcapaudit writes while timed (default parquet: the flows table; json: "
                        "every table, which adds the cost of serialising ~300 MB of JSON for 2M packets)")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # keep the table and the stderr log in order
    if args.repeat < 1:
        p.error("--repeat must be >= 1")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.setup_nfstream:
        setup_nfstream(log)

    wanted = []
    for name in (s.strip() for s in args.tools.split(",")):
        if not name:
            continue
        names = ("nfstream", "nfstream-nodpi") if name == "nfstream" else (name,)
        for n in names:
            if n not in ALL_TOOLS:
                p.error(f"unknown tool {n!r}; choose from {', '.join(ALL_TOOLS)}")
            if n not in wanted:
                wanted.append(n)
    if args.scale and "--tools" not in " ".join(sys.argv if argv is None else argv):
        wanted = ["pcapaudit"]

    tools = []
    for n in wanted:
        if n == "pcapaudit":
            tools.append(resolve_pcapaudit(args))
        elif n.startswith("tshark"):
            tools.append(resolve_tshark(n))
        else:
            py, ver, why = nfstream_python(args)
            tools.append(Tool(n, cmd=[py], version=ver) if py else Tool(n, status="not installed", why=why))

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pcapaudit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_info(), "repeat": args.repeat,
               "tools": {t.name: {"status": t.status, "why": t.why, "version": t.version} for t in tools}}
    try:
        if args.scale:
            scale(args, tools, work, log, results)
        else:
            single(args, tools, work, log, results)
    finally:
        if args.keep:
            log(f"outputs kept in {work}")
        elif not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1, default=str) + "\n")
        log(f"figures written to {args.json_out}")
    return 0


def single(args, tools, work, log, results):
    if args.capture:
        capture = Path(args.capture).resolve()
        if not capture.exists():
            sys.exit(f"{capture}: no such file")
        truth_p = Path(args.truth) if args.truth else None
        if truth_p is None:
            for cand in (capture.with_suffix(".truth.json"), Path(str(capture) + ".truth.json")):
                if cand.exists():
                    truth_p = cand
                    break
        packets = count_packets(capture)
        meta = {"cached": None}
        if packets is None and truth_p:
            packets = json.loads(truth_p.read_text())["summary"]["packets"]
    else:
        capture, truth_p, meta = ensure_capture(args.packets, args.seed, args.format, log)
        packets = args.packets
    size = capture.stat().st_size
    results["capture"] = {"path": str(capture), "packets": packets, "bytes": size, "truth": str(truth_p) if truth_p else None,
                          "generator": meta}
    run_tools(args, tools, capture, packets, size, work, log)
    gen_s = f", generated in {meta['gen_seconds']:.1f} s" if meta.get("gen_seconds") else ""
    print(f"\ncapture: {capture}  {packets:,} packets  {size / 1e6:,.1f} MB{gen_s}"
          f"{' (cached)' if meta.get('cached') else ''}")
    print(f"timings: median of {args.repeat} run(s); peak RSS: largest over the runs of max(sampled sum of VmRSS "
          f"over the process tree, largest single-process VmHWM/ru_maxrss)\n")
    print_table(tools, packets, size)
    by = {t.name: t for t in tools}
    pa = by.get("pcapaudit")
    ratios = {}
    if pa and pa.status == "ok" and pa.summary:
        for other in tools:
            if other is pa or other.status != "ok" or not other.summary:
                continue
            ratios[other.name] = round(pa.summary["packets_per_s"] / other.summary["packets_per_s"], 3)
        if ratios:
            print("\nthroughput ratios (pcapaudit packets/s divided by):  "
                  + "   ".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    results["results"] = {t.name: {"status": t.status, "why": t.why, "version": t.version,
                                   "command": getattr(t, "command", None), "summary": getattr(t, "summary", None),
                                   "runs": t.runs} for t in tools}
    results["ratios_pcapaudit_over"] = ratios
    if truth_p and truth_p.exists():
        truth = json.loads(truth_p.read_text())
        correctness(tools, truth, log, results)
    else:
        print("\nno truth file: correctness check skipped; SNI lost: n/a")


def scale(args, tools, work, log, results):
    sizes = [int(s) for s in args.scale_packets.split(",") if s.strip()]
    rows = []
    results["scale"] = rows
    for n in sizes:
        capture, _truth, meta = ensure_capture(n, args.seed, args.format, log)
        size = capture.stat().st_size
        for t in tools:
            t.runs = []
        run_tools(args, tools, capture, n, size, work, log)
        for t in tools:
            rows.append({"tool": t.name, "packets": n, "bytes": size, "status": t.status, "why": t.why,
                         "summary": getattr(t, "summary", None)})
    print(f"\nscale (median of {args.repeat} run(s) per size; peak RSS as in the main table)\n")
    hdr = f"{'tool':<16}{'packets':>11}{'file MB':>10}{'wall (median)':>15}{'packets/s':>12}{'peak RSS':>11}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['tool']:<16}{r['packets']:>11,}{r['bytes'] / 1e6:>10,.0f}  {r['tool']}: {r['status']}"
                  + (f" ({r['why']})" if r["why"] else ""))
            continue
        s = r["summary"]
        if not s:
            print(f"{r['tool']:<16}{r['packets']:>11,}{r['bytes'] / 1e6:>10,.0f}  timed out")
            continue
        print(f"{r['tool']:<16}{r['packets']:>11,}{r['bytes'] / 1e6:>10,.0f}{s['wall_median_s']:>13.2f} s"
              f"{s['packets_per_s']:>12,}{fmt_mb(s['peak_rss_kb']):>11}")
    for t in tools:
        got = [r for r in rows if r["tool"] == t.name and r["status"] == "ok" and r["summary"]]
        if len(got) >= 2:
            a, b = got[0], got[-1]
            print(f"{t.name}: peak RSS x{b['summary']['peak_rss_kb'] / max(a['summary']['peak_rss_kb'], 1):.2f} "
                  f"for x{b['packets'] / a['packets']:.0f} the packets")


if __name__ == "__main__":
    sys.exit(main())

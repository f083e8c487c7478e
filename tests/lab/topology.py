"""The lab: network namespaces, veth links, routing, DNS, PKI and process management.

Topology (every box is a network namespace named pa-<pid>-<n>-<role>):

    dev  eth0 192.168.50.10 (+ .11 Android) ---- lan0 192.168.50.1 ┐
    srv  eth0 10.20.0.5/.30/.50 ----------------- srv0 ┐           │
    corp eth0 10.20.0.20/.25/.40/.60/.80 -------- corp0┴ br0 10.20.0.1   fw  (router + nftables,
    proxy eth0 10.10.0.3 (:3128) ---------------- px0 10.10.0.1    │        MITM / SNI filter)
                                                  wan0 100.64.0.1 ┘
    inet eth0 100.64.0.2; vendor addresses (17.x, 142.250.x, 52.x, 3.x, 93.184.216.34, ...) and the
         resolver 198.51.100.53 on lo; dnsmasq + vendor servers run here.

IPv6 is disabled everywhere (no RS/MLD noise), NIC offloads are off (correct checksums, MTU-sized
segments in captures), and every namespace's /etc/resolv.conf points at the lab resolver.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import hosts as H
from . import pki as labpki

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ("dev", "fw", "inet", "srv", "corp", "proxy")

# interface names inside each namespace (fixed, since every namespace has its own interface table)
IFACES = {"dev": "eth0", "srv": "eth0", "corp": "eth0", "proxy": "eth0", "inet": "eth0",
          "fw_lan": "lan0", "fw_wan": "wan0", "fw_srv": "srv0", "fw_corp": "corp0", "fw_proxy": "px0",
          "fw_bridge": "br0"}

# (ns_a, if_a, mac_a, ns_b, if_b, mac_b)
LINKS = [
    ("dev", "eth0", "a4:83:e7:3c:50:10", "fw", "lan0", "00:1b:17:00:50:01"),
    ("fw", "wan0", "00:1b:17:00:64:01", "inet", "eth0", "02:00:64:00:00:02"),
    ("srv", "eth0", "00:50:56:a0:20:05", "fw", "srv0", "00:1b:17:00:20:02"),
    ("corp", "eth0", "00:50:56:a0:20:20", "fw", "corp0", "00:1b:17:00:20:03"),
    ("proxy", "eth0", "00:50:56:a0:10:03", "fw", "px0", "00:1b:17:00:10:01"),
]

_counter = itertools.count()
_live_labs = []


def _cleanup_all():
    for lab in list(_live_labs):
        lab.close()


atexit.register(_cleanup_all)


class LabError(RuntimeError):
    pass


def cleanup_stale() -> list[str]:
    """Delete lab namespaces (pa-<pid>-...) whose creating process is gone (e.g. after a SIGKILL).

    Kills what still runs inside them first. Namespaces of live processes are never touched."""
    removed = []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "pa" or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for p in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(p), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)
        removed.append(name)
    with contextlib.suppress(OSError):
        os.rmdir("/etc/netns")
    return removed


class Lab:
    """A disposable network lab. Use as a context manager; teardown always runs.

    >>> with Lab() as lab:
    ...     lab.start_internet()                      # vendor servers in inet
    ...     with lab.capture("dev", "eth0", "/tmp/x.pcap"):
    ...         results = lab.run_client("dev", [{"op": "tls", "host": "albert.apple.com", "port": 443}])
    """

    def __init__(self, workdir: str | None = None, issuer: labpki.Issuer | None = None,
                 dns_records: dict | None = None, dns_nxdomain=(), dns_sinkhole=(), dns_refused=(),
                 verbose: bool = False):
        self.prefix = f"pa-{os.getpid()}-{next(_counter)}"
        self.ns = {r: f"{self.prefix}-{r}" for r in ROLES}
        self.ifaces = dict(IFACES)
        self.workdir = workdir or tempfile.mkdtemp(prefix=self.prefix + "-")
        self._own_workdir = workdir is None
        self._issuer = issuer
        base = dict(H.HOSTS)
        base.update({name: ip for ip, name in H.CORP_NAMES.items()})
        base.update(dns_records or {})
        self.dns_nxdomain = list(dns_nxdomain)
        self.dns_sinkhole = list(dns_sinkhole)
        self.dns_refused = list(dns_refused)
        special = set(self.dns_nxdomain) | set(self.dns_sinkhole) | set(self.dns_refused)
        self.dns_records = {k: v for k, v in base.items() if k not in special}
        self.verbose = verbose
        self._procs: list[subprocess.Popen] = []
        self._created_ns: list[str] = []
        self._netns_etc: list[str] = []
        self._service_logs: dict[str, str] = {}
        self._closed = False
        self.python = sys.executable or "python3"
        self.env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        PYTHONDONTWRITEBYTECODE="1")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Lab":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Lab":
        _live_labs.append(self)
        self.pki_dir = os.path.join(self.workdir, "pki")
        if self._issuer is None:
            self.issuer = labpki.build_pki(self.pki_dir)
        else:
            shutil.copytree(self._issuer.directory, self.pki_dir, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("leaves*"))
            self.issuer = labpki.Issuer(self.pki_dir)
        self._build_network()
        self._start_dns()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for p in reversed(self._procs):
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.time() + 3
        for p in reversed(self._procs):
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        for ns in self._created_ns:
            # anything still running inside (started by a caller through other means)
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in out.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for ns in reversed(self._created_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for d in self._netns_etc:
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir("/etc/netns")          # only if empty
        if self._own_workdir and not os.environ.get("PCAPAUDIT_LAB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _live_labs:
            _live_labs.remove(self)

    # ------------------------------------------------------------------ commands
    def _run(self, argv, check=True, **kw) -> subprocess.CompletedProcess:
        if self.verbose:
            print("+", " ".join(argv), file=sys.stderr)
        cp = subprocess.run(argv, capture_output=True, text=True, **kw)
        if check and cp.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()}")
        return cp

    def exec(self, role: str, argv, check: bool = True, timeout: float | None = 300, input: str | None = None,
             **kw) -> subprocess.CompletedProcess:
        """Run argv inside the namespace of `role` and wait for it (stdout/stderr captured as text)."""
        return self._run(["ip", "netns", "exec", self.ns[role], *argv], check=check, timeout=timeout,
                         input=input, env=kw.pop("env", self.env), **kw)

    def popen(self, role: str, argv, **kw) -> subprocess.Popen:
        """Start argv inside the namespace of `role`; the lab kills it at teardown."""
        kw.setdefault("env", self.env)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[role], *argv], **kw)
        self._procs.append(p)
        return p

    def ip(self, role: str, *args) -> None:
        self._run(["ip", "-n", self.ns[role], *args])

    def sysctl(self, role: str, **values) -> None:
        script = "; ".join(f"echo {v} > /proc/sys/{k.replace('__', '/')}" for k, v in values.items())
        self._run(["ip", "netns", "exec", self.ns[role], "sh", "-c", script])

    def nft(self, role: str, script: str) -> None:
        """Load an nftables script into the namespace of `role` (`nft -f -`)."""
        self._run(["ip", "netns", "exec", self.ns[role], "nft", "-f", "-"], input=script)

    def nft_ruleset(self, role: str = "fw") -> str:
        return self._run(["ip", "netns", "exec", self.ns[role], "nft", "list", "ruleset"]).stdout

    # ------------------------------------------------------------------ network
    def _build_network(self) -> None:
        for role in ROLES:
            self._run(["ip", "netns", "add", self.ns[role]])
            self._created_ns.append(self.ns[role])
            self.sysctl(role, net__ipv6__conf__all__disable_ipv6=1, net__ipv6__conf__default__disable_ipv6=1,
                        net__ipv4__conf__all__rp_filter=0, net__ipv4__conf__default__rp_filter=0)
            self.ip(role, "link", "set", "lo", "up")
            etc = os.path.join("/etc/netns", self.ns[role])
            os.makedirs(etc, exist_ok=True)
            self._netns_etc.append(etc)
            with open(os.path.join(etc, "resolv.conf"), "w") as f:
                f.write(f"# pcapaudit lab resolver (dnsmasq in {self.ns['inet']})\nnameserver {H.RESOLVER}\n")
            with open(os.path.join(etc, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n")
        self.sysctl("fw", net__ipv4__ip_forward=1)
        for a, ia, ma, b, ib, mb in LINKS:
            self._run(["ip", "link", "add", ia, "netns", self.ns[a], "address", ma, "type", "veth",
                       "peer", "name", ib, "netns", self.ns[b], "address", mb])
        # fw: bridge for the server LAN
        self.ip("fw", "link", "add", "br0", "address", "00:1b:17:00:20:01", "type", "bridge", "stp_state", "0",
                "forward_delay", "0", "mcast_snooping", "0")
        for port in ("srv0", "corp0"):
            self.ip("fw", "link", "set", port, "master", "br0")
        addrs = {
            "dev": [("eth0", f"{H.DEVICE}/24"), ("eth0", f"{H.ANDROID}/24")],
            "fw": [("lan0", f"{H.LAN_GW}/24"), ("wan0", f"{H.WAN_FW}/30"), ("br0", f"{H.SRV_GW}/24"),
                   ("px0", f"{H.PROXY_GW}/24")],
            "inet": [("eth0", f"{H.WAN_INET}/30")] + [("lo", f"{a}/32") for a in H.INET_ADDRS],
            "srv": [("eth0", f"{a}/24") for a in H.SRV_ADDRS],
            "corp": [("eth0", f"{a}/24") for a in H.CORP_ADDRS],
            "proxy": [("eth0", f"{H.PROXY}/24")],
        }
        for role, lst in addrs.items():
            for dev, cidr in lst:
                self.ip(role, "addr", "add", cidr, "dev", dev)
        for role, devs in {"dev": ["eth0"], "fw": ["lan0", "wan0", "srv0", "corp0", "px0", "br0"],
                           "inet": ["eth0"], "srv": ["eth0"], "corp": ["eth0"], "proxy": ["eth0"]}.items():
            for d in devs:
                # no multicast: keeps IGMP reports (e.g. the bridge's 224.0.0.106) out of the captures
                self.ip(role, "link", "set", d, "multicast", "off", "up")
            veths = [d for d in devs if d != "br0"]
            self._run(["ip", "netns", "exec", self.ns[role], self.python, "-m", "tests.lab.netutil",
                       "offload-off", *veths], env=self.env)
        self.ip("dev", "route", "add", "default", "via", H.LAN_GW)
        self.ip("srv", "route", "add", "default", "via", H.SRV_GW)
        self.ip("corp", "route", "add", "default", "via", H.SRV_GW)
        self.ip("proxy", "route", "add", "default", "via", H.PROXY_GW)
        self.ip("inet", "route", "add", "default", "via", H.WAN_FW)
        self.ip("fw", "route", "add", "default", "via", H.WAN_INET)
        # a quiet ARP warm-up is deliberately NOT done: captures show the real first ARP exchange.

    # ------------------------------------------------------------------ DNS
    def _start_dns(self) -> None:
        conf = os.path.join(self.workdir, "dnsmasq.conf")
        lines = ["no-resolv", "no-hosts", "bind-interfaces", f"listen-address={H.RESOLVER}", "port=53",
                 "log-queries", "cache-size=0", "user=root", "group=root",
                 "# names with no record here get REFUSED: dnsmasq has no upstream to send them to"]
        for name, ips in sorted(self.dns_records.items()):
            for ip in ([ips] if isinstance(ips, str) else ips):
                lines.append(f"address=/{name}/{ip}")
            lines.append(f"local=/{name}/")            # NODATA (not REFUSED) for other record types
        for name in self.dns_nxdomain:
            lines.append(f"address=/{name}/")          # NXDOMAIN
        for name in self.dns_sinkhole:
            lines.append(f"address=/{name}/#")         # 0.0.0.0 for A, :: for AAAA
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.dns_log = os.path.join(self.workdir, "dnsmasq.log")
        self.dnsmasq = self.popen("inet", ["dnsmasq", "-k", "-C", conf, f"--log-facility={self.dns_log}",
                                           f"--pid-file={os.path.join(self.workdir, 'dnsmasq.pid')}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_for(lambda: os.path.exists(self.dns_log) and " started, " in open(self.dns_log).read(),
                       10, "dnsmasq did not start", self.dnsmasq)

    def _wait_for(self, cond, timeout, msg, proc=None):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            if proc is not None and proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise LabError(f"{msg}: exited {proc.returncode}: {err}")
            time.sleep(0.05)
        raise LabError(msg + " (timeout)")

    # ------------------------------------------------------------------ services
    def start_services(self, role: str, services: list, name: str | None = None) -> str:
        """Start a tests.lab.services daemon in `role`; returns its event log path."""
        name = name or role
        log = os.path.join(self.workdir, f"events-{name}.jsonl")
        cfgp = os.path.join(self.workdir, f"services-{name}.json")
        with open(cfgp, "w") as f:
            json.dump({"name": name, "log": log, "pki": self.pki_dir, "services": services}, f, indent=1)
        open(log, "a").close()
        p = self.popen(role, [self.python, "-m", "tests.lab.services", cfgp], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
        line = _readline_timeout(p.stdout, 60)
        if line.strip() != "READY":
            p.kill()
            raise LabError(f"services {name} in {role} failed to start: {line} {p.stderr.read()}")
        self._service_logs[name] = log
        return log

    def start_internet(self, extra: list | None = None, replace: dict | None = None,
                       diverse: bool = False) -> str:
        """Vendor servers in inet (see `vendor_services`), plus `extra` listeners."""
        return self.start_services("inet", vendor_services(replace, diverse) + list(extra or []))

    def start_corp(self, extra: list | None = None) -> str:
        """On-prem servers in corp: LDAP 389/636, SMTP 25, HL7 2575, DCOM 135/49670, Endpoint Central."""
        return self.start_services("corp", corp_services() + list(extra or []))

    def events(self, name: str | None = None) -> list[dict]:
        """Events logged by service daemons (all, or the one called `name`)."""
        out = []
        for n, path in self._service_logs.items():
            if name and n != name:
                continue
            with open(path) as f:
                out += [json.loads(l) for l in f if l.strip()]
        return sorted(out, key=lambda e: e["ts"])

    # ------------------------------------------------------------------ clients
    def run_client(self, role: str, steps: list, timeout: float = 300) -> list[dict]:
        """Run tests.lab.client in `role` with these steps; returns its per-step results."""
        plan = {"resolver": H.RESOLVER, "pki": self.pki_dir, "steps": steps}
        path = os.path.join(self.workdir, f"plan-{time.time_ns()}.json")
        with open(path, "w") as f:
            json.dump(plan, f, indent=1)
        cp = self.exec(role, [self.python, "-m", "tests.lab.client", path], timeout=timeout, check=False)
        if cp.returncode != 0:
            raise LabError(f"client failed in {role}: {cp.stderr}")
        return [json.loads(l) for l in cp.stdout.splitlines() if l.strip()]

    # ------------------------------------------------------------------ capture
    @contextlib.contextmanager
    def capture(self, role: str, iface: str, path: str, bpf: str | None = None, settle: float = 0.5):
        """tcpdump -i IFACE -U --immediate-mode -s 0 -w PATH inside `role`, waiting until it listens.

        Stopped with SIGINT after `settle` seconds so the file is complete (immediate mode matters: with
        TPACKET_V3 block buffering the last packets could otherwise be lost at SIGINT)."""
        argv = ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-s", "0", "-n", "-Z", "root", "-w", path] + ([bpf] if bpf else [])
        p = self.popen(role, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = []
        ready = threading.Event()

        def reader():
            for line in p.stderr:
                lines.append(line)
                if "listening on" in line:
                    ready.set()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        if not ready.wait(10):
            p.kill()
            raise LabError(f"tcpdump did not start: {''.join(lines)}")
        time.sleep(0.1)
        try:
            yield path
        finally:
            time.sleep(settle)
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            t.join(2)
            self.last_capture_stats = "".join(lines)


def _readline_timeout(stream, timeout: float) -> str:
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else ""


# ---------------------------------------------------------------------- nftables helpers
def forward_filter(rules: list[str], table: str = "pa_filter") -> str:
    """nft script: a forward-hook filter chain (policy accept) holding `rules`, e.g.
    'ip daddr 17.0.0.0/8 tcp dport 5223 drop', '... reject with tcp reset',
    '... reject with icmp type port-unreachable', '... reject with icmpx type admin-prohibited'."""
    body = "\n".join(f"    {r}" for r in rules)
    return (f"table inet {table} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n")


def nat_redirect(rules: list[str], table: str = "pa_nat") -> str:
    """nft script: a prerouting dstnat chain, e.g. 'iifname "lan0" tcp dport 443 redirect to :15443'
    (sends matching connections to a transparent middlebox listening in fw)."""
    body = "\n".join(f"    {r}" for r in rules)
    return (f"table ip {table} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n"
            f"{body}\n  }}\n}}\n")


# ---------------------------------------------------------------------- standard server sets
def tls(hosts, hierarchy="public", min="TLSv1.2", max="TLSv1.3", alpn=None, ciphers=None,
        profile=None) -> dict:
    return {"hosts": [hosts] if isinstance(hosts, str) else list(hosts), "hierarchy": hierarchy, "min": min,
            "max": max, "alpn": alpn, "ciphers": ciphers, "profile": profile}


# the certificate profile (tests/lab/pki.py PROFILES) of each vendor's hosts, by name suffix
VENDOR_PROFILES = {"apple.com": "apple", "jamfcloud.com": "jamf", "kandji.io": "kandji",
                   "google.com": "google", "googleapis.com": "google", "datadoghq.com": "datadog"}


def vendor_profile(host: str) -> str | None:
    return next((p for sfx, p in VENDOR_PROFILES.items() if host == sfx or host.endswith("." + sfx)), None)


def https(host, port=443, app="http", ip=None, **tlskw) -> dict:
    tlskw.setdefault("alpn", ["http/1.1"])
    return {"kind": "tcp", "ip": ip or H.HOSTS[host], "port": port, "app": app, "tls": tls(host, **tlskw),
            "host": host}


def vendor_services(replace: dict | None = None, diverse: bool = False) -> list:
    """One listener set per vendor host in hosts.HOSTS (TLS 1.2-1.3, lab public chain). ``diverse``: each
    vendor's certificates have their own profile (key type, names, chain: ``vendor_profile``), as on the
    real internet; by default every leaf is the same kind (ECDSA P-256 under one intermediate)."""
    K, KE = H.KANDJI_TENANT, H.KANDJI_EU_TENANT
    apns_alpn = ["apns-security-v3", "apns-pack-v1"]
    svcs = [
        https("albert.apple.com"), https("gdmf.apple.com"), https("iprofiles.apple.com"),
        https("deviceenrollment.apple.com"), https("mdmenrollment.apple.com"), https("identity.apple.com"),
        https("mesu.apple.com"), https("captive.apple.com"), https("ocsp.apple.com"),
        {"kind": "tcp", "ip": H.HOSTS["captive.apple.com"], "port": 80, "app": "http"},
        {"kind": "tcp", "ip": H.HOSTS["ocsp.apple.com"], "port": 80, "app": "http"},
        {"kind": "udp", "ip": H.HOSTS["time.apple.com"], "port": 123, "app": "ntp"},
        https("1-courier.push.apple.com", 5223, app="courier", alpn=apns_alpn),
        https("1-courier.push.apple.com", 443, app="courier", alpn=apns_alpn),
        https("gateway.push.apple.com", 2195, app="apns-binary", max="TLSv1.2", alpn=None),
        https("feedback.push.apple.com", 2196, app="apns-feedback", max="TLSv1.2", alpn=None),
        https("api.push.apple.com", 443, app="h2", alpn=["h2"]),
        https("api.push.apple.com", 2197, app="h2", alpn=["h2"]),
        https("mtalk.google.com", 5228, app="courier", alpn=None),
        https("mtalk.google.com", 5229, app="courier", alpn=None),
        https("mtalk.google.com", 5230, app="courier", alpn=None),
        https("mtalk.google.com", 443, app="courier", alpn=None),
        https("android.googleapis.com"),
        https("acme.jamfcloud.com", max="TLSv1.2"),
        https(f"{K}.web-api.kandji.io"), https(f"{K}.devices.us-1.kandji.io"), https("managed-library.kandji.io"),
        https(f"{KE}.web-api.eu.kandji.io"), https(f"{KE}.web-api.kandji.io"),
        https("browser-intake-datadoghq.com"),
        https("example.org"), {"kind": "tcp", "ip": H.HOSTS["example.org"], "port": 80, "app": "http"},
        {"kind": "udp", "ip": H.HOSTS["example.org"], "port": 9999, "app": "drop"},
    ]
    if diverse:
        for s in svcs:
            if "tls" in s and s.get("host"):
                s["tls"]["profile"] = vendor_profile(s["host"])
    for key, spec in (replace or {}).items():
        svcs = [s for s in svcs if (s.get("host"), s["port"]) != key and (s["ip"], s["port"]) != key]
        if spec is not None:
            svcs.append(spec)
    return svcs


def corp_services() -> list:
    return [
        {"kind": "tcp", "ip": H.DC, "port": 389, "app": "ldap"},
        {"kind": "tcp", "ip": H.DC, "port": 636, "app": "ldap", "tls": tls("dc01.corp.example")},
        {"kind": "tcp", "ip": H.SMTP, "port": 25, "app": "smtp"},
        {"kind": "tcp", "ip": H.JIM, "port": 2575, "app": "mllp"},
        {"kind": "tcp", "ip": H.CA, "port": 135, "app": "dcerpc"},
        {"kind": "tcp", "ip": H.CA, "port": 49670, "app": "dcerpc"},
        {"kind": "tcp", "ip": H.EC_SERVER, "port": 8020, "app": "http"},
        {"kind": "tcp", "ip": H.EC_SERVER, "port": 8383, "app": "http",
         "tls": tls("endpointcentral.corp.example", alpn=["http/1.1"])},
    ]

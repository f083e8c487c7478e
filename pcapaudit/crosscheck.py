"""Cross-check pcapaudit's decoding against Wireshark's (tshark, through pyshark).

An independent second opinion for a capture you are about to rely on: every flow's TLS/QUIC server name
and every DNS query name as tshark dissects them, next to what pcapaudit found. Optional: needs pyshark
(``pip install 'pcapaudit[pyshark]'``) and tshark; the audit itself never uses either. pyshark dissects a
few hundred packets a second, so only the packets that carry names are asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections import defaultdict

import pandas as pd

from pcapaudit.errors import PcapAuditError

log = logging.getLogger("pcapaudit")

DISPLAY_FILTER = "tls.handshake.type == 1 || quic || gquic || dns"


def _key(proto: str, a: str, ap: int, b: str, bp: int) -> tuple:
    a, b = str(ipaddress.ip_address(a)), str(ipaddress.ip_address(b))
    return (proto, *sorted([(a, ap), (b, bp)]))


def tshark_names(path: str, timeout: float = 600.0, attempts: int = 2) -> tuple[dict[tuple, set[str]], set[str]]:
    """(flow key -> SNIs, DNS query names) as tshark dissects them (out-of-order reassembly on).

    A run whose tshark pyshark reports as crashed is repeated once before it counts as an error (the
    false "exit status 255" that used to cause this is avoided in ``_tshark_names_once``).
    """
    try:
        import pyshark
    except ImportError:
        raise PcapAuditError("crosscheck needs pyshark: pip install 'pcapaudit[pyshark]' (and tshark)") from None
    for attempt in range(1, attempts + 1):
        try:
            return _tshark_names_once(pyshark, path)
        except FileNotFoundError as e:
            raise PcapAuditError(f"{path}: tshark failed: {e}") from None
        except pyshark.capture.capture.TSharkCrashException as e:
            # tshark's own complaint (a capture cut short...) fails again; only its spurious exit status
            # 255 at close (see _tshark_names_once) is worth another run
            if attempt == attempts or "retcode: 255" not in str(e):
                raise PcapAuditError(f"{path}: tshark failed: {_tshark_reason(e)}") from None
            log.warning("%s: tshark exited abnormally (%s); running it again", path, _tshark_reason(e))
    raise AssertionError("unreachable")


def _tshark_reason(e: Exception) -> str:
    """The line of tshark's stderr that pyshark quotes (its "Last error line"), else its first line."""
    text = str(e)
    m = re.search(r"Last error line: (.*?)(?:\\n|\n|$)", text)
    return (m.group(1) if m else text.splitlines()[0] if text else type(e).__name__).strip()


def _tshark_names_once(pyshark, path: str) -> tuple[dict[tuple, set[str]], set[str]]:
    snis: dict[tuple, set[str]] = defaultdict(set)
    dns: set[str] = set()
    # a loop of our own: pyshark then leaves asyncio's default child watcher (a thread per process) instead
    # of installing a SafeChildWatcher with a SIGCHLD handler that outlives the capture (in a process that
    # lives on, a notebook or a test run, later child exits filled that idle loop's wakeup pipe:
    # "BlockingIOError ... _sighandler_noop")
    loop = asyncio.new_event_loop()
    cap = pyshark.FileCapture(
        path, display_filter=DISPLAY_FILTER, keep_packets=False, eventloop=loop,
        override_prefs={"tcp.reassemble_out_of_order": "TRUE", "tcp.desegment_tcp_streams": "TRUE"},
    )  # fmt: skip
    cleanup = cap._cleanup_subprocess

    async def let_tshark_exit(process):
        # At the end of the file pyshark kills tshark at once when the child watcher has not reported its
        # exit yet; the kill polls the process and reaps it first, the watcher then finds no child and
        # reports exit status 255, which pyshark raises as a crash (10-14 of 40 runs on nDPI's quic.pcap;
        # the reason for the retry in tshark_names). tshark ends by itself after its last packet: wait for
        # the watcher a moment before pyshark's cleanup (which still kills a tshark that does not end).
        if process.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
        await cleanup(process)

    cap._cleanup_subprocess = let_tshark_exit
    try:
        for pkt in cap:
            ip = getattr(pkt, "ip", None) or getattr(pkt, "ipv6", None)
            proto = (pkt.transport_layer or "").lower()
            if ip is None or proto not in ("tcp", "udp"):
                continue
            l4 = pkt[pkt.transport_layer]
            key = _key(proto, ip.src, int(l4.srcport), ip.dst, int(l4.dstport))
            for layer in pkt.layers:
                for field in layer.field_names:
                    # TLS and QUIC CRYPTO frames: handshake_extensions_server_name; Google QUIC: *tag_sni (the
                    # prefix pyshark leaves depends on whether gquic is its own layer or nested in quic's).
                    if field.endswith("handshake_extensions_server_name") or field.endswith("tag_sni"):
                        name = layer.get_field_value(field)
                        if name:
                            snis[key].add(str(name).lower().rstrip("."))
            if hasattr(pkt, "dns"):
                q = pkt.dns.get_field_value("qry_name")
                if q:
                    dns.add(str(q).lower().rstrip("."))
    finally:
        try:
            cap.close()
        finally:
            # a close that raised (tshark's exit status 255 as it is killed) leaves the process in pyshark's
            # list, and Capture.__del__ would close it again at garbage collection and raise there, where
            # nobody can catch it ("Exception ignored in Capture.__del__"); this close was the one that counts
            running = getattr(cap, "_running_processes", None)
            if isinstance(running, set):
                running.clear()
            loop.close()
    return snis, dns


def crosscheck(path: str, result=None) -> tuple[pd.DataFrame, dict]:
    """Compare pcapaudit's SNI per flow and DNS names with tshark's; returns (differences, summary)."""
    import pcapaudit

    result = result or pcapaudit.audit(path)
    ours: dict[tuple, set[str]] = defaultdict(set)
    for r in result.flows[result.flows["sni"].notna()].itertuples(index=False):
        ours[_key(str(r.transport), r.src_ip, int(r.src_port), r.dst_ip, int(r.dst_port))].add(r.sni)
    our_dns = set(result.dns["query"].dropna())
    theirs, their_dns = tshark_names(path)
    rows = []
    for key in sorted(set(ours) | set(theirs), key=str):
        a, b = ours.get(key, set()), theirs.get(key, set())
        if a != b:
            (p, (ip1, p1), (ip2, p2)) = key
            rows.append({"name": "sni", "transport": p, "endpoint_a": f"{ip1}:{p1}", "endpoint_b": f"{ip2}:{p2}",
                         "pcapaudit": ", ".join(sorted(a)) or None, "tshark": ", ".join(sorted(b)) or None})  # fmt: skip
    for name in sorted(our_dns ^ their_dns):
        rows.append({"name": "dns query", "transport": None, "endpoint_a": None, "endpoint_b": None,
                     "pcapaudit": name if name in our_dns else None, "tshark": name if name in their_dns else None})  # fmt: skip
    summary = {
        "flows_with_sni_pcapaudit": len(ours), "flows_with_sni_tshark": len(theirs),
        "sni_agree": sum(1 for k in set(ours) & set(theirs) if ours[k] == theirs[k]),
        "dns_names_pcapaudit": len(our_dns), "dns_names_tshark": len(their_dns),
        "dns_agree": len(our_dns & their_dns), "differences": len(rows),
    }  # fmt: skip
    # "name": what the two columns hold, a flow's TLS/QUIC server name or a DNS query name
    return pd.DataFrame(rows, columns=["name", "transport", "endpoint_a", "endpoint_b", "pcapaudit", "tshark"]), summary

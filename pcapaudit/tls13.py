"""Passive evidence of TLS 1.3 interception, without the certificate (issue 20).

TLS 1.3 encrypts the server's certificate, so the per-flow detectors can only say "evidence unavailable"
for it. An inspection proxy that re-signs TLS 1.3 still leaves traces a passive observer sees, across
flows: one TLS stack answers for unrelated vendors, and the certificates it mints differ only by the name
they carry. This module weighs those traces over the whole flows table once every flow is known
(``Auditor.assemble``, after the partitions of a parallel or distributed audit are merged), with pandas
group-bys over the TLS 1.3 flows, and states one verdict per flow with a confidence and the signals that
fired. The README ("TLS 1.3 interception without the certificate") gives each signal's measured hits and
false alarms.

Signals (a flow is reported only when the first fires; the others raise the confidence):

``one_stack_for_vendors``
    The flow's server answered with the same ServerHello shape (version, cipher, extension types in
    order, key-share group: the ``tls_server_shape`` column) and an encrypted server flight whose size,
    less ``FLIGHT_SLOPE`` bytes per character of the server name, lies within ``SPREAD`` bytes of the
    flights of at least ``MIN_VENDORS`` vendors' (rulesets') other flows. A re-signing proxy mints every
    leaf with the same key type under the same inspection chain, the name written twice (subject CN and
    SAN), so its flights are ``c + 2 * len(name)``; genuine vendors' chains differ by hundreds of bytes.
    Only the cells holding ``NAME_SHARE`` of a name's flights count for that name: a name's certificate
    is the same on one path, so its flights repeat (a flight of random size, as the benchmark generator
    writes, never repeats enough). The names must span ``MIN_NAME_SPAN`` characters, so that the flights
    are seen to grow with the name
    (a stack sending the same flight whatever the name, as a CDN certificate with many names, or a
    synthetic generator, cannot fit: ``2 * MIN_NAME_SPAN > SPREAD``). The same shape alone is no
    evidence: many CDNs share the OpenSSL or BoringSSL defaults.
``flight_differs_for_name``
    Other TLS 1.3 flows to the same name, not in such a cluster, got a flight more than ``NAME_DIFF``
    bytes away: the name's certificate is another one on another path.
``client_abort_after_flight``
    The client answered the flight with an alert or a close and no application data (a pinned client
    refusing the chain).
``path_evidence``
    The flow's server address is outside the vendor's network or not among the DNS answers, or a TLS 1.2
    flow of the same client to the same vendor showed an inspection certificate (findings the per-flow
    detectors raised).

Confidence: 0.5 for the first signal alone, +0.2 for each other one, at most 0.9. Severity LOW below 0.7,
MEDIUM from 0.7: never HIGH, which needs the certificate itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pcapaudit.model import Finding, FindingKind, Severity

CODE = "tls13_passive"  # one flow's verdict
CAPTURE_CODE = "tls13_one_stack"  # the capture-level line
FLIGHT_SLOPE = 2  # bytes a re-signed chain grows per character of the name (subject CN + SAN)
SPREAD = 16  # bytes within which one stack's name-adjusted flights lie (ECDSA signatures, ALPN, serials)
MIN_VENDORS = 3  # vendors (rulesets) one stack must answer for
MIN_NAME_SPAN = 12  # characters the names of a cluster must span (2 * 12 > SPREAD)
NAME_DIFF = 64  # bytes between two flights of one name that make them two certificates
NAME_SHARE = 0.25  # of a name's flights one cell must hold to speak for the name (a name has few paths)
NAME_MATCHES = ("sni", "dns", "connect")
PATH_CODES = frozenset({"server_not_in_dns_answer", "server_outside_vendor_range"})
CERT_CODES = frozenset({"issuer_mismatch", "inspection_ca_seen", "certificate_name_mismatch"})
ABORTS = ("client_abort_after_server_flight", "client_alert")
COLUMNS = ["uid", "ts", "transport", "src_ip", "dst_ip", "dst_port", "sni", "tls_server_shape",
           "tls_server_flight", "tls_handshake", "vendor", "rule_id", "service", "matched_by", "cert_issuer",
           "quic_version"]  # fmt: skip
# what the flight of a transport is made of: TLS records (TCP) or QUIC Handshake packets (UDP), whose headers
# differ, so that the constant of one stack differs too: flights are only compared within one transport
KEY = ["transport", "tls_server_shape"]


@dataclass(frozen=True)
class Verdict:
    """One flow's verdict: the signals that fired and the confidence they give."""

    uid: str
    confidence: float
    signals: tuple[str, ...]

    @property
    def severity(self) -> Severity:
        return Severity.MEDIUM if self.confidence >= 0.7 else Severity.LOW


def _candidates(table):
    """The TLS 1.3 flows with a measured server flight to a vendor name, as a DataFrame."""
    import pyarrow.compute as pc

    if table.num_rows == 0 or "tls_server_flight" not in table.column_names:
        return None
    t = table.filter(pc.is_valid(table["tls_server_flight"]))
    if t.num_rows == 0:
        return None
    df = t.select(COLUMNS).to_pandas()
    for c in ("vendor", "matched_by", "tls_handshake", "transport", "quic_version"):
        df[c] = df[c].astype(object)
    df = df[df["sni"].notna() & df["tls_server_shape"].notna()]
    return df


def clusters(df):
    """The flows of ``df`` one TLS stack answered for several vendors (signal one_stack_for_vendors):
    a DataFrame of uid, cluster key, vendors, flows and servers of the cluster."""
    import pandas as pd

    v = df[df["vendor"].notna() & df["matched_by"].isin(NAME_MATCHES)].copy()
    if v.empty:
        return v.assign(cluster=pd.Series(dtype=object))
    v["name_len"] = v["sni"].str.len()
    v["adj"] = v["tls_server_flight"].astype("int64") - FLIGHT_SLOPE * v["name_len"]
    hits = []
    # two grids offset by half a cell: any set of flights within SPREAD/2 lies in one cell of one of them
    for off in (0, SPREAD // 2):
        v["cell"] = (v["adj"] + off) // SPREAD
        # a name's certificate is one (or a few, on a few paths): its flights repeat. Only the cells holding
        # NAME_SHARE of a name's flights count for it (flights of a random size never do)
        total = v.groupby([*KEY, "sni"], sort=False)["uid"].transform("size")
        here = v.groupby([*KEY, "sni", "cell"], sort=False)["uid"].transform("size")
        c = v[here >= NAME_SHARE * total]
        g = c.groupby([*KEY, "cell"], sort=False)
        agg = g.agg(vendors=("vendor", "nunique"), lo=("name_len", "min"), hi=("name_len", "max"))
        ok = agg[(agg["vendors"] >= MIN_VENDORS) & (agg["hi"] - agg["lo"] >= MIN_NAME_SPAN)]
        if ok.empty:
            continue
        m = c.merge(ok.reset_index()[[*KEY, "cell"]], on=[*KEY, "cell"])
        # the shape says the transport too (t13_ over TCP, q13_ over QUIC)
        m["cluster"] = m["tls_server_shape"] + "|" + (m["cell"] * SPREAD - off).astype(str)
        hits.append(m[["uid", "cluster"]])
    if not hits:
        return v.iloc[0:0].assign(cluster=pd.Series(dtype=object))
    return pd.concat(hits).drop_duplicates("uid")


def verdicts(table, findings: Iterable[tuple[Finding, tuple[str, ...]]] = ()):
    """Per-flow verdicts over the flows ``table`` (Arrow) and the findings rows the per-flow detectors
    raised: (verdicts by uid, the clustered flows as a DataFrame, cluster summaries)."""
    df = _candidates(table)
    if df is None or df.empty:
        return {}, None, []
    hit = clusters(df)
    if hit.empty:
        return {}, None, []
    df = df.merge(hit, on="uid", how="left")
    inc = df[df["cluster"].notna()]
    out = df[df["cluster"].isna()]
    # flight_differs_for_name: the name's flights outside any cluster, far from this one
    far = set()
    if not out.empty:
        ref = out.groupby(["transport", "sni"])["tls_server_flight"].agg(["min", "max"])
        j = inc.join(ref, on=["transport", "sni"], how="inner")
        d = (j["tls_server_flight"] - j["min"]).abs().combine((j["tls_server_flight"] - j["max"]).abs(), max)
        far = set(j.loc[d > NAME_DIFF, "uid"])
    abort = set(inc.loc[inc["tls_handshake"].isin(ABORTS), "uid"])
    # path evidence from the per-flow findings: the flow's own, or a TLS 1.2 certificate of the same
    # client and vendor
    path_uids, cert_uids = set(), set()
    for fd, uids in findings:
        if fd.code in PATH_CODES:
            path_uids.update(uids or (fd.uid,))
        elif fd.code in CERT_CODES:
            cert_uids.update(uids or (fd.uid,))
    cert_pairs = set()
    if cert_uids:
        import pyarrow as pa
        import pyarrow.compute as pc

        sel = table.filter(pc.is_in(table["uid"], value_set=pa.array(sorted(u for u in cert_uids if u))))
        cp = sel.select(["src_ip", "vendor"]).to_pylist()
        cert_pairs = {(r["src_ip"], r["vendor"]) for r in cp if r["vendor"] is not None}
    res = {}
    for uid, src, vendor in zip(inc["uid"], inc["src_ip"], inc["vendor"]):
        sig = ["one_stack_for_vendors"]
        if uid in far:
            sig.append("flight_differs_for_name")
        if uid in abort:
            sig.append("client_abort_after_flight")
        if uid in path_uids or (src, vendor) in cert_pairs:
            sig.append("path_evidence")
        res[uid] = Verdict(uid, round(min(0.9, 0.5 + 0.2 * (len(sig) - 1)), 2), tuple(sig))
    summaries = []
    for key, g in inc.groupby("cluster", sort=True):
        summaries.append({
            "cluster": key, "shape": g["tls_server_shape"].iloc[0], "flows": len(g),
            "vendors": sorted(set(g["vendor"])), "servers": sorted(set(g["dst_ip"])),
            "constant": int((g["tls_server_flight"] - FLIGHT_SLOPE * g["sni"].str.len()).median()),
            "uids": list(g["uid"]), "ts": _seconds(g["ts"].min()),
        })  # fmt: skip
    return res, inc, summaries


def _seconds(ts) -> float:
    """A flows-table time (a Timestamp, or seconds in a hand-made table) in seconds."""
    return ts.timestamp() if hasattr(ts, "timestamp") else float(ts)


def _hp(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def findings(table, rows: list[tuple[Finding, tuple[str, ...]]]) -> list[tuple[Finding, tuple[str, ...]]]:
    """The findings of the passive TLS 1.3 analysis: one per flow with a verdict (folded by destination
    by the collector), and one capture-level line per TLS stack that answered for several vendors."""
    res, inc, summaries = verdicts(table, rows)
    if not res:
        return []
    out = []
    for r in inc.itertuples(index=False):  # the clustered flows only: a handful
        v = res[r.uid]
        ts = _seconds(r.ts)
        where = f"{r.sni} ({_hp(r.dst_ip, r.dst_port)})"
        adj = int(r.tls_server_flight) - FLIGHT_SLOPE * len(r.sni)
        ev = (("sni", r.sni), ("tls_version", "TLSv1.3"), ("handshake", str(r.tls_handshake)),
              ("server_shape", r.tls_server_shape), ("server_flight", str(int(r.tls_server_flight))),
              ("flight_less_name", str(adj)), ("confidence", f"{v.confidence:.2f}"),
              ("signals", ",".join(v.signals)),
              ("cert", f"unavailable: {'quic' if r.quic_version else 'tls1.3'}"))  # fmt: skip
        if r.quic_version:
            ev = ev[:1] + (("quic_version", str(r.quic_version)),) + ev[1:]
        out.append((Finding(
            kind=FindingKind.INTERCEPTED, severity=v.severity, code=CODE, uid=r.uid, rule_id=r.rule_id,
            vendor=r.vendor, service=r.service, target=where,
            message=(f"{where}: TLS 1.3 interception likely (confidence {v.confidence:.2f}, no certificate "
                     f"visible): {', '.join(v.signals)}; the server's TLS stack ({r.tls_server_shape}, "
                     f"flight {int(r.tls_server_flight)} bytes = {adj} + 2 x name) answered for other "
                     "vendors too"),
            evidence=ev,
            identifier=f"intercepted:tls13_passive|{r.rule_id or '-'}|{r.sni}|{r.transport}/{r.dst_port}",
            ts=ts,
        ), (r.uid,)))  # fmt: skip
    for s in summaries:
        sev = max(res[u].severity for u in s["uids"])
        more = len(s["servers"]) - 4
        servers = ", ".join(s["servers"][:4]) + (f" and {more} more" if more > 0 else "")
        out.append((Finding(
            kind=FindingKind.INTERCEPTED, severity=sev, code=CAPTURE_CODE, uid=s["uids"][0], rule_id=None,
            vendor=None, service=None, target=f"{len(s['vendors'])} vendors",
            message=(f"TLS 1.3 traffic to {len(s['vendors'])} vendors ({', '.join(s['vendors'])}) answered "
                     f"by one TLS stack ({s['shape']}, flights = {s['constant']} + 2 x name length): likely "
                     f"an inspection proxy in the path to {servers}"),
            evidence=(("vendors", ",".join(s["vendors"])), ("server_shape", s["shape"]),
                      ("flight_less_name", str(s["constant"])), ("flows", str(s["flows"])),
                      ("servers", ",".join(s["servers"]))),
            identifier=f"intercepted:tls13_one_stack|{s['cluster']}", ts=s["ts"], count=s["flows"],
        ), tuple(s["uids"])))  # fmt: skip
    return out

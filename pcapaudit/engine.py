"""The flow table: packets -> bidirectional flows, vectorised per batch.

Most packets only update counters. For each batch the engine
1. feeds the answers of the batch's DNS responses to the ``DnsMap`` (all of them, in every partition
   of a parallel audit, so naming does not depend on the partitioning),
2. builds a canonical key per packet (lower endpoint first) and a 64-bit hash of it,
3. groups the batch by hash and finds or creates one slot per flow in a sorted global index,
4. adds per-flow, per-direction packet/byte counts and the first/last packet number of each TCP
   event (SYN, SYN-ACK, pure ACK, data, FIN, RST) with numpy reductions,
5. hands only the packets that still matter to ``DeepState`` (the SYN, the first payload of each
   direction until its parser is satisfied, every DNS packet, ICMP errors), in capture order,
6. names the flows that started in the batch by the DNS answers seen up to their first packet,
7. expires idle and closed flows and turns their slots into frozen ``FlowRecord`` rows (or, for flows
   without application details, ``FlowBase`` tuples).

Slots are reused, so memory follows the number of concurrent flows, not the file size.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcapaudit.capture.pcapfile import PacketBatch
from pcapaudit.decode import FAST, DecodeResult
from pcapaudit.decode.vector import MIX_C1, MIX_C2, MIX_PERTURB, QINQ, mix64 as _mix
from pcapaudit.decode import dns as dnsmod
from pcapaudit.decode import icmp as icmpmod
from pcapaudit.decode import tls as tlsmod
from pcapaudit.deep import CLIENT, SERVER, DeepState
from pcapaudit.enrich import DnsMap, answer_names
from pcapaudit.model import (
    DnsAnswer,
    DnsTransaction,
    FlowBase,
    FlowRecord,
    TlsAlert,
    Transport,
    Weird,
    process_label,
)

EV_S, EV_H, EV_A, EV_D, EV_F, EV_R = range(6)
NEV = 6
NONE_FIRST = np.iinfo(np.int64).max
NO_VLAN = -2  # no packet yet in that direction (``vdir``)
HISTORY_LETTERS = "SHADFR"

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04

# ports that identify the server side when the first packet seen is not a SYN
SERVICE_PORTS = np.array(sorted({
    20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 123, 135, 137, 138, 139, 143, 161, 389, 443, 445, 465,
    500, 514, 548, 587, 636, 853, 993, 995, 1194, 1433, 1521, 1812, 1900, 2152, 2195, 2196, 2197, 2575, 3128,
    3268, 3306, 3389, 3478, 3544, 4500, 4789, 5060, 5222, 5223, 5228, 5229, 5230, 5235, 5236, 5353, 5355,
    5432, 5671, 5672, 8020, 8021, 8027, 8028, 8031, 8032, 8080, 8081, 8383, 8384, 8389, 8443, 8444, 8636,
    11211, 20001,
}), dtype=np.int64)  # fmt: skip
DNS_PORTS = np.array([53, 5353, 5355], dtype=np.int64)
# only a resolver's answers name flows: any host on the link may send mDNS (5353) or LLMNR (5355) answers
NAMING_PORTS = np.array([53], dtype=np.int64)
EMIT_CHUNK = 4096  # flows turned into records per step when many finish together
ICMP_VLAN_SCAN_MAX = 4096  # below this many live flows, an ICMP error's flow is also looked for on every VLAN

_PERTURB = np.uint64(MIX_PERTURB)
_PER_ERROR = object()  # an ICMP error's batch lookup met a hash clash: _find_slot walks it alone


def flow_hash(ipver, proto, vlan, ahi, alo, aport, bhi, blo, bport) -> np.ndarray:
    """64-bit hash of canonical flow keys (arrays of equal length)."""
    with np.errstate(over="ignore"):
        h = _mix(alo.astype(np.uint64) + _PERTURB)
        h = _mix(h ^ ahi.astype(np.uint64))
        h = _mix(h ^ blo.astype(np.uint64))
        h = _mix(h ^ bhi.astype(np.uint64))
        small = (
            (aport.astype(np.uint64) << np.uint64(40))
            | (bport.astype(np.uint64) << np.uint64(24))
            | (proto.astype(np.uint64) << np.uint64(8))
            | ipver.astype(np.uint64)
        )
        h = _mix(h ^ small)
        h = _mix(h ^ (vlan + 1).astype(np.uint64))
    return h


def canonical(shi, slo, sp, dhi, dlo, dp) -> tuple[np.ndarray, tuple, tuple]:
    """A flow key's two endpoints in canonical order, (hi, lo, port) ascending as ``_find_slot`` orders one
    key: (whether the source is the greater endpoint, endpoint a, endpoint b), a the lesser."""
    gt = (shi > dhi) | ((shi == dhi) & ((slo > dlo) | ((slo == dlo) & (sp > dp))))
    a = (np.where(gt, dhi, shi), np.where(gt, dlo, slo), np.where(gt, dp, sp))
    b = (np.where(gt, shi, dhi), np.where(gt, slo, dlo), np.where(gt, sp, dp))
    return gt, a, b


_M64 = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """``_mix`` of one value, in Python integers (the same bits)."""
    x = ((x ^ (x >> 33)) * MIX_C1) & _M64
    x = ((x ^ (x >> 31)) * MIX_C2) & _M64
    return x ^ (x >> 27)


def flow_hash_one(ipver: int, proto: int, vlan: int, ahi: int, alo: int, aport: int, bhi: int, blo: int,
                  bport: int) -> int:  # fmt: skip
    """``flow_hash`` of one key without numpy (ICMP errors look up one flow at a time)."""
    h = _mix_int((alo + MIX_PERTURB) & _M64)
    h = _mix_int(h ^ ahi)
    h = _mix_int(h ^ blo)
    h = _mix_int(h ^ bhi)
    h = _mix_int(h ^ (((aport << 40) | (bport << 24) | (proto << 8) | ipver) & _M64))
    return _mix_int(h ^ ((vlan + 1) & _M64))


@dataclass
class EngineConfig:
    """Timeouts and caps of the flow table."""

    idle_tcp: float = 300.0
    idle_udp: float = 60.0
    idle_dns: float = 10.0  # a DNS socket still waiting for an answer (Zeek: dns_session_timeout 10 s)
    idle_dns_answered: float = 2.0  # a DNS socket whose every query got an answer
    close_delay: float = 5.0
    rank_cap: int = 256  # deep-parse at most this many payload packets per flow direction per batch
    unanswered: float | None = 30.0  # a flow the responder never answered is over after this long
    # flows held at once; past it the flows idle the longest end early (a flood of spoofed traffic makes
    # a flow per packet, each alive for its timeout). None: no cap.
    max_flows: int | None = 200_000
    processes: int = 1  # processes sharing max_flows (a parallel audit): each holds its share

    @property
    def flow_cap(self) -> int | None:
        """This process's share of ``max_flows`` (rounded up), None for no cap."""
        if self.max_flows is None:
            return None
        return -(-self.max_flows // max(self.processes, 1))


class FlowEngine:
    """Vectorised flow table feeding ``DeepState`` and emitting ``FlowRecord``s."""

    def __init__(
        self,
        on_flow: Callable[[FlowRecord], None],
        on_dns: Callable[[DnsTransaction], None],
        on_weird: Callable[[Weird], None],
        config: EngineConfig | None = None,
        dnsmap: DnsMap | None = None,
        partition: tuple[int, int] | None = None,
        on_plain: Callable[[FlowBase], None] | None = None,
    ):
        self.cfg = config or EngineConfig()
        # flows without application details (most DNS and NTP flows) go here as FlowBase tuples when set,
        # else to on_flow as FlowRecords
        self.on_plain = on_plain
        # (k, n): this engine owns the flows whose client endpoint the Partitioner gives to k of n
        self.partition = partition if partition and partition[1] > 1 else None
        self.partitioner: Partitioner | None = None
        self._foreign_icmp: list[tuple] = []
        self.on_flow = on_flow
        self.on_dns = on_dns
        self.on_weird = on_weird
        self.dnsmap = dnsmap if dnsmap is not None else DnsMap()
        self.cap = 0
        self._alloc_arrays(1024)
        self.g_hash = np.zeros(0, dtype=np.uint64)
        self.g_slot = np.zeros(0, dtype=np.int64)
        self.free: list[int] = list(range(self.cap - 1, -1, -1))
        self.deep: dict[int, DeepState] = {}
        self.proc_of: dict[int, tuple] = {}  # slot -> (command, pid, effective command): PKTAP or Apple pcapng
        self.iface_of: dict[int, str] = {}  # slot -> interface name (PKTAP, pcapng with several interfaces)
        self.now = 0.0
        self.flows_emitted = 0
        self.orphan_icmp: list[tuple[float, icmpmod.Quoted, int, int, str]] = []
        self.max_active = 0
        self.hash_collisions = 0
        self.ended_early = 0  # flows ended by the max_flows cap, not by their own timeout
        self._ipcache: dict = {}

    # -- slot storage ----------------------------------------------------------------------------
    def _alloc_arrays(self, cap: int) -> None:
        old = self.cap
        names = {
            "k_ipver": (np.int8, ()), "k_proto": (np.int16, ()), "k_vlan": (np.int64, ()),
            "k_ahi": (np.uint64, ()), "k_alo": (np.uint64, ()), "k_bhi": (np.uint64, ()),
            "k_blo": (np.uint64, ()), "k_aport": (np.int64, ()), "k_bport": (np.int64, ()),
            "orig_a": (np.bool_, ()), "first_ts": (np.float64, ()), "last_ts": (np.float64, ()),
            "first_pkt": (np.int64, ()), "pkts": (np.int64, (2,)), "ipb": (np.int64, (2,)),
            "pay": (np.int64, (2,)), "evf": (np.int64, (2, NEV)), "evl": (np.int64, (2, NEV)),
            "evn": (np.int64, (2, NEV)), "want": (np.int8, (2,)), "active": (np.bool_, ()),
            "isn": (np.int64, (2,)), "isn2": (np.int64, (2,)),
            "vlan0": (np.int64, ()), "vdir": (np.int64, (2,)), "ack0": (np.int64, (2,)),
            "ackadv": (np.int64, (2,)), "ackn": (np.int64, (2,)),
            "hash": (np.uint64, ()), "has_proc": (np.bool_, ()), "has_iface": (np.bool_, ()),
        }  # fmt: skip
        for name, (dt, shape) in names.items():
            arr = np.zeros((cap, *shape), dtype=dt)
            if name == "evf":
                arr[:] = NONE_FIRST
            elif name in ("evl", "isn", "isn2", "ack0", "vlan0"):
                arr[:] = -1
            elif name == "vdir":
                arr[:] = NO_VLAN
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        self.uid_of: list[str | None] = getattr(self, "uid_of", []) + [None] * (cap - old)
        self.ips_of: list[tuple[str, str] | None] = getattr(self, "ips_of", []) + [None] * (cap - old)
        self.names_of: list[tuple[str, ...]] = getattr(self, "names_of", []) + [()] * (cap - old)
        self.cap = cap

    def _alloc(self, n: int) -> np.ndarray:
        if len(self.free) < n:
            old = self.cap
            grow = old * 2
            cap = self.cfg.flow_cap
            if cap is not None:  # near the cap, grow by what the batch needs, not double
                grow = min(grow, cap + cap // 8)
            new = max(grow, old + n)
            self._alloc_arrays(new)
            self.free.extend(range(new - 1, old - 1, -1))
        out = np.array([self.free.pop() for _ in range(n)], dtype=np.int64)
        return out

    def _reset_slots(self, slots: np.ndarray) -> None:
        self.pkts[slots] = 0
        self.ipb[slots] = 0
        self.pay[slots] = 0
        self.evf[slots] = NONE_FIRST
        self.evl[slots] = -1
        self.evn[slots] = 0
        self.want[slots] = 0
        self.active[slots] = False
        self.isn[slots] = -1
        self.isn2[slots] = -1
        self.vlan0[slots] = -1
        self.vdir[slots] = NO_VLAN
        self.ack0[slots] = -1
        self.ackadv[slots] = 0
        self.ackn[slots] = 0
        self.has_proc[slots] = False
        self.has_iface[slots] = False

    @property
    def active_flows(self) -> int:
        """Flows currently held in the table."""
        return len(self.g_hash)

    # -- per batch -------------------------------------------------------------------------------
    def process(self, batch: PacketBatch, dres: DecodeResult) -> None:
        """Account every decoded packet of the batch to its flow; deep-parse the ones that matter."""
        c = dres.cols
        rows = np.nonzero(c.status == FAST)[0]
        icmp_elsewhere: set[int] = set()
        parsed = self._name_by_dns(batch, dres, rows)
        if self.partition is not None and len(rows):
            rows, icmp_elsewhere = self._own_rows(batch, dres, rows)
        if len(rows) == 0:
            self._foreign_icmp_errors()
            if len(batch):
                self.now = max(self.now, float(batch.ts.max()))
            return
        ts = batch.ts[rows]
        pktno = batch.first_index + rows
        ipver = c.ipver[rows].astype(np.int64)
        proto = c.proto[rows].astype(np.int64)
        tags = c.vlan[rows].astype(np.int64)
        # one conversation is one flow whatever VLAN tags its packets carry (replies re-tagged by a router
        # on a trunk): the key leaves the tags out, as Zeek's does by default; the flow keeps its first
        # packet's tags and the first ones of each direction
        vlan = np.full(len(rows), -1, dtype=np.int64)
        shi, slo, dhi, dlo = c.src_hi[rows], c.src_lo[rows], c.dst_hi[rows], c.dst_lo[rows]
        sp, dp = c.sport[rows], c.dport[rows]
        gt, (ahi, alo, ap), (bhi, blo, bp) = canonical(shi, slo, sp, dhi, dlo, dp)
        d = gt.astype(np.int64)  # 0: a->b, 1: b->a
        h = flow_hash(ipver, proto, vlan, ahi, alo, ap, bhi, blo, bp)
        keycols = (ipver, proto, vlan, ahi, alo, ap, bhi, blo, bp)

        # group the batch by flow; a hash shared by different keys is perturbed until unique
        for _ in range(8):
            uh, first_idx, inv = np.unique(h, return_index=True, return_inverse=True)
            rep = first_idx[inv]
            clash = np.zeros(len(h), dtype=bool)
            for col in keycols:
                clash |= col != col[rep]
            if not clash.any():
                break
            self.hash_collisions += int(clash.sum())
            with np.errstate(over="ignore"):
                h[clash] = _mix(h[clash] ^ _PERTURB)
        G = len(uh)

        # find slots; verify stored keys (a global collision is perturbed the same way)
        slots_u = np.full(G, -1, dtype=np.int64)
        todo = np.arange(G)
        hu = uh.copy()
        for _ in range(8):
            if len(todo) == 0:
                break
            pos = np.searchsorted(self.g_hash, hu[todo])
            posc = np.minimum(pos, max(len(self.g_hash) - 1, 0))
            found = (pos < len(self.g_hash)) & (self.g_hash[posc] == hu[todo]) if len(self.g_hash) else np.zeros(len(todo), bool)
            cand = np.where(found, self.g_slot[posc] if len(self.g_slot) else -1, -1)
            ok = found.copy()
            if found.any():
                fi = np.nonzero(found)[0]
                s = cand[fi]
                r = first_idx[todo[fi]]
                same = (
                    (self.k_ipver[s] == ipver[r]) & (self.k_proto[s] == proto[r]) & (self.k_vlan[s] == vlan[r])
                    & (self.k_ahi[s] == ahi[r]) & (self.k_alo[s] == alo[r]) & (self.k_aport[s] == ap[r])
                    & (self.k_bhi[s] == bhi[r]) & (self.k_blo[s] == blo[r]) & (self.k_bport[s] == bp[r])
                )  # fmt: skip
                bad = fi[~same]
                ok[bad] = False
                if len(bad):
                    self.hash_collisions += len(bad)
                    with np.errstate(over="ignore"):
                        hu[todo[bad]] = _mix(hu[todo[bad]] ^ _PERTURB)
                    # keep the collided groups in todo, drop them from "new"
                good = fi[same]
                slots_u[todo[good]] = cand[good]
            newmask = ~found
            if newmask.any():
                ng = todo[newmask]
                ns = self._alloc(len(ng))
                slots_u[ng] = ns
                self._init_slots(ns, first_idx[ng], keycols, hu[ng])
                self.vlan0[ns] = tags[first_idx[ng]]
                ins = np.searchsorted(self.g_hash, hu[ng])
                order = np.argsort(hu[ng], kind="stable")
                self.g_hash = np.insert(self.g_hash, ins[order], hu[ng][order])
                self.g_slot = np.insert(self.g_slot, ins[order], ns[order])
            todo = todo[found & ~ok]
        new_groups = np.zeros(G, dtype=bool)
        new_groups[~self.active[slots_u]] = True

        # per-flow aggregates of this batch
        cell = inv * 2 + d
        pk = np.bincount(cell, minlength=2 * G).reshape(G, 2)
        ib = np.bincount(cell, weights=c.iplen[rows], minlength=2 * G).astype(np.int64).reshape(G, 2)
        py = np.bincount(cell, weights=c.plen[rows], minlength=2 * G).astype(np.int64).reshape(G, 2)
        fl = c.flags[rows]
        plen = c.plen[rows]
        tcp = proto == 6
        syn = tcp & ((fl & SYN) != 0)
        ack = (fl & ACK) != 0
        evmask = (
            syn & ~ack,
            syn & ack,
            tcp & ack & ((fl & (SYN | FIN | RST)) == 0) & (plen == 0),
            plen > 0,
            tcp & ((fl & FIN) != 0),
            tcp & ((fl & RST) != 0),
        )
        evf = np.full((2 * G, NEV), NONE_FIRST, dtype=np.int64)
        evl = np.full((2 * G, NEV), -1, dtype=np.int64)
        evn = np.zeros((2 * G, NEV), dtype=np.int64)
        for e, m in enumerate(evmask):
            sel = np.nonzero(m)[0]
            if len(sel) == 0:
                continue
            cc = cell[sel]
            pn = pktno[sel]
            np.minimum.at(evf[:, e], cc, pn)
            np.maximum.at(evl[:, e], cc, pn)
            evn[:, e] = np.bincount(cc, minlength=2 * G)
        last_ts = np.full(G, -np.inf)
        np.maximum.at(last_ts, inv, ts)
        # initial sequence numbers of each direction (first SYN, and a later different one), so the
        # SYN packets themselves never need to reach the stream parsers
        syn_rows = np.nonzero(syn)[0]
        if len(syn_rows):
            cc = cell[syn_rows]
            sq = c.seq[rows[syn_rows]]
            u, fi = np.unique(cc, return_index=True)
            _u, li = np.unique(cc[::-1], return_index=True)
            li = len(cc) - 1 - li
            syn_isn = (u, sq[fi], sq[li])
        else:
            syn_isn = None

        # new flows: orientation (client = SYN sender, else SYN-ACK receiver, else port heuristics)
        ng = np.nonzero(new_groups)[0]
        if len(ng):
            s = slots_u[ng]
            f3 = evf.reshape(G, 2, NEV)[ng]
            sA, sB = f3[:, 0, EV_S], f3[:, 1, EV_S]
            hA, hB = f3[:, 0, EV_H], f3[:, 1, EV_H]
            has_s = (sA != NONE_FIRST) | (sB != NONE_FIRST)
            has_h = (hA != NONE_FIRST) | (hB != NONE_FIRST)
            fr = first_idx[ng]
            first_dir = d[fr]
            snd_port = np.where(first_dir == 0, ap[fr], bp[fr])
            rcv_port = np.where(first_dir == 0, bp[fr], ap[fr])
            snd_svc = np.isin(snd_port, SERVICE_PORTS)
            rcv_svc = np.isin(rcv_port, SERVICE_PORTS)
            flip = (snd_svc & ~rcv_svc) | ((snd_port < 1024) & (rcv_port >= 1024) & ~rcv_svc)
            icmp_first = np.isin(proto[fr], (1, 58))
            flip &= ~icmp_first
            heur_a = (first_dir == 0) ^ flip
            orig_a = np.where(has_s, sA <= sB, np.where(has_h, hB <= hA, heur_a))
            self.orig_a[s] = orig_a
            self.first_ts[s] = ts[fr]
            self.first_pkt[s] = pktno[fr]
            # uid and (client, server) address strings, made once per flow
            ip, uid_of, ips_of = self._ip_str, self.uid_of, self.ips_of
            for slot, uid, ver, a_hi, a_lo, b_hi, b_lo, o in zip(
                s.tolist(), make_uids(self.hash[s], ts[fr], pktno[fr]), ipver[fr].tolist(), ahi[fr].tolist(),
                alo[fr].tolist(), bhi[fr].tolist(), blo[fr].tolist(), orig_a.tolist(),
            ):  # fmt: skip
                uid_of[slot] = uid
                a_ip, b_ip = ip(ver, a_hi, a_lo), ip(ver, b_hi, b_lo)
                ips_of[slot] = (a_ip, b_ip) if o else (b_ip, a_ip)
            self.last_ts[s] = ts[fr]
            self.active[s] = True
            pr = proto[fr]
            dnsflow = np.isin(ap[fr], DNS_PORTS) | np.isin(bp[fr], DNS_PORTS)
            w = np.where((pr == 6) | (pr == 17), np.where(dnsflow, 2, 1), 0).astype(np.int8)
            self.want[s, 0] = w
            self.want[s, 1] = w

        # merge into the slots (each slot appears once per batch, so fancy assignment is safe)
        s = slots_u
        self.pkts[s] += pk
        self.ipb[s] += ib
        self.pay[s] += py
        e3f = evf.reshape(G, 2, NEV)
        self.evf[s] = np.minimum(self.evf[s], e3f)
        self.evl[s] = np.maximum(self.evl[s], evl.reshape(G, 2, NEV))
        self.evn[s] += evn.reshape(G, 2, NEV)
        self.last_ts[s] = np.maximum(self.last_ts[s], last_ts)
        self.max_active = max(self.max_active, len(self.g_hash))
        if syn_isn is not None:
            u, first_seq, last_seq = syn_isn
            us, ud = s[u // 2], u % 2
            unknown = self.isn[us, ud] < 0
            self.isn[us[unknown], ud[unknown]] = first_seq[unknown]
            other = last_seq != self.isn[us, ud]
            self.isn2[us[other], ud[other]] = last_seq[other]

        # the first tags of each direction; the acknowledgement numbers of ACK packets (not RSTs): the
        # first, how far later ones went past it, how many came without SYN (``one_direction``)
        u, fi = np.unique(cell, return_index=True)
        us, ud = s[u // 2], u % 2
        unknown = self.vdir[us, ud] == NO_VLAN
        self.vdir[us[unknown], ud[unknown]] = tags[fi[unknown]]
        ack_rows = np.nonzero(tcp & ack & ((fl & RST) == 0))[0]
        if len(ack_rows):
            acks = c.ident[rows[ack_rows]].astype(np.int64) & 0xFFFFFFFF
            cc = cell[ack_rows]
            u, fi = np.unique(cc, return_index=True)
            us, ud = s[u // 2], u % 2
            unknown = self.ack0[us, ud] < 0
            self.ack0[us[unknown], ud[unknown]] = acks[fi[unknown]]
            rs, rd = s[cc // 2], cc % 2
            adv = (acks - self.ack0[rs, rd]) & 0xFFFFFFFF
            ok = adv < (1 << 31)
            np.maximum.at(self.ackadv, (rs[ok], rd[ok]), adv[ok])
            np.add.at(self.ackn, (rs, rd), (~syn[ack_rows]).astype(np.int64))

        # deep parsing of the packets that still matter
        slot_r = s[inv]
        if dres.processes is not None:
            _first_of_flow(dres.processes, rows, slot_r, self.proc_of, self.has_proc)
        if dres.interfaces is not None:
            _first_of_flow(dres.interfaces, rows, slot_r, self.iface_of, self.has_iface)
        want_r = self.want[slot_r, d]
        haspay = c.pcap[rows] > 0
        cand = (want_r > 0) & haspay
        cidx = np.nonzero(cand)[0]
        if len(cidx):
            cc = cell[cidx]
            order = np.argsort(cc, kind="stable")
            scc = cc[order]
            starts = np.r_[0, np.nonzero(scc[1:] != scc[:-1])[0] + 1]
            grp_start = np.repeat(starts, np.diff(np.r_[starts, len(scc)]))
            rank = np.empty(len(cidx), dtype=np.int64)
            rank[order] = np.arange(len(scc)) - grp_start
            keep = (rank < self.cfg.rank_cap) | (want_r[cidx] == 2)
            cidx = cidx[keep]
        icmp_rows = np.nonzero(np.isin(proto, (1, 58)) & (c.icmp_type[rows] >= 0))[0]
        if len(icmp_rows):
            it = c.icmp_type[rows[icmp_rows]]
            iv = ipver[icmp_rows]
            err = np.where(iv == 4, np.isin(it, (3, 11, 12, 5)), np.isin(it, (1, 2, 3, 4)))
            icmp_rows = icmp_rows[err]
        if icmp_elsewhere and len(icmp_rows):  # errors about flows another partition owns are handled there
            icmp_rows = icmp_rows[~np.isin(rows[icmp_rows], list(icmp_elsewhere))]
        if len(cidx) or len(icmp_rows):
            self._deep_rows(batch, dres, rows, np.union1d(cidx, icmp_rows), slot_r, d, pktno, ts, proto, syn, parsed)
        self._foreign_icmp_errors()
        if len(ng):
            # name new flows now, by the DNS answers seen up to their first packet (this batch's included):
            # by the time a long flow ends, later answers for a busy shared address may have pushed the
            # one that named it out of the bounded DnsMap
            lookup, ips_of, names_of = self.dnsmap.lookup, self.ips_of, self.names_of
            for slot, first in zip(slots_u[ng].tolist(), ts[first_idx[ng]].tolist()):
                names_of[slot] = lookup(ips_of[slot][1], first)  # type: ignore[index]

        self.now = max(self.now, float(ts.max()))
        self.expire(self.now)

    def _init_slots(self, ns, reps, keycols, hashes) -> None:
        ipver, proto, vlan, ahi, alo, ap, bhi, blo, bp = keycols
        self._reset_slots(ns)
        self.k_ipver[ns] = ipver[reps]
        self.k_proto[ns] = proto[reps]
        self.k_vlan[ns] = vlan[reps]
        self.k_ahi[ns] = ahi[reps]
        self.k_alo[ns] = alo[reps]
        self.k_aport[ns] = ap[reps]
        self.k_bhi[ns] = bhi[reps]
        self.k_blo[ns] = blo[reps]
        self.k_bport[ns] = bp[reps]
        self.hash[ns] = hashes

    def _name_by_dns(self, batch: PacketBatch, dres: DecodeResult, rows: np.ndarray) -> dict:
        """Feed the answers of every DNS response over UDP in the batch to the DnsMap, in capture order.

        Every partition of a parallel audit does this for all responses, not only its own, so a flow is
        named exactly as in a single process (also by answers another device received). Returns the
        parsed messages (or the DnsError) by row, for the DNS transactions of the partition's own flows.
        """
        c = dres.cols
        if not len(rows):
            return {}
        pr, sp, dp, n = c.proto[rows], c.sport[rows], c.dport[rows], c.pcap[rows]
        sel = rows[(pr == 17) & (n >= 12) & (np.isin(sp, NAMING_PORTS) | np.isin(dp, NAMING_PORTS))]
        if not len(sel):
            return {}
        poff = c.poff[sel]
        inbuf = poff >= 0
        # only responses (QR) of standard queries (opcode 0) with rcode 0 and answers can name flows; the
        # others are parsed by their own flow's DNS state, as before. Payloads in the buffer are checked
        # here at once, reassembled ones (outside it) one by one below.
        qr = np.ones(len(sel), dtype=bool)
        if inbuf.any():
            b = np.frombuffer(batch.buf, dtype=np.uint8)
            o = poff[inbuf]
            qr[inbuf] = ((b[o + 2] & 0xF8) == 0x80) & ((b[o + 3] & 0x0F) == 0) & ((b[o + 6] | b[o + 7]) != 0)
        buf, extra, add = batch.buf, dres.extra_payload, self.dnsmap.add
        parsed: dict[int, object] = {}
        for row, off, ln, t in zip(sel[qr].tolist(), poff[qr].tolist(), c.pcap[sel[qr]].tolist(),
                                   batch.ts[sel[qr]].tolist()):  # fmt: skip
            if off >= 0:
                payload = buf[off : off + ln]
            else:
                payload = extra.get(row, b"")
                if len(payload) < 12 or payload[2] & 0xF8 != 0x80 or payload[3] & 0x0F or not (payload[6] or payload[7]):
                    continue
            try:
                msg = parsed[row] = dnsmod.parse(payload)
            except Exception as e:  # noqa: BLE001 - DnsError, or a parser bug: the flow's own DeepState reports it
                parsed[row] = e
                continue
            for addr, name in answer_names(msg.answers):  # opcode 0 and rcode 0: checked above
                add(t, addr, name)
        return parsed

    def _deep_rows(self, batch, dres, rows, sel, slot_r, d, pktno, ts, proto, syn, parsed=None) -> None:
        c = dres.cols
        buf = batch.buf
        extra = dres.extra_payload
        prow = rows[sel]
        slots = slot_r[sel]
        dirs = d[sel]
        # per-row facts as Python lists, computed in bulk: the side each packet comes from, its flow's
        # ports and initial sequence numbers (only read when a flow's state is first created)
        orig_a = self.orig_a[slots]
        side_l = np.where((dirs == 0) == orig_a, CLIENT, SERVER).tolist()
        cport_l = np.where(orig_a, self.k_aport[slots], self.k_bport[slots]).tolist()
        sport_l = np.where(orig_a, self.k_bport[slots], self.k_aport[slots]).tolist()
        isn_l = self.isn[slots, dirs].tolist()
        isn2_l = self.isn2[slots, dirs].tolist()
        deep = self.deep
        want = self.want
        icmp_rows = prow[(proto[sel] == 1) | (proto[sel] == 58)]
        looked_up = self._icmp_lookups(buf, extra, c, icmp_rows) if len(icmp_rows) else {}
        for row, slot, dd, pkt, t, pr, sy, seq, poff, pcap, side, cport, sport, isn, isn2 in zip(
            prow.tolist(), slots.tolist(), dirs.tolist(), pktno[sel].tolist(), ts[sel].tolist(),
            proto[sel].tolist(), syn[sel].tolist(), c.seq[prow].tolist(), c.poff[prow].tolist(),
            c.pcap[prow].tolist(), side_l, cport_l, sport_l, isn_l, isn2_l,
        ):  # fmt: skip
            payload = buf[poff : poff + pcap] if poff >= 0 else extra.get(row, b"")
            if pr == 1 or pr == 58:
                self._icmp_error(t, int(c.ipver[row]), int(c.icmp_type[row]), int(c.icmp_code[row]), payload,
                                 self._endpoint_ip(slot, dd), int(c.vlan[row]), looked_up.get(row))  # fmt: skip
                continue
            st = deep.get(slot)
            if st is None:
                st = deep[slot] = DeepState(pr, cport, sport, slot)
            try:
                if pr == 6:
                    done = st.tcp(side, seq, sy, payload, pkt, t, self, (isn, isn2))
                else:
                    done = st.udp(side, payload, t, self, parsed.get(row) if parsed else None) if payload else False
            except Exception as e:  # noqa: BLE001 - a parser bug on hostile bytes costs this direction's details, not the run
                st.weird(t, "parser_error", f"packet {pkt + 1}: {type(e).__name__}: {e}")
                st.done[side] = done = True
            if done:
                want[slot, dd] = 0

    # -- ICMP ------------------------------------------------------------------------------------
    def _own_rows(self, batch, dres, rows: np.ndarray) -> tuple[np.ndarray, set[int]]:
        """Rows of the flows this partition owns, plus ICMP errors (owned or not) about its flows.

        Returns the rows to account and the set of owned ICMP-error rows whose quoted flow lives in
        another partition (accounted here, interpreted there). Errors about our flows that arrive in
        another partition's ICMP flow are handled right away.
        """
        c = dres.cols
        k, n = self.partition  # type: ignore[misc]
        if self.partitioner is None:
            self.partitioner = Partitioner(n)
        part = self.partitioner.assign(c.src_hi[rows], c.src_lo[rows], c.sport[rows], c.dst_hi[rows],
                                       c.dst_lo[rows], c.dport[rows])  # fmt: skip
        proto = c.proto[rows]
        it = c.icmp_type[rows]
        v4 = c.ipver[rows] == 4
        err = ((proto == 1) & v4 & np.isin(it, (3, 11, 12, 5))) | ((proto == 58) & ~v4 & np.isin(it, (1, 2, 3, 4)))
        elsewhere: set[int] = set()
        for i in np.nonzero(err)[0].tolist():
            row = int(rows[i])
            poff = int(c.poff[row])
            payload = batch.buf[poff : poff + int(c.pcap[row])] if poff >= 0 else dres.extra_payload.get(row, b"")
            try:
                q = icmpmod.parse_quoted(payload)
            except ValueError:
                continue  # reported as a weird by the partition that owns the ICMP flow
            qk = self.partitioner.lookup(*_endpoint_parts(q))
            if qk == k and part[i] != k:
                ver = int(c.ipver[row])
                self._foreign_icmp.append((float(batch.ts[row]), ver, int(it[i]), int(c.icmp_code[row]), payload,
                                           self._ip_str(ver, int(c.src_hi[row]), int(c.src_lo[row])),
                                           int(c.vlan[row])))  # fmt: skip
            elif qk != k and part[i] == k:
                elsewhere.add(row)
        return rows[part == k], elsewhere

    def _foreign_icmp_errors(self) -> None:
        """ICMP errors about this partition's flows that arrived in another partition's ICMP flow. They
        are interpreted once the batch's own packets are in, so a flow that began in the same batch as
        the error already has its slot."""
        for args in self._foreign_icmp:
            self._icmp_error(*args)
        self._foreign_icmp.clear()

    def _icmp_lookups(self, buf, extra: dict, c, rows: np.ndarray) -> dict[int, tuple]:
        """The quoted packet (or why it cannot be read) and its flow's slot for each ICMP error row of a
        batch, looked up all at once: ``_find_slot``'s answers, without its per-error hashing and search
        (backscatter brings an error per packet). The table does not change while a batch's packets are
        parsed, so the answers are the same. Small tables, where ``_find_slot`` also scans every VLAN, and
        hash clashes are left to it (no entries at all, or the slot ``_PER_ERROR``)."""
        if len(self.g_slot) < ICMP_VLAN_SCAN_MAX:
            return {}
        out: dict[int, tuple] = {}
        quoted, qrows = [], []
        for row, poff, n in zip(rows.tolist(), c.poff[rows].tolist(), c.pcap[rows].tolist()):
            try:
                q = icmpmod.parse_quoted(buf[poff : poff + n] if poff >= 0 else extra.get(row, b""))
            except ValueError as e:
                out[row] = (e, None)
                continue
            quoted.append(q)
            qrows.append(row)
        if not quoted:
            return out
        shi, slo, sp, dhi, dlo, dp = (np.array(v, dtype=dt) for v, dt in zip(
            zip(*(_endpoint_parts(q) for q in quoted)), (np.uint64, np.uint64, np.int64) * 2))  # fmt: skip
        _gt, (ahi, alo, ap), (bhi, blo, bp) = canonical(shi, slo, sp, dhi, dlo, dp)
        ipver = np.array([q.ipver for q in quoted], dtype=np.int64)
        proto = np.array([q.proto for q in quoted], dtype=np.int64)
        slot = np.full(len(quoted), -1, dtype=np.int64)
        todo = np.ones(len(quoted), dtype=bool)  # not settled yet
        clash = np.zeros(len(quoted), dtype=bool)  # a hash of another key: _find_slot's perturbation walk
        g_hash, g_slot = self.g_hash, self.g_slot
        for tags in (np.full(len(quoted), -1, dtype=np.int64),):  # flow keys leave VLAN tags out
            if not todo.any():
                break
            i = np.nonzero(todo)[0]
            h = flow_hash(ipver[i], proto[i], tags[i], ahi[i], alo[i], ap[i], bhi[i], blo[i], bp[i])
            pos = np.minimum(np.searchsorted(g_hash, h), len(g_hash) - 1)
            hit = g_hash[pos] == h
            cand = g_slot[pos]
            same = hit & (self.k_alo[cand] == alo[i]) & (self.k_blo[cand] == blo[i]) & (
                self.k_aport[cand] == ap[i]) & (self.k_bport[cand] == bp[i])  # fmt: skip
            slot[i[same]] = cand[same]
            clash[i[hit & ~same]] = True
            todo[i[hit]] = False
        for k, (row, q) in enumerate(zip(qrows, quoted)):
            out[row] = (q, _PER_ERROR if clash[k] else (int(slot[k]) if slot[k] >= 0 else None))
        return out

    def _icmp_error(self, ts, ipver, itype, icode, payload, reporter: str, vlan: int = -1,
                    looked_up: tuple | None = None) -> None:  # fmt: skip
        """An ICMP error: tie it to the flow it quotes, or keep it as an orphan. ``looked_up``: the
        quoted packet and slot from ``_icmp_lookups``, when the batch's errors were looked up at once."""
        if looked_up is None:
            try:
                q = icmpmod.parse_quoted(payload)
            except ValueError as e:
                self.on_weird(Weird(ts, "icmp_bad_quote", None, str(e)))
                return
            target = self._find_slot(q, vlan)
        else:
            q, target = looked_up
            if isinstance(q, ValueError):
                self.on_weird(Weird(ts, "icmp_bad_quote", None, str(q)))
                return
            if target is _PER_ERROR:
                target = self._find_slot(q, vlan)
        if target is None:
            self.orphan_icmp.append((ts, q, itype, icode, reporter))
            return
        st = self.deep.get(target)
        if st is None:
            pr = int(self.k_proto[target])
            oa = bool(self.orig_a[target])
            cport = int(self.k_aport[target] if oa else self.k_bport[target])
            sport = int(self.k_bport[target] if oa else self.k_aport[target])
            # an error before the flow's first payload (a SYN the network refused, then retried) must not
            # stop its payload from being parsed later: the engine only brings payloads it still wants
            st = self.deep[target] = DeepState(pr, cport, sport, target)
        # only errors about client->server packets say the destination is unreachable; an error about a
        # server->client packet is the client refusing a late reply (a DNS answer after its timeout)
        client_ip, _server_ip = self._client_server_ips(target)
        quoted_src = self._ip_str(q.ipver, *_addr_parts(q.src))
        if quoted_src == client_ip and len(st.icmp or ()) < 16:
            st.icmp = (st.icmp or []) + [(itype, icode, reporter, ipver)]
        self.last_ts[target] = max(self.last_ts[target], ts)

    def _find_slot(self, q: icmpmod.Quoted, vlan: int = -1) -> int | None:
        """The slot of the flow an ICMP error quotes (``vlan``: the error's own VLAN tags)."""
        shi, slo, sp, dhi, dlo, dp = _endpoint_parts(q)
        if (shi, slo, sp) > (dhi, dlo, dp):
            (shi, slo, sp), (dhi, dlo, dp) = (dhi, dlo, dp), (shi, slo, sp)
        # flow keys leave VLAN tags out: the error finds its flow whatever tags it or the flow carry
        tries = (-1,)
        for tag in tries:
            h = flow_hash_one(q.ipver, q.proto, tag, shi, slo, sp, dhi, dlo, dp)
            for _ in range(3):
                pos = int(np.searchsorted(self.g_hash, np.uint64(h)))
                if pos < len(self.g_hash) and int(self.g_hash[pos]) == h:
                    slot = int(self.g_slot[pos])
                    if (int(self.k_alo[slot]), int(self.k_blo[slot]), int(self.k_aport[slot]), int(self.k_bport[slot])) == (slo, dlo, sp, dp):
                        return slot
                    h = _mix_int(h ^ MIX_PERTURB)
                else:
                    break
        return None

    # -- DNS -------------------------------------------------------------------------------------
    def dns_transaction(self, st: DeepState, msg, qname, qtype, q_ts, r_ts, side) -> None:
        """Called by DeepState when a DNS response arrives (``q_ts`` None: query not captured)."""
        slot = st.slot
        qt = dnsmod.QTYPES
        answers = tuple(DnsAnswer(o, qt.get(t) or f"TYPE{t}", v, ttl) for o, t, v, ttl in msg.answers)
        if st.ips is None:
            st.ips = self._client_server_ips(slot)
        client, server = st.ips
        if side == CLIENT:  # a "response" from the client side: roles are swapped (mDNS, odd captures)
            client, server = server, client
        self.on_dns(
            DnsTransaction(
                uid=self._uid(slot), ts=q_ts if q_ts is not None else r_ts, client_ip=client, server_ip=server,
                transport="tcp" if st.proto == 6 else "udp", trans_id=msg.trans_id, query=qname,
                qtype=dnsmod.qtype_name(qtype), rcode=dnsmod.rcode_name(msg.rcode), answers=answers,
                rtt=(r_ts - q_ts) if q_ts is not None else None,
                process=_command_label(self.proc_of.get(slot)) if self.proc_of else None,
                truncated=msg.truncated,
            )
        )  # fmt: skip
        if msg.rcode == 0 and st.proto == 6:  # answers over UDP went to the DnsMap in _name_by_dns
            for addr, name in answer_names(msg.answers):
                self.dnsmap.add(r_ts, addr, name)

    # -- expiry and records ----------------------------------------------------------------------
    def expire(self, now: float, everything: bool = False) -> None:
        """Emit and free flows that are idle (or closed for a while), or all of them."""
        if not len(self.g_slot):
            return
        s = self.g_slot
        if everything:
            dead = np.ones(len(s), dtype=bool)
        else:
            last = self.last_ts[s]
            tcp = self.k_proto[s] == 6
            closed = (self.evn[s, :, EV_R].sum(axis=1) > 0) | (
                (self.evn[s, 0, EV_F] > 0) & (self.evn[s, 1, EV_F] > 0)
            )
            dns = self.want[s, 0] == 2
            answered = dns & (self.pkts[s, 0] == self.pkts[s, 1])  # as many answers as queries
            idle = np.where(tcp, self.cfg.idle_tcp, np.where(dns, np.where(answered, self.cfg.idle_dns_answered,
                                                                           self.cfg.idle_dns), self.cfg.idle_udp))  # fmt: skip
            dead = (last < now - idle) | (tcp & closed & (last < now - self.cfg.close_delay))
            if self.cfg.unanswered is not None:
                resp = np.where(self.orig_a[s], 1, 0)
                silent = self.pkts[s, resp] == 0
                dead |= silent & (last < now - self.cfg.unanswered)
            cap = self.cfg.flow_cap
            if cap is not None and len(s) - int(dead.sum()) > cap:
                self._cut(now, s, dead, last, cap)
            if not dead.any():
                return
        ds = s[dead]
        order = np.argsort(self.first_pkt[ds], kind="stable")
        ds = ds[order]
        # a few thousand flows at a time: the end of a capture (or a long gap) can finish a hundred
        # thousand flows at once, and their per-flow Python values would all be alive together
        for start in range(0, len(ds), EMIT_CHUNK):
            self._emit(ds[start : start + EMIT_CHUNK])
        self._reset_slots(ds)
        self.free.extend(ds.tolist())
        self.g_hash = self.g_hash[~dead]
        self.g_slot = self.g_slot[~dead]

    def _cut(self, now: float, s: np.ndarray, dead: np.ndarray, last: np.ndarray, cap: int) -> None:
        """The table holds more than ``cap`` live flows: mark the ones idle the longest ``dead`` (in place)
        until a tenth of the cap is free again, so this happens once per so many new flows, not per batch.

        Their rows are what they had so far; one that goes on comes back as a new flow (Suricata's
        emergency mode does the same). Without it, memory grows with the flow rate times the timeout.
        """
        alive = np.nonzero(~dead)[0]
        n = len(alive) - (cap - cap // 10)
        order = np.argsort(last[alive], kind="stable")  # ties: the table's (hash) order, deterministic
        cut = alive[order[:n]]
        dead[cut] = True
        self.ended_early += n
        cfg = self.cfg
        why = (f"--max-flows {cfg.max_flows:,} shared by {cfg.processes} processes" if cfg.processes > 1
               else "--max-flows")  # fmt: skip
        self.on_weird(Weird(now, "flow_table_full", None,
                            f"{n:,} flows idle for {now - float(last[cut].max()):.1f} s or more ended early to keep the "
                            f"flow table under {cap:,} flows ({why}); a flow that goes on appears again as a new "
                            "flow"))  # fmt: skip

    def flush(self) -> None:
        """End of input: emit every remaining flow."""
        self.expire(self.now, everything=True)

    def _ip_str(self, ver: int, hi: int, lo: int) -> str:
        key = (hi, lo) if ver == 6 else lo
        s = self._ipcache.get(key)
        if s is None:
            if ver == 4:
                s = socket.inet_ntop(socket.AF_INET, lo.to_bytes(4, "big"))
            else:
                s = socket.inet_ntop(socket.AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))
            if len(self._ipcache) > 50_000:
                self._ipcache.clear()
            self._ipcache[key] = s
        return s

    def _endpoint_ip(self, slot: int, dd: int) -> str:
        """IP address of the sender in canonical direction dd of a slot."""
        ver = int(self.k_ipver[slot])
        if dd == 0:
            return self._ip_str(ver, int(self.k_ahi[slot]), int(self.k_alo[slot]))
        return self._ip_str(ver, int(self.k_bhi[slot]), int(self.k_blo[slot]))

    def _client_server_ips(self, slot: int) -> tuple[str, str]:
        return self.ips_of[slot]  # type: ignore[return-value]

    def _uid(self, slot: int) -> str:
        return self.uid_of[slot]

    def _emit(self, slots: np.ndarray) -> None:
        """Turn finished slots into FlowRecords (the per-flow Python work is kept to the essentials)."""
        n = len(slots)
        oa = self.orig_a[slots]
        cdir = np.where(oa, 0, 1)
        sdir = 1 - cdir
        evn_c, evn_s = self.evn[slots, cdir], self.evn[slots, sdir]
        evf_c, evf_s = self.evf[slots, cdir], self.evf[slots, sdir]
        pc_a, ps_a = self.pkts[slots, cdir], self.pkts[slots, sdir]
        proto = self.k_proto[slots]
        tcp = proto == 6
        conn = np.where(tcp, tcp_states(evn_c, evn_s, evf_c, evf_s, pc_a, ps_a), "")
        hist = np.where(tcp, histories(evf_c, evf_s), "")
        state = np.where(tcp, np.vectorize(FRIENDLY.get, otypes=[object])(conn) if n else conn,
                         np.where(ps_a > 0, "reply", "no_reply"))  # fmt: skip
        aport, bport = self.k_aport[slots], self.k_bport[slots]
        onedir = one_directions(tcp, pc_a, ps_a, evn_c, evn_s, self.ackn[slots, cdir], self.ackn[slots, sdir],
                                self.ackadv[slots, cdir], self.ackadv[slots, sdir])
        vdir = self.vdir[slots]
        # TCP event tables of the flows whose TLS handshake is judged (rows are fetched only for those)
        ev = (evf_c, evf_s, evn_c, evn_s, self.evl[slots, cdir], self.evl[slots, sdir])
        uid_of, ips_of, names_of = self.uid_of, self.ips_of, self.names_of
        lookup = self.dnsmap.lookup
        deep = self.deep
        transports = TRANSPORTS
        other = Transport.OTHER
        on_flow, on_plain = self.on_flow, self.on_plain
        proc_of, iface_of = self.proc_of, self.iface_of
        for i, (slot, ver, pr, v, sport, dport, first, last, pc, ps, bc, bs, yc, ys, syn, cs, stt, hs) in enumerate(zip(
            slots.tolist(), self.k_ipver[slots].tolist(), proto.tolist(), self.vlan0[slots].tolist(),
            np.where(oa, aport, bport).tolist(), np.where(oa, bport, aport).tolist(),
            self.first_ts[slots].tolist(), self.last_ts[slots].tolist(), pc_a.tolist(), ps_a.tolist(),
            self.ipb[slots, cdir].tolist(), self.ipb[slots, sdir].tolist(), self.pay[slots, cdir].tolist(),
            self.pay[slots, sdir].tolist(), evn_c[:, EV_S].tolist(), conn.tolist(), state.tolist(), hist.tolist(),
        )):  # fmt: skip
            st = deep.pop(slot, None)
            src, dst = ips_of[slot]
            vlan = inner_vlan = None
            if v >= QINQ:
                vlan, inner_vlan = (v >> 12) & 0xFFF, v & 0xFFF
            elif v >= 0:
                vlan = v
            uid = uid_of[slot]
            od = onedir[i]
            transport = transports.get(pr, other)
            dns_names = names_of[slot] or lookup(dst, first)
            self.flows_emitted += 1
            proc = proc_of.pop(slot, None) if proc_of else None
            ifname = iface_of.pop(slot, None) if iface_of else None
            if on_plain is not None and (st is None or st.plain):
                on_plain(FlowBase(
                    uid, first, last, transport, src, sport, dst, dport, ver, pc, ps, bc, bs, yc, ys, cs or None,
                    stt, hs, syn, vlan, inner_vlan, st.app_protocol() if st is not None else None,
                    dns_names[0] if dns_names else None, dns_names, *(proc or (None, None, None)), ifname, od,
                ))  # fmt: skip
            else:
                try:
                    kw = self._deep_fields(st, ev, i, ps) if st is not None else {}
                except Exception as e:  # noqa: BLE001 - as in _deep_rows: the flow keeps its counters
                    kw = {}
                    st.weird(first, "parser_error", f"{type(e).__name__}: {e}")  # type: ignore[union-attr]
                on_flow(FlowRecord(
                    uid=uid, ts=first, ts_last=last, transport=transport,
                    src_ip=src, src_port=sport, dst_ip=dst, dst_port=dport, ip_version=ver,
                    pkts_c2s=pc, pkts_s2c=ps, bytes_c2s=bc, bytes_s2c=bs,
                    payload_c2s=yc, payload_s2c=ys, conn_state=cs or None, state=stt,
                    history=hs, syn_count=syn, vlan=vlan, inner_vlan=inner_vlan,
                    dns_name=dns_names[0] if dns_names else None, dns_names=dns_names, **kw,
                    **(dict(zip(("process", "pid", "eprocess"), proc)) if proc else {}), interface=ifname,
                    one_direction=od,
                ))  # fmt: skip
            other_tags = [t for t in vdir[i].tolist() if t != NO_VLAN and t != v]
            if other_tags:  # the other direction came with other tags (a router on a trunk, asymmetric VLANs)
                self.on_weird(Weird(first, "vlan_differs_by_direction", uid,
                                    f"first packet on {vlan_text(v)}, the other direction on {vlan_text(other_tags[0])}"))
            if st is not None:
                for wts, name, detail in st.weirds or ():
                    self.on_weird(Weird(wts or first, name, uid, detail))
                if st.dns_pending:
                    for qts, side, q in st.unanswered_queries():
                        client, server = (src, dst) if side == CLIENT else (dst, src)
                        qname, qtype = q.questions[0] if q.questions else (None, None)
                        self.on_dns(DnsTransaction(uid, qts, client, server, str(transport), q.trans_id,
                                                   qname or None, dnsmod.qtype_name(qtype), None, (), None,
                                                   _command_label(proc)))  # fmt: skip

    def _deep_fields(self, st: DeepState, ev: tuple, i: int, ps: int) -> dict:
        """The application fields of a flow's record; ``ev`` holds the (client, server) TCP event tables
        (first packet, count, last packet) of the emitted flows and ``i`` this flow's row in them."""
        if st.plain:  # DNS over UDP, NTP and other datagrams: nothing but the protocol name
            return {"app_protocol": st.app_protocol()}
        kw: dict = {}
        ch = st.client_hello
        tc, ts_ = st.tls[CLIENT], st.tls[SERVER]
        sh = ts_.server_hello if ts_ is not None else None
        if ch is not None:
            kw["sni"] = ch.sni
            kw["alpn"] = ch.alpn
            kw["tls_version"] = tlsmod.version_name(ch.max_version)
            kw["tls_ech"] = ch.ech or ch.esni
        elif st.quic is not None and st.quic.sni:
            kw["sni"] = st.quic.sni
        if st.quic is not None and st.quic.version is not None:
            from pcapaudit.decode.quic import version_name

            kw["quic_version"] = version_name(st.quic.version)
        if sh is not None:
            kw["tls_server_version"] = tlsmod.version_name(sh.version)
            kw["tls_cipher"] = f"0x{sh.cipher:04x}"
        if ts_ is not None and ts_.certs:
            kw["certs"] = tuple(tlsmod.cert_info(der) for der in ts_.certs[:8])
        if st.alerts:
            kw["alerts"] = tuple(
                TlsAlert("client" if side == CLIENT else "server", lvl, desc, after)
                for side, lvl, desc, after, _ in st.alerts[:8]
            )
        if tc is not None and ch is not None:
            kw["client_records_after_server"] = tuple(tc.records[1:8])
        # the outcome is judged from TLS records and TCP events: QUIC's handshake is encrypted past the
        # client's Initial, so a QUIC flow has none (it said "no_client_hello" beside its SNI)
        if st.proto == 6 and (ch is not None or sh is not None or (tc is not None and tc.sslv2)):
            fc, fs, nc, ns, lc, ls = (a[i].tolist() for a in ev)
            kw["tls_handshake"] = handshake_outcome(st, fc, fs, nc, ns, lc, ls, ps)
        if st.http_req is not None:
            r = st.http_req
            kw["http_method"] = r.method
            kw["http_uri"] = r.uri[:512]
            if r.method == "CONNECT":
                host, port = r.connect_target or (None, None)
                kw["connect_host"] = host
                kw["connect_port"] = port
            else:
                kw["http_host"] = r.host
        if st.http_status is not None:
            kw["http_status"] = st.http_status
        kw["app_protocol"] = st.app_protocol()
        if st.ldap is not None:
            kw["ldap_simple_bind"] = st.ldap[0] and st.ldap[1]  # a password in clear (not an anonymous bind)
            kw["ldap_starttls"] = st.ldap[2]
        if st.smtp is not None:
            kw["smtp_starttls"] = st.smtp
        if st.icmp:
            kw["icmp"] = tuple((t, c_, rep) for t, c_, rep, _v in st.icmp)
        return kw


def vlan_text(v: int) -> str:
    """"VLAN 10", "VLAN 100/20" (QinQ outer/inner), "no VLAN tag"."""
    if v >= QINQ:
        return f"VLAN {(v >> 12) & 0xFFF}/{v & 0xFFF}"
    return f"VLAN {v}" if v >= 0 else "no VLAN tag"


def one_directions(tcp, pc, ps, evn_c, evn_s, ackn_c, ackn_s, adv_c, adv_s) -> list:
    """Which side of each TCP flow is the only one the capture shows, when the other side's packets must
    have existed: a side that went on with ACKs after its SYN (SYN-ACK), or whose acknowledgement numbers
    grew, received packets the capture does not hold. A SYN with nothing after it says nothing of the kind."""
    went_c = ((evn_c[:, EV_S] > 0) & (ackn_c > 0)) | (adv_c > 0)
    went_s = ((evn_s[:, EV_H] > 0) & (ackn_s > 0)) | (adv_s > 0)
    client = tcp & (ps == 0) & (pc > 0) & went_c
    server = tcp & (pc == 0) & (ps > 0) & went_s & ~client
    return np.where(client, "client_only", np.where(server, "server_only", None)).tolist()


def _command_label(proc: tuple | None) -> str | None:
    """A (command, pid, effective command) as the DNS table names the querying process: without the pid."""
    return process_label(proc[0], None, proc[2]) if proc else None


def _first_of_flow(lookup: Callable, rows: np.ndarray, slot_r: np.ndarray, store: dict, known: np.ndarray) -> None:
    """Give each flow of the batch that has none yet (``known``, per slot) the name of its first packet that
    has one (a process or an interface), in ``store``. ``lookup(batch_rows)`` gives a per-row index into its
    names (-1: none); it is asked about each such flow's first packet of the batch, and about the rest of its
    packets only when that one names nothing."""
    todo = np.nonzero(~known[slot_r])[0]
    if not len(todo):
        return
    u, first = np.unique(slot_r[todo], return_index=True)
    cand = rows[todo[first]]
    values, names = lookup(cand)
    v = values[cand]
    hit = v >= 0
    for slot, k in zip(u[hit].tolist(), v[hit].tolist()):
        store[slot] = names[k]
    known[u[hit]] = True
    missing = u[~hit]
    if not len(missing):
        return
    sel = todo[np.isin(slot_r[todo], missing)]  # every packet of those flows in this batch, in order
    values, names = lookup(rows[sel])
    v = values[rows[sel]]
    ok = np.nonzero(v >= 0)[0]
    if len(ok):
        us, f = np.unique(slot_r[sel[ok]], return_index=True)
        for slot, k in zip(us.tolist(), v[ok[f]].tolist()):
            store[slot] = names[k]
        known[us] = True


TRANSPORTS = {6: Transport.TCP, 17: Transport.UDP, 1: Transport.ICMP, 58: Transport.ICMP}
FRIENDLY = {"S0": "no_reply", "SH": "no_reply", "RSTOS0": "no_reply", "REJ": "rejected", "S1": "established",
            "SF": "closed", "S2": "closing", "S3": "closing", "RSTO": "reset", "RSTR": "reset",
            "RSTRH": "midstream", "SHR": "midstream", "OTH": "midstream", "": ""}  # fmt: skip
_B32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_LETTERS = np.array(list(HISTORY_LETTERS + HISTORY_LETTERS.lower()))
_LETTER_RANK = np.argsort(np.argsort(_LETTERS))  # tie-break same-packet events alphabetically


def client_key(shi, slo, sport, dhi, dlo, dport) -> np.ndarray:
    """64-bit hash of each packet's client endpoint address, for parallel audits.

    The endpoint with the higher port is taken as the client (ephemeral ports are high); on a tie, the
    lower address. A device's DNS lookups and the connections they name then land in the same partition,
    so naming flows by DNS keeps working inside each partition. Both directions of a flow agree.
    """
    shi, slo, dhi, dlo = (np.asarray(x, dtype=np.uint64) for x in (shi, slo, dhi, dlo))
    sport, dport = np.asarray(sport, dtype=np.int64), np.asarray(dport, dtype=np.int64)
    s_lower = (shi < dhi) | ((shi == dhi) & (slo <= dlo))
    use_src = (sport > dport) | ((sport == dport) & s_lower)
    hi = np.where(use_src, shi, dhi)
    lo = np.where(use_src, slo, dlo)
    with np.errstate(over="ignore"):
        return _mix(_mix(lo + _PERTURB) ^ hi)


class Partitioner:
    """Assigns client endpoints to the partitions of a parallel audit, balancing their packets.

    A hash alone leaves the partitions as uneven as the clients are (one busy device can carry 5 % of
    a SPAN capture). Instead a client seen for the first time goes to the partition with the fewest
    packets so far. Every process reads the same packets in the same order, so every process makes the
    same choices without talking to the others. Past ``max_clients`` new clients fall back to the hash
    (``client_key`` modulo the number of partitions).
    """

    def __init__(self, n: int, max_clients: int = 262_144):
        self.n = n
        self.max_clients = max_clients
        self.owner: dict[int, int] = {}
        self.load = np.zeros(n, dtype=np.int64)

    def assign(self, shi, slo, sport, dhi, dlo, dport) -> np.ndarray:
        """Partition of each packet (learning the clients seen for the first time)."""
        key = client_key(shi, slo, sport, dhi, dlo, dport)
        uk, first, inv = np.unique(key, return_index=True, return_inverse=True)
        counts = np.bincount(inv, minlength=len(uk))
        owner = self.owner
        parts = np.array([owner.get(k, -1) for k in uk.tolist()], dtype=np.int64)
        known = parts >= 0
        np.add.at(self.load, parts[known], counts[known])
        new = np.nonzero(~known)[0]
        for j in new[np.argsort(first[new], kind="stable")].tolist():  # in order of first appearance
            k = int(uk[j])
            if len(owner) < self.max_clients:
                p = int(np.argmin(self.load))
                owner[k] = p
            else:
                p = k % self.n
            parts[j] = p
            self.load[p] += counts[j]
        return parts[inv]

    def lookup(self, shi, slo, sport, dhi, dlo, dport) -> int:
        """Partition of one flow (an ICMP error's quoted packet) without learning its client."""
        k = int(client_key([shi], [slo], [sport], [dhi], [dlo], [dport])[0])
        return self.owner.get(k, k % self.n)


def _addr_parts(b: bytes) -> tuple[int, int]:
    """A quoted address as the flow table's (hi, lo) key halves: IPv4 in lo with hi 0, IPv6 split 64/64."""
    if len(b) == 4:
        return 0, int.from_bytes(b, "big")
    return int.from_bytes(b[:8], "big"), int.from_bytes(b[8:], "big")


def _endpoint_parts(q: icmpmod.Quoted) -> tuple[int, int, int, int, int, int]:
    shi, slo = _addr_parts(q.src)
    dhi, dlo = _addr_parts(q.dst)
    return shi, slo, q.sport, dhi, dlo, q.dport


def make_uids(hashes: np.ndarray, first_ts: np.ndarray, first_pkt: np.ndarray) -> list[str]:
    """Deterministic Zeek-style uids ("C" + 16 base32 chars) from the flow key hash, first time and packet."""
    with np.errstate(over="ignore"):
        h1 = _mix(hashes ^ np.ascontiguousarray(first_ts, dtype=np.float64).view(np.uint64))
        h2 = _mix(h1 ^ (first_pkt.astype(np.uint64) + _PERTURB))
    n = len(hashes)
    out = np.empty((n, 17), dtype=np.uint8)
    out[:, 0] = ord("C")
    for i in range(12):  # 60 bits of h1, then 20 of h2
        out[:, 1 + i] = _B32[((h1 >> np.uint64(59 - 5 * i)) & np.uint64(31)).astype(np.intp)]
    for i in range(4):
        out[:, 13 + i] = _B32[((h2 >> np.uint64(59 - 5 * i)) & np.uint64(31)).astype(np.intp)]
    return out.view("S17").ravel().astype("U17").tolist()


def tcp_states(nc: np.ndarray, ns: np.ndarray, fc: np.ndarray, fs: np.ndarray, pc: np.ndarray,
               ps: np.ndarray) -> np.ndarray:
    """Vectorised ``tcp_state``: Zeek conn_state codes for (n, 6) client/server event counts and first packets."""
    o_syn, r_syn = nc[:, EV_S] > 0, ns[:, EV_S] > 0
    r_synack = (ns[:, EV_H] > 0) | r_syn
    o_fin, r_fin = nc[:, EV_F] > 0, ns[:, EV_F] > 0
    closed_at = np.where(o_fin & r_fin, np.maximum(fc[:, EV_F], fs[:, EV_F]), np.iinfo(np.int64).max)
    o_rst = (nc[:, EV_R] > 0) & (fc[:, EV_R] < closed_at)
    r_rst = (ns[:, EV_R] > 0) & (fs[:, EV_R] < closed_at)
    a = o_syn & ~r_synack
    h = ~o_syn & (ns[:, EV_H] > 0)
    b = h & (pc == 0)
    c = (o_syn & r_synack) | h
    m = ~r_syn & o_fin & r_fin & ~o_rst & ~r_rst
    conds = [a & r_rst, a & o_rst, a & o_fin, a & (ps == 0), a, b & r_rst, b & r_fin, b, c & o_rst, c & r_rst,
             c & o_fin & r_fin, c & o_fin, c & r_fin, c, m]  # fmt: skip
    codes = ["REJ", "RSTOS0", "SH", "S0", "OTH", "RSTRH", "SHR", "OTH", "RSTO", "RSTR", "SF", "S2", "S3", "S1", "SF"]
    return np.select(conds, codes, default="OTH").astype(object)


def histories(fc: np.ndarray, fs: np.ndarray) -> np.ndarray:
    """Vectorised ``history`` for (n, 6) first-occurrence packet numbers of client and server events."""
    allf = np.concatenate([fc, fs], axis=1)
    missing = allf == NONE_FIRST
    key = np.where(missing, np.int64(1) << 58, allf) * 16 + _LETTER_RANK
    order = np.argsort(key, axis=1)
    letters = _LETTERS[order]
    letters[np.take_along_axis(missing, order, axis=1)] = ""
    return np.ascontiguousarray(letters.astype("U1")).view("U12").ravel().astype(object)


def tcp_state(nc: list[int], ns: list[int], fc: list[int], fs: list[int], pc: int, ps: int) -> tuple[str, str]:
    """Zeek-style conn_state and a plain-word state (the core's ``tcp_state``, which says how it follows Zeek):
    a RST once both sides sent FIN keeps SF; a capture from the SYN-ACK with an active client is established;
    midstream with both FINs is SF."""
    o_syn, r_syn = nc[EV_S] > 0, ns[EV_S] > 0
    r_synack = ns[EV_H] > 0 or r_syn
    o_fin, r_fin = nc[EV_F] > 0, ns[EV_F] > 0
    closed_at = max(fc[EV_F], fs[EV_F]) if o_fin and r_fin else 1 << 63
    o_rst, r_rst = nc[EV_R] > 0 and fc[EV_R] < closed_at, ns[EV_R] > 0 and fs[EV_R] < closed_at
    if o_syn and not r_synack:
        if r_rst:
            return "REJ", "rejected"
        if o_rst:
            return "RSTOS0", "no_reply"
        if o_fin:
            return "SH", "no_reply"
        if ps == 0:
            return "S0", "no_reply"
        return "OTH", "midstream"
    synack_start = not o_syn and ns[EV_H] > 0
    if synack_start and pc == 0:
        if r_rst:
            return "RSTRH", "midstream"
        if r_fin:
            return "SHR", "midstream"
        return "OTH", "midstream"
    if (o_syn and r_synack) or synack_start:
        if o_rst:
            return "RSTO", "reset"
        if r_rst:
            return "RSTR", "reset"
        if o_fin and r_fin:
            return "SF", "closed"
        if o_fin:
            return "S2", "closing"
        if r_fin:
            return "S3", "closing"
        return "S1", "established"
    if not r_syn and o_fin and r_fin and not o_rst and not r_rst:
        return "SF", "closed"
    return "OTH", "midstream"


def history(fc: list[int], fs: list[int]) -> str:
    """Zeek-like history: first occurrence of each event, upper case for the client (scalar reference
    of ``histories``; same-packet events in alphabetical order)."""
    ev = [(v, HISTORY_LETTERS[e]) for e, v in enumerate(fc) if v != NONE_FIRST]
    ev += [(v, HISTORY_LETTERS[e].lower()) for e, v in enumerate(fs) if v != NONE_FIRST]
    ev.sort()
    return "".join(ch for _, ch in ev)


def handshake_outcome(st: DeepState, fc, fs, nc, ns, lc, ls, ps) -> str:
    """How the TLS handshake ended, judged from the clear-text records and TCP events.

    complete, client_alert, server_alert, client_abort_after_server_flight, reset_after_client_hello,
    silence_after_client_hello, server_closed_after_client_hello, incomplete, no_client_hello.
    """
    tc, tsrv = st.tls[CLIENT], st.tls[SERVER]
    ch_pkt = st.ch_pkt
    for side, level, _desc, _after, _pkt in st.alerts:
        if level == 2 and side == SERVER:
            return "server_alert"
    if st.client_rejected_cert() is not None:
        return "client_alert"
    for side, level, _desc, _after, _pkt in st.alerts:
        if level == 2 and side == CLIENT:
            return "client_alert"
    if tc is None or tc.client_hello is None:
        return "no_client_hello"
    sh = tsrv.server_hello if tsrv is not None else None
    srv_data_first = fs[EV_D]
    if sh is None:
        after_ch = ch_pkt if ch_pkt is not None else fc[EV_D]
        srv_data_after = srv_data_first != NONE_FIRST and ls[EV_D] >= after_ch
        if not srv_data_after:
            # who ended it first: the server (RST/FIN: a filter) or the client giving up (silence)
            client_end = min(fc[EV_F], fc[EV_R])
            if ns[EV_R] > 0 and ls[EV_R] >= after_ch and fs[EV_R] < client_end:
                return "reset_after_client_hello"
            if ns[EV_F] > 0 and ls[EV_F] >= after_ch and fs[EV_F] < client_end:
                return "server_closed_after_client_hello"
            return "silence_after_client_hello"
        return "incomplete"
    # the server answered; did the client go on?
    after = tc.records[1:]
    app_data = [ln for t, ln in after if t == 23]
    if tsrv is not None and sh.version == 0x0304:
        # TLS 1.3: the client's Finished is one short encrypted record; an encrypted alert is ~19 bytes.
        finished = any(ln >= 32 for ln in app_data)
        more = len(app_data) >= 2
        closed = nc[EV_F] > 0 or nc[EV_R] > 0
        if not finished and not more and closed:
            return "client_abort_after_server_flight"
        if not app_data and closed:
            return "client_abort_after_server_flight"
        return "complete" if (finished or more) else "incomplete"
    types = [t for t, _ in after]
    if 20 in types or 22 in types:  # ChangeCipherSpec / ClientKeyExchange: the client accepted
        return "complete"
    if (nc[EV_F] > 0 or nc[EV_R] > 0) and all(t == 21 for t in types):
        # it closed with nothing, or with only a warning alert (close_notify, user_canceled), in answer
        return "client_abort_after_server_flight"
    return "incomplete"

"""Packets a capture holds once per interface they crossed, counted once.

A capture of several interfaces at once sees a bridged or routed packet on each of them: ``tcpdump -i
any`` on a Linux host with a bridge (Docker's docker0 and its veth ports, a VM's tap) stores every
forwarded packet twice, and so does ``tcpdump -i pktap`` on a Mac whose VMs share its network (vmenet and
bridge100). Counted twice, each such flow has twice its packets and bytes and every ICMP error twice.

A packet is a copy when a packet with the same header fields (addresses, protocol, ports, TCP sequence
and acknowledgement numbers, flags, IP length, IPv4 ID or IPv6 flow label, UDP checksum, ICMP type, code,
id and sequence; not the TTL, which a router lowers, nor the VLAN tag, which a bridge port may strip) was
kept on *another* interface, or on another VLAN of the same interface (the span of a trunk sees a routed
packet once per VLAN it crossed; flows are keyed without the tag), less than ``WINDOW`` before it. A packet repeated on the same interface (a
retransmission with the same bytes, a loop) is on the wire twice and stays. NAT rewrites addresses, so
the two sides of a NAT stay two flows. Linux "any" captures in the older SLL format name no interface,
but say whether the host received or sent each packet: there a copy is a packet sent less than ``WINDOW``
after the host received the same one (or the other way round). Untagged packets of captures that say
neither are left alone.
"""

from __future__ import annotations

import numpy as np

from pcapaudit.decode import FAST, SKIP, DecodeResult
from pcapaudit.decode.vector import MIX_PERTURB, mix64

WINDOW = 0.05  # seconds: a bridge or a router forwards in microseconds to a few milliseconds
MAX_CARRY = 1 << 18  # kept packets remembered across batches (50 ms of 5 Mpps), whatever the timestamps
MAX_VLAN_GROUPS = 4096  # (interface, VLAN) groups; past it new tags share one group per interface

_EMPTY_F = np.zeros(0, dtype=np.float64)
_EMPTY_U = np.zeros(0, dtype=np.uint64)
_EMPTY_I = np.zeros(0, dtype=np.int64)


def packet_keys(c, rows: np.ndarray) -> np.ndarray:
    """64-bit hash of the fields that make two packets copies of one (see the module docstring)."""
    with np.errstate(over="ignore"):
        h = mix64(c.src_lo[rows] + np.uint64(MIX_PERTURB))
        for col in (c.src_hi[rows], c.dst_lo[rows], c.dst_hi[rows]):
            h = mix64(h ^ col)
        u = lambda col, shift=0: col[rows].astype(np.uint64) << np.uint64(shift)  # noqa: E731
        h = mix64(h ^ (u(c.sport, 48) | u(c.dport, 32) | u(c.proto, 16) | u(c.flags, 8) | u(c.ipver)))
        h = mix64(h ^ u(c.seq))
        h = mix64(h ^ u(c.ident))
        h = mix64(h ^ (u(c.icmp_type + 1, 40) | u(c.icmp_code + 1, 32) | u(c.iplen)))
    return h


class InterfaceCopies:
    """Marks the copies in each batch (their decode status becomes SKIP, so nothing counts them) and
    counts them in ``count``. Keeps the kept packets of the last ``window`` seconds for the next batch."""

    def __init__(self, window: float = WINDOW):
        self.window = window
        self.count = 0
        self._ids: dict[str, int] = {}  # interface name -> a number stable across batches
        self._vlans: dict[tuple[str, int], str] = {}  # (interface, VLAN) -> group name
        self._tags_seen = False
        self._carry = (_EMPTY_U, _EMPTY_F, _EMPTY_I)  # (key, time, interface) of recently kept packets

    def drop(self, ts: np.ndarray, res: DecodeResult) -> int:
        """Mark this batch's copies (``ts``: the batch's timestamps); returns how many there were."""
        groups = res.interfaces or res.directions
        c = res.cols
        rows = np.nonzero(c.status == FAST)[0]
        if not len(rows):
            return 0
        vlan = c.vlan[rows].astype(np.int64)
        tagged = vlan != -1
        self._tags_seen = self._tags_seen or bool(tagged.any())
        if groups is None and not self._tags_seen:
            return 0
        if groups is not None:
            values, names = groups(rows)
            if groups is res.directions:  # received / sent: kept apart from interface names
                names = [f"\0{n}" for n in names]
            idx = np.asarray(values[rows], dtype=np.int64)
        else:
            # once a capture shows VLAN tags, its untagged packets are a group too (a trunk's native VLAN)
            names, idx = [], np.full(len(rows), -1, dtype=np.int64)
            tagged = np.ones(len(rows), dtype=bool)
        if tagged.any():
            # a tagged packet's group is its interface (or direction) and its VLAN: a routed packet seen
            # again on another VLAN of one trunk is a copy too (flows are keyed without tags)
            pairs, inv = np.unique(np.stack([idx[tagged], vlan[tagged]], axis=1), axis=0, return_inverse=True)
            extra = []
            for b, v in pairs.tolist():
                base = names[b] if b >= 0 else ""
                key = (base, v)
                if key not in self._vlans:
                    if len(self._vlans) < MAX_VLAN_GROUPS:
                        self._vlans[key] = f"{base}\0vlan{v}"
                    else:  # a hostile capture with random tags: new tags share one group
                        extra.append(f"{base}\0vlan*")
                        continue
                extra.append(self._vlans[key])
            idx = idx.copy()
            idx[tagged] = len(names) + inv.ravel()
            names = list(names) + extra
        rows, idx = rows[idx >= 0], idx[idx >= 0]
        if not len(rows):
            return 0
        ids = np.array([self._ids.setdefault(n, len(self._ids)) for n in names], dtype=np.int64)
        t = ts[rows].astype(np.float64)
        ck, ct, ci = self._carry
        nc = len(ck)
        one = len(self._ids) < 2
        if one:
            # one interface so far (pktap,en0): nothing is a copy; only the packets of the batch's last
            # window are kept in mind, in case the next batch brings another interface
            last = t >= t.max() - self.window
            rows, idx, t = rows[last], idx[last], t[last]
        iface = ids[idx]
        keys = packet_keys(c, rows)
        if one:
            dup = np.zeros(len(rows), dtype=bool)
        else:
            both = (np.concatenate([ck, keys]), np.concatenate([ct, t]), np.concatenate([ci, iface]))
            dup = self._mark(*both)[nc:]
        kept = ~dup
        k_keys, k_t = np.concatenate([ck, keys[kept]]), np.concatenate([ct, t[kept]])
        k_if = np.concatenate([ci, iface[kept]])
        recent = np.nonzero(k_t >= k_t.max() - self.window)[0]
        if len(recent) > MAX_CARRY:  # a flood with one timestamp: remember the latest only
            recent = recent[np.argsort(k_t[recent], kind="stable")[-MAX_CARRY:]]
        self._carry = (k_keys[recent], k_t[recent], k_if[recent])
        n = int(dup.sum())
        if n:
            c.status[rows[dup]] = SKIP
            self.count += n
        return n

    def _mark(self, keys: np.ndarray, t: np.ndarray, iface: np.ndarray) -> np.ndarray:
        """Which packets copy a packet kept on another interface less than ``window`` before them."""
        order = np.lexsort((t, keys))
        k = keys[order]
        dup = np.zeros(len(keys), dtype=bool)
        same = np.nonzero(k[1:] == k[:-1])[0] + 1  # positions (in order) whose key the one before shares
        if not len(same):
            return dup
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        length = np.diff(np.r_[starts, len(k)])
        # the usual case, a packet and its copy: the second is a copy when it came from another
        # interface within the window
        two = starts[length == 2]
        a, b = order[two], order[two + 1]
        dup[b] = (iface[a] != iface[b]) & (t[b] - t[a] < self.window)
        # three or more packets with one key: each is compared with the last one kept before it
        for s, n in zip(starts[length > 2].tolist(), length[length > 2].tolist()):
            run = order[s : s + n].tolist()
            kept_t, kept_if = t[run[0]], iface[run[0]]
            for r in run[1:]:
                if iface[r] != kept_if and t[r] - kept_t < self.window:
                    dup[r] = True
                else:
                    kept_t, kept_if = t[r], iface[r]
        return dup

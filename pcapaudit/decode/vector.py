"""Vectorised header decoding: link layer, IPv4/IPv6 and TCP/UDP/ICMP fields of a whole batch at once.

This is the fast path. It reads header fields at computed offsets with numpy fancy indexing, never
building a per-packet object. Anything it does not handle on its own (IP fragments, IPv6 extension
headers, tunnels, unusual link types, malformed headers) is marked ``SLOW`` and decoded packet by
packet by ``decode.packet`` — the simple path, which handles every case and is the reference the
fast path is tested against (``tests/unit/test_decode_vector.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcapaudit.capture.pcapfile import PacketBatch

# row status
SKIP = 0  # not IP (ARP, LLDP, ...): counted, not a flow
FAST = 1  # fully decoded here
SLOW = 2  # hand to decode.packet

ETH_VLAN = (0x8100, 0x88A8, 0x9100)
QINQ = 1 << 24  # vlan column: outer id, or QINQ | outer << 12 | inner for two tags
TUNNEL_UDP_PORTS = np.array([3544, 4789, 2152, 5246, 5247, 8472, 6081], dtype=np.int64)
SLOW_IP_PROTOS = np.array([4, 41, 47], dtype=np.int64)  # IPIP, 6in4, GRE
SLOW_V6_NEXT = np.array([0, 43, 44, 60, 135, 139, 140], dtype=np.int64)  # extension headers

LINK_ETHERNET = 1
LINK_NULL = 0
LINK_LOOP = 108
LINK_RAW = (101, 12, 14, 228, 229)
LINK_SLL = 113
LINK_SLL2 = 276
# Apple PKTAP: a little-endian per-packet header (length, record type, inner DLT, interface, process)
# in front of the frame. LINKTYPE_PKTAP is 258 in files; macOS uses DLT_USER2 (149) at run time.
LINK_PKTAP = (258, 149)
PKTAP_MIN = 108  # sizeof(struct pktap_header), the v1 header every writer uses
PKTAP_REC_PACKET = 1


@dataclass(slots=True)
class Decoded:
    """Per-packet header fields of one batch (numpy columns, one row per packet)."""

    status: np.ndarray  # int8: SKIP / FAST / SLOW
    ipver: np.ndarray  # int8
    proto: np.ndarray  # int16 (IP protocol number)
    src_hi: np.ndarray  # uint64 (IPv6 high half; 0 for IPv4)
    src_lo: np.ndarray  # uint64 (IPv4 address or IPv6 low half)
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int64 (ICMP: 0)
    dport: np.ndarray  # int64
    flags: np.ndarray  # int64 TCP flags (0 otherwise)
    seq: np.ndarray  # int64 TCP sequence number
    poff: np.ndarray  # int64 offset of the L4 payload in buf (ICMP: of the quoted datagram)
    plen: np.ndarray  # int64 payload length on the wire
    pcap: np.ndarray  # int64 payload bytes actually captured
    iplen: np.ndarray  # int64 IP-layer bytes on the wire
    vlan: np.ndarray  # int64: -1 untagged, the VLAN id, or QINQ | outer << 12 | inner
    icmp_type: np.ndarray  # int64, -1 when not ICMP
    icmp_code: np.ndarray  # int64, -1 when not ICMP
    # what tells a packet from another with the same header fields above: the IPv4 ID (IPv6: flow label)
    # << 32 | the transport header's second word (TCP ack; UDP length and checksum; ICMP id and sequence)
    ident: np.ndarray  # int64

    @classmethod
    def empty(cls, n: int) -> Decoded:
        """All-zero columns for n packets (status SKIP)."""
        z = lambda dt: np.zeros(n, dtype=dt)  # noqa: E731
        d = cls(
            status=z(np.int8), ipver=z(np.int8), proto=z(np.int16),
            src_hi=z(np.uint64), src_lo=z(np.uint64), dst_hi=z(np.uint64), dst_lo=z(np.uint64),
            sport=z(np.int64), dport=z(np.int64), flags=z(np.int64), seq=z(np.int64),
            poff=z(np.int64), plen=z(np.int64), pcap=z(np.int64), iplen=z(np.int64),
            vlan=np.full(n, -1, dtype=np.int64), icmp_type=np.full(n, -1, dtype=np.int64),
            icmp_code=np.full(n, -1, dtype=np.int64), ident=z(np.int64),
        )  # fmt: skip
        return d

    def __len__(self) -> int:
        return len(self.status)


def _u8(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return b[idx].astype(np.int64)


def _le32(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (
        b[idx].astype(np.int64)
        | (b[idx + 1].astype(np.int64) << 8)
        | (b[idx + 2].astype(np.int64) << 16)
        | (b[idx + 3].astype(np.int64) << 24)
    )


def _be16(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (b[idx].astype(np.int64) << 8) | b[idx + 1]


def _be32(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (
        (b[idx].astype(np.int64) << 24)
        | (b[idx + 1].astype(np.int64) << 16)
        | (b[idx + 2].astype(np.int64) << 8)
        | b[idx + 3]
    )


def _be64(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(len(idx), dtype=np.uint64)
    for k in range(8):
        out = (out << np.uint64(8)) | b[idx + k].astype(np.uint64)
    return out


def decode_batch(batch: PacketBatch) -> Decoded:
    """Decode the headers of every packet in ``batch``; rows it cannot handle are marked SLOW."""
    n = len(batch)
    d = Decoded.empty(n)
    if n == 0:
        return d
    # pad so that reads of up to 64 bytes past any offset stay inside the array; validity is
    # checked against each packet's captured length separately.
    b = np.frombuffer(batch.buf, dtype=np.uint8)
    b = np.concatenate([b, np.zeros(80, dtype=np.uint8)]) if len(b) else np.zeros(80, dtype=np.uint8)
    off = batch.off
    end = off + batch.caplen
    lt = batch.linktype
    if np.isin(lt, LINK_PKTAP).any():
        lt, off = _strip_pktap(b, batch)
    cap = end - off

    l3 = np.full(n, -1, dtype=np.int64)
    ver_hint = np.zeros(n, dtype=np.int64)  # 4 / 6 from the link layer, 0 = read the IP version nibble
    slow = np.zeros(n, dtype=bool)

    # --- link layer -------------------------------------------------------------------------
    m = lt == LINK_ETHERNET
    if m.any():
        i = np.nonzero(m & (cap >= 14))[0]
        o = off[i]
        et = _be16(b, o + 12)
        pos = o + 14
        vlan = np.full(len(i), -1, dtype=np.int64)
        for _ in range(2):  # 802.1Q / QinQ: the key keeps both tags (see vlan_key)
            tagged = np.isin(et, ETH_VLAN) & (pos + 4 <= end[i])
            if not tagged.any():
                break
            vid = _be16(b, pos) & 0x0FFF
            vlan = np.where(tagged, np.where(vlan < 0, vid, QINQ | (vlan << 12) | vid), vlan)
            et = np.where(tagged, _be16(b, pos + 2), et)
            pos = np.where(tagged, pos + 4, pos)
        d.vlan[i] = vlan
        v4 = et == 0x0800
        v6 = et == 0x86DD
        l3[i[v4 | v6]] = pos[v4 | v6]
        ver_hint[i[v4]] = 4
        ver_hint[i[v6]] = 6
        # still tagged after two tags, MPLS, PPPoE, ...: let the simple path try
        slow[i[np.isin(et, ETH_VLAN + (0x8847, 0x8848, 0x8864))]] = True
        slow[np.nonzero(m & (cap < 14))[0]] = True  # runt frame: the simple path reports it
    m = lt == LINK_SLL
    if m.any():
        i = np.nonzero(m & (cap >= 16))[0]
        et = _be16(b, off[i] + 14)
        sel = (et == 0x0800) | (et == 0x86DD)
        l3[i[sel]] = off[i[sel]] + 16
        ver_hint[i[et == 0x0800]] = 4
        ver_hint[i[et == 0x86DD]] = 6
        slow[i[np.isin(et, ETH_VLAN)]] = True
    m = lt == LINK_SLL2
    if m.any():
        i = np.nonzero(m & (cap >= 20))[0]
        et = _be16(b, off[i])
        sel = (et == 0x0800) | (et == 0x86DD)
        l3[i[sel]] = off[i[sel]] + 20
        ver_hint[i[et == 0x0800]] = 4
        ver_hint[i[et == 0x86DD]] = 6
        slow[i[np.isin(et, ETH_VLAN)]] = True
    m = (lt == LINK_NULL) | (lt == LINK_LOOP)
    if m.any():
        # the 4-byte address family is in the capturing host's byte order and its AF_INET6 value
        # differs between systems; like libpcap users (nDPI), trust the IP version nibble instead
        i = np.nonzero(m & (cap >= 5))[0]
        l3[i] = off[i] + 4
    m = np.isin(lt, LINK_RAW)
    if m.any():
        i = np.nonzero(m)[0]
        l3[i] = off[i]
    # unknown link types: the simple path knows a few more (PPP, ...)
    known = np.isin(lt, (LINK_ETHERNET, LINK_SLL, LINK_SLL2, LINK_NULL, LINK_LOOP) + LINK_RAW)
    slow |= ~known

    # --- IP -----------------------------------------------------------------------------------
    has_l3 = (l3 >= 0) & ~slow
    i = np.nonzero(has_l3 & (l3 + 1 <= end))[0]
    ver = _u8(b, l3[i]) >> 4
    hint = ver_hint[i]
    bad_hint = (hint != 0) & (hint != ver)
    slow[i[bad_hint]] = True  # link says IPv4 but the header disagrees: decode carefully
    i4 = i[(ver == 4) & ~bad_hint]
    i6 = i[(ver == 6) & ~bad_hint]
    slow[i[(ver != 4) & (ver != 6)]] = True

    l4 = np.full(n, -1, dtype=np.int64)
    ipend = np.zeros(n, dtype=np.int64)
    if len(i4):
        o = l3[i4]
        ok = o + 20 <= end[i4]
        slow[i4[~ok]] = True
        i4, o = i4[ok], o[ok]
        ihl = (_u8(b, o) & 0x0F) * 4
        total = _be16(b, o + 2)
        frag = _be16(b, o + 6) & 0x3FFF
        proto = _u8(b, o + 9)
        good = (ihl >= 20) & (total >= ihl) & (frag == 0) & (o + ihl <= end[i4])
        good &= ~np.isin(proto, SLOW_IP_PROTOS)
        slow[i4[~good]] = True
        i4, o, ihl, total, proto = i4[good], o[good], ihl[good], total[good], proto[good]
        d.ipver[i4] = 4
        d.proto[i4] = proto
        d.src_lo[i4] = _be32(b, o + 12).astype(np.uint64)
        d.dst_lo[i4] = _be32(b, o + 16).astype(np.uint64)
        d.iplen[i4] = total
        d.ident[i4] = _be16(b, o + 4) << 32
        l4[i4] = o + ihl
        ipend[i4] = o + total
        d.status[i4] = FAST
    if len(i6):
        o = l3[i6]
        ok = o + 40 <= end[i6]
        slow[i6[~ok]] = True
        i6, o = i6[ok], o[ok]
        plen = _be16(b, o + 4)
        nh = _u8(b, o + 6)
        good = ~np.isin(nh, SLOW_V6_NEXT) & ~np.isin(nh, SLOW_IP_PROTOS) & (plen > 0)
        slow[i6[~good]] = True
        i6, o, plen, nh = i6[good], o[good], plen[good], nh[good]
        d.ipver[i6] = 6
        d.proto[i6] = nh
        d.src_hi[i6] = _be64(b, o + 8)
        d.src_lo[i6] = _be64(b, o + 16)
        d.dst_hi[i6] = _be64(b, o + 24)
        d.dst_lo[i6] = _be64(b, o + 32)
        d.iplen[i6] = plen + 40
        d.ident[i6] = (_be32(b, o) & 0xFFFFF) << 32
        l4[i6] = o + 40
        ipend[i6] = o + 40 + plen
        d.status[i6] = FAST

    # --- transport ------------------------------------------------------------------------------
    fast = d.status == FAST
    proto = d.proto.astype(np.int64)
    cap_end = np.minimum(end, np.where(ipend > 0, ipend, end))

    t = np.nonzero(fast & (proto == 6))[0]
    if len(t):
        o = l4[t]
        ok = o + 20 <= end[t]
        doff = (_u8(b, o + 12) >> 4) * 4
        ok &= (doff >= 20) & (o + doff <= ipend[t])
        slow[t[~ok]] = True
        d.status[t[~ok]] = SLOW
        t, o, doff = t[ok], o[ok], doff[ok]
        d.sport[t] = _be16(b, o)
        d.dport[t] = _be16(b, o + 2)
        d.seq[t] = _be32(b, o + 4)
        d.ident[t] |= _be32(b, o + 8)
        d.flags[t] = _u8(b, o + 13)
        d.poff[t] = o + doff
        d.plen[t] = ipend[t] - (o + doff)
        d.pcap[t] = np.clip(cap_end[t] - (o + doff), 0, None)

    u = np.nonzero(fast & (proto == 17))[0]
    if len(u):
        o = l4[u]
        ok = o + 8 <= np.minimum(end[u], ipend[u])
        slow[u[~ok]] = True
        d.status[u[~ok]] = SLOW
        u, o = u[ok], o[ok]
        sp = _be16(b, o)
        dp = _be16(b, o + 2)
        tun = np.isin(sp, TUNNEL_UDP_PORTS) | np.isin(dp, TUNNEL_UDP_PORTS)
        d.status[u[tun]] = SLOW
        slow[u[tun]] = True
        u, o, sp, dp = u[~tun], o[~tun], sp[~tun], dp[~tun]
        d.sport[u] = sp
        d.dport[u] = dp
        d.ident[u] |= _be32(b, o + 4)
        d.poff[u] = o + 8
        d.plen[u] = ipend[u] - (o + 8)
        d.pcap[u] = np.clip(cap_end[u] - (o + 8), 0, None)

    c = np.nonzero(fast & ((proto == 1) | (proto == 58)))[0]
    if len(c):
        o = l4[c]
        ok = o + 8 <= np.minimum(end[c], ipend[c])  # the header inside the datagram, not in frame padding
        slow[c[~ok]] = True
        d.status[c[~ok]] = SLOW
        c, o = c[ok], o[ok]
        d.icmp_type[c] = _u8(b, o)
        d.icmp_code[c] = _u8(b, o + 1)
        d.ident[c] |= _be32(b, o + 4)
        d.poff[c] = o + 8
        d.plen[c] = ipend[c] - (o + 8)
        d.pcap[c] = np.clip(cap_end[c] - (o + 8), 0, None)

    other = np.nonzero(fast & ~np.isin(proto, (1, 6, 17, 58)))[0]
    if len(other):
        d.poff[other] = l4[other]
        d.plen[other] = ipend[other] - l4[other]
        d.pcap[other] = np.clip(cap_end[other] - l4[other], 0, None)

    d.status[slow] = SLOW
    return d


def _strip_pktap(b: np.ndarray, batch: PacketBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per-row link type and frame offset with PKTAP headers removed (the inner DLT and frame behind them).

    Rows whose header is short, odd or not followed by a packet get link type -1, which sends them to
    the simple path: it strips the header itself and says what is wrong with it.
    """
    lt, off = batch.linktype.astype(np.int64), batch.off.copy()
    lt[np.isin(lt, LINK_PKTAP)] = -1
    i, o, hl = _pktap_rows(batch, None)
    rec, dlt = _le32(b, o + 4), _le32(b, o + 8)
    ok = (rec == PKTAP_REC_PACKET) & ~np.isin(dlt, LINK_PKTAP)
    lt[i[ok]] = dlt[ok]
    off[i[ok]] = o[ok] + hl[ok]
    return lt, off


def _link_rows(batch: PacketBatch, rows: np.ndarray | None, linktypes: tuple[int, ...],
               min_len: int) -> np.ndarray:  # fmt: skip
    """The rows (of ``rows``, or all) with one of these link types and at least ``min_len`` bytes captured."""
    i = np.arange(len(batch)) if rows is None else np.asarray(rows, dtype=np.int64)
    return i[np.isin(batch.linktype[i], linktypes) & (batch.caplen[i] >= min_len)]


def _pktap_rows(batch: PacketBatch, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows (of ``rows``, or all) that carry a whole PKTAP header: the rows, their frame offsets and
    their header lengths."""
    i = _link_rows(batch, rows, LINK_PKTAP, PKTAP_MIN)
    if not len(i):
        return i, i, i
    o = batch.off[i]
    hl = _le32(np.frombuffer(batch.buf, dtype=np.uint8), o)
    keep = (hl >= PKTAP_MIN) & (hl <= batch.caplen[i])
    return i[keep], o[keep], hl[keep]


def pktap_processes(batch: PacketBatch, rows: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, list[tuple[str, int, str | None]]]:  # fmt: skip
    """The process of PKTAP packets (of ``rows``, or all): an index per row of the batch (-1: none or not
    asked) into a list of (command, pid, effective command or None when it is the same process).

    macOS fills these fields with the socket's process for both directions of a connection. The four
    fields (pid, command, effective pid, effective command: 12 aligned 32-bit words) are read as words,
    hashed, and grouped by the hash, so each distinct process is decoded once; the grouping is checked
    word by word and redone on the raw words if two processes ever shared a hash.
    """
    return _pktap_field(batch, rows, PKTAP_PROCESS_WORDS, _process, _PROCESSES)


def pktap_interfaces(batch: PacketBatch, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The interface of PKTAP packets (``en0``, ``utun3``, ``lo0``...; of ``rows``, or all): an index per
    row of the batch (-1: none or not asked) into a list of names, grouped like the processes."""
    return _pktap_field(batch, rows, PKTAP_IFNAME_WORDS, _ifname, _IFNAMES)


def sll2_interfaces(batch: PacketBatch, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The interface of Linux "any" captures (SLL2 headers: ``tcpdump -i any``) as ``if<index>``, the
    kernel's interface index (``ip link`` lists them; the file holds no names): an index per row of the
    batch (-1: not SLL2, cut short, or not asked) into a list of names."""
    out = np.full(len(batch), -1, dtype=np.int64)
    i = _link_rows(batch, rows, (LINK_SLL2,), 20)
    if not len(i):
        return out, []
    b = np.frombuffer(batch.buf, dtype=np.uint8)
    found, inv = np.unique(_be32(b, batch.off[i] + 4), return_inverse=True)
    out[i] = inv
    return out, [f"if{k}" for k in found.tolist()]


def sll_directions(batch: PacketBatch, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Whether each packet of a Linux "any" capture in the older SLL format (no interface index) was
    received or sent, from the header's packet type (4: sent by this host): a forwarded packet is seen
    received on one interface and sent on another. An index per row (-1: not SLL) into the two names."""
    out = np.full(len(batch), -1, dtype=np.int64)
    i = _link_rows(batch, rows, (LINK_SLL,), 16)
    if len(i):
        out[i] = _be16(np.frombuffer(batch.buf, dtype=np.uint8), batch.off[i]) == 4
    return out, ["received", "sent"]


def _pktap_field(batch: PacketBatch, rows: np.ndarray | None, rel: np.ndarray, decode,
                 cache: dict) -> tuple[np.ndarray, list]:  # fmt: skip
    """One PKTAP header field (the 32-bit words at ``rel``) of the rows asked about: an index per row of the
    batch (-1: none, not asked, or ``decode`` gave None) into the decoded values. Rows are grouped by their
    words, each group is decoded once, and decoded values are kept in ``cache`` (bounded) across batches."""
    out = np.full(len(batch), -1, dtype=np.int64)
    i, o, _hl = _pktap_rows(batch, rows)
    if not len(i):
        return out, []
    words = _le32_words(batch.buf, o, rel)
    first, inv = _group_rows(words)
    size = 4 * len(rel)
    raw_first = words[first].astype("<u4").tobytes()
    values: list = []
    index = np.empty(len(first), dtype=np.int64)
    for k in range(len(first)):
        r = raw_first[size * k : size * k + size]
        v = cache.get(r, False)
        if v is False:
            v = decode(r)
            if len(cache) >= 16384:
                cache.clear()
            cache[r] = v
        if v is None:
            index[k] = -1  # not attributed (ARP, packets the kernel could not tie to a socket), no name
            continue
        index[k] = len(values)
        values.append(v)
    out[i] = index[inv]
    return out, values


_PROCESSES: dict[bytes, tuple[str, int, str | None] | None] = {}  # raw process fields -> decoded (bounded)
_IFNAMES: dict[bytes, str | None] = {}  # raw interface name field -> name (bounded)


def _process(r: bytes) -> tuple[str, int, str | None] | None:
    """(command, pid, effective command or None) from the 48 bytes of a PKTAP header's process fields."""
    pid, epid = int.from_bytes(r[0:4], "little"), int.from_bytes(r[24:28], "little")
    comm, ecomm = _cstr(r[4:24]), _cstr(r[28:48])
    if not comm and not pid:
        return None
    return comm or f"pid {pid}", pid, ecomm if ecomm and (epid, ecomm) != (pid, comm) else None


def _ifname(r: bytes) -> str | None:
    """The interface name of a PKTAP header (24 bytes), None when empty."""
    return _cstr(r) or None


def _group_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with equal words: (first row of each group, group of each row), grouped by a 64-bit hash of
    the words and checked word by word (regrouped on the raw words should two groups share a hash)."""
    if (words == words[0]).all():  # one interface, one process: the usual batch of a pktap,en0 capture
        return np.zeros(1, dtype=np.int64), np.zeros(len(words), dtype=np.int64)
    h = np.zeros(len(words), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(words.shape[1]):
            h = mix64(h ^ words[:, k].astype(np.uint64) + np.uint64(k))
    _u, first, inv = np.unique(h, return_index=True, return_inverse=True)
    inv = inv.ravel()
    if not (words == words[first][inv]).all():
        raw = np.ascontiguousarray(words).view(np.dtype((np.void, 4 * words.shape[1]))).ravel()
        _u, first, inv = np.unique(raw, return_index=True, return_inverse=True)
        inv = inv.ravel()
    return first, inv


# pid (52), command (56, 20 bytes), effective pid (84), effective command (88, 20 bytes): header offsets
PKTAP_PROCESS_WORDS = np.r_[52:76:4, 84:108:4]
PKTAP_IFNAME_WORDS = np.r_[12:36:4]  # the interface name (24 bytes)
# the 64-bit mixer of flow-key hashes (engine.flow_hash) and of PKTAP fields; the ints are for the
# engine's one-key version in Python integers
MIX_C1, MIX_C2, MIX_PERTURB = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x9E3779B97F4A7C15
_C1 = np.uint64(MIX_C1)
_C2 = np.uint64(MIX_C2)
_S33 = np.uint64(33)
_S31 = np.uint64(31)
_S27 = np.uint64(27)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> _S33)) * _C1
    x = (x ^ (x >> _S31)) * _C2
    return x ^ (x >> _S27)


def _le32_words(buf: bytes, base: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Little-endian 32-bit words at ``base[r] + rel[k]`` for every row r and k (``rel`` multiples of 4),
    read through four uint32 views of ``buf`` (one per alignment) instead of byte by byte."""
    out = np.empty((len(base), len(rel)), dtype=np.uint32)
    align = base % 4
    for a in range(4):
        rows = np.nonzero(align == a)[0]
        if not len(rows):
            continue
        view = np.frombuffer(buf, dtype="<u4", offset=a, count=(len(buf) - a) // 4)
        out[rows] = view[((base[rows] - a) // 4)[:, None] + rel // 4]
    return out


def _cstr(raw: bytes) -> str:
    """A fixed-size NUL-terminated field as text (bytes that are not UTF-8 are escaped)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")

"""Packet decoding: the fast vectorised path plus the simple per-packet path for everything else.

``decode(batch)`` is the only place where exceptions raised while parsing hostile link/IP/transport
headers are caught: a malformed packet becomes a ``Weird`` row and processing continues.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from pcapaudit.capture.pcapfile import PacketBatch
from pcapaudit.decode.packet import DecodeError, Fragment, NotIP, PacketFields, SimpleDecoder
from pcapaudit.decode.vector import (
    FAST,
    LINK_PKTAP,
    LINK_SLL,
    LINK_SLL2,
    SKIP,
    SLOW,
    Decoded,
    decode_batch,
    pktap_interfaces,
    pktap_processes,
    sll2_interfaces,
    sll_directions,
)

__all__ = ["DecodeResult", "Decoder", "Decoded", "FAST", "SKIP", "SLOW"]

_Q = struct.Struct(">Q")


@dataclass(slots=True)
class DecodeResult:
    """Header columns of one batch plus what the simple path produced on the side."""

    cols: Decoded
    extra_payload: dict[int, bytes] = field(default_factory=dict)  # row -> payload not in batch.buf
    weirds: list[tuple[int, str, str]] = field(default_factory=list)  # (row, name, detail)
    not_ip: int = 0
    fragments: int = 0
    tunnels: dict[str, int] = field(default_factory=dict)
    # captures that name each packet's process (Apple PKTAP, Darwin pcapng) or interface (PKTAP, Linux
    # SLL2, pcapng with several): rows -> (per-row index for the batch, -1 for none, and the names it
    # indexes), read only for the rows the engine asks about (a flow's first packets), else None
    processes: Callable[[np.ndarray], tuple[np.ndarray, list]] | None = None
    interfaces: Callable[[np.ndarray], tuple[np.ndarray, list]] | None = None
    # the same for the direction of packets that name no interface but say whether the host received or
    # sent them (Linux "any" captures in the older SLL format): what tells a forwarded packet's copies apart
    directions: Callable[[np.ndarray], tuple[np.ndarray, list]] | None = None


class Decoder:
    """Decode batches; ``engine='simple'`` sends every packet through the per-packet path."""

    def __init__(self, engine: str = "fast"):
        if engine not in ("fast", "simple"):
            raise ValueError(f"unknown decode engine {engine!r}")
        self.engine = engine
        self.simple = SimpleDecoder()

    def decode(self, batch: PacketBatch) -> DecodeResult:
        """Decode all packets of a batch."""
        if self.engine == "fast":
            cols = decode_batch(batch)
            rows = np.nonzero(cols.status == SLOW)[0]
        else:
            cols = Decoded.empty(len(batch))
            rows = np.arange(len(batch))
        res = DecodeResult(cols)
        pktap = np.isin(batch.linktype, LINK_PKTAP).any()
        if batch.proc is not None:  # Apple pcapng: process info blocks (read with the packets)
            proc, names = batch.proc, batch.processes or []
            res.processes = lambda _rows: (proc, names)
        elif pktap:
            res.processes = partial(pktap_processes, batch)
        if pktap:  # the header names the real interface (a pcapng file's only says "pktap")
            res.interfaces = partial(pktap_interfaces, batch)
        elif (batch.linktype == LINK_SLL2).any():  # tcpdump -i any: the header has the interface's index
            res.interfaces = partial(sll2_interfaces, batch)
        elif batch.iface is not None:
            iface, ifnames = batch.iface, batch.ifnames or []
            res.interfaces = lambda _rows: (iface, ifnames)
        elif (batch.linktype == LINK_SLL).any():
            res.directions = partial(sll_directions, batch)
        if len(rows):
            self._simple_rows(batch, res, rows)
        return res

    def _simple_rows(self, batch: PacketBatch, res: DecodeResult, rows: np.ndarray) -> None:
        c = res.cols
        buf = batch.buf
        offs = batch.off[rows].tolist()
        caps = batch.caplen[rows].tolist()
        lts = batch.linktype[rows].tolist()
        tss = batch.ts[rows].tolist()
        dec = self.simple.decode
        for row, o, cap, lt, ts in zip(rows.tolist(), offs, caps, lts, tss):
            try:
                f = dec(buf[o : o + cap], lt, ts)
            except NotIP:
                c.status[row] = SKIP
                res.not_ip += 1
                continue
            except Fragment:
                c.status[row] = SKIP
                res.fragments += 1
                continue
            except DecodeError as e:
                c.status[row] = SKIP
                res.weirds.append((row, e.name, e.detail))
                continue
            except (struct.error, IndexError, ValueError) as e:  # defensive: never let a packet stop a run
                c.status[row] = SKIP
                res.weirds.append((row, "decoder_error", f"{type(e).__name__}: {e}"))
                continue
            _fill(c, row, f)
            if f.weird is not None:
                res.weirds.append((row, *f.weird))
            if f.payload:
                res.extra_payload[row] = f.payload
            if f.tunnel:
                res.tunnels[f.tunnel] = res.tunnels.get(f.tunnel, 0) + 1
            if f.fragments > 1:
                res.fragments += 1


def _fill(c: Decoded, row: int, f: PacketFields) -> None:
    c.status[row] = FAST
    c.ipver[row] = f.ipver
    c.proto[row] = f.proto
    if f.ipver == 4:
        c.src_hi[row] = 0
        c.src_lo[row] = int.from_bytes(f.src, "big")
        c.dst_hi[row] = 0
        c.dst_lo[row] = int.from_bytes(f.dst, "big")
    else:
        c.src_hi[row] = _Q.unpack_from(f.src, 0)[0]
        c.src_lo[row] = _Q.unpack_from(f.src, 8)[0]
        c.dst_hi[row] = _Q.unpack_from(f.dst, 0)[0]
        c.dst_lo[row] = _Q.unpack_from(f.dst, 8)[0]
    c.sport[row] = f.sport
    c.dport[row] = f.dport
    c.flags[row] = f.flags
    c.seq[row] = f.seq
    c.poff[row] = -1  # payload lives in extra_payload
    c.plen[row] = max(f.plen, 0)
    c.pcap[row] = len(f.payload)
    c.iplen[row] = f.iplen
    c.vlan[row] = f.vlan
    c.icmp_type[row] = f.icmp_type
    c.icmp_code[row] = f.icmp_code
    c.ident[row] = f.ident

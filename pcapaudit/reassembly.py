"""Minimal TCP reassembly of the first bytes of one direction.

Only the start of a stream matters to the auditor (ClientHello, server flight, HTTP head, LDAP bind),
so the buffer is capped. Segments may arrive out of order, overlap, or be retransmitted; the SYN gives
the initial sequence number when it was captured, otherwise the first segment seen does (and a later
segment that starts a little before it moves the base back).
"""

from __future__ import annotations

MOD = 1 << 32
HALF = 1 << 31
REBASE_WINDOW = 64 * 1024


class Stream:
    """Contiguous bytes of one direction from its first byte, up to ``cap`` bytes."""

    __slots__ = ("base", "data", "ooo", "cap", "ooo_bytes", "gaps", "syn_seen", "alt_bases")

    def __init__(self, cap: int):
        self.base: int | None = None
        self.data = bytearray()
        self.ooo: dict[int, bytes] = {}
        self.cap = cap
        self.ooo_bytes = 0
        self.gaps = 0
        self.syn_seen = False
        self.alt_bases: list[int] = []

    @property
    def full(self) -> bool:
        """The cap is reached: nothing more will be stored."""
        return len(self.data) >= self.cap

    def syn(self, seq: int) -> None:
        """A SYN with sequence number ``seq``: data starts at seq + 1.

        A second SYN/SYN-ACK with another sequence number (a retried or injected handshake) is kept as
        an alternative start: the first data segment decides which one the stream really uses.
        """
        new_base = (seq + 1) % MOD
        if not self.syn_seen:
            self.syn_seen = True
            if self.base is None or (not self.data and not self.ooo):
                self.base = new_base
            else:
                self._rebase(new_base)
        elif new_base != self.base and new_base not in self.alt_bases and len(self.alt_bases) < 4:
            self.alt_bases.append(new_base)

    def add(self, seq: int, payload: bytes) -> bool:
        """Store a segment; returns True when contiguous data grew."""
        if not payload or self.full:
            return False
        if self.base is None:
            self.base = seq
        rel = self._rel(seq)
        if self.alt_bases and not self.data and not 0 <= rel < self.cap:
            for alt in self.alt_bases:  # the data follows another SYN/SYN-ACK than the first one
                if 0 <= (seq - alt) % MOD < self.cap:
                    self.alt_bases.remove(alt)
                    self.alt_bases.append(self.base)
                    pending = {(self.base + k) % MOD: v for k, v in self.ooo.items()}
                    self.base, self.ooo, self.ooo_bytes = alt, {}, 0
                    for abs_seq, seg in pending.items():
                        if 0 <= self._rel(abs_seq) < self.cap:
                            self.ooo[self._rel(abs_seq)] = seg
                            self.ooo_bytes += len(seg)
                    rel = self._rel(seq)
                    break
        if rel < 0:
            # without the SYN, the first segment seen may not be the first one sent: a segment that ends
            # where (or after) our data starts extends the stream backwards
            if not self.syn_seen and -rel <= REBASE_WINDOW and rel + len(payload) >= 0:
                self._rebase(seq)
                rel = 0
            else:
                if rel + len(payload) <= 0:
                    return False  # old retransmission
                payload = payload[-rel:]
                rel = 0
        have = len(self.data)
        if rel > have:
            if rel < self.cap and self.ooo_bytes < self.cap:
                old = self.ooo.get(rel)
                if old is None or len(old) < len(payload):
                    self.ooo[rel] = payload
                    self.ooo_bytes += len(payload) - (len(old) if old else 0)
            return False
        grew = False
        if rel + len(payload) > have:
            self.data += payload[have - rel :]
            grew = True
        while self.ooo:
            have = len(self.data)
            ready = [k for k in self.ooo if k <= have]
            if not ready:
                break
            for k in ready:
                seg = self.ooo.pop(k)
                self.ooo_bytes -= len(seg)
                if k + len(seg) > len(self.data):
                    self.data += seg[len(self.data) - k :]
                    grew = True
        if len(self.data) > self.cap:
            del self.data[self.cap :]
        return grew

    def _rel(self, seq: int) -> int:
        assert self.base is not None
        rel = (seq - self.base) % MOD
        return rel - MOD if rel >= HALF else rel

    def _rebase(self, new_base: int) -> None:
        assert self.base is not None
        shift = (self.base - new_base) % MOD
        if shift >= HALF:
            shift -= MOD
        if shift <= 0:
            return  # the new base is after data we already have: keep what we have
        old = {}
        if self.data:
            old[0] = bytes(self.data)
            self.data = bytearray()
        old.update(self.ooo)
        self.ooo = {k + shift: v for k, v in old.items()}
        self.ooo_bytes = sum(len(v) for v in self.ooo.values())
        self.base = new_base

    @property
    def missing_before_ooo(self) -> bool:
        """Segments wait behind a hole (a segment that was never captured)."""
        return bool(self.ooo)

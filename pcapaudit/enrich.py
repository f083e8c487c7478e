"""DNS-derived names for server addresses, bounded in memory and ordered in time.

A flow is named by the DNS answer that mapped its server address *before* the flow started: an answer
seen later cannot have caused the connection. CNAME chains are followed back to the name the client
asked for, which is the name the vendor documents list.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_ADDRESSES = 500_000
MAX_NAMES_PER_ADDRESS = 32  # CDN addresses serve many names; a flow is named when it starts (engine)
MAX_ENTRIES = 1_000_000  # (address, name) pairs kept in each direction, whatever the answers look like
CLOCK_SLACK = 0.001  # answers time-stamped within a millisecond after the SYN still count


class DnsMap:
    """address -> [(first answer time, queried name)], most recently confirmed last; least recently
    updated addresses evicted.

    The reverse direction (name -> addresses) is kept too, to notice a connection whose SNI names a host
    that DNS resolved to other addresses (a transparent redirect).
    """

    def __init__(self, max_addresses: int = MAX_ADDRESSES, max_entries: int = MAX_ENTRIES):
        self._map: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()
        self._names: OrderedDict[str, set[str]] = OrderedDict()
        self._max = max_addresses
        self._max_entries = max_entries
        self._entries = 0  # pairs in _map
        self._name_entries = 0  # pairs in _names
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._map)

    def add(self, ts: float, address: str, name: str) -> None:
        """Record that ``name`` resolved to ``address`` at time ``ts``."""
        lst = self._map.get(address)
        if lst is None:
            lst = self._map[address] = []
        else:
            self._map.move_to_end(address)
        for i, (t, n) in enumerate(lst):
            if n == name:
                # seen again (another client, a refresh): it has mapped here since it was first seen, so
                # the first time stays; the entry moves to the end as the most recently confirmed name
                del lst[i]
                ts = min(t, ts)
                self._entries -= 1
                break
        lst.append((ts, name))
        self._entries += 1
        if len(lst) > MAX_NAMES_PER_ADDRESS:
            del lst[0]
            self._entries -= 1
        while len(self._map) > self._max or self._entries > self._max_entries:
            _addr, old = self._map.popitem(last=False)  # the least recently answered address
            self._entries -= len(old)
            self.evicted += 1
        addrs = self._names.get(name)
        if addrs is None:
            addrs = self._names[name] = set()
        else:
            self._names.move_to_end(name)
        if len(addrs) < 64 and address not in addrs:
            addrs.add(address)
            self._name_entries += 1
        while len(self._names) > self._max or self._name_entries > self._max_entries:
            _name, old_addrs = self._names.popitem(last=False)
            self._name_entries -= len(old_addrs)

    def addresses(self, name: str) -> frozenset[str]:
        """Every address DNS answered for ``name`` so far (bounded)."""
        return frozenset(self._names.get(name, ()))

    def lookup(self, address: str, ts: float) -> tuple[str, ...]:
        """Names that mapped to ``address`` at or before ``ts``, most recent first."""
        lst = self._map.get(address)
        if not lst:
            return ()
        limit = ts + CLOCK_SLACK
        return tuple(n for t, n in reversed(lst) if t <= limit)


def answer_names(answers) -> list[tuple[str, str]]:
    """(address, name) pairs from one response: each A/AAAA answer mapped to the name that was asked.

    ``answers`` holds (owner, type, value, ttl) tuples; CNAME owners are walked back to the query.
    """
    if not answers:
        return []
    alias_of: dict[str, str] = {}
    for owner, rtype, value, _ttl in answers:
        if rtype == 5 and value:
            alias_of.setdefault(value, owner)
    out = []
    for owner, rtype, value, _ttl in answers:
        if rtype not in (1, 28) or not value:
            continue
        name = owner
        seen = 0
        while name in alias_of and seen < 16:
            name = alias_of[name]
            seen += 1
        out.append((value, name))
    return out

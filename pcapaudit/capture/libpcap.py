"""Minimal ctypes bindings to libpcap for live capture (open, filter, read, statistics).

libpcap is the one capture library on every platform pcapaudit targets (Linux, macOS); binding the six
calls it needs keeps live capture free of compiled extensions. Errors become ``CaptureError`` with the
interface name and a hint on how to fix permissions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from pcapaudit.errors import CaptureError

PCAP_ERRBUF_SIZE = 256
PCAP_ERROR = -1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_ERROR_IFACE_NOT_UP = -9
PCAP_WARNING = 1


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class _Stat(ctypes.Structure):
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint), ("ps_ifdrop", ctypes.c_uint)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _PcapIf(ctypes.Structure):
    pass


_PcapIf._fields_ = [("next", ctypes.POINTER(_PcapIf)), ("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
                    ("addresses", ctypes.c_void_p), ("flags", ctypes.c_uint32)]  # fmt: skip

_IF_LOOPBACK, _IF_UP, _IF_RUNNING, _IF_WIRELESS = 0x1, 0x2, 0x4, 0x8
_IF_STATUS = {0x10: "Connected", 0x20: "Disconnected", 0x30: None, 0x00: None}

_lib = None


def load() -> ctypes.CDLL:
    """Load libpcap once (CaptureError when it is not installed)."""
    global _lib
    if _lib is not None:
        return _lib
    names = [ctypes.util.find_library("pcap"), "libpcap.so.0.8", "libpcap.so.1", "libpcap.so", "libpcap.dylib"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise CaptureError("libpcap not found: install it (Debian/Ubuntu: apt-get install libpcap0.8; macOS has it)")
    lib.pcap_create.restype = ctypes.c_void_p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.pcap_set_snaplen.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_set_promisc.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_set_buffer_size.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_set_immediate_mode.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_setnonblock.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    lib.pcap_get_selectable_fd.argtypes = [ctypes.c_void_p]
    lib.pcap_activate.argtypes = [ctypes.c_void_p]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_statustostr.restype = ctypes.c_char_p
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
    lib.pcap_setfilter.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram)]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_next_ex.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_PktHdr)), ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]
    lib.pcap_datalink.argtypes = [ctypes.c_void_p]
    if hasattr(lib, "pcap_set_datalink"):
        lib.pcap_set_datalink.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Stat)]
    lib.pcap_breakloop.argtypes = [ctypes.c_void_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    _lib = lib
    return lib


def interfaces() -> list[str]:
    """Interface names (Linux: /sys/class/net; elsewhere: none known)."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def available_interfaces() -> list[str]:
    """The names ``--list`` prints (libpcap's, "any" included), else the system's."""
    try:
        return [name for name, _d, _f in list_interfaces()] or interfaces()
    except CaptureError:
        return interfaces()


def resolve_interface(name: str) -> str:
    """An interface name, or a number of the ``--list`` (``tcpdump -D``) list, as ``tcpdump -i 2`` takes it."""
    if not name.isdigit() or name in interfaces():
        return name
    names = [n for n, _d, _f in list_interfaces()]
    n = int(name)
    if not 1 <= n <= len(names):
        raise CaptureError(f"{name}: no interface number {n} (pcapaudit live --list numbers them 1 to {len(names)})")
    return names[n - 1]


def _perm_hint(iface: str) -> str:
    if sys.platform == "darwin":
        return (f"{iface}: permission denied capturing packets: run as root (sudo pcapaudit live {iface}) or grant "
                "capture rights (install Wireshark's ChmodBPF / add yourself to the access_bpf group)")  # fmt: skip
    exe = os.path.realpath(sys.executable)
    return (f"{iface}: permission denied capturing packets: run as root (sudo pcapaudit live {iface}) or grant "
            f"capture rights (sudo setcap cap_net_raw,cap_net_admin=eip {exe})")  # fmt: skip


DLT_LINUX_SLL, DLT_LINUX_SLL2 = 113, 276

# the link types a capture file filter is compiled for up front: Ethernet, Linux cooked (v1, v2), raw
# IP (101, 12, 14, 228, 229), BSD loopback (0, 108), Apple PKTAP (258, 149), PPP, 802.11 (+ radiotap)
# (12: DLT_RAW, as the packets inside a PKTAP header name raw IP)
FILE_LINKTYPES = (1, 113, 276, 101, 12, 228, 229, 0, 108, 258, 149, 9, 105, 127)
# the link types of files (LINKTYPE_*) that are another number as a DLT (what pcap_open_dead takes)
_LINKTYPE_DLT = {101: 12, 100: 11}


class FilterError(CaptureError):
    """A filter expression libpcap refuses (one line naming the expression and libpcap's message)."""

    def __init__(self, message: str, libpcap_message: str = ""):
        super().__init__(message)
        self.libpcap_message = libpcap_message or message


def compile_filter(expr: str, linktype: int, snaplen: int = 262144) -> list[tuple[int, int, int, int]]:
    """Compile ``expr`` as libpcap (tcpdump) does for packets of ``linktype``: the classic BPF program
    as (code, jt, jf, k) tuples. ``FilterError`` with libpcap's message when it refuses."""
    lib = load()
    h = lib.pcap_open_dead(_LINKTYPE_DLT.get(linktype, linktype), snaplen)
    if not h:
        raise FilterError(f"filter {expr!r}: libpcap cannot open a handle for link type {linktype}")
    h = ctypes.c_void_p(h)
    try:
        prog = _BpfProgram()
        if lib.pcap_compile(h, ctypes.byref(prog), expr.encode(), 1, 0xFFFFFFFF) < 0:
            msg = (lib.pcap_geterr(h) or b"").decode(errors="replace")
            raise FilterError(f"bad filter {expr!r}: {msg}", msg)
        try:
            insns = ctypes.cast(prog.bf_insns, ctypes.POINTER(_BpfInsn))
            return [(insns[i].code, insns[i].jt, insns[i].jf, insns[i].k) for i in range(prog.bf_len)]
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(h)


Program = list[tuple[int, int, int, int]]  # classic BPF instructions as (code, jt, jf, k)


def compile_file_filter(expr: str, linktypes=FILE_LINKTYPES) -> tuple[dict[int, Program], dict[int, str]]:
    """``expr`` compiled for each of ``linktypes``: (link type -> program, link type -> libpcap's message
    for those it refused). Raises ``FilterError`` when libpcap refuses it for Ethernet or for every link
    type (an error of the expression, not of a link type)."""
    programs: dict[int, Program] = {}
    refused: dict[int, str] = {}
    first: FilterError | None = None
    for lt in linktypes:
        try:
            programs[lt] = compile_filter(expr, lt)
        except FilterError as e:
            first = first or e
            refused[lt] = e.libpcap_message
    if first is not None and (not programs or (1 in linktypes and 1 not in programs)):
        raise first
    return programs, refused


class Handle:
    """An activated capture handle."""

    def __init__(self, iface: str, snaplen: int = 65535, promisc: bool = True, timeout_ms: int = 100,
                 bpf: str | None = None, buffer_mb: int = 32):  # fmt: skip
        lib = load()
        self.lib = lib
        self.iface = iface
        err = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        h = lib.pcap_create(iface.encode(), err)
        if not h:
            raise CaptureError(f"{iface}: cannot open for capture: {err.value.decode(errors='replace')}")
        self.h = ctypes.c_void_p(h)
        lib.pcap_set_snaplen(self.h, snaplen)
        lib.pcap_set_promisc(self.h, 1 if promisc else 0)
        lib.pcap_set_timeout(self.h, timeout_ms)
        lib.pcap_set_buffer_size(self.h, buffer_mb << 20)
        lib.pcap_set_immediate_mode(self.h, 1)  # deliver packets at once: findings appear as they happen
        rc = lib.pcap_activate(self.h)
        if rc < 0:
            msg = (lib.pcap_geterr(self.h) or b"").decode(errors="replace")
            lib.pcap_close(self.h)
            self.h = None
            if rc == PCAP_ERROR_PERM_DENIED or "ermission" in msg or "not permitted" in msg:
                raise CaptureError(_perm_hint(iface))
            if rc == PCAP_ERROR_NO_SUCH_DEVICE or "No such device" in msg:
                avail = ", ".join(available_interfaces()) or "see `ip link` / `ifconfig`"
                raise CaptureError(f"{iface}: no such interface (available: {avail})")
            if rc == PCAP_ERROR_IFACE_NOT_UP:
                raise CaptureError(f"{iface}: interface is down (bring it up: ip link set {iface} up)")
            raise CaptureError(f"{iface}: cannot start capture: {msg or rc}")
        self.linktype = lib.pcap_datalink(self.h)
        if self.linktype == DLT_LINUX_SLL and hasattr(lib, "pcap_set_datalink"):
            # Linux's "any" device: SLL2 (libpcap 1.10+) also says which interface each packet crossed, so
            # a forwarded packet seen on two interfaces is counted once (pcapaudit/dedup.py), as tcpdump does
            if lib.pcap_set_datalink(self.h, DLT_LINUX_SLL2) == 0:
                self.linktype = lib.pcap_datalink(self.h)
        if bpf:
            prog = _BpfProgram()
            if lib.pcap_compile(self.h, ctypes.byref(prog), bpf.encode(), 1, 0xFFFFFFFF) < 0:
                msg = (lib.pcap_geterr(self.h) or b"").decode(errors="replace")
                self.close()
                raise CaptureError(f"{iface}: bad capture filter {bpf!r}: {msg}")
            rc = lib.pcap_setfilter(self.h, ctypes.byref(prog))
            lib.pcap_freecode(ctypes.byref(prog))
            if rc < 0:
                msg = (lib.pcap_geterr(self.h) or b"").decode(errors="replace")
                self.close()
                raise CaptureError(f"{iface}: cannot set capture filter: {msg}")
        self._hdr = ctypes.POINTER(_PktHdr)()
        self._data = ctypes.POINTER(ctypes.c_ubyte)()
        # non-blocking reads plus select(): a read timeout that fires even when no packet arrives (the
        # pcap timeout alone does not on every platform/kernel), so Ctrl-C and --duration stay responsive
        self._timeout = timeout_ms / 1000.0
        self.fd = lib.pcap_get_selectable_fd(self.h)
        if self.fd >= 0:
            lib.pcap_setnonblock(self.h, 1, err)

    def next(self) -> tuple[float, int, bytes] | None:
        """One packet (ts, wire length, captured bytes), None on timeout; raises CaptureError on failure."""
        rc = self.lib.pcap_next_ex(self.h, ctypes.byref(self._hdr), ctypes.byref(self._data))
        if rc == 0 and self.fd >= 0:
            import select

            try:
                select.select([self.fd], [], [], self._timeout)
            except InterruptedError:
                return None
            rc = self.lib.pcap_next_ex(self.h, ctypes.byref(self._hdr), ctypes.byref(self._data))
        if rc == 1:
            hd = self._hdr.contents
            data = ctypes.string_at(self._data, hd.caplen)
            return hd.ts.tv_sec + hd.ts.tv_usec * 1e-6, hd.len, data
        if rc == 0:
            return None
        if rc == -2:  # pcap_breakloop
            return None
        msg = (self.lib.pcap_geterr(self.h) or b"").decode(errors="replace")
        raise CaptureError(f"{self.iface}: capture failed: {msg}")

    def stats(self) -> tuple[int, int, int] | None:
        """(received, dropped by the kernel/buffer, dropped by the interface)."""
        st = _Stat()
        if self.h is None or self.lib.pcap_stats(self.h, ctypes.byref(st)) < 0:
            return None
        return st.ps_recv, st.ps_drop, st.ps_ifdrop

    def close(self) -> None:
        """Release the handle."""
        if self.h is not None:
            self.lib.pcap_close(self.h)
            self.h = None


def list_interfaces() -> list[tuple[str, str | None, list[str]]]:
    """The interfaces libpcap can capture on, as ``tcpdump -D`` lists them: (name, description, flags such
    as Up, Running, Loopback, Wireless, Connected). CaptureError when libpcap is missing or refuses."""
    lib = load()
    lib.pcap_findalldevs.argtypes = [ctypes.POINTER(ctypes.POINTER(_PcapIf)), ctypes.c_char_p]
    lib.pcap_freealldevs.argtypes = [ctypes.POINTER(_PcapIf)]
    head = ctypes.POINTER(_PcapIf)()
    err = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
    if lib.pcap_findalldevs(ctypes.byref(head), err) != 0:
        raise CaptureError(f"cannot list interfaces: {err.value.decode(errors='replace') or 'libpcap error'}")
    out = []
    try:
        node = head
        while node:
            dev = node.contents
            f = dev.flags
            flags = [w for bit, w in ((_IF_UP, "Up"), (_IF_RUNNING, "Running"), (_IF_WIRELESS, "Wireless"),
                                      (_IF_LOOPBACK, "Loopback")) if f & bit]  # fmt: skip
            status = _IF_STATUS.get(f & 0x30)
            if status:
                flags.append(status)
            out.append((dev.name.decode(errors="replace"),
                        dev.description.decode(errors="replace") if dev.description else None, flags))  # fmt: skip
            node = dev.next
    finally:
        if head:
            lib.pcap_freealldevs(head)
    return out

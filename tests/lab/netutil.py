"""Small in-namespace helpers run as `python3 -m tests.lab.netutil CMD ARGS` (standard library only).

  offload-off IFACE...   turn off checksum/segmentation offloads (legacy SIOCETHTOOL ioctls, no ethtool
                         binary needed) so captures hold correct checksums and MTU-sized segments.
"""
from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
# legacy ethtool "set" commands: tx checksum, scatter-gather, TSO, GSO, GRO; rx checksum
OFFLOAD_CMDS = {"tx-csum": 0x17, "sg": 0x19, "tso": 0x1F, "gso": 0x24, "gro": 0x2C, "rx-csum": 0x15}


def ethtool_set(ifname: str, cmd: int, value: int) -> None:
    buf = ctypes.create_string_buffer(struct.pack("II", cmd, value))
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)).ljust(40, b"\x00")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    finally:
        s.close()


def offload_off(ifaces) -> list[str]:
    errors = []
    for ifname in ifaces:
        for name, cmd in OFFLOAD_CMDS.items():
            try:
                ethtool_set(ifname, cmd, 0)
            except OSError as exc:
                errors.append(f"{ifname} {name}: {exc}")
    return errors


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    if argv and argv[0] == "offload-off":
        for e in offload_off(argv[1:]):
            print(e, file=sys.stderr)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

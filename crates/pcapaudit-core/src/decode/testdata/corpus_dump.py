"""Dump every packet of a corpus of captures with what the Python reference makes of it, in the format
of vectors.tsv (group = file), for the ignored test decode::tests::corpus_differential:

    PYTHONPATH=<repo> python corpus_dump.py /work/shared/corpus > /tmp/corpus.tsv
    DECODE_CORPUS=/tmp/corpus.tsv cargo test -p pcapaudit-core --lib corpus_differential -- --ignored
"""

import struct
import sys
from pathlib import Path

from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.decode.packet import DecodeError, Fragment, NotIP, SimpleDecoder


def addr(b):
    return int.from_bytes(b, "big")


def main(root):
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and (".pcap" in p.name or p.suffix == ".cap"))
    for path in files:
        dec = SimpleDecoder()
        try:
            batches = list(CaptureFile(str(path)).batches())
        except Exception as e:  # noqa: BLE001
            print(f"# {path}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        k = 0
        for b in batches:
            for o, c, lt, ts in zip(b.off.tolist(), b.caplen.tolist(), b.linktype.tolist(), b.ts.tolist()):
                frame = bytes(b.buf[o : o + c])
                head = f"{path}\t{k}\t{lt}\t{ts!r}\t{frame.hex()}"
                k += 1
                try:
                    f = dec.decode(frame, lt, ts)
                except NotIP:
                    print(f"{head}\tnotip")
                    continue
                except Fragment:
                    print(f"{head}\tfrag")
                    continue
                except DecodeError as e:
                    print(f"{head}\terr\t{e.name}\t{e.detail}")
                    continue
                except (struct.error, IndexError, ValueError) as e:
                    print(f"{head}\terr\tdecoder_error\t{type(e).__name__}: {e}")
                    continue
                w = f.weird or ("-", "-")
                vals = [f.ipver, f.proto, addr(f.src), addr(f.dst), f.sport, f.dport, f.flags, f.seq,
                        f.payload.hex() or "-", max(f.plen, 0), f.iplen, f.vlan, f.icmp_type, f.icmp_code,
                        f.tunnel or "-", f.fragments, w[0], w[1], f.ident]
                print(f"{head}\tpkt\t" + "\t".join(str(v) for v in vals))


main(sys.argv[1])

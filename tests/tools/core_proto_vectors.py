"""Vectors for the Rust core's differential tests (crates/pcapaudit-core, src/proto/{dns,quic,http,app}.rs).

Run by hand:  PYTHONPATH=. python tests/tools/core_proto_vectors.py /tmp/vectors.txt
              PCAPAUDIT_VECTORS=/tmp/vectors.txt cargo test -p pcapaudit-core --lib differential -- --nocapture
Writes every DNS message and QUIC client flow of the shared corpus (/work/shared/corpus, the scenarios and
captures/) with the Python reference's results, 30000 mutated DNS messages, and 20000 mutated HTTP and
application streams each. The file is derived from the corpus: keep it out of the repository.
"""
import sys
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vectors.txt"
import glob, os
from scapy.all import PcapReader, UDP, TCP, IP, IPv6
from pcapaudit.decode import dns, quic

def canon(m):
    q = "\x1e".join(f"{n}\x1f{t}" for n, t in m.questions)
    a = "\x1e".join(f"{o}\x1f{t}\x1f{v}\x1f{ttl}" for o, t, v, ttl in m.answers)
    return "|".join(["OK", str(m.trans_id), str(int(m.is_response)), str(m.opcode), str(m.rcode), str(int(m.truncated)), q, a, str(m.first_owner), str(m.error)])

out = open(OUT, "w")
nd = nq = 0
files = sorted(glob.glob("/work/shared/corpus/**/*.pcap*", recursive=True)) + sorted(glob.glob("tests/scenarios/*/input.pcap")) + sorted(glob.glob("captures/*.pcap"))
seen = set()
for f in files:
    flows = {}
    try:
        for pkt in PcapReader(f):
            u = pkt.getlayer(UDP)
            if u is not None:
                pl = bytes(u.payload)
                if u.sport in (53, 5353, 5355) or u.dport in (53, 5353, 5355):
                    if pl in seen: continue
                    seen.add(pl)
                    try:
                        r = canon(dns.parse(pl))
                    except dns.DnsError as e:
                        r = "ERR|" + str(e)
                    out.write(f"dns\t{pl.hex()}\t{r}\n"); nd += 1
                elif u.dport in (443, 80, 4433, 8443) and pl and pl[0] & 0x80 or (u.dport == 443 and pl):
                    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
                    k = (str(ip.src), str(ip.dst), u.sport, u.dport)
                    flows.setdefault(k, []).append(pl)
            t = pkt.getlayer(TCP)
            if t is not None and (t.sport == 53 or t.dport == 53):
                pl = bytes(t.payload)
                if len(pl) > 14 and int.from_bytes(pl[:2], "big") == len(pl) - 2:
                    pl = pl[2:]
                    if pl in seen: continue
                    seen.add(pl)
                    try:
                        r = canon(dns.parse(pl))
                    except dns.DnsError as e:
                        r = "ERR|" + str(e)
                    out.write(f"dns\t{pl.hex()}\t{r}\n"); nd += 1
    except Exception as e:
        print("skip", f, e, file=sys.stderr)
    for k, dgs in flows.items():
        st = quic.QuicClientState()
        fed = []
        for d in dgs:
            if st.done: break
            st.feed(d); fed.append(d)
        data = bytearray(); pos = 0
        for off in sorted(st.crypto):
            chunk = st.crypto[off]
            if off > pos: break
            if off + len(chunk) > pos:
                data += chunk[pos - off:]; pos = off + len(chunk)
        if st.version is None and not st.crypto and st.chlo_sni is None: continue
        ch = st.client_hello is not None
        out.write(f"quic\t{','.join(d.hex() for d in fed)}\t{bytes(data).hex()}|{st.version}|{int(st.gquic)}|{st.chlo_sni}|{int(ch)}|{st.sni}|{st.error}|{st.first_dcid.hex() if st.first_dcid is not None else None}\t{os.path.basename(f)}\n"); nq += 1
print("dns", nd, "quic flows", nq)
out.close()
import random, struct
from pcapaudit.decode import dns, http, app
random.seed(7)
def canon(m):
    q = "\x1e".join(f"{n}\x1f{t}" for n, t in m.questions)
    a = "\x1e".join(f"{o}\x1f{t}\x1f{v}\x1f{ttl}" for o, t, v, ttl in m.answers)
    return "|".join(["OK", str(m.trans_id), str(int(m.is_response)), str(m.opcode), str(m.rcode), str(int(m.truncated)), q, a, str(m.first_owner), str(m.error)])
base = [bytes.fromhex(l.split("\t")[1]) for l in open(OUT) if l.startswith("dns\t")]
out = open(OUT, "a")
n = 0
for i in range(30000):
    m = bytearray(random.choice(base))
    for _ in range(random.randint(1, 4)):
        op = random.random()
        if op < 0.5 and m:
            m[random.randrange(len(m))] = random.choice([0, 0xc0, 0xc0 | random.randrange(64), random.randrange(256), 0x3f, 0x40, 0x80])
        elif op < 0.7 and m:
            del m[random.randrange(len(m)):]
        elif op < 0.85 and len(m) > 12:
            j = random.randrange(12, len(m)); m[j:j] = bytes(random.randrange(256) for _ in range(random.randint(1, 8)))
        elif len(m) >= 12:
            struct.pack_into(">H", m, random.choice([4, 6]), random.choice([0, 1, 2, 300, 65535, random.randrange(65536)]))
    m = bytes(m)
    try: r = canon(dns.parse(m))
    except dns.DnsError as e: r = "ERR|" + str(e)
    out.write(f"dns\t{m.hex()}\t{r}\n"); n += 1
print(n)
out.close()
import random
from pcapaudit.decode import http, app
random.seed(11)
out = open(OUT, "a")
seeds_http = [b"GET / HTTP/1.1\r\nHost: Captive.Apple.COM.\r\n\r\n", b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x:1\r\n\r\n",
  b"GET http://u:p@h.example:8080/x?y HTTP/1.0\n\n", b"POST / HTTP/1.1\r\nContent-Length: 12\r\nHost:\xa0h\xe9.com:99\r\n\r\nbody", b"HTTP/1.1 407 Proxy\r\nX: y\r\n\r\n", b"HTTP/1.0 200 OK\n\n"]
seeds_app = [b"\x16\x03\x01\x00\x05", b"EHLO x\r\nSTARTTLS\r\n\x16\x03", b"EHLO x\r\nMAIL FROM:<a@b>\r\n", bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037",
  b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00", b"220 mx ESMTP\r\n", b"\x0bMSH|", b"\x05\x00\x0b\x03", b"J\x00\x00\x00\x0a8.0", b"SSH-2.0-x", b"starttls\n"]
alpha = b" :\r\n[]./@?#\x1c\xa0\t0123456789abHTTP/GETstarttlsMAIL FROM\x16\x30\x80\x60\x02\x04\xff"
def mut(s):
    m = bytearray(s)
    for _ in range(random.randint(0, 4)):
        op = random.random()
        if op < 0.4 and m: m[random.randrange(len(m))] = random.choice(alpha)
        elif op < 0.6 and m: del m[random.randrange(len(m)):]
        elif op < 0.8: j = random.randrange(len(m) + 1); m[j:j] = bytes(random.choice(alpha) for _ in range(random.randint(1, 6)))
        elif m: j = random.randrange(len(m)); del m[j:j + random.randint(1, 4)]
    if random.random() < 0.3: m = bytes([random.choice(alpha) for _ in range(random.randint(0, 20))])
    return bytes(m)
def esc(x): return str(x).replace("\\","\\\\").replace("\n","\\n").replace("\r","\\r").replace("\t","\\t")
def tup(t): return "None" if t is None else f"{t[0]}\x1f{t[1]}"
def r_req(d):
    try:
        r = http.parse_request(d)
        return "None" if r is None else f"{r.method}\x1f{r.uri}\x1f{r.host}\x1f{r.head_len}\x1f{tup(r.connect_target)}"
    except ValueError as e: return "ERR|" + str(e)
def r_st(d):
    try:
        r = http.parse_status(d); return "None" if r is None else f"{r[0]}\x1f{r[1]}"
    except ValueError as e: return "ERR|" + str(e)
for i in range(20000):
    d = mut(random.choice(seeds_http))
    s = d.decode("latin-1")
    sa = http.split_authority(s, 7)
    ut = http.url_target(s)
    out.write("\t".join(["http", d.hex()] + [esc(x) for x in (r_req(d), r_st(d), tup(sa), tup(ut), http.content_length(d), int(http.looks_like_request(d)))]) + "\n")
for i in range(20000):
    d = mut(random.choice(seeds_app))
    l = app.ldap_scan(d)
    out.write(f"app\t{d.hex()}\t{app.sniff_client(d, 389)}|{app.sniff_client(d, 25)}|{app.sniff_server(d)}|{''.join(str(int(x)) for x in l)}|{app.smtp_scan(d)}\n")
out.close()

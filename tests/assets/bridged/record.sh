#!/usr/bin/env bash
# Records any.pcap, any-sll.pcap and one.pcap: the same traffic between two network namespaces joined by
# a Linux bridge, captured with `tcpdump -i any` (every bridged packet twice, received on one bridge port
# and sent on the other) as SLL2 (with the interface index) and as SLL (without), and on one bridge port
# only. tests/unit/test_dedup.py checks that all three give the same flows.
# Needs root, iproute2, tcpdump and python3. Run from anywhere: bash tests/assets/bridged/record.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del pa_brA 2>/dev/null || true; ip netns del pa_brB 2>/dev/null || true
  ip link del pa_br0 2>/dev/null || true
}
cleanup; trap cleanup EXIT
ip netns add pa_brA; ip netns add pa_brB
ip link add pa_br0 type bridge; ip link set pa_br0 up
for n in A B; do
  ip link add pa_v$n type veth peer name eth0 netns pa_br$n
  ip link set pa_v$n master pa_br0; ip link set pa_v$n up
  ip -n pa_br$n link set eth0 up; ip -n pa_br$n link set lo up
done
ip -n pa_brA addr add 10.77.0.1/24 dev eth0
ip -n pa_brB addr add 10.77.0.2/24 dev eth0
sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true

# in B: a TCP server that reads a request and answers, and a UDP echo
ip netns exec pa_brB "$py" - <<'PY' &
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("10.77.0.2", 8443)); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.77.0.2", 9999))
def udp():
    while True:
        data, peer = u.recvfrom(2048); u.sendto(data.upper(), peer)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = t.accept(); c.recv(4096); c.sendall(b"x" * 3000); c.close()
PY
server=$!; pids+=("$server")
sleep 0.5
tcpdump -i any -y LINUX_SLL2 -w "$here/any.pcap" -U net 10.77.0.0/24 2>/dev/null & any=$!
tcpdump -i any -y LINUX_SLL -w "$here/any-sll.pcap" -U net 10.77.0.0/24 2>/dev/null & sll=$!
tcpdump -i pa_vA -w "$here/one.pcap" -U net 10.77.0.0/24 2>/dev/null & one=$!
pids+=("$any" "$sll" "$one")
sleep 1
# in A: two TCP exchanges, two UDP request/answer pairs, a datagram to a closed port (ICMP unreachable)
ip netns exec pa_brA "$py" - <<'PY'
import socket, time
for i in range(2):
    s = socket.create_connection(("10.77.0.2", 8443)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close(); time.sleep(0.1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1)
for i in range(2):
    u.sendto(b"hello %d" % i, ("10.77.0.2", 9999)); u.recvfrom(2048)
u.sendto(b"anyone?", ("10.77.0.2", 9998)); time.sleep(0.2)
PY
sleep 1
kill "$any" "$sll" "$one"; wait "$any" "$sll" "$one" 2>/dev/null || true
chmod 644 "$here/any.pcap" "$here/any-sll.pcap" "$here/one.pcap"

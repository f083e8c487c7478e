//! The interpreter against programs libpcap compiled (testdata/bpf_vectors.rs, written by
//! testdata/make_bpf_vectors.py), on crafted packets whose verdict tcpdump would give.

use super::*;

mod vectors {
    use super::Insn;
    include!("testdata/bpf_vectors.rs");
}
use vectors::*;

const A: [u8; 4] = [10, 1, 2, 3];
const B: [u8; 4] = [192, 168, 0, 9];
const C: [u8; 4] = [172, 16, 5, 6];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1];
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

fn vlan(tag: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut inner = tag.to_be_bytes().to_vec();
    inner.extend(ethertype.to_be_bytes());
    inner.extend(payload);
    eth(0x8100, &inner)
}

/// An IPv4 header (no options) with `frag`: the flags and fragment offset field.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend(((20 + payload.len()) as u16).to_be_bytes());
    p.extend([0, 1]);
    p.extend(frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend(dport.to_be_bytes());
    t.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

fn arp(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 1];
    a.extend(sender);
    a.extend([0; 6]);
    a.extend(target);
    eth(0x0806, &a)
}

/// A Linux cooked v2 header (`protocol`, interface 3, outgoing) before `payload`.
fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend([0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 0, 0, 0, 0, 0, 1, 0, 0]);
    f.extend(payload);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn accepts(prog: &[Insn], pkt: &[u8]) -> bool {
    validate(prog).expect("libpcap's program is valid");
    run(prog, pkt, pkt.len() as u32) != 0
}

/// (name, packet, [tcp port 443, udp and port 53, host 10.1.2.3, vlan and tcp, ip6, icmp])
fn cases() -> Vec<(&'static str, Vec<u8>, [bool; 6])> {
    let echo = [8, 0, 0, 0, 0, 1, 0, 1];
    vec![
        (
            "v4 tcp to 443",
            eth(0x800, &ipv4(6, B, C, 0, &tcp(50000, 443, SYN))),
            [true, false, false, false, false, false],
        ),
        (
            "v4 tcp from 443",
            eth(0x800, &ipv4(6, C, B, 0, &tcp(443, 50000, ACK))),
            [true, false, false, false, false, false],
        ),
        (
            "v4 tcp to 80 from 10.1.2.3",
            eth(0x800, &ipv4(6, A, C, 0, &tcp(50000, 80, SYN))),
            [false, false, true, false, false, false],
        ),
        (
            "v4 udp to 443",
            eth(0x800, &ipv4(17, B, C, 0, &udp(50000, 443, b""))),
            [false, false, false, false, false, false],
        ),
        (
            "v4 udp to 53",
            eth(0x800, &ipv4(17, B, A, 0, &udp(50000, 53, b"q"))),
            [false, true, true, false, false, false],
        ),
        (
            "v4 tcp to 53",
            eth(0x800, &ipv4(6, B, C, 0, &tcp(50000, 53, SYN))),
            [false, false, false, false, false, false],
        ),
        // a later fragment: the bytes where the ports would be are not a TCP header
        (
            "v4 tcp fragment",
            eth(0x800, &ipv4(6, B, C, 0x00b9, &tcp(50000, 443, SYN))),
            [false, false, false, false, false, false],
        ),
        (
            "v6 tcp to 443",
            eth(0x86dd, &ipv6(6, A6, B6, &tcp(50000, 443, SYN))),
            [true, false, false, false, true, false],
        ),
        (
            "v6 udp from 53",
            eth(0x86dd, &ipv6(17, B6, A6, &udp(53, 50000, b"a"))),
            [false, true, false, false, true, false],
        ),
        (
            "icmp echo",
            eth(0x800, &ipv4(1, B, A, 0, &echo)),
            [false, false, true, false, false, true],
        ),
        (
            "arp about 10.1.2.3",
            arp(B, A),
            [false, false, true, false, false, false],
        ),
        (
            "vlan v4 tcp to 443",
            vlan(100, 0x800, &ipv4(6, B, C, 0, &tcp(50000, 443, SYN))),
            [false, false, false, true, false, false],
        ),
        (
            "vlan v6 tcp",
            vlan(7, 0x86dd, &ipv6(6, A6, B6, &tcp(50000, 80, SYN))),
            [false, false, false, true, false, false],
        ),
        (
            "vlan v4 udp",
            vlan(100, 0x800, &ipv4(17, B, C, 0, &udp(50000, 53, b""))),
            [false, false, false, false, false, false],
        ),
        (
            "truncated in the ip header",
            eth(0x800, &ipv4(6, B, C, 0, &tcp(50000, 443, SYN)))[..30].to_vec(),
            [false, false, false, false, false, false],
        ),
        (
            "ethernet header only",
            eth(0x86dd, &[]),
            [false, false, false, false, true, false],
        ),
        ("empty", Vec::new(), [false; 6]),
    ]
}

#[test]
fn libpcap_programs_accept_what_tcpdump_would() {
    let progs = [
        TCP_PORT_443,
        UDP_AND_PORT_53,
        HOST_10_1_2_3,
        VLAN_AND_TCP,
        IP6,
        ICMP,
    ];
    let names = [
        "tcp port 443",
        "udp and port 53",
        "host 10.1.2.3",
        "vlan and tcp",
        "ip6",
        "icmp",
    ];
    for (what, pkt, want) in cases() {
        for (j, prog) in progs.iter().enumerate() {
            assert_eq!(accepts(prog, &pkt), want[j], "{:?} on {what}", names[j]);
        }
    }
}

#[test]
fn other_link_types_and_instructions() {
    // raw IP (LINKTYPE_RAW 101): the filter starts at the IP header
    assert!(accepts(
        RAW_TCP_PORT_443,
        &ipv4(6, B, C, 0, &tcp(1, 443, SYN))
    ));
    assert!(accepts(
        RAW_TCP_PORT_443,
        &ipv6(6, A6, B6, &tcp(443, 1, ACK))
    ));
    assert!(!accepts(
        RAW_TCP_PORT_443,
        &ipv4(6, B, C, 0, &tcp(1, 80, SYN))
    ));
    // Linux cooked v2
    assert!(accepts(
        SLL2_UDP_AND_PORT_53,
        &sll2(0x800, &ipv4(17, B, C, 0, &udp(5, 53, b"x")))
    ));
    assert!(!accepts(
        SLL2_UDP_AND_PORT_53,
        &sll2(0x800, &ipv4(17, B, C, 0, &udp(5, 54, b"x")))
    ));
    // `greater 101`: the length on the wire, not the bytes captured
    let small = eth(0x800, &ipv4(17, B, C, 0, &udp(5, 53, b"x")));
    assert_eq!(run(LEN_GT_100, &small, small.len() as u32), 0);
    assert_ne!(run(LEN_GT_100, &small, 1500), 0);
    // tcp[tcpflags]: an indexed load after the IPv4 header length (MSH)
    assert!(accepts(
        TCP_SYN_ONLY,
        &eth(0x800, &ipv4(6, B, C, 0, &tcp(1, 2, SYN)))
    ));
    assert!(!accepts(
        TCP_SYN_ONLY,
        &eth(0x800, &ipv4(6, B, C, 0, &tcp(1, 2, SYN | ACK)))
    ));
}

#[test]
fn alu_memory_and_returns() {
    let prog = [
        Insn::new(0x00, 0, 0, 7),    // A = 7
        Insn::new(0x02, 0, 0, 3),    // M[3] = A
        Insn::new(0x01, 0, 0, 5),    // X = 5
        Insn::new(0x0c, 0, 0, 0),    // A += X -> 12
        Insn::new(0x24, 0, 0, 3),    // A *= 3 -> 36
        Insn::new(0x14, 0, 0, 6),    // A -= 6 -> 30
        Insn::new(0x34, 0, 0, 4),    // A /= 4 -> 7
        Insn::new(0x94, 0, 0, 4),    // A %= 4 -> 3
        Insn::new(0x64, 0, 0, 4),    // A <<= 4 -> 48
        Insn::new(0x74, 0, 0, 1),    // A >>= 1 -> 24
        Insn::new(0x44, 0, 0, 1),    // A |= 1 -> 25
        Insn::new(0x54, 0, 0, 0x1d), // A &= 0x1d -> 25
        Insn::new(0xa4, 0, 0, 0xff), // A ^= 0xff -> 230
        Insn::new(0x03, 0, 0, 4),    // M[4] = X
        Insn::new(0x61, 0, 0, 3),    // X = M[3] -> 7
        Insn::new(0x1d, 0, 1, 0),    // A == X ? (no)
        Insn::new(0x06, 0, 0, 1),    // (skipped)
        Insn::new(0x2d, 0, 3, 0),    // A > X ? (yes)
        Insn::new(0x87, 0, 0, 0),    // A = X -> 7
        Insn::new(0x04, 0, 0, 0),    // A += 0
        Insn::new(0x60, 0, 0, 4),    // A = M[4] -> 5 ... then
        Insn::new(0x07, 0, 0, 0),    // X = A -> 5
        Insn::new(0x84, 0, 0, 0),    // A = -A
        Insn::new(0x0c, 0, 0, 0),    // A += X -> 0
        Insn::new(0x45, 1, 0, 0xff), // A & 0xff ? (no)
        Insn::new(0x80, 0, 0, 0),    // A = len
        Insn::new(0x16, 0, 0, 0),    // return A
    ];
    assert_eq!(validate(&prog), Ok(()));
    assert_eq!(run(&prog, &[], 99), 99);
    // division by a zero X rejects; by a constant 0 the validator refuses
    let div_x = [
        Insn::new(0x01, 0, 0, 0),
        Insn::new(0x3c, 0, 0, 0),
        Insn::new(0x06, 0, 0, 1),
    ];
    assert_eq!(validate(&div_x), Ok(()));
    assert_eq!(run(&div_x, &[], 0), 0);
    let mod_x = [
        Insn::new(0x01, 0, 0, 0),
        Insn::new(0x9c, 0, 0, 0),
        Insn::new(0x06, 0, 0, 1),
    ];
    assert_eq!(run(&mod_x, &[], 0), 0);
    assert!(validate(&[Insn::new(0x34, 0, 0, 0), Insn::new(0x06, 0, 0, 1)]).is_err());
    // shifts of 32 and more give 0
    let shl = [
        Insn::new(0x00, 0, 0, 1),
        Insn::new(0x01, 0, 0, 40),
        Insn::new(0x6c, 0, 0, 0),
        Insn::new(0x16, 0, 0, 0),
    ];
    assert_eq!(run(&shl, &[], 0), 0);
    // loads: word, half, byte, indexed, past the end
    let pkt = [1, 2, 3, 4, 5, 6];
    let ld = |code: u16, k: u32, x: u32| {
        run(
            &[
                Insn::new(0x01, 0, 0, x),
                Insn::new(code, 0, 0, k),
                Insn::new(0x16, 0, 0, 0),
            ],
            &pkt,
            6,
        )
    };
    assert_eq!(ld(0x20, 1, 0), 0x0203_0405);
    assert_eq!(ld(0x28, 4, 0), 0x0506);
    assert_eq!(ld(0x30, 5, 0), 6);
    assert_eq!(ld(0x20, 3, 0), 0); // 3..7 is past the end: reject
    assert_eq!(ld(0x48, 1, 3), 0x0506);
    assert_eq!(ld(0x50, 0xffff_ffff, 0xffff_ffff), 0); // no overflow
    assert_eq!(ld(0x40, 2, 1), 0);
    // JA, JGE, JSET with X
    let j = [
        Insn::new(0x05, 0, 0, 1),
        Insn::new(0x06, 0, 0, 0),
        Insn::new(0x00, 0, 0, 6),
        Insn::new(0x01, 0, 0, 6),
        Insn::new(0x3d, 0, 2, 0),
        Insn::new(0x4d, 0, 1, 0),
        Insn::new(0x06, 0, 0, 42),
        Insn::new(0x06, 0, 0, 0),
    ];
    assert_eq!(validate(&j), Ok(()));
    assert_eq!(run(&j, &[], 0), 42);
}

#[test]
fn the_validator_refuses_what_could_misbehave() {
    let ret = Insn::new(0x06, 0, 0, 1);
    assert!(validate(&[]).is_err());
    assert!(validate(&vec![ret; MAX_INSNS + 1]).is_err());
    assert_eq!(validate(&vec![ret; MAX_INSNS]), Ok(()));
    assert!(validate(&[Insn::new(0x00, 0, 0, 1)]).is_err()); // no return at the end
    assert!(validate(&[Insn::new(0x05, 0, 0, 1), ret]).is_err()); // JA past the end
    assert!(validate(&[Insn::new(0x15, 0, 1, 1), ret]).is_err()); // JEQ false branch past the end
    assert!(validate(&[Insn::new(0x02, 0, 0, 16), ret]).is_err()); // ST M[16]
    assert!(validate(&[Insn::new(0x60, 0, 0, 99), ret]).is_err()); // LD M[99]
    for code in [0x0e, 0x18, 0x68, 0xe0, 0x8c, 0x0d, 0x0f, 0x1e, 0x106] {
        assert!(
            validate(&[Insn::new(code, 0, 0, 0), ret]).is_err(),
            "0x{code:x}"
        );
    }
}

#[test]
fn run_never_panics_on_arbitrary_programs() {
    // a deterministic xorshift over every 16-bit opcode value and random operands
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let pkt: Vec<u8> = (0..64).map(|i| i as u8).collect();
    for _ in 0..20_000 {
        let n = (next() % 12 + 1) as usize;
        let prog: Vec<Insn> = (0..n)
            .map(|_| {
                let r = next();
                Insn::new(
                    (r & 0xff) as u16,
                    (r >> 8) as u8,
                    (r >> 16) as u8,
                    (r >> 24) as u32 % 80,
                )
            })
            .collect();
        let _ = validate(&prog);
        let _ = run(&prog, &pkt, 64);
        let _ = run(&prog, &[], u32::MAX);
    }
}

#[test]
fn packet_filter_window_link_types_and_pktap() {
    let progs: HashMap<u32, Vec<Insn>> =
        [(1, TCP_PORT_443.to_vec()), (12, RAW_TCP_PORT_443.to_vec())].into();
    let f = PacketFilter::new(Some(progs), Some(10.0), Some(20.0)).unwrap();
    let yes = eth(0x800, &ipv4(6, B, C, 0, &tcp(1, 443, SYN)));
    let no = eth(0x800, &ipv4(6, B, C, 0, &tcp(1, 80, SYN)));
    assert_eq!(f.check(&yes, 60, 10.0, 1), Verdict::Keep);
    assert_eq!(f.check(&no, 60, 10.0, 1), Verdict::Rejected);
    assert_eq!(f.check(&yes, 60, 9.999, 1), Verdict::OutsideWindow);
    assert_eq!(f.check(&yes, 60, 20.0, 1), Verdict::OutsideWindow);
    assert_eq!(f.check(&yes, 60, 15.0, 113), Verdict::NoProgram);
    // PKTAP: the program of the link type inside the header, over the packet after it
    let pktap = |dlt: u32, inner: &[u8]| {
        let mut h = vec![0u8; 108];
        h[..4].copy_from_slice(&108u32.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..12].copy_from_slice(&dlt.to_le_bytes());
        h.extend(inner);
        h
    };
    let raw = ipv4(6, B, C, 0, &tcp(1, 443, SYN));
    assert_eq!(f.check(&pktap(1, &yes), 200, 15.0, 258), Verdict::Keep);
    assert_eq!(f.check(&pktap(1, &no), 200, 15.0, 258), Verdict::Rejected);
    assert_eq!(f.check(&pktap(12, &raw), 200, 15.0, 258), Verdict::Keep);
    assert_eq!(f.check(&pktap(0, &raw), 200, 15.0, 258), Verdict::NoProgram);
    assert_eq!(
        f.check(&pktap(1, &yes)[..50], 200, 15.0, 258),
        Verdict::Rejected
    );
    // no BPF program: only the window
    let w = PacketFilter::new(None, None, Some(5.0)).unwrap();
    assert_eq!(w.check(&no, 60, 4.0, 77), Verdict::Keep);
    assert_eq!(w.check(&no, 60, 5.0, 77), Verdict::OutsideWindow);
    // an invalid program is refused up front, naming its link type
    let bad: HashMap<u32, Vec<Insn>> = [(1, vec![Insn::new(0x00, 0, 0, 1)])].into();
    assert!(PacketFilter::new(Some(bad), None, None)
        .unwrap_err()
        .0
        .starts_with("link type 1: "));
}

//! Classic BPF: the filter programs libpcap compiles (`pcap_compile`), run over captured packets.
//!
//! `pcapaudit audit --filter EXPR` has libpcap compile the expression once per link type (Python,
//! `pcapaudit/capture/libpcap.py`) and hands the instructions to the core, which runs them on every
//! packet before decoding, as `pcap_offline_filter` does for tcpdump and tshark. The semantics are
//! libpcap's `bpf_filter` (`bpf_filter.c`): loads past the captured bytes and division by zero end the
//! program with 0 (reject), `len` is the packet's length on the wire.
//!
//! [`validate`] checks a program once (as libpcap's `bpf_validate`); [`run`] never panics and runs at
//! most `program.len()` instructions even on a program that was not validated (jumps only go forward).

use std::collections::HashMap;

/// One classic BPF instruction, as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }
}

/// Most instructions in a program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEM_WORDS: usize = 16;

// instruction classes
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
// sizes
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
// modes
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
// ALU operations
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
// jumps
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
// operand source / return value
const SRC_K: u16 = 0x00;
const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;
// misc
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// Why a program is refused (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProgram(pub String);

impl std::fmt::Display for InvalidProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidProgram {}

/// Whether `code` is an instruction [`run`] knows.
fn known(code: u16) -> bool {
    if code > 0xff {
        return false;
    }
    let class = code & 0x07;
    match class {
        LD => matches!(
            (code & 0xe0, code & 0x18),
            (IMM, W) | (ABS | IND, W | H | B) | (MEM, W) | (LEN, W)
        ),
        LDX => matches!(code, 0x01 | 0x61 | 0x81 | 0xb1), // IMM, MEM, LEN (all W), MSH|B
        ST | STX => code == class,
        ALU => {
            let op = code & 0xf0;
            matches!(
                op,
                ADD | SUB | MUL | DIV | OR | AND | LSH | RSH | NEG | MOD | XOR
            ) && (op != NEG || code & SRC_X == 0)
        }
        JMP => {
            let op = code & 0xf0;
            matches!(op, JA | JEQ | JGT | JGE | JSET) && (op != JA || code & SRC_X == 0)
        }
        RET => code == RET | SRC_K || code == RET | RVAL_A,
        _ => code == MISC | TAX || code == MISC | TXA,
    }
}

/// Check a program once before running it: 1..=4096 known instructions, scratch memory indices below
/// 16, no division by a constant 0, jumps that land inside the program, a return at the end.
pub fn validate(program: &[Insn]) -> Result<(), InvalidProgram> {
    let bad = |pc: usize, what: &str| Err(InvalidProgram(format!("BPF instruction {pc}: {what}")));
    if program.is_empty() || program.len() > MAX_INSNS {
        return Err(InvalidProgram(format!(
            "a BPF program has 1 to {MAX_INSNS} instructions, not {}",
            program.len()
        )));
    }
    let len = program.len();
    for (pc, ins) in program.iter().enumerate() {
        let code = ins.code;
        if !known(code) {
            return bad(pc, &format!("unknown opcode 0x{code:02x}"));
        }
        let class = code & 0x07;
        let mem_index =
            matches!(class, ST | STX) || (matches!(class, LD | LDX) && code & 0xe0 == MEM);
        if mem_index && ins.k as usize >= MEM_WORDS {
            return bad(pc, &format!("scratch memory index {} out of range", ins.k));
        }
        if class == ALU && matches!(code & 0xf0, DIV | MOD) && code & SRC_X == 0 && ins.k == 0 {
            return bad(pc, "division by a constant 0");
        }
        if class == JMP {
            let rest = (len - pc - 1) as u64; // instructions after this one
            let far = if code & 0xf0 == JA {
                u64::from(ins.k)
            } else {
                u64::from(ins.jt.max(ins.jf))
            };
            if far >= rest {
                return bad(pc, "jump past the end of the program");
            }
        }
    }
    match program.last() {
        Some(i) if i.code & 0x07 == RET => Ok(()),
        _ => bad(len - 1, "the program does not end with a return"),
    }
}

/// `size` bytes at `off` of the packet, big-endian, or None when they are not all captured.
fn load(packet: &[u8], off: u64, size: u16) -> Option<u32> {
    let n = match size {
        W => 4,
        H => 2,
        _ => 1,
    };
    let start = usize::try_from(off).ok()?;
    let bytes = packet.get(start..start.checked_add(n)?)?;
    Some(bytes.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
}

/// Run `program` over `packet` (the captured bytes; `wirelen` its length on the wire): the value of
/// the return instruction reached, 0 meaning "reject". A load past the captured bytes, a division by
/// zero, an unknown instruction or running off the end also give 0.
pub fn run(program: &[Insn], packet: &[u8], wirelen: u32) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEM_WORDS];
    let mut pc: usize = 0;
    while let Some(ins) = program.get(pc) {
        pc += 1;
        let k = ins.k;
        let code = ins.code;
        match code & 0x07 {
            LD => {
                a = match code & 0xe0 {
                    IMM => k,
                    ABS => match load(packet, u64::from(k), code & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match load(packet, u64::from(x) + u64::from(k), code & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    LEN => wirelen,
                    _ => return 0,
                };
            }
            LDX => {
                x = match code & 0xe0 {
                    IMM => k,
                    MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    LEN => wirelen,
                    MSH => match load(packet, u64::from(k), B) {
                        Some(v) => (v & 0xf) << 2,
                        None => return 0,
                    },
                    _ => return 0,
                };
            }
            ST | STX => {
                let v = if code & 0x07 == ST { a } else { x };
                match mem.get_mut(k as usize) {
                    Some(m) => *m = v,
                    None => return 0,
                }
            }
            ALU => {
                let v = if code & SRC_X != 0 { x } else { k };
                a = match code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    MUL => a.wrapping_mul(v),
                    DIV => match a.checked_div(v) {
                        Some(q) => q,
                        None => return 0,
                    },
                    MOD => match a.checked_rem(v) {
                        Some(r) => r,
                        None => return 0,
                    },
                    OR => a | v,
                    AND => a & v,
                    XOR => a ^ v,
                    LSH => a.checked_shl(v).unwrap_or(0),
                    RSH => a.checked_shr(v).unwrap_or(0),
                    NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            JMP => {
                let v = if code & SRC_X != 0 { x } else { k };
                let skip = match code & 0xf0 {
                    JA => k as usize,
                    JEQ => usize::from(if a == v { ins.jt } else { ins.jf }),
                    JGT => usize::from(if a > v { ins.jt } else { ins.jf }),
                    JGE => usize::from(if a >= v { ins.jt } else { ins.jf }),
                    JSET => usize::from(if a & v != 0 { ins.jt } else { ins.jf }),
                    _ => return 0,
                };
                pc = match pc.checked_add(skip) {
                    Some(p) => p,
                    None => return 0,
                };
            }
            RET => {
                return match code & 0x18 {
                    SRC_K => k,
                    RVAL_A => a,
                    _ => 0,
                }
            }
            _ => match code & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return 0,
            },
        }
    }
    0
}

/// What `audit --filter/--start/--end` keeps of a capture: a BPF program per link type (compiled by
/// libpcap for each) and a time window `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct PacketFilter {
    /// link type -> program; `None`: no BPF filter (only the window)
    pub programs: Option<HashMap<u32, Vec<Insn>>>,
    /// keep packets at or after this time (seconds since the epoch)
    pub start: Option<f64>,
    /// keep packets before this time
    pub end: Option<f64>,
}

/// The verdict of [`PacketFilter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// the BPF program rejected it
    Rejected,
    /// its time is outside `[start, end)`
    OutsideWindow,
    /// no program for its link type (libpcap could not compile the filter for it): not kept
    NoProgram,
}

/// Apple PKTAP (258, and 149 as older macOS wrote it): libpcap has no filter code for it outside
/// macOS, where the filter runs on the packet inside the header; so does [`PacketFilter::check`].
const PKTAP_MIN: usize = 108;

fn le32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl PacketFilter {
    /// Validate every program (once, before any packet).
    pub fn new(
        programs: Option<HashMap<u32, Vec<Insn>>>,
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<PacketFilter, InvalidProgram> {
        for (lt, p) in programs.iter().flatten() {
            validate(p).map_err(|e| InvalidProgram(format!("link type {lt}: {e}")))?;
        }
        Ok(PacketFilter {
            programs,
            start,
            end,
        })
    }

    /// Whether a packet (captured bytes, wire length, time, link type) is audited.
    pub fn check(&self, data: &[u8], wirelen: u32, ts: f64, linktype: u32) -> Verdict {
        if self.start.is_some_and(|s| ts < s) || self.end.is_some_and(|e| ts >= e) {
            return Verdict::OutsideWindow;
        }
        let Some(programs) = &self.programs else {
            return Verdict::Keep;
        };
        let (prog, data, wirelen) = match programs.get(&linktype) {
            Some(p) => (p, data, wirelen),
            None if linktype == 258 || linktype == 149 => {
                // PKTAP: the program of the link type inside, over the packet after the header
                let hlen = le32(data, 0).unwrap_or(0) as usize;
                let inner = le32(data, 8).unwrap_or(u32::MAX);
                match (programs.get(&inner), data.get(hlen..)) {
                    (Some(p), Some(rest)) if hlen >= PKTAP_MIN => {
                        (p, rest, wirelen.saturating_sub(hlen as u32))
                    }
                    (Some(_), _) => return Verdict::Rejected, // no packet inside
                    (None, _) => return Verdict::NoProgram,
                }
            }
            None => return Verdict::NoProgram,
        };
        if run(prog, data, wirelen) != 0 {
            Verdict::Keep
        } else {
            Verdict::Rejected
        }
    }
}

#[cfg(test)]
#[path = "bpf_tests.rs"]
mod tests;

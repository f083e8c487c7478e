//! Per-packet link metadata: Apple PKTAP interface and process, Linux SLL packet type, SLL2 interface
//! index and packet type (`decode/vector.py`: pktap_interfaces, pktap_processes, sll2_interfaces,
//! sll_directions).

use super::{be16, be32, le32, LinkMeta};

/// sizeof(struct pktap_header), the v1 header every writer uses
pub const PKTAP_MIN: usize = 108;

/// The metadata of one frame of link type `lt` (None of it for other link types).
pub fn link_meta(d: &[u8], lt: u32) -> LinkMeta {
    match lt {
        258 | 149 => pktap_meta(d),
        113 if d.len() >= 16 => LinkMeta {
            pkttype: be16(d, 0),
            ..LinkMeta::default()
        },
        276 if d.len() >= 20 => LinkMeta {
            iface: be32(d, 4).map(|k| format!("if{k}")),
            pkttype: d.get(10).map(|&b| u16::from(b)),
            ..LinkMeta::default()
        },
        _ => LinkMeta::default(),
    }
}

/// PKTAP: the interface name (offset 12, 24 bytes) and the process (pid 52, command 56 (20 bytes),
/// effective pid 84, effective command 88 (20 bytes)) of a frame whose header is whole.
fn pktap_meta(d: &[u8]) -> LinkMeta {
    let Some(hl) = le32(d, 0) else {
        return LinkMeta::default();
    };
    if d.len() < PKTAP_MIN || (hl as usize) < PKTAP_MIN || hl as usize > d.len() {
        return LinkMeta::default();
    }
    let field = |a: usize, b: usize| d.get(a..b).unwrap_or(&[]);
    let ifname = cstr(field(12, 36));
    let pid = le32(d, 52).unwrap_or(0);
    let epid = le32(d, 84).unwrap_or(0);
    let comm = cstr(field(56, 76));
    let ecomm = cstr(field(88, 108));
    let process = if comm.is_empty() && pid == 0 {
        None
    } else {
        let e = if !ecomm.is_empty() && (epid, ecomm.as_str()) != (pid, comm.as_str()) {
            Some(ecomm)
        } else {
            None
        };
        let c = if comm.is_empty() {
            format!("pid {pid}")
        } else {
            comm
        };
        Some((c, Some(pid), e))
    };
    LinkMeta {
        iface: if ifname.is_empty() {
            None
        } else {
            Some(ifname)
        },
        process,
        pkttype: None,
    }
}

/// A fixed-size NUL-terminated field as text; bytes that are not UTF-8 become `\xNN` (Python's
/// `decode("utf-8", "backslashreplace")`).
pub fn cstr(raw: &[u8]) -> String {
    let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_escapes_like_python() {
        assert_eq!(cstr(b"ab\xffcd\0\0junk"), "ab\\xffcd");
        assert_eq!(cstr(b"\0abc"), "");
        assert_eq!(cstr("h\u{e9}".as_bytes()), "h\u{e9}");
        assert_eq!(cstr(b"a\xe2\x82"), "a\\xe2\\x82");
    }
}

//! Vectors ported from tests/unit/test_pcapfile.py and tests/test_fuzz.py; expected values that are
//! not obvious were produced by the Python reader (pcapaudit/capture/pcapfile.py).

use super::*;
use std::io::{Cursor, Write};

const ETH_IP_UDP_HEX: &str = "000000000002000000000001080045000021000100004011f9c5c0a80001c0a800020035d43b000dffff6162636465";

fn pcap_bytes(records: &[(f64, Vec<u8>)], big: bool, nano: bool, modified: bool) -> Vec<u8> {
    let magic: u32 = if nano {
        0xA1B2_3C4D
    } else if modified {
        0xA1B2_CD34
    } else {
        0xA1B2_C3D4
    };
    let mut out = Vec::new();
    let p32 = |o: &mut Vec<u8>, v: u32| {
        o.extend(if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    let p16 = |o: &mut Vec<u8>, v: u16| {
        o.extend(if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    p32(&mut out, magic);
    p16(&mut out, 2);
    p16(&mut out, 4);
    for v in [0u32, 0, 65535, 1] {
        p32(&mut out, v);
    }
    for (ts, data) in records {
        let sec = ts.trunc();
        let frac = ((ts - sec) * if nano { 1e9 } else { 1e6 }).round();
        for v in [
            sec as u32,
            frac as u32,
            data.len() as u32,
            data.len() as u32,
        ] {
            p32(&mut out, v);
        }
        if modified {
            out.extend([0u8; 8]);
        }
        out.extend(data);
    }
    out
}

fn le_pcap(records: &[(f64, Vec<u8>)]) -> Vec<u8> {
    pcap_bytes(records, false, false, false)
}

/// A random payload generator (xorshift), so that gzip cannot squeeze the records much.
fn varied_records(n: usize) -> Vec<(f64, Vec<u8>)> {
    let base = hex::decode(ETH_IP_UDP_HEX).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            let mut d = base[..47].to_vec();
            for _ in 0..(i % 90) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d.push(x as u8);
            }
            (1.0 + i as f64, d)
        })
        .collect()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Records wholly inside `pcap` (a little-endian pcap file, maybe cut short).
fn whole_records(pcap: &[u8]) -> usize {
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= pcap.len() {
        off += 16 + u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        if off > pcap.len() {
            break;
        }
        n += 1;
    }
    n
}

/// What flate2's own reader decompresses of a (maybe damaged) gzip file.
fn gunzip_salvage(data: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut d, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn reader(data: &[u8], name: &str) -> Result<CaptureReader, CaptureError> {
    CaptureReader::from_read(Box::new(Cursor::new(data.to_vec())), name)
}

/// All packets' (ts, data), with the reader after the last batch.
fn read_all(data: &[u8], chunk: usize) -> (CaptureReader, Vec<(f64, Vec<u8>)>) {
    let mut r = reader(data, "x.pcap").unwrap();
    let mut pkts = Vec::new();
    let mut index = 0;
    while let Some(b) = r.next_batch(chunk) {
        assert_eq!(b.first_index, index);
        index += b.len() as u64;
        for i in 0..b.len() {
            pkts.push((b.ts[i], b.data(i).to_vec()));
        }
    }
    (r, pkts)
}

fn datas(p: &[(f64, Vec<u8>)]) -> Vec<Vec<u8>> {
    p.iter().map(|(_, d)| d.clone()).collect()
}

fn assert_one_line(error: &Option<String>, name: &str, message: &str) {
    let e = error
        .as_deref()
        .unwrap_or_else(|| panic!("no error, wanted {message}"));
    assert!(
        e.contains(name) && e.contains(message) && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn pcap_byte_orders_and_resolutions() {
    for big in [false, true] {
        for nano in [false, true] {
            let data = pcap_bytes(
                &[(1.5, vec![b'a'; 20]), (2.25, vec![b'b'; 30])],
                big,
                nano,
                false,
            );
            let (r, pkts) = read_all(&data, CHUNK);
            assert_eq!(r.error, None);
            assert_eq!(r.format, "pcap");
            assert_eq!(pkts.iter().map(|p| p.1.len()).collect::<Vec<_>>(), [20, 30]);
            assert_eq!((pkts[0].0, pkts[1].0), (1.5, 2.25));
            assert_eq!((r.packets, r.bytes), (2, 50));
        }
    }
}

#[test]
fn modified_pcap_24_byte_records() {
    let data = pcap_bytes(
        &[(1.0, vec![b'x'; 10]), (2.0, vec![b'y'; 11])],
        false,
        false,
        true,
    );
    let (_, pkts) = read_all(&data, CHUNK);
    assert_eq!(datas(&pkts), [vec![b'x'; 10], vec![b'y'; 11]]);
}

#[test]
fn modified_pcap_header_cut_at_the_end_is_a_truncation() {
    // a corrupt length in the last 16..23 bytes of a modified pcap: the 24-byte header is not whole
    let mut data = pcap_bytes(&[(1.0, vec![b'x'; 10])], false, false, true);
    data.extend([0u8; 8]);
    data.extend(0x7fff_ffffu32.to_le_bytes());
    data.extend(0x7fff_ffffu32.to_le_bytes());
    let (r, pkts) = read_all(&data, CHUNK);
    assert_eq!(pkts.len(), 1);
    assert_eq!(
        r.error.as_deref(),
        Some("x.pcap: truncated at byte offset 58: last record is incomplete (16 bytes); read 1 packets")
    );
}

#[test]
fn linktype_fcs_bits_masked() {
    let mut data = le_pcap(&[(1.0, vec![0; 10])]);
    data[20..24].copy_from_slice(&(0x1000_0000u32 | 0x2000_0000 | 105).to_le_bytes());
    let mut r = reader(&data, "f.pcap").unwrap();
    assert_eq!(r.next_batch(CHUNK).unwrap().linktype, [105]);
}

#[test]
fn gzip_and_small_chunks() {
    let recs: Vec<_> = (0..200u8)
        .map(|i| (1.0 + f64::from(i), vec![i; usize::from(i) + 1]))
        .collect();
    let data = gz(&le_pcap(&recs));
    for chunk in [1, 64, 1 << 20] {
        let (r, pkts) = read_all(&data, chunk);
        assert_eq!(datas(&pkts), datas(&recs));
        assert_eq!(r.error, None);
        assert_eq!(r.format, "gzip+pcap");
    }
}

#[test]
fn truncated_gzip_keeps_everything_that_decompresses() {
    let recs = varied_records(400);
    let full = gz(&le_pcap(&recs));
    for cut in [1, 8, 9, 40, 500] {
        let data = &full[..full.len() - cut];
        let expect = whole_records(&gunzip_salvage(data));
        if cut <= 8 {
            assert_eq!(expect, recs.len());
        } else {
            assert!(recs.len() - 20 < expect && expect <= recs.len());
        }
        let (r, pkts) = read_all(data, 8 << 20);
        assert_eq!(datas(&pkts), datas(&recs[..expect]), "cut {cut}");
        assert_one_line(&r.error, "x.pcap", "compressed data ended early");
        assert_one_line(
            &r.error,
            "x.pcap",
            &format!("read error after {expect} packets"),
        );
        assert!(r
            .error
            .as_ref()
            .unwrap()
            .contains(&format!("compressed byte offset {}", data.len())));
    }
}

#[test]
fn multi_member_gzip_reads_whole() {
    let recs = varied_records(400);
    let raw = le_pcap(&recs);
    let cuts = [0, 5, 3000, 3001, raw.len() / 2, raw.len()];
    let members: Vec<Vec<u8>> = cuts.windows(2).map(|w| gz(&raw[w[0]..w[1]])).collect();
    let mut data = members[..2].concat();
    data.extend(gz(b""));
    data.extend(members[2..].concat());
    data.extend([0u8; 20]); // padded, as gzip allows
    for chunk in [64, 1 << 20] {
        let (r, pkts) = read_all(&data, chunk);
        assert_eq!(datas(&pkts), datas(&recs));
        assert_eq!(r.error, None);
    }
    // cut short inside the last member: the earlier members and what decompresses of the last are read
    let all = members.concat();
    let (r, pkts) = read_all(&all[..all.len() - 100], 1 << 20);
    assert!(recs.len() - 20 < pkts.len() && pkts.len() < recs.len());
    assert_one_line(&r.error, "x.pcap", "compressed data ended early");
    // garbage after the last member is a corrupt member header, named at its second byte
    let mut g = gz(&raw);
    let at = g.len() + 1;
    g.extend(b"junk");
    let (r, pkts) = read_all(&g, 1 << 20);
    assert_eq!(pkts.len(), recs.len());
    assert_one_line(
        &r.error,
        "x.pcap",
        &format!("corrupt compressed data at compressed byte offset {at} "),
    );
    assert_one_line(&r.error, "x.pcap", "incorrect header check");
}

#[test]
fn corrupt_gzip_keeps_the_packets_before_the_damage() {
    let recs = varied_records(400);
    let raw = le_pcap(&recs);
    let half = 24 + recs[..200].iter().map(|(_, d)| 16 + d.len()).sum::<usize>();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&raw[..half]).unwrap();
    e.flush().unwrap(); // byte-aligned: the next byte starts a block
    let head_len = e.get_ref().len();
    e.write_all(&raw[half..]).unwrap();
    let mut data = e.finish().unwrap();
    data[head_len] = 0xff; // block type 3 does not exist: inflate stops right there
    for chunk in [100, 8 << 20] {
        let (r, pkts) = read_all(&data, chunk);
        assert_eq!(datas(&pkts), datas(&recs[..200]));
        assert_one_line(
            &r.error,
            "x.pcap",
            &format!("corrupt compressed data at compressed byte offset {head_len} "),
        );
    }
    // a wrong CRC is named at its last byte, after all the data was returned
    let mut data = gz(&raw);
    let n = data.len();
    data[n - 8] ^= 1;
    let (r, pkts) = read_all(&data, 1 << 20);
    assert_eq!(pkts.len(), recs.len());
    assert_one_line(
        &r.error,
        "x.pcap",
        &format!("offset {} (after {} uncompressed bytes)", n - 5, raw.len()),
    );
    assert_one_line(&r.error, "x.pcap", "incorrect data check");
}

#[test]
fn gzip_header_fields_are_skipped() {
    let raw = le_pcap(&varied_records(20));
    let mut b = flate2::GzBuilder::new()
        .filename("a.pcap")
        .comment("c")
        .extra(vec![1, 2, 3])
        .write(Vec::new(), flate2::Compression::fast());
    b.write_all(&raw).unwrap();
    let data = b.finish().unwrap();
    let (r, pkts) = read_all(&data, 1 << 20);
    assert_eq!((pkts.len(), r.error), (20, None));
}

#[test]
fn gzip_from_a_stream() {
    let recs = varied_records(400);
    let data = gz(&le_pcap(&recs));
    let mut r = CaptureReader::from_read(Box::new(Cursor::new(data.clone())), "<stdin>").unwrap();
    let mut n = 0;
    while let Some(b) = r.next_batch(4096) {
        n += b.len();
    }
    assert_eq!(
        (n, r.error.clone(), r.format.as_str()),
        (400, None, "gzip+pcap")
    );
    let mut r = CaptureReader::from_read(
        Box::new(Cursor::new(data[..data.len() - 300].to_vec())),
        "<stdin>",
    )
    .unwrap();
    let mut n = 0;
    while let Some(b) = r.next_batch(4096) {
        n += b.len();
    }
    assert!(380 < n && n < 400);
    assert_one_line(&r.error, "<stdin>", "compressed data ended early");
}

#[test]
fn truncated_last_record_keeps_earlier_packets() {
    let data = le_pcap(&[(1.0, vec![b'a'; 40]), (2.0, vec![b'b'; 40])]);
    let (r, pkts) = read_all(&data[..data.len() - 10], CHUNK);
    assert_eq!(pkts.len(), 1);
    assert_eq!(
        r.error.as_deref(),
        Some("x.pcap: truncated at byte offset 80: last record is incomplete (46 bytes); read 1 packets")
    );
}

#[test]
fn corrupt_length_names_offset() {
    let mut data = le_pcap(&[(1.0, vec![b'a'; 40]), (2.0, vec![b'b'; 40])]);
    data[88..96].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    for chunk in [10, CHUNK] {
        let (r, pkts) = read_all(&data, chunk);
        assert_eq!(pkts.len(), 1);
        assert_eq!(
            r.error.as_deref(),
            Some("x.pcap: corrupt pcap record at byte offset 80 (captured length 2147483647 is impossible); stopped after 1 packets")
        );
    }
}

#[test]
fn caplen_larger_than_wire_length_is_clamped() {
    let mut data = le_pcap(&[(1.0, vec![b'a'; 40])]);
    data[32..40].copy_from_slice(&[40, 0, 0, 0, 30, 0, 0, 0]);
    let (r, pkts) = read_all(&data[..24 + 16 + 30], CHUNK);
    assert_eq!(pkts.iter().map(|p| p.1.len()).collect::<Vec<_>>(), [30]);
    assert_eq!(r.clamped, 1);
    assert_eq!(r.first_clamped, Some(1));
}

#[test]
fn the_first_clamped_record_is_numbered_across_chunks() {
    let mut data = le_pcap(&[
        (1.0, vec![b'a'; 40]),
        (2.0, vec![b'b'; 40]),
        (3.0, vec![b'c'; 40]),
    ]);
    // the second record: 40 captured, 30 on the wire (its data is read as 30 bytes, the rest skipped)
    let rec2 = 24 + 16 + 40;
    data[rec2 + 8..rec2 + 16].copy_from_slice(&[40, 0, 0, 0, 30, 0, 0, 0]);
    for chunk in [CHUNK, 64] {
        let (r, _pkts) = read_all(&data, chunk);
        assert!(r.clamped >= 1);
        assert_eq!(r.first_clamped, Some(2), "chunk {chunk}");
    }
}

#[test]
fn unreadable_files_raise_one_line_errors() {
    let mut gif = b"GIF89a".to_vec();
    gif.extend([0; 40]);
    let mut short_hdr = hex::decode("d4c3b2a1").unwrap();
    short_hdr.extend([0; 8]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty file, not a capture"),
        (vec![1, 2], "truncated file header (2 of 4 bytes)"),
        (
            gif,
            "not a pcap or pcapng capture (bad magic 0x47494638 at byte offset 0)",
        ),
        (b"\x1f\x8b\x08\x00garbage-not-gzip".to_vec(), "corrupt"),
        (short_hdr, "truncated pcap file header (12 of 24 bytes)"),
        (gz(b""), "empty file, not a capture"),
        (gz(b"\xd4\xc3"), "truncated file header (2 of 4 bytes)"),
        (
            vec![0x04, 0x22, 0x4d, 0x18, 0, 0],
            "lz4-compressed: decompress it first: lz4 -d /tmp/bad.pcap",
        ),
    ];
    for (content, message) in cases {
        let e = match reader(&content, "/tmp/bad.pcap") {
            Err(e) => e.0,
            Ok(mut r) => {
                while r.next_batch(CHUNK).is_some() {}
                r.error.expect("an error")
            }
        };
        assert!(
            e.starts_with("/tmp/bad.pcap: ") && e.contains(message) && !e.contains('\n'),
            "{e} / {message}"
        );
    }
}

#[test]
fn missing_file_and_directory() {
    let dir = std::env::temp_dir();
    let missing = dir.join("pcapaudit-core-no-such.pcap");
    let e = CaptureReader::open(missing.to_str().unwrap())
        .err()
        .unwrap();
    assert_eq!(e.0, format!("{}: no such file", missing.display()));
    let e = CaptureReader::open(dir.to_str().unwrap()).err().unwrap();
    assert_eq!(
        e.0,
        format!("{}: is a directory, not a capture file", dir.display())
    );
}

fn block(big: bool, btype: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    let p = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = p(btype).to_vec();
    out.extend(p(total));
    out.extend(body);
    out.extend(vec![0; pad]);
    out.extend(p(total));
    out
}

fn shb(big: bool) -> Vec<u8> {
    let mut b = if big {
        0x1A2B_3C4Du32.to_be_bytes()
    } else {
        0x1A2B_3C4Du32.to_le_bytes()
    }
    .to_vec();
    b.extend(
        [
            if big { [0, 1, 0, 0] } else { [1, 0, 0, 0] },
            [0xff; 4],
            [0xff; 4],
        ]
        .concat(),
    );
    block(big, 0x0A0D_0D0A, &b)
}

fn idb(big: bool, linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
    let p16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut body = [p16(linktype), p16(0)].concat();
    body.extend(if big {
        65535u32.to_be_bytes()
    } else {
        65535u32.to_le_bytes()
    });
    if let Some(r) = tsresol {
        body.extend([p16(9), p16(1)].concat());
        body.extend([r, 0, 0, 0]);
        body.extend([0; 4]);
    }
    block(big, 1, &body)
}

fn epb(big: bool, iface: u32, units: u64, data: &[u8]) -> Vec<u8> {
    let p = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut body = Vec::new();
    for v in [
        iface,
        (units >> 32) as u32,
        units as u32,
        data.len() as u32,
        data.len() as u32,
    ] {
        body.extend(p(v));
    }
    body.extend(data);
    block(big, 6, &body)
}

#[test]
fn pcapng_interfaces_resolution_and_stats() {
    for big in [false, true] {
        let p = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut stats = vec![0u8; 12];
        stats.extend(if big { [0, 5, 0, 8] } else { [5, 0, 8, 0] });
        stats.extend(if big {
            7u64.to_be_bytes()
        } else {
            7u64.to_le_bytes()
        });
        stats.extend([0; 4]);
        let _ = p;
        let mut r20 = vec![0x45];
        r20.extend([b'r'; 19]);
        let blob = [
            shb(big),
            idb(big, 1, None),
            idb(big, 101, Some(9)),
            epb(big, 0, 1_500_000, &[b'e'; 14]),
            epb(big, 1, 2_250_000_000, &r20),
            block(big, 5, &stats),
        ]
        .concat();
        let mut r = reader(&blob, "x.pcapng").unwrap();
        let b = r.next_batch(CHUNK).unwrap();
        assert!(r.next_batch(CHUNK).is_none());
        assert_eq!(b.linktype, [1, 101]);
        assert_eq!(b.ts, [1.5, 2.25]);
        assert_eq!(
            (r.dropped, r.error.clone(), r.format.as_str()),
            (Some(7), None, "pcapng")
        );
        assert_eq!(b.iface, [0, 1]);
        assert_eq!(r.ifnames, ["if0", "if1"]);
        assert!(b.proc.is_empty());
    }
}

#[test]
fn pcapng_truncated_block() {
    let blob = [
        shb(false),
        idb(false, 1, None),
        epb(false, 0, 1_000_000, &[b'e'; 14]),
        epb(false, 0, 2_000_000, &[b'f'; 14]),
    ]
    .concat();
    for chunk in [7, CHUNK] {
        let mut r = reader(&blob[..blob.len() - 6], "t.pcapng").unwrap();
        let mut n = 0;
        while let Some(b) = r.next_batch(chunk) {
            n += b.len();
        }
        assert_eq!(n, 1);
        assert_eq!(
            r.error.as_deref(),
            Some("t.pcapng: truncated at byte offset 96: last block is incomplete (42 bytes); read 1 packets")
        );
    }
}

#[test]
fn pcapng_block_too_short_for_its_fields() {
    for btype in [6u32, 2, 3, 1, 5, 0x0A] {
        for at_end in [true, false] {
            let mut blob = [
                shb(false),
                idb(false, 1, None),
                epb(false, 0, 1_000_000, &[b'e'; 14]),
                block(false, btype, b""),
            ]
            .concat();
            if !at_end {
                blob.extend(epb(false, 0, 2_000_000, &[b'f'; 14]));
            }
            let mut r = reader(&blob, "short.pcapng").unwrap();
            let mut n = 0;
            while let Some(b) = r.next_batch(CHUNK) {
                n += b.len();
            }
            assert_eq!(n, 1);
            assert_one_line(
                &r.error,
                "short.pcapng",
                &format!("too short for block type {btype}"),
            );
        }
    }
}

/// testdata/mixed.pcapng: two sections (little then big endian), named interfaces with if_tsresol
/// (binary and decimal) and if_tsoffset, Darwin process blocks and packet options, simple and obsolete
/// packet blocks, statistics and secrets; values from the Python reader.
#[test]
fn pcapng_mixed_matches_python() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/capture/testdata/mixed.pcapng"
    ))
    .unwrap();
    for chunk in [CHUNK, 1] {
        let mut r = reader(&data, "mixed.pcapng").unwrap();
        let mut rows = Vec::new();
        while let Some(b) = r.next_batch(chunk) {
            for i in 0..b.len() {
                let iface = b.iface.get(i).copied().unwrap_or(-1);
                let proc = b.proc.get(i).copied().unwrap_or(-1);
                rows.push((
                    b.ts[i],
                    b.caplen[i],
                    b.wirelen[i],
                    b.linktype[i],
                    usize::try_from(iface).ok().map(|k| r.ifnames[k].clone()),
                    proc,
                ));
            }
        }
        let procs: Vec<Option<ProcessInfo>> = rows
            .iter()
            .map(|x| usize::try_from(x.5).ok().map(|k| r.processes[k].clone()))
            .collect();
        let n = |s: &str| Some(s.to_string());
        let expect = [
            (1929013328.3125, 14, 17, 1, None),
            (1929013343.734375, 15, 18, 1, None),
            (1700000000.123457, 20, 23, 101, n("utun3")),
            (1700000000.123457, 20, 30, 1, n("en0")),
            (5.0, 10, 12, 101, n("utun3")),
            (1.5, 14, 17, 1, n("if0")),
            (2.0, 16, 19, 1, n("if0")),
        ];
        let got: Vec<_> = rows
            .iter()
            .map(|x| (x.0, x.1, x.2, x.3, x.4.clone()))
            .collect();
        if chunk == CHUNK {
            assert_eq!(got, expect);
        } else {
            // a batch per packet: the first packet's interface is unknown only in Python's one batch
            assert_eq!(got[1..], expect[1..]);
        }
        let p = |c: &str, pid, e: Option<&str>| {
            Some(ProcessInfo {
                command: c.into(),
                pid: Some(pid),
                ecommand: e.map(String::from),
            })
        };
        assert_eq!(
            procs,
            [
                None,
                p("curl", 77, Some("launchd\\xff")),
                p("launchd\\xff", 78, None),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            (r.dropped, r.secrets.clone(), r.error.clone()),
            (Some(12), vec![b"CLIENT_RAND".to_vec()], None)
        );
        assert_eq!((r.packets, r.bytes), (7, 136));
    }
}

fn hl7() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/scenarios/hl7-2575/input.pcap"
    ))
    .unwrap()
}

#[test]
fn repo_captures_match_python() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    // path, packets, bytes, first ts, last ts (from the Python reader)
    let cases = [
        (
            "tests/scenarios/hl7-2575/input.pcap",
            16,
            1411,
            1795734393.773817,
            1795734393.775159,
        ),
        (
            "captures/enrollment-mac-pktap.pcap",
            189,
            60799,
            1795734479.579431,
            1795734485.372556,
        ),
        (
            "captures/enrollment-troubleshooting.pcap",
            212,
            44909,
            1795734479.579431,
            1795734485.930937,
        ),
    ];
    for (path, packets, bytes, first, last) in cases {
        let mut r = CaptureReader::open(&format!("{root}/{path}")).unwrap();
        let mut ts = Vec::new();
        while let Some(b) = r.next_batch(4096) {
            ts.extend(b.ts);
        }
        assert_eq!(
            (r.packets, r.bytes, r.error.clone()),
            (packets, bytes, None),
            "{path}"
        );
        assert_eq!((ts[0], ts[ts.len() - 1]), (first, last), "{path}");
        let size = std::fs::metadata(format!("{root}/{path}")).unwrap().len();
        assert_eq!(r.offset(), size, "{path}");
    }
}

#[test]
fn other_compressions_read_whole() {
    let plain = hl7();
    let (_, want) = read_all(&plain, CHUNK);
    for (file, format) in [
        ("hl7.pcap.zst", "zstd+pcap"),
        ("hl7.pcap.xz", "xz+pcap"),
        ("hl7.pcap.bz2", "bzip2+pcap"),
    ] {
        let path = format!("{}/src/capture/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(&path).unwrap();
        for chunk in [100, CHUNK] {
            let (r, got) = read_all(&data, chunk);
            assert_eq!(
                (r.error.clone(), r.format.as_str()),
                (None, format),
                "{file}"
            );
            assert_eq!(got, want, "{file}");
        }
        // cut short: the packets before the damage, then a one-line error
        for cut in [data.len() / 2, data.len() - 1] {
            if let Err(e) = reader(&data[..cut], "x.pcap") {
                // xz and bzip2 decode a whole chunk/block at a time: cut in the first one, nothing decodes
                assert!(e.0.starts_with("x.pcap: corrupt compressed data ("), "{e}");
                continue;
            }
            let (r, got) = read_all(&data[..cut], CHUNK);
            assert!(got.len() < want.len() || cut == data.len() - 1, "{file}");
            assert_eq!(got[..], want[..got.len()]);
            assert_one_line(&r.error, "x.pcap", "read error after");
            assert_one_line(
                &r.error,
                "x.pcap",
                &format!("corrupt compressed data ({}: ", &format[..format.len() - 5]),
            );
        }
    }
}

#[test]
fn every_truncation_point_of_a_small_capture() {
    let data = hl7();
    for cut in 0..data.len() {
        match reader(&data[..cut], "cut.pcap") {
            Err(e) => assert!(cut <= 24 && e.0.starts_with("cut.pcap: "), "{cut}: {e}"),
            Ok(mut r) => {
                while r.next_batch(CHUNK).is_some() {}
                assert!(cut >= 24);
                assert!(
                    r.error.as_deref().is_none_or(|e| e.contains("byte offset")),
                    "{cut}"
                );
            }
        }
    }
}

/// Crashes and hangs found by fuzzing, as regression tests.
#[test]
fn fuzz_regressions() {
    let cases: &[&[u8]] = &[];
    for data in cases {
        for chunk in [61, 1 << 20] {
            if let Ok(mut r) = reader(data, "f") {
                while r.next_batch(chunk).is_some() {}
            }
        }
    }
}

/// The shared corpus (skipped when absent): the same packets, bytes, timestamps (XOR of their bits),
/// errors and counts as the Python reader.
#[test]
fn corpus_matches_python() {
    let root = std::path::Path::new("/work/shared/corpus");
    if !root.is_dir() {
        eprintln!("corpus absent: skipped");
        return;
    }
    let table = include_str!("testdata/corpus_expected.tsv");
    let mut checked = 0;
    for line in table.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let path = root.join(f[0]);
        if !path.is_file() {
            continue;
        }
        let p = path.to_str().unwrap();
        match CaptureReader::open(p) {
            Err(e) => assert_eq!((f[1], e.0), ("ERR", f[2].replace("{}", p))),
            Ok(mut r) => {
                let (mut caps, mut x) = (0u64, 0u64);
                while let Some(b) = r.next_batch(CHUNK) {
                    caps += b.caplen.iter().map(|&c| u64::from(c)).sum::<u64>();
                    x ^= b.ts.iter().fold(0, |a, t| a ^ t.to_bits());
                }
                let dropped = r.dropped.map_or("None".to_string(), |d| d.to_string());
                let got = [
                    r.format.clone(),
                    r.packets.to_string(),
                    r.bytes.to_string(),
                    caps.to_string(),
                    format!("{x:016x}"),
                    dropped,
                    r.clamped.to_string(),
                    r.error.clone().unwrap_or_default().replace(p, "{}"),
                ];
                assert_eq!(
                    got.to_vec(),
                    f[1..].iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    "{}",
                    f[0]
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn sniff_and_first_packet_see_through_every_compression() {
    let plain = hl7();
    let (_, want) = read_all(&plain, CHUNK);
    let first_ts = want.first().map(|p| p.0).unwrap();
    let root = format!("{}/src/capture/testdata", env!("CARGO_MANIFEST_DIR"));
    for file in ["hl7.pcap.zst", "hl7.pcap.xz", "hl7.pcap.bz2"] {
        let path = format!("{root}/{file}");
        let head = CaptureReader::sniff(&path, 64).unwrap();
        assert_eq!(head[..], plain[..64], "{file}");
        let mut r = CaptureReader::open(&path).unwrap();
        assert_eq!(r.first_packet(100), Some(first_ts), "{file}");
    }
    // a plain file shorter than asked: what there is
    let tmp = std::env::temp_dir().join("pcapaudit-core-sniff-short.pcap");
    std::fs::write(&tmp, &plain[..10]).unwrap();
    assert_eq!(
        CaptureReader::sniff(tmp.to_str().unwrap(), 64).unwrap(),
        plain[..10]
    );
    std::fs::remove_file(&tmp).unwrap();
    assert!(CaptureReader::sniff("/nonexistent/pcapaudit.pcap", 64).is_err());
    // no packet at all: None
    let mut r = reader(&plain[..24], "x.pcap").unwrap();
    assert_eq!(r.first_packet(100), None);
}

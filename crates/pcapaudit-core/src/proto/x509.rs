//! X.509 certificates of a TLS <= 1.2 server chain -> the fields findings use (x509-parser).
//! Mirrors `cert_info` in `pcapaudit/decode/tls.py`, which reads certificates with Python's
//! `cryptography`; the rules of that library that show in the output are reproduced here:
//!
//! * names are decoded attribute by attribute as cryptography's Rust backend does: a BIT STRING value
//!   is bytes (allowed only for x500UniqueIdentifier, else `TypeError`; that OID with a string tag is a str), BMPString is UTF-16BE,
//!   UniversalString UTF-32BE, PrintableString checked
//!   against its character set (`ValueError` when invalid, at load time), every other tag is read as UTF-8
//!   (`ValueError` when invalid), a tag outside cryptography's `_ASN1Type` is a `KeyError`, an empty
//!   RDN or an RDN with a repeated attribute is a `ValueError`;
//! * `rfc4514_string()`: RDNs in reverse order joined by ",", multi-valued RDNs joined by "+" in
//!   their encoded order, cryptography's short names (CN, L, ST, O, OU, C, STREET, DC, UID; dotted
//!   OIDs otherwise) and its escaping (`_escape_dn_value`), bytes as "#hex";
//! * `self_signed` is cryptography's `Name.__eq__`: same RDN count, each RDN the same *set* of
//!   (oid, value);
//! * a duplicate extension or an extension that fails to parse leaves the SAN list empty (the
//!   Python catches `DuplicateExtension` / `ValueError` around it), the names are kept;
//! * a certificate that cannot be read at all gives the Python's placeholder row
//!   (`"<unparsable certificate: {exception type}>"`, issuer `"<unparsable>"`, only the hash);
//!   version numbers other than v1 and v3 are `InvalidVersion` (as cryptography), everything else `ValueError` unless
//!   the name decoding above says otherwise.

use crate::ParseResult;
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// One certificate, as `pcapaudit.model.CertInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514 string, as Python's cryptography `Name.rfc4514_string()` writes it
    pub subject: String,
    pub issuer: String,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub issuer_org: Option<String>,
    /// hex SHA-256 of the DER
    pub sha256: String,
    pub self_signed: bool,
    /// ISO 8601 UTC ("2024-01-31T00:00:00+00:00"), as Python's `datetime.isoformat()`
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub san: Vec<String>,
}

/// At most this many SAN DNS names are kept (as the Python's `[:50]`).
pub const MAX_SAN: usize = 50;

const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_UNIQUE_ID: &str = "2.5.4.45";

/// Parse one DER certificate. Never an `Err`: as the Python, a certificate that cannot be read gives
/// a row with the placeholder subject `"<unparsable certificate: {exception type name}>"`, issuer
/// `"<unparsable>"` and only its hash.
pub fn cert_info(der: &[u8]) -> ParseResult<CertInfo> {
    let sha256 = hex_lower(&Sha256::digest(der));
    match parse(der, &sha256) {
        Ok(info) => Ok(info),
        Err(exc) => Ok(CertInfo {
            subject: format!("<unparsable certificate: {exc}>"),
            issuer: "<unparsable>".to_string(),
            sha256,
            ..CertInfo::default()
        }),
    }
}

fn hex_lower(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &c in b {
        s.push(HEX[(c >> 4) as usize] as char);
        s.push(HEX[(c & 15) as usize] as char);
    }
    s
}

/// A decoded attribute value, as cryptography's `NameAttribute.value` (str or bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Bytes(Vec<u8>),
}

/// (dotted OID, value)
type Attr = (String, Value);

/// `Err` is the Python exception type name.
fn parse(der: &[u8], sha256: &str) -> Result<CertInfo, &'static str> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| "ValueError")?;
    // x509-parser reads BER leniently; cryptography's ASN.1 layer is strict DER
    if !der_strict(der, 0) {
        return Err("ValueError");
    }
    if !rest.is_empty() {
        return Err("ValueError"); // cryptography parses the DER as a single value
    }
    let tbs = &cert.tbs_certificate;
    if tbs.version.0 != 0 && tbs.version.0 != 2 {
        // cryptography knows v1 and v3 only (a v2 certificate is InvalidVersion too)
        return Err("InvalidVersion");
    }
    // what cryptography refuses when loading (ValueError) comes before what it refuses on access
    load_check_name(&tbs.issuer)?;
    load_check_name(&tbs.subject)?;
    load_check_times(der)?;
    let san = san_dns(&cert)?;
    let subject = decode_name(&tbs.subject)?;
    let issuer = decode_name(&tbs.issuer)?;
    let (not_before, not_after) = match (
        iso_utc(tbs.validity.not_before.timestamp()),
        iso_utc(tbs.validity.not_after.timestamp()),
    ) {
        (Some(a), Some(b)) => (Some(a), Some(b)),
        _ => (None, None),
    };
    Ok(CertInfo {
        subject: rfc4514(&subject),
        issuer: rfc4514(&issuer),
        subject_cn: first_str(&subject, OID_CN),
        issuer_cn: first_str(&issuer, OID_CN),
        issuer_org: first_str(&issuer, OID_O),
        sha256: sha256.to_string(),
        self_signed: names_equal(&subject, &issuer),
        not_before,
        not_after,
        san,
    })
}

/// The attribute values cryptography's ASN.1 layer validates when the certificate is loaded
/// (`AttributeValue::{PrintableString, BmpString, UniversalString}`); a failure is a `ValueError`.
fn load_check_name(name: &X509Name<'_>) -> Result<(), &'static str> {
    for atv in name.iter_attributes() {
        let any = atv.attr_value();
        if any.header.class() != x509_parser::der_parser::asn1_rs::Class::Universal
            || any.header.is_constructed()
        {
            continue;
        }
        let data = any.data;
        let ok = match any.tag().0 {
            19 => data
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&c)),
            30 => {
                data.len() % 2 == 0
                    && char::decode_utf16(
                        data.chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]])),
                    )
                    .all(|r| r.is_ok())
            }
            28 => {
                data.len() % 4 == 0
                    && data.chunks_exact(4).all(|c| {
                        char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).is_some()
                    })
            }
            _ => true,
        };
        if !ok {
            return Err("ValueError");
        }
    }
    Ok(())
}

/// Strict DER over a whole TLV tree, as rust-asn1 (cryptography) reads certificates: definite and
/// minimal lengths and tags, constructed contents exactly filled by their children, minimal
/// INTEGERs, BOOLEAN 00/FF, empty NULL, well-formed OIDs and BIT STRINGs. Primitive contents (OCTET
/// STRING extension values) are not descended into. `depth` bounds the recursion.
fn der_strict(mut b: &[u8], depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    while !b.is_empty() {
        let Some((tag, content, rest)) = der_tlv(b) else {
            return false;
        };
        let ok = if tag.constructed {
            der_strict(content, depth + 1)
        } else if tag.class == 0 {
            match tag.number {
                1 => content.len() == 1 && (content[0] == 0 || content[0] == 0xFF),
                2 => match content {
                    [] => false,
                    [0, b1, ..] => *b1 >= 0x80,
                    [0xFF, b1, ..] => *b1 < 0x80,
                    _ => true,
                },
                3 => match content {
                    [] => false,
                    [0] => true,
                    [u, .., last] => *u <= 7 && (*last & ((1u8 << *u) - 1)) == 0,
                    [_] => false,
                },
                5 => content.is_empty(),
                6 => {
                    !content.is_empty()
                        && content.last().is_some_and(|c| c & 0x80 == 0)
                        && content
                            .iter()
                            .enumerate()
                            .all(|(i, &c)| c != 0x80 || (i > 0 && content[i - 1] & 0x80 != 0))
                }
                _ => true,
            }
        } else {
            true
        };
        if !ok {
            return false;
        }
        b = rest;
    }
    true
}

struct DerTag {
    class: u8,
    constructed: bool,
    number: u32,
}

/// One strict-DER TLV: (tag, content, rest).
fn der_tlv(b: &[u8]) -> Option<(DerTag, &[u8], &[u8])> {
    let t0 = *b.first()?;
    let mut i = 1usize;
    let mut number = (t0 & 0x1F) as u32;
    if number == 0x1F {
        number = 0;
        loop {
            let c = *b.get(i)?;
            if number == 0 && c == 0x80 {
                return None; // non-minimal
            }
            number = number.checked_mul(128)? | (c & 0x7F) as u32;
            i += 1;
            if c & 0x80 == 0 {
                break;
            }
        }
        if number < 0x1F {
            return None;
        }
    }
    let l0 = *b.get(i)? as usize;
    i += 1;
    let len = if l0 < 0x80 {
        l0
    } else {
        let n = l0 & 0x7F;
        if n == 0 || n > 4 || *b.get(i)? == 0 {
            return None; // indefinite, oversized or non-minimal
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | *b.get(i + k)? as usize;
        }
        i += n;
        if len < 0x80 {
            return None;
        }
        len
    };
    let end = i.checked_add(len)?;
    let tag = DerTag {
        class: t0 >> 6,
        constructed: t0 & 0x20 != 0,
        number,
    };
    Some((tag, b.get(i..end)?, b.get(end..)?))
}

/// One DER TLV at the start of `b`: (tag byte, content, rest). Definite lengths only.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7F;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(hdr..end)?, b.get(end..)?))
}

/// cryptography reads validity times strictly (RFC 5280 4.1.2.5): UTCTime `YYMMDDHHMMSSZ`,
/// GeneralizedTime `YYYYMMDDHHMMSSZ`, a real date; anything else is a `ValueError` at load.
fn load_check_times(der: &[u8]) -> Result<(), &'static str> {
    let validity = (|| {
        let (_, cert, _) = tlv(der)?;
        let (_, mut tbs, _) = tlv(cert)?;
        if tbs.first() == Some(&0xA0) {
            tbs = tlv(tbs)?.2; // version
        }
        let (_, _, rest) = tlv(tbs)?; // serial
        let (_, _, rest) = tlv(rest)?; // signature
        let (_, _, rest) = tlv(rest)?; // issuer
        let (_, validity, _) = tlv(rest)?;
        let (t1, v1, rest) = tlv(validity)?;
        let (t2, v2, _) = tlv(rest)?;
        Some([(t1, v1), (t2, v2)])
    })()
    .ok_or("ValueError")?;
    for (tag, v) in validity {
        let digits = match tag {
            23 => 12,
            24 => 14,
            _ => return Err("ValueError"),
        };
        if v.len() != digits + 1 || v[digits] != b'Z' || !v[..digits].iter().all(u8::is_ascii_digit)
        {
            return Err("ValueError");
        }
        let num = |i: usize, n: usize| {
            v[i..i + n]
                .iter()
                .fold(0u32, |a, &c| a * 10 + (c - b'0') as u32)
        };
        let (year, o) = if tag == 23 {
            let yy = num(0, 2);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        } else {
            (num(0, 4), 4)
        };
        let (mo, d, h, mi, se) = (
            num(o, 2),
            num(o + 2, 2),
            num(o + 4, 2),
            num(o + 6, 2),
            num(o + 8, 2),
        );
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let mdays = match mo {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err("ValueError"),
        };
        if d == 0 || d > mdays || h > 23 || mi > 59 || se > 59 {
            return Err("ValueError");
        }
    }
    Ok(())
}

/// cryptography's `parse_name`: each attribute value decoded by its tag, then the RDN checks.
fn decode_name(name: &X509Name<'_>) -> Result<Vec<Vec<Attr>>, &'static str> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn() {
        let mut attrs: Vec<Attr> = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let any = atv.attr_value();
            let hdr = &any.header;
            let universal_primitive = hdr.class()
                == x509_parser::der_parser::asn1_rs::Class::Universal
                && !hdr.is_constructed();
            let tag = any.tag().0;
            // cryptography's _ASN1Type values
            if !universal_primitive
                || !matches!(tag, 3 | 4 | 12 | 18 | 19 | 20 | 22 | 23 | 24 | 26 | 28 | 30)
            {
                return Err("KeyError");
            }
            let data = any.data;
            let value = match tag {
                3 => Value::Bytes(data.to_vec()),
                30 => {
                    if data.len() % 2 != 0 {
                        return Err("ValueError");
                    }
                    let units = data
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let s: Result<String, _> = char::decode_utf16(units).collect();
                    Value::Str(s.map_err(|_| "ValueError")?)
                }
                28 => {
                    if data.len() % 4 != 0 {
                        return Err("ValueError");
                    }
                    let mut s = String::with_capacity(data.len() / 4);
                    for c in data.chunks_exact(4) {
                        let cp = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                        s.push(char::from_u32(cp).ok_or("ValueError")?);
                    }
                    Value::Str(s)
                }
                _ => Value::Str(
                    std::str::from_utf8(data)
                        .map_err(|_| "ValueError")?
                        .to_string(),
                ),
            };
            // NameAttribute.__init__: a BIT STRING is allowed only for x500UniqueIdentifier
            if matches!(value, Value::Bytes(_)) && oid != OID_UNIQUE_ID {
                return Err("TypeError");
            }
            attrs.push((oid, value));
        }
        if attrs.is_empty() {
            return Err("ValueError"); // a relative distinguished name cannot be empty
        }
        for (i, a) in attrs.iter().enumerate() {
            if attrs[..i].contains(a) {
                return Err("ValueError"); // duplicate attributes are not allowed
            }
        }
        out.push(attrs);
    }
    Ok(out)
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// cryptography's `_escape_dn_value`.
fn escape_dn_value(v: &Value, out: &mut String) {
    match v {
        Value::Bytes(b) => {
            if !b.is_empty() {
                out.push('#');
                out.push_str(&hex_lower(b));
            }
        }
        Value::Str(s) => {
            if s.is_empty() {
                return;
            }
            let mut e = String::with_capacity(s.len() + 4);
            for c in s.chars() {
                match c {
                    '\\' | '"' | '+' | ',' | ';' | '<' | '>' => {
                        e.push('\\');
                        e.push(c);
                    }
                    '\0' => e.push_str("\\00"),
                    _ => e.push(c),
                }
            }
            let first = e.chars().next();
            if first == Some('#') || (first == Some(' ') && e.chars().count() > 1) {
                out.push('\\');
            }
            if let Some(stripped) = e.strip_suffix(' ') {
                out.push_str(stripped);
                out.push_str("\\ ");
            } else {
                out.push_str(&e);
            }
        }
    }
}

/// `Name.rfc4514_string()`.
fn rfc4514(name: &[Vec<Attr>]) -> String {
    let mut s = String::new();
    for (i, rdn) in name.iter().rev().enumerate() {
        if i > 0 {
            s.push(',');
        }
        for (j, (oid, v)) in rdn.iter().enumerate() {
            if j > 0 {
                s.push('+');
            }
            s.push_str(short_name(oid).unwrap_or(oid));
            s.push('=');
            escape_dn_value(v, &mut s);
        }
    }
    s
}

/// `str(name.get_attributes_for_oid(oid)[0].value)`.
fn first_str(name: &[Vec<Attr>], oid: &str) -> Option<String> {
    name.iter()
        .flatten()
        .find(|(o, _)| o == oid)
        .map(|(_, v)| match v {
            Value::Str(s) => s.clone(),
            // str(bytes) in Python: only reachable for x500UniqueIdentifier, never asked for
            Value::Bytes(b) => format!("b'{}'", hex_lower(b)),
        })
}

/// `Name.__eq__`: the same RDNs in the same order, each compared as a set.
fn names_equal(a: &[Vec<Attr>], b: &[Vec<Attr>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().all(|t| y.contains(t)))
}

/// The certificate extensions cryptography decodes (the others stay `UnrecognizedExtension`).
const CRYPTOGRAPHY_EXTENSIONS: [&str; 20] = [
    "2.5.29.9",
    "2.5.29.14",
    "2.5.29.15",
    "2.5.29.17",
    "2.5.29.18",
    "2.5.29.19",
    "2.5.29.30",
    "2.5.29.31",
    "2.5.29.32",
    "2.5.29.33",
    "2.5.29.35",
    "2.5.29.36",
    "2.5.29.37",
    "2.5.29.46",
    "2.5.29.54",
    "1.3.6.1.5.5.7.1.1",
    "1.3.6.1.5.5.7.1.11",
    "1.3.6.1.5.5.7.1.24",
    "1.3.6.1.5.5.7.48.1.5",
    "1.3.6.1.4.1.11129.2.4.2",
];

/// The SAN DNS names, or none when the extension list is one cryptography refuses.
fn san_dns(cert: &X509Certificate<'_>) -> Result<Vec<String>, &'static str> {
    let exts = cert.extensions();
    let mut san: Option<&x509_parser::extensions::SubjectAlternativeName<'_>> = None;
    for (i, e) in exts.iter().enumerate() {
        if exts[..i].iter().any(|p| p.oid == e.oid) {
            return Ok(Vec::new()); // DuplicateExtension
        }
        if CRYPTOGRAPHY_EXTENSIONS.contains(&e.oid.to_id_string().as_str())
            && !der_strict(e.value, 0)
        {
            return Ok(Vec::new()); // ValueError when cryptography parses the extension list
        }
        match general_names_of(e.parsed_extension()) {
            Some(gns) if gns.iter().any(|g| matches!(g, GeneralName::Invalid(..))) => {
                return Ok(Vec::new()); // ValueError
            }
            _ => {}
        }
        match e.parsed_extension() {
            ParsedExtension::ParseError { .. } => return Ok(Vec::new()), // ValueError
            ParsedExtension::SubjectAlternativeName(s) => {
                for g in &s.general_names {
                    match g {
                        // cryptography raises UnsupportedGeneralNameType (not a ValueError)
                        GeneralName::X400Address(_) | GeneralName::EDIPartyName(_) => {
                            return Err("UnsupportedGeneralNameType")
                        }
                        GeneralName::Invalid(..) => return Ok(Vec::new()),
                        _ => {}
                    }
                }
                san = Some(s);
            }
            ParsedExtension::IssuerAlternativeName(s) => {
                for g in &s.general_names {
                    match g {
                        GeneralName::X400Address(_) | GeneralName::EDIPartyName(_) => {
                            return Err("UnsupportedGeneralNameType")
                        }
                        GeneralName::Invalid(..) => return Ok(Vec::new()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(san
        .map(|s| {
            s.general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(d) => Some((*d).to_string()),
                    _ => None,
                })
                .take(MAX_SAN)
                .collect()
        })
        .unwrap_or_default())
}

/// Every GeneralName of the extensions cryptography parses with GeneralName inside.
fn general_names_of<'b>(p: &'b ParsedExtension<'_>) -> Option<Vec<&'b GeneralName<'b>>> {
    use x509_parser::extensions::DistributionPointName;
    let mut v: Vec<&GeneralName<'_>> = Vec::new();
    match p {
        ParsedExtension::SubjectAlternativeName(s) => v.extend(&s.general_names),
        ParsedExtension::IssuerAlternativeName(s) => v.extend(&s.general_names),
        ParsedExtension::AuthorityInfoAccess(a) => {
            v.extend(a.accessdescs.iter().map(|d| &d.access_location))
        }
        ParsedExtension::SubjectInfoAccess(a) => {
            v.extend(a.accessdescs.iter().map(|d| &d.access_location))
        }
        ParsedExtension::CRLDistributionPoints(c) => {
            for p in &c.points {
                if let Some(DistributionPointName::FullName(f)) = &p.distribution_point {
                    v.extend(f);
                }
                if let Some(i) = &p.crl_issuer {
                    v.extend(i);
                }
            }
        }
        ParsedExtension::AuthorityKeyIdentifier(a) => {
            if let Some(i) = &a.authority_cert_issuer {
                v.extend(i);
            }
        }
        ParsedExtension::NameConstraints(n) => {
            for t in [&n.permitted_subtrees, &n.excluded_subtrees]
                .into_iter()
                .flatten()
            {
                v.extend(t.iter().map(|g| &g.base));
            }
        }
        _ => return None,
    }
    Some(v)
}

/// `datetime.isoformat()` of an aware UTC datetime with whole seconds (from the Unix timestamp);
/// None outside Python's datetime range (years 1..=9999).
fn iso_utc(ts: i64) -> Option<String> {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if !(1..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        y,
        m,
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::difffmt::{hx, s, unhex};

    fn cert_fmt(i: &CertInfo) -> String {
        [
            s(Some(&i.subject)),
            s(Some(&i.issuer)),
            s(i.subject_cn.as_deref()),
            s(i.issuer_cn.as_deref()),
            s(i.issuer_org.as_deref()),
            i.sha256.clone(),
            (i.self_signed as u8).to_string(),
            s(i.not_before.as_deref()),
            s(i.not_after.as_deref()),
            i.san
                .iter()
                .map(|x| hx(x.as_bytes()))
                .collect::<Vec<_>>()
                .join(","),
        ]
        .join("|")
    }

    fn check_lines(text: &str) -> (usize, usize) {
        let (mut total, mut equal) = (0, 0);
        for l in text.lines() {
            let Some((k, want)) = l.split_once('\t') else {
                continue;
            };
            let Some(h) = k.strip_prefix("CERT ") else {
                continue;
            };
            let got = cert_fmt(&cert_info(&unhex(h)).unwrap());
            total += 1;
            if got == want {
                equal += 1;
            } else {
                eprintln!(
                    "MISMATCH CERT {}\n  want {want}\n  got  {got}",
                    &h[..h.len().min(60)]
                );
            }
        }
        (total, equal)
    }

    /// Differential check against the Python reference (set PCAPAUDIT_TLS_DIFF to the extraction
    /// output; skipped otherwise).
    #[test]
    fn differential_x509_against_python() {
        let Ok(path) = std::env::var("PCAPAUDIT_TLS_DIFF") else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let (total, equal) = check_lines(&text);
        eprintln!("differential x509: {equal}/{total} equal");
        assert_eq!(total, equal);
    }
}

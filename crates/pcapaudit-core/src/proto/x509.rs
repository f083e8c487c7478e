//! X.509 certificates of a TLS <= 1.2 server chain -> the fields findings use (x509-parser).
//! Mirrors `cert_info` in `pcapaudit/decode/tls.py`, which reads certificates with Python's
//! `cryptography`; the rules of that library that show in the output are reproduced here:
//!
//! * names are decoded attribute by attribute as cryptography's Rust backend does: a BIT STRING value
//!   is bytes (allowed only for x500UniqueIdentifier, else `TypeError`; that OID with a string tag is a str), BMPString is UTF-16BE,
//!   UniversalString UTF-32BE, PrintableString checked
//!   against its character set (`ValueError` when invalid, at load time), every other tag is read as UTF-8
//!   (`ValueError` when invalid), a tag outside cryptography's `_ASN1Type` is a `ValueError` (its re-parse
//!   on access refuses it), an empty
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
                return Err("ValueError");
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

    /// `CERT <der hex>\t<the Python's cert_info line>`: real certificates of tests/scenarios and
    /// certificates made with cryptography (escaping, multi-valued RDNs, BMP/Universal/BIT STRING
    /// values, unknown OIDs, 60 SANs, 1950/2010 dates, duplicate extension, versions 34 and v2, empty
    /// and truncated DER, trailing bytes).
    const VECTORS: &[&str] = &[
        concat!(
            "CERT 308202c5308201ada00302010202142903ad52cf020260dce8d85df3a287bde08eedd5300d06092a864886f70d0",
            "1010b0500306a310b3009060355040613025553311e301c060355040a0c154578616d706c6520436f727020536563757",
            "269747931193017060355040b0c104e6574776f726b2053656375726974793120301e06035504030c17436f72706f726",
            "1746520496e7370656374696f6e204341301e170d3236313132363232303634315a170d3237303232343233303634315",
            "a30233121301f06035504030c18312d636f75726965722e707573682e6170706c652e636f6d3059301306072a8648ce3",
            "d020106082a8648ce3d0301070342000408363bac517a0228d91f5de12059501f8ac19b766171b01def8ddca80c69c17",
            "1e0bc5f84f22b96235884b3300de79f68dfc47457abae4b35108593e003678bafa375307330230603551d11041c301a8",
            "218312d636f75726965722e707573682e6170706c652e636f6d300c0603551d130101ff04023000301d0603551d25041",
            "6301406082b0601050507030106082b06010505070302301f0603551d2304183016801424984753d118ba6876c0b5487",
            "76c241c34cfa31e300d06092a864886f70d01010b0500038201010026cc4a6a281884794c723161d819e8c8a3e5f9fd6",
            "37defda6b03f735477902e39caeaf47255f0e3d69bac66a3d54abca6929328b3ad55a1796199cd06cea56cfb0e6b7954",
            "e1b9bba826accbb88ecede35d3ccfcf5618488aaeaac9c7b7126b555a38b9c637d2b1f85c3173648680a0bed756a6df0",
            "cab1317536723d5beab7fbf0778b863d9e99bd17f745e0eb4ea7a2031cb201378902ef22ab5a8cdb5073ba3f7ddc913a",
            "2f3b59d4ddba2ff48631e3c80dd42101e89d17354e2c24bc9b98544a6b7c39a35dab51f5c93a039f765a06d4987f389f",
            "d6c5627d823faa4bebfd032b14aaa6e6631dc14260cab69a563a8dc9b5f08c77cb8772d93f85ac76db9c602\t434e3d31",
            "2d636f75726965722e707573682e6170706c652e636f6d|434e3d436f72706f7261746520496e7370656374696f6e204",
            "3412c4f553d4e6574776f726b2053656375726974792c4f3d4578616d706c6520436f72702053656375726974792c433",
            "d5553|312d636f75726965722e707573682e6170706c652e636f6d|436f72706f7261746520496e7370656374696f6e2",
            "04341|4578616d706c6520436f7270205365637572697479|034e80ee86e112b2dd6bc91897c72cce0071d3c4da28eff",
            "bfeaf94e8dda8fe2d|0|323032362d31312d32365432323a30363a34312b30303a3030|323032372d30322d323454323",
            "33a30363a34312b30303a3030|312d636f75726965722e707573682e6170706c652e636f6d",
        ),
        concat!(
            "CERT 308203a43082028ca00302010202141f9b247d77cf1a1866a3ea416dc01e7d209d8863300d06092a864886f70d0",
            "1010b0500306a310b3009060355040613025553311e301c060355040a0c154578616d706c6520436f727020536563757",
            "269747931193017060355040b0c104e6574776f726b2053656375726974793120301e06035504030c17436f72706f726",
            "1746520496e7370656374696f6e204341301e170d3236313132353233303535395a170d3336313132333233303535395",
            "a306a310b3009060355040613025553311e301c060355040a0c154578616d706c6520436f72702053656375726974793",
            "1193017060355040b0c104e6574776f726b2053656375726974793120301e06035504030c17436f72706f72617465204",
            "96e7370656374696f6e20434130820122300d06092a864886f70d01010105000382010f003082010a0282010100a8893",
            "f090269e68320ad1824a663e6d92a88581b53622990d583f12089a357ec708e97ebb79b1ecac77d9d036cb4e51fbe07d",
            "3037d051ff1eb7a3057387e806914e0eec1fc66e86c6958e3be52de0c6f2b468cfbe9a774ff36eee88c6531829dafac1",
            "5c1fa33dc16fe5a87a78a439d00d02ee255ac2ff0bf58ba030f48c637ab2f8f5f0dd00fc1f871087181a93a86c214652",
            "693befce08e04d660c5cdde010afbb9747bae2e768b3ee8c12cb139a82161a4c0ca333ebbd5d682a6e8dbd2d75c79359",
            "61136ebf81ebd6c59cdf203827a29ba024f3252a2c5ee97fcc25b3c8bc08d8e67b586399f047ef3201aede7001168153",
            "ae0b2778a8e18ee08d6649caa170203010001a3423040300f0603551d130101ff040530030101ff300e0603551d0f010",
            "1ff040403020186301d0603551d0e0416041424984753d118ba6876c0b548776c241c34cfa31e300d06092a864886f70",
            "d01010b05000382010100153ea541e4bac089076d53fc5acea37caccc7a144167c1029f8b5e990391a71421bad116847",
            "e14b959686428cf1f10e95438a3ef75bc9e9386d108bd22e81caa97efa0c4bf291db8e3519b82e7084e3ffc472030555",
            "e85340783e580579fced48443feadc941de782c2e929bd6cecdbef3e12e250d41480d71110c70a0850fff3e68adab274",
            "a5caa1a8572ef07c12a551f3569bc62b6313d9cebdf290d728ed3007ff71d6394506d6ff2c76387266175d4848d1408c",
            "31028ea1c4b136053557300d9c0a9aa0ff491395ff629060aa20e7930e375035a2e12834cb734b79356a1daabaec85e3",
            "79f9652e0e4b44d98393a302fe0144e1bd1656695143957a25eb5\t434e3d436f72706f7261746520496e737065637469",
            "6f6e2043412c4f553d4e6574776f726b2053656375726974792c4f3d4578616d706c6520436f72702053656375726974",
            "792c433d5553|434e3d436f72706f7261746520496e7370656374696f6e2043412c4f553d4e6574776f726b205365637",
            "5726974792c4f3d4578616d706c6520436f72702053656375726974792c433d5553|436f72706f7261746520496e7370",
            "656374696f6e204341|436f72706f7261746520496e7370656374696f6e204341|4578616d706c6520436f7270205365",
            "637572697479|2c2e86596005581cab47cb7aff8953cdc53924d08fe1470685feed52d37e6649|1|323032362d31312d",
            "32355432333a30353a35392b30303a3030|323033362d31312d32335432333a30353a35392b30303a3030|",
        ),
        concat!(
            "CERT 308202d5308201bda003020102021411fdb23f9dac1cb54426d904174ded4389887688300d06092a864886f70d0",
            "1010b0500305f310b300906035504061302555331253023060355040a0c1c706361706175646974204c6162205472757",
            "3742053657276696365733129302706035504030c20706361706175646974204c6162205075626c69632053657276657",
            "22043412031301e170d3236313132363232303535395a170d3237303232343233303535395a304331233021060355040",
            "a0c1a706361706175646974204c61622056656e646f7220486f737473311c301a06035504030c136970726f66696c657",
            "32e6170706c652e636f6d3059301306072a8648ce3d020106082a8648ce3d03010703420004d6de5950d4e251d014170",
            "03661385051dabb913775d3279702f6a89a6b674c75ec586e73b13e927bff398bf9b5ed622e87e7fac75655cb44e2b3a",
            "74d6d018923a370306e301e0603551d110417301582136970726f66696c65732e6170706c652e636f6d300c0603551d1",
            "30101ff04023000301d0603551d250416301406082b0601050507030106082b06010505070302301f0603551d2304183",
            "0168014db2e1ff7d01c66a5b0925246e5f09c453bb7b93e300d06092a864886f70d01010b050003820101008103488a8",
            "131090c39f6f1ea2c335db31450ee55446d0372dbbe49d30de3c60317cc32e79e5e163d012860c31aa27f4390031bdb7",
            "57339290f71108258601f8161ad7ee8a45e5368f59268470a54e43aa7db50511dc9bbfc925f74a62b0493bf18dc999e3",
            "9f46d5a3c91a65e44dc18e09f999e51c8cd5097748e32985a0bdce98c5480a7a03760f18771abef10ec2356ad184aacb",
            "45697e5d40b7f8eb3bbfd9c4510ff4584148ded429045cac217448a77460a29c9218e33ec3d713abfa9b9f69985a22ec",
            "0f70caab86614bd7eff48335a26a7cee63f24637afb84d683d82d83ec56579a7ef34a726f0d0ae1d03bfca50bf28895d",
            "c034e81456b42d6beb21de2\t434e3d6970726f66696c65732e6170706c652e636f6d2c4f3d706361706175646974204c",
            "61622056656e646f7220486f737473|434e3d706361706175646974204c6162205075626c69632053657276657220434",
            "120312c4f3d706361706175646974204c61622054727573742053657276696365732c433d5553|6970726f66696c6573",
            "2e6170706c652e636f6d|706361706175646974204c6162205075626c6963205365727665722043412031|7063617061",
            "75646974204c6162205472757374205365727669636573|f9ffaac1c1b781e60a4f21bb6c7a57f4be721b6e3b29b9038",
            "5e57b2f7428e5c7|0|323032362d31312d32365432323a30353a35392b30303a3030|323032372d30322d32345432333",
            "a30353a35392b30303a3030|6970726f66696c65732e6170706c652e636f6d",
        ),
        concat!(
            "CERT 308203ae30820296a00302010202144078ee15d6ab18da3cf79ac8c0cd84edbf1cccc5300d06092a864886f70d0",
            "1010b0500305b310b300906035504061302555331253023060355040a0c1c706361706175646974204c6162205472757",
            "3742053657276696365733125302306035504030c1c706361706175646974204c6162205075626c696320526f6f74204",
            "341301e170d3236313132353233303535395a170d3331313132353233303535395a305f310b300906035504061302555",
            "331253023060355040a0c1c706361706175646974204c616220547275737420536572766963657331293027060355040",
            "30c20706361706175646974204c6162205075626c696320536572766572204341203130820122300d06092a864886f70",
            "d01010105000382010f003082010a0282010100b72a3c12637ef0299bb2c0de5f539434901d5255785f0132debd2fe4b",
            "86e25aa817d9dfc5717e8ec696075450fa4e315b806c0064a433648bac13ad1f24477b524fe17747c1bf235bed895376",
            "2078a9c6e9186733c9d0b76d30d08e2dd4a3fdbe4c4b91404302f59c6f48654e11dc8ff231c0df8c1a6407dee5fbf29b",
            "948fcca0bf5be23b58cb66b7e1ce77ccda256781ee484bd72c4f03a8c34eb31ea76721154afff49017823931f2908626",
            "d82f838075697bf36843ab4f0ea62120721127f2401d37078663ea9faa97213701d0707d8b69b50e83b0ced727a8c2f2",
            "ade510b292b8116f1c4b3f88ba9ac36f525e082c21cebcb67a2a4da87bac9036318b5810203010001a36630643012060",
            "3551d130101ff040830060101ff020100300e0603551d0f0101ff040403020186301d0603551d0e04160414db2e1ff7d",
            "01c66a5b0925246e5f09c453bb7b93e301f0603551d230418301680146fb245d81b4a0bc3a9731584a70aec53b7cbd8b",
            "6300d06092a864886f70d01010b0500038201010096dfba370fcf2202bc56d1361dd365e06b12535d2d0a2ec037548ba",
            "b48f42827b6a317bc763494c287d82d223c5c6596df9010153ab51aea4f721c7334088c47a8e350158f939f427625c41",
            "d60be3ff5b85a3c786ece5a39cf5ac39bf414916b097531e192dbab768f78301f1504bc4e8d9671f45fd74dcc3c77ba6",
            "db72793323bc954eb47f7fa6ba2afbacfa73a7a603726ed4c606ccedca81edb16bd012d6ff36382f7449d24757da940b",
            "89d499f82622334596dcfe93d2d7d312743c2889d9465159b873239bd1a4a3c78fdb4f4f9f64c5468d934c66f67ec1b5",
            "c22ee0efb938155e2a38e0bf87ef5d16bb079b049dc178e3ac0d700312d9d39230eff0973\t434e3d7063617061756469",
            "74204c6162205075626c69632053657276657220434120312c4f3d706361706175646974204c61622054727573742053",
            "657276696365732c433d5553|434e3d706361706175646974204c6162205075626c696320526f6f742043412c4f3d706",
            "361706175646974204c61622054727573742053657276696365732c433d5553|706361706175646974204c6162205075",
            "626c6963205365727665722043412031|706361706175646974204c6162205075626c696320526f6f74204341|706361",
            "706175646974204c6162205472757374205365727669636573|747dad5dd34aaa4c3a249d4351e5b141c899a7eead495",
            "6ffc1c145eed220647e|0|323032362d31312d32355432333a30353a35392b30303a3030|323033312d31312d3235543",
            "2333a30353a35392b30303a3030|",
        ),
        concat!(
            "CERT 308201a030820146a003020102020107300a06082a8648ce3d0403023049310d300b06035504030c04207370203",
            "1133011060a0992268993f22c6401191603636f6d31123010060a0992268993f22c6401010c027531310f300d0603550",
            "4090c0631204d61696e301e170d3234303133313030303030305a170d3234303330313030303030305a3038310b30090",
            "6035504061302555331193017060355040a0c1045782c2022436f727022202b3b3c3e5c310e300c06035504030c05236",
            "c6561643059301306072a8648ce3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392",
            "a3a7fc63334ff9064a6e2936bb3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33",
            "0302e302c0603551d11042530238209612e6578616d706c6587040a0000018103784079820b2a2e622e6578616d706c6",
            "5300a06082a8648ce3d04030203480030450221008aa704d7989a012ffc33706ef72018e499375fccef35400af9f46f9",
            "41ee72231022022723acb3f4513c2979b2e76b738ddd7b47905eadd7ff64193d03a84c61808c3\t434e3d5c236c656164",
            "2c4f3d45785c2c205c22436f72705c22205c2b5c3b5c3c5c3e5c5c2c433d5553|5354524545543d31204d61696e2c554",
            "9443d75312c44433d636f6d2c434e3d5c2073705c20|236c656164|20737020|-|3bdc2ab2cfc814376530eea3c32b08",
            "1b88ecb9057a51008c66c856f3bceccfad|0|323032342d30312d33315430303a30303a30302b30303a3030|32303234",
            "2d30332d30315430303a30303a30302b30303a3030|612e6578616d706c65,2a2e622e6578616d706c65",
        ),
        concat!(
            "CERT 3082014c3081f3a003020102020107300a06082a8648ce3d04030230303114300806035504030c0161300806035",
            "5040b0c0162310c300a06035504070c034c0078310a300806035504080c0120301e170d3234303133313030303030305",
            "a170d3234303330313030303030305a30303114300806035504030c01613008060355040b0c0162310c300a060355040",
            "70c034c0078310a300806035504080c01203059301306072a8648ce3d020106082a8648ce3d030107034200046c43d93",
            "651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb3987c8543547d0a7b8f18572d29f66a71e52ff1665",
            "419a1cf2813a937e084d08ae4300a06082a8648ce3d0403020348003045022100ea63737f22f5120805a1486046fc686",
            "21b66d02c276a66cc5d529c1d5b9358400220195c33e6c1f3a21f022c06f2a89114d467b4050c8b403490dc681ef9343",
            "b5c16\t53543d5c202c4c3d4c5c3030782c434e3d612b4f553d62|53543d5c202c4c3d4c5c3030782c434e3d612b4f553",
            "d62|61|61|-|849e339c9f2458a36f2fa16debea685de3e414c23d05dc9e521733009e8d1016|1|323032342d30312d3",
            "3315430303a30303a30302b30303a3030|323032342d30332d30315430303a30303a30302b30303a3030|",
        ),
        concat!(
            "CERT 308201993082013fa003020102020107300a06082a8648ce3d0403023028310c300a06035504030c03697373310",
            "b3009060355040a0c024f31310b3009060355040a0c024f323020170d3439313233313233353935395a180f323035313",
            "03230343233353935395a308181310d300b06042a0304050c03756e6b3112301006092a864886f70d010901160361406",
            "2311b301906035504031e1200dc006e00ef0063006f0064006500202603310c300a06035504051303313233310c300a0",
            "60355042d03030001ff31153013060355040a1c0c000000750000006e00000069310c300a06035504030c03782020305",
            "9301306072a8648ce3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc6333",
            "4ff9064a6e2936bb3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4300a06082a864",
            "8ce3d040302034800304502200955e7a25faa88bab5a8fe950b902dd198998fc0c6d138bb3fe8511241ec0deb022100c",
            "80ac4a33cd579920a258e5035af46479ce5b984e2253ce9da47cb5d39e15db8\t434e3d78205c202c4f3d756e692c322e",
            "352e342e34353d233030303166662c322e352e342e353d3132332c434e3dc39c6ec3af636f646520e298832c312e322e",
            "3834302e3131333534392e312e392e313d6140622c312e322e332e342e353d756e6b|4f3d4f322c4f3d4f312c434e3d6",
            "97373|c39c6ec3af636f646520e29883|697373|4f31|659b2a2c631ad33efeaf42c63aa27526cf82eb7f08c8167a98a",
            "bf1b1dc8caff0|0|323034392d31322d33315432333a35393a35392b30303a3030|323035312d30322d30345432333a3",
            "5393a35392b30303a3030|",
        ),
        concat!(
            "CERT 30820408308203aea003020102020107300a06082a8648ce3d0403023000301e170d35303031303130303030303",
            "05a170d3039313231373030303030305a30003059301306072a8648ce3d020106082a8648ce3d030107034200046c43d",
            "93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb3987c8543547d0a7b8f18572d29f66a71e52ff16",
            "65419a1cf2813a937e084d08ae4a3820317308203133082030f0603551d110482030630820302820a6e302e6578616d7",
            "06c65820a6e312e6578616d706c65820a6e322e6578616d706c65820a6e332e6578616d706c65820a6e342e6578616d7",
            "06c65820a6e352e6578616d706c65820a6e362e6578616d706c65820a6e372e6578616d706c65820a6e382e6578616d7",
            "06c65820a6e392e6578616d706c65820b6e31302e6578616d706c65820b6e31312e6578616d706c65820b6e31322e657",
            "8616d706c65820b6e31332e6578616d706c65820b6e31342e6578616d706c65820b6e31352e6578616d706c65820b6e3",
            "1362e6578616d706c65820b6e31372e6578616d706c65820b6e31382e6578616d706c65820b6e31392e6578616d706c6",
            "5820b6e32302e6578616d706c65820b6e32312e6578616d706c65820b6e32322e6578616d706c65820b6e32332e65786",
            "16d706c65820b6e32342e6578616d706c65820b6e32352e6578616d706c65820b6e32362e6578616d706c65820b6e323",
            "72e6578616d706c65820b6e32382e6578616d706c65820b6e32392e6578616d706c65820b6e33302e6578616d706c658",
            "20b6e33312e6578616d706c65820b6e33322e6578616d706c65820b6e33332e6578616d706c65820b6e33342e6578616",
            "d706c65820b6e33352e6578616d706c65820b6e33362e6578616d706c65820b6e33372e6578616d706c65820b6e33382",
            "e6578616d706c65820b6e33392e6578616d706c65820b6e34302e6578616d706c65820b6e34312e6578616d706c65820",
            "b6e34322e6578616d706c65820b6e34332e6578616d706c65820b6e34342e6578616d706c65820b6e34352e6578616d7",
            "06c65820b6e34362e6578616d706c65820b6e34372e6578616d706c65820b6e34382e6578616d706c65820b6e34392e6",
            "578616d706c65820b6e35302e6578616d706c65820b6e35312e6578616d706c65820b6e35322e6578616d706c65820b6",
            "e35332e6578616d706c65820b6e35342e6578616d706c65820b6e35352e6578616d706c65820b6e35362e6578616d706",
            "c65820b6e35372e6578616d706c65820b6e35382e6578616d706c65820b6e35392e6578616d706c65300a06082a8648c",
            "e3d0403020348003045022018a82e6091d78129d75ff3448221d7821ee3cb94f6a27b83e08fa2652abdea1c022100987",
            "686a8ff7b88dade27ee9582750c5aeedbf6150cf8b05c4d052f1cf4167c38\t||-|-|-|d160bb994bc799df4eda5fdcfc",
            "e8c329a8aae1e0750f8234880f62d48152992e|1|313935302d30312d30315430303a30303a30302b30303a3030|3230",
            "30392d31322d31375430303a30303a30302b30303a3030|6e302e6578616d706c65,6e312e6578616d706c65,6e322e6",
            "578616d706c65,6e332e6578616d706c65,6e342e6578616d706c65,6e352e6578616d706c65,6e362e6578616d706c6",
            "5,6e372e6578616d706c65,6e382e6578616d706c65,6e392e6578616d706c65,6e31302e6578616d706c65,6e31312e",
            "6578616d706c65,6e31322e6578616d706c65,6e31332e6578616d706c65,6e31342e6578616d706c65,6e31352e6578",
            "616d706c65,6e31362e6578616d706c65,6e31372e6578616d706c65,6e31382e6578616d706c65,6e31392e6578616d",
            "706c65,6e32302e6578616d706c65,6e32312e6578616d706c65,6e32322e6578616d706c65,6e32332e6578616d706c",
            "65,6e32342e6578616d706c65,6e32352e6578616d706c65,6e32362e6578616d706c65,6e32372e6578616d706c65,6",
            "e32382e6578616d706c65,6e32392e6578616d706c65,6e33302e6578616d706c65,6e33312e6578616d706c65,6e333",
            "22e6578616d706c65,6e33332e6578616d706c65,6e33342e6578616d706c65,6e33352e6578616d706c65,6e33362e6",
            "578616d706c65,6e33372e6578616d706c65,6e33382e6578616d706c65,6e33392e6578616d706c65,6e34302e65786",
            "16d706c65,6e34312e6578616d706c65,6e34322e6578616d706c65,6e34332e6578616d706c65,6e34342e6578616d7",
            "06c65,6e34352e6578616d706c65,6e34362e6578616d706c65,6e34372e6578616d706c65,6e34382e6578616d706c6",
            "5,6e34392e6578616d706c65",
        ),
        concat!(
            "CERT 308201253081cba003020102020107300a06082a8648ce3d040302300c310a30080603550403140178301e170d3",
            "234303133313030303030305a170d3234303330313030303030305a300b31093007060355040a0c003059301306072a8",
            "648ce3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e29",
            "36bb3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a31f301d301b0603551d11041",
            "43012871000000000000000000000000000000001300a06082a8648ce3d0403020349003046022100e8076a57aafc1f1",
            "d189ba65e47aac6769723f4e5d2c95756bc9b05d97c50c80f022100d4f8cbe8c883b3c9fd6c9b4c4fefbd684f775cc2c",
            "11412d4203172eb0ab34c80\t4f3d|434e3d78|-|78|-|74309ec01d53db4cb8f1a5b9e78cb9e5bee819e61767e1c5b0f",
            "3e9f60cdbffd4|0|323032342d30312d33315430303a30303a30302b30303a3030|323032342d30332d30315430303a3",
            "0303a30302b30303a3030|",
        ),
        concat!(
            "CERT 3082016c30820113a003020102020107300a06082a8648ce3d04030230223120301e06035504030c17436f72706",
            "f7261746520496e7370656374696f6e204341301e170d3234303133313030303030305a170d323430333031303030303",
            "0305a30223120301e06035504030c17436f72706f7261746520496e7370656374696f6e2043413059301306072a8648c",
            "e3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb",
            "3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33a303830140603551d11040d300",
            "b8209642e6578616d706c65300b0603551d0f0404030205a030130603551d25040c300a06082b06010505070301300a0",
            "6082a8648ce3d040302034700304402205d679672e9b9be6deecdd4a132cdf1d89181febbde99ab1f9c0bb87fa19f4d1",
            "602200eb953b5682ac09586b442a7716ad79f3c59fadd7106029750f1f72a8aae2e66\t434e3d436f72706f7261746520",
            "496e7370656374696f6e204341|434e3d436f72706f7261746520496e7370656374696f6e204341|436f72706f726174",
            "6520496e7370656374696f6e204341|436f72706f7261746520496e7370656374696f6e204341|-|13381c9a21a152ca",
            "d4576186763e08355266b26e8fdb4d61fe91e67af4360831|1|323032342d30312d33315430303a30303a30302b30303",
            "a3030|323032342d30332d30315430303a30303a30302b30303a3030|642e6578616d706c65",
        ),
        concat!(
            "CERT 3082016c30820113a003020102020107300a06082a8648ce3d04030230223120301e06035504030c17436f72706",
            "f7261746520496e7370656374696f6e204341301e170d3234303133313030303030305a170d323430333031303030303",
            "0305a30223120301e06035504030c17436f72706f7261746520496e7370656374696f6e2043413059301306072a8648c",
            "e3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb",
            "3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33a303830140603551d11040d300",
            "b8209642e6578616d706c65300b0603551d0f0404030205a030130603551d0f040c300a06082b06010505070301300a0",
            "6082a8648ce3d040302034700304402205d679672e9b9be6deecdd4a132cdf1d89181febbde99ab1f9c0bb87fa19f4d1",
            "602200eb953b5682ac09586b442a7716ad79f3c59fadd7106029750f1f72a8aae2e66\t434e3d436f72706f7261746520",
            "496e7370656374696f6e204341|434e3d436f72706f7261746520496e7370656374696f6e204341|436f72706f726174",
            "6520496e7370656374696f6e204341|436f72706f7261746520496e7370656374696f6e204341|-|1e6f5308518714c9",
            "1355b274eebd57e315a0d0b7a07391733776434211b20e7f|1|323032342d30312d33315430303a30303a30302b30303",
            "a3030|323032342d30332d30315430303a30303a30302b30303a3030|",
        ),
        concat!(
            "CERT 3082016c30820113a003020122020107300a06082a8648ce3d04030230223120301e06035504030c17436f72706",
            "f7261746520496e7370656374696f6e204341301e170d3234303133313030303030305a170d323430333031303030303",
            "0305a30223120301e06035504030c17436f72706f7261746520496e7370656374696f6e2043413059301306072a8648c",
            "e3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb",
            "3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33a303830140603551d11040d300",
            "b8209642e6578616d706c65300b0603551d0f0404030205a030130603551d25040c300a06082b06010505070301300a0",
            "6082a8648ce3d040302034700304402205d679672e9b9be6deecdd4a132cdf1d89181febbde99ab1f9c0bb87fa19f4d1",
            "602200eb953b5682ac09586b442a7716ad79f3c59fadd7106029750f1f72a8aae2e66\t3c756e7061727361626c652063",
            "657274696669636174653a20496e76616c696456657273696f6e3e|3c756e7061727361626c653e|-|-|-|f925cd48f8",
            "c1b0fc238243ae8a4328c49e98293971b3ce7e780f7d26d47f6625|0|-|-|",
        ),
        concat!(
            "CERT 3082016c30820113a003020101020107300a06082a8648ce3d04030230223120301e06035504030c17436f72706",
            "f7261746520496e7370656374696f6e204341301e170d3234303133313030303030305a170d323430333031303030303",
            "0305a30223120301e06035504030c17436f72706f7261746520496e7370656374696f6e2043413059301306072a8648c",
            "e3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb",
            "3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33a303830140603551d11040d300",
            "b8209642e6578616d706c65300b0603551d0f0404030205a030130603551d25040c300a06082b06010505070301300a0",
            "6082a8648ce3d040302034700304402205d679672e9b9be6deecdd4a132cdf1d89181febbde99ab1f9c0bb87fa19f4d1",
            "602200eb953b5682ac09586b442a7716ad79f3c59fadd7106029750f1f72a8aae2e66\t3c756e7061727361626c652063",
            "657274696669636174653a20496e76616c696456657273696f6e3e|3c756e7061727361626c653e|-|-|-|0a62aba2ed",
            "ccb811b00d2e522a29de6461335837e048745dd15ea2d24b42d654|0|-|-|",
        ),
        concat!(
            "CERT \t3c756e7061727361626c652063657274696669636174653a2056616c75654572726f723e|3c756e70617273616",
            "26c653e|-|-|-|e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855|0|-|-|",
        ),
        concat!(
            "CERT 3003020100\t3c756e7061727361626c652063657274696669636174653a2056616c75654572726f723e|3c756e7",
            "061727361626c653e|-|-|-|b560833d6f787af46113b96aad4dd5b5d1ae00dccc69cf30cc92bed651c56617|0|-|-|",
        ),
        concat!(
            "CERT 3082016c30820113a003020102020107300a06082a8648ce3d04030230223120301e06035504030c17436f72706",
            "f7261746520496e7370656374696f6e204341301e170d3234303133313030303030305a170d323430333031303030303",
            "0305a30223120301e06035504030c17436f72706f7261746520496e7370656374696f6e2043413059301306072a8648c",
            "e3d020106082a8648ce3d030107034200046c43d93651f53d2256404151fe626143392a3a7fc63334ff9064a6e2936bb",
            "3987c8543547d0a7b8f18572d29f66a71e52ff1665419a1cf2813a937e084d08ae4a33a303830140603551d11040d300",
            "b8209642e6578616d706c65300b0603551d0f0404030205a030130603551d25040c300a06082b06010505070301300a0",
            "6082a8648ce3d040302034700304402205d679672e9b9be6deecdd4a132cdf1d89181febbde99ab1f9c0bb87fa19f4d1",
            "602200eb953b5682ac09586b442a7716ad79f3c59fadd7106029750f1f72a8aae2e6600\t3c756e7061727361626c6520",
            "63657274696669636174653a2056616c75654572726f723e|3c756e7061727361626c653e|-|-|-|bac30f2fd690816d",
            "69c94ff3ab89b6a6eb28883e2bd46282570042b4bc619cb5|0|-|-|",
        ),
    ];

    #[test]
    fn vectors_match_python() {
        let text = VECTORS.join("\n");
        let (total, equal) = check_lines(&text);
        assert_eq!((total, equal), (VECTORS.len(), VECTORS.len()));
    }

    #[test]
    fn hostile_certificates_as_the_python() {
        // tests/unit/test_protocols.py::test_cert_info_survives_hostile_certificates
        let der = unhex(
            VECTORS[9]
                .split_once(' ')
                .unwrap()
                .1
                .split_once('\t')
                .unwrap()
                .0,
        );
        let info = cert_info(&der).unwrap();
        assert_eq!(info.subject, "CN=Corporate Inspection CA");
        assert!(info.self_signed);
        let dup = unhex(
            VECTORS[10]
                .split_once(' ')
                .unwrap()
                .1
                .split_once('\t')
                .unwrap()
                .0,
        );
        let info = cert_info(&dup).unwrap();
        assert_eq!(info.subject, "CN=Corporate Inspection CA");
        assert!(info.san.is_empty());
        let v34 = unhex(
            VECTORS[11]
                .split_once(' ')
                .unwrap()
                .1
                .split_once('\t')
                .unwrap()
                .0,
        );
        let info = cert_info(&v34).unwrap();
        assert_eq!(info.subject, "<unparsable certificate: InvalidVersion>");
        assert_eq!(info.issuer, "<unparsable>");
        assert_eq!(info.sha256.len(), 64);
        let info = cert_info(b"").unwrap();
        assert_eq!(info.subject, "<unparsable certificate: ValueError>");
        assert_eq!(
            info.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn escaping_as_cryptography() {
        let mut out = String::new();
        for (v, want) in [
            ("", ""),
            (" ", "\\ "),
            ("  ", "\\ \\ "),
            ("#a", "\\#a"),
            ("a#", "a#"),
            ("a,b+c;d<e>f\"g\\h", "a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h"),
            ("x\0y", "x\\00y"),
        ] {
            out.clear();
            escape_dn_value(&Value::Str(v.to_string()), &mut out);
            assert_eq!(out, want, "{v:?}");
        }
        out.clear();
        escape_dn_value(&Value::Bytes(vec![0, 1, 0xff]), &mut out);
        assert_eq!(out, "#0001ff");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0).as_deref(), Some("1970-01-01T00:00:00+00:00"));
        assert_eq!(
            iso_utc(1_706_659_199).as_deref(),
            Some("2024-01-30T23:59:59+00:00")
        );
        assert_eq!(
            iso_utc(-631_152_000).as_deref(),
            Some("1950-01-01T00:00:00+00:00")
        );
        assert_eq!(
            iso_utc(253_402_300_799).as_deref(),
            Some("9999-12-31T23:59:59+00:00")
        );
        assert_eq!(iso_utc(253_402_300_800), None);
        assert_eq!(iso_utc(i64::MAX), None);
        assert_eq!(iso_utc(i64::MIN), None);
    }

    #[test]
    fn never_panics_on_mutated_certificates() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for v in VECTORS {
            let der = unhex(v.split_once(' ').unwrap().1.split_once('\t').unwrap().0);
            if der.is_empty() {
                continue;
            }
            for _ in 0..200 {
                let mut m = der.clone();
                for _ in 0..3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % m.len();
                    m[i] = (x >> 32) as u8;
                }
                let _ = cert_info(&m);
                let _ = cert_info(&m[..(x as usize >> 8) % m.len()]);
            }
        }
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

//! The `flows` table as reports show it (`pcapaudit.report.columns.FLOW_COLUMNS`, less the
//! classification columns Python joins in), built column by column from the core's rows: the leaf
//! certificate's fields, the chain as JSON, alerts and ICMP notes as text, the Community ID.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema};
use pcapaudit_core::export::{chain_json, community_id};
use pcapaudit_core::flow::{DnsTransaction, FlowRecord};

// These batches are kept until the report is written (the whole capture's flows and DNS rows), so each
// column is allocated at its exact size: a builder's buffers keep their spare capacity after `finish`,
// which for mostly empty string columns was most of the table's memory.

fn strings<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> Option<&'a str>) -> ArrayRef {
    let bytes = rows.iter().map(|r| f(r).map_or(0, str::len)).sum();
    let mut b = StringBuilder::with_capacity(rows.len(), bytes);
    for r in rows {
        b.append_option(f(r));
    }
    let mut a = b.finish();
    a.shrink_to_fit();
    Arc::new(a)
}

fn owned<T>(rows: &[T], f: impl Fn(&T) -> Option<String>) -> ArrayRef {
    let values: Vec<Option<String>> = rows.iter().map(f).collect();
    let bytes = values
        .iter()
        .map(|v| v.as_deref().map_or(0, str::len))
        .sum();
    let mut b = StringBuilder::with_capacity(rows.len(), bytes);
    for v in &values {
        b.append_option(v.as_deref());
    }
    let mut a = b.finish();
    a.shrink_to_fit();
    Arc::new(a)
}

macro_rules! col {
    ($builder:ty, $rows:expr, $f:expr) => {{
        let mut b = <$builder>::with_capacity($rows.len());
        for r in $rows {
            b.append_option($f(r));
        }
        let mut a = b.finish();
        a.shrink_to_fit(); // the validity bitmap is built by doubling
        Arc::new(a) as ArrayRef
    }};
}

/// Python's `round(x, 6)` for the durations of the table (to the microsecond).
fn round6(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// The flows table's columns before classification, in `FLOW_COLUMNS` order.
pub fn flow_table(rows: &[FlowRecord]) -> Result<RecordBatch, ArrowError> {
    let mut names: Vec<&str> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut add = |n: &'static str, a: ArrayRef| {
        names.push(n);
        arrays.push(a);
    };
    let ldap = |r: &FlowRecord| r.app_protocol.as_deref() == Some("ldap");
    add("uid", strings(rows, |r| Some(r.uid.as_str())));
    add(
        "ts",
        col!(Float64Builder, rows, |r: &FlowRecord| Some(r.ts)),
    );
    add(
        "ts_last",
        col!(Float64Builder, rows, |r: &FlowRecord| Some(r.ts_last)),
    );
    add(
        "duration",
        col!(Float64Builder, rows, |r: &FlowRecord| Some(round6(
            r.ts_last - r.ts
        ))),
    );
    add("transport", strings(rows, |r| Some(r.transport)));
    add("src_ip", strings(rows, |r| Some(r.src_ip.as_str())));
    add(
        "src_port",
        col!(UInt16Builder, rows, |r: &FlowRecord| Some(r.src_port)),
    );
    add("dst_ip", strings(rows, |r| Some(r.dst_ip.as_str())));
    add(
        "dst_port",
        col!(UInt16Builder, rows, |r: &FlowRecord| Some(r.dst_port)),
    );
    add(
        "ip_version",
        col!(UInt8Builder, rows, |r: &FlowRecord| Some(r.ip_version)),
    );
    add(
        "vlan",
        col!(UInt16Builder, rows, |r: &FlowRecord| r
            .vlan
            .map(|v| v as u16)),
    );
    add(
        "inner_vlan",
        col!(UInt16Builder, rows, |r: &FlowRecord| r
            .inner_vlan
            .map(|v| v as u16)),
    );
    add("state", strings(rows, |r| Some(r.state.as_str())));
    add("conn_state", strings(rows, |r| r.conn_state.as_deref()));
    add("history", strings(rows, |r| Some(r.history.as_str())));
    add(
        "syn_count",
        col!(UInt32Builder, rows, |r: &FlowRecord| Some(r.syn_count)),
    );
    add("one_direction", strings(rows, |r| r.one_direction));
    add(
        "pkts_c2s",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.pkts_c2s)),
    );
    add(
        "pkts_s2c",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.pkts_s2c)),
    );
    add(
        "bytes_c2s",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.bytes_c2s)),
    );
    add(
        "bytes_s2c",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.bytes_s2c)),
    );
    add(
        "payload_c2s",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.payload_c2s)),
    );
    add(
        "payload_s2c",
        col!(UInt64Builder, rows, |r: &FlowRecord| Some(r.payload_s2c)),
    );
    add("app_protocol", strings(rows, |r| r.app_protocol.as_deref()));
    add("sni", strings(rows, |r| r.sni.as_deref()));
    add(
        "alpn",
        owned(rows, |r| (!r.alpn.is_empty()).then(|| r.alpn.join(","))),
    );
    add("tls_version", strings(rows, |r| r.tls_version.as_deref()));
    add(
        "tls_server_version",
        strings(rows, |r| r.tls_server_version.as_deref()),
    );
    add("tls_cipher", strings(rows, |r| r.tls_cipher.as_deref()));
    add(
        "tls_handshake",
        strings(rows, |r| r.tls_handshake.as_deref()),
    );
    add(
        "tls_ech",
        col!(BooleanBuilder, rows, |r: &FlowRecord| (r.sni.is_some()
            || r.tls_handshake.is_some())
        .then_some(r.tls_ech)),
    );
    add(
        "cert_issuer",
        strings(rows, |r| r.certs.first().map(|c| c.issuer.as_str())),
    );
    add(
        "cert_subject",
        strings(rows, |r| r.certs.first().map(|c| c.subject.as_str())),
    );
    add(
        "cert_sha256",
        strings(rows, |r| r.certs.first().map(|c| c.sha256.as_str())),
    );
    add(
        "cert_self_signed",
        col!(BooleanBuilder, rows, |r: &FlowRecord| r
            .certs
            .first()
            .map(|c| c.self_signed)),
    );
    add("cert_chain", owned(rows, chain_json));
    add(
        "tls_alerts",
        owned(rows, |r| {
            (!r.alerts.is_empty()).then(|| {
                r.alerts
                    .iter()
                    .map(|a| {
                        let who = if a.sender == 0 { "client" } else { "server" };
                        let lvl = if a.level == 2 { "fatal" } else { "warning" };
                        format!("{who}:{lvl}:{}", a.description)
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
        }),
    );
    add(
        "tls_server_shape",
        strings(rows, |r| r.tls_server_shape.as_deref()),
    );
    add(
        "tls_server_flight",
        col!(UInt32Builder, rows, |r: &FlowRecord| (!r
            .tls_server_flight
            .is_empty())
        .then(|| r.tls_server_flight.iter().map(|&l| u32::from(l)).sum())),
    );
    add("quic_version", strings(rows, |r| r.quic_version.as_deref()));
    add("http_method", strings(rows, |r| r.http_method.as_deref()));
    add("http_host", strings(rows, |r| r.http_host.as_deref()));
    add("http_uri", strings(rows, |r| r.http_uri.as_deref()));
    add(
        "http_status",
        col!(UInt16Builder, rows, |r: &FlowRecord| r.http_status),
    );
    add("connect_host", strings(rows, |r| r.connect_host.as_deref()));
    add(
        "connect_port",
        col!(UInt16Builder, rows, |r: &FlowRecord| r.connect_port),
    );
    add(
        "ldap_simple_bind",
        col!(BooleanBuilder, rows, |r: &FlowRecord| ldap(r)
            .then_some(r.ldap_simple_bind)),
    );
    add(
        "ldap_starttls",
        col!(BooleanBuilder, rows, |r: &FlowRecord| ldap(r)
            .then_some(r.ldap_starttls)),
    );
    add(
        "smtp_starttls",
        col!(BooleanBuilder, rows, |r: &FlowRecord| r.smtp_starttls),
    );
    add(
        "icmp",
        owned(rows, |r| {
            (!r.icmp.is_empty()).then(|| {
                r.icmp
                    .iter()
                    .map(|(t, c, rep)| format!("{t}/{c} from {rep}"))
                    .collect::<Vec<_>>()
                    .join(";")
            })
        }),
    );
    add("dns_name", strings(rows, |r| r.dns_name.as_deref()));
    add(
        "dns_names",
        owned(rows, |r| {
            (!r.dns_names.is_empty()).then(|| r.dns_names.join(";"))
        }),
    );
    add("process", strings(rows, |r| r.process.as_deref()));
    add("pid", col!(UInt32Builder, rows, |r: &FlowRecord| r.pid));
    add("eprocess", strings(rows, |r| r.eprocess.as_deref()));
    add("interface", strings(rows, |r| r.interface.as_deref()));
    add(
        "community_id",
        owned(rows, |r| {
            community_id(r.transport, &r.src_ip, &r.dst_ip, r.src_port, r.dst_port)
        }),
    );
    let fields: Vec<Field> = names
        .iter()
        .zip(&arrays)
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// Addresses a DNS filter answers with to block a name (`pcapaudit.model.SINKHOLE_ADDRESSES`).
const SINKHOLES: [&str; 4] = ["0.0.0.0", "127.0.0.1", "::", "::1"];

/// The dns table's columns before the rule columns Python joins in (`DNS_COLUMNS` less vendor and
/// rule_id): answers as `rtype:value;...`, and whether every address answer is a sinkhole.
pub fn dns_table(rows: &[DnsTransaction]) -> Result<RecordBatch, ArrowError> {
    let mut names: Vec<&str> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut add = |n: &'static str, a: ArrayRef| {
        names.push(n);
        arrays.push(a);
    };
    add(
        "uid",
        strings(rows, |r: &DnsTransaction| Some(r.uid.as_str())),
    );
    add(
        "ts",
        col!(Float64Builder, rows, |r: &DnsTransaction| Some(r.ts)),
    );
    add(
        "client_ip",
        strings(rows, |r: &DnsTransaction| Some(r.client_ip.as_str())),
    );
    add(
        "server_ip",
        strings(rows, |r: &DnsTransaction| Some(r.server_ip.as_str())),
    );
    add(
        "transport",
        strings(rows, |r: &DnsTransaction| Some(r.transport)),
    );
    add(
        "trans_id",
        col!(UInt16Builder, rows, |r: &DnsTransaction| Some(r.trans_id)),
    );
    add(
        "query",
        strings(rows, |r: &DnsTransaction| r.query.as_deref()),
    );
    add(
        "qtype",
        strings(rows, |r: &DnsTransaction| r.qtype.as_deref()),
    );
    add(
        "rcode",
        strings(rows, |r: &DnsTransaction| r.rcode.as_deref()),
    );
    add(
        "answers",
        owned(rows, |r: &DnsTransaction| {
            (!r.answers.is_empty()).then(|| {
                r.answers
                    .iter()
                    .map(|a| format!("{}:{}", a.rtype, a.value))
                    .collect::<Vec<_>>()
                    .join(";")
            })
        }),
    );
    add(
        "rtt",
        col!(Float64Builder, rows, |r: &DnsTransaction| r.rtt),
    );
    add(
        "sinkholed",
        col!(BooleanBuilder, rows, |r: &DnsTransaction| {
            (!r.answers.is_empty()).then(|| {
                let mut addrs = r
                    .answers
                    .iter()
                    .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
                    .peekable();
                addrs.peek().is_some() && addrs.all(|a| SINKHOLES.contains(&a.value.as_str()))
            })
        }),
    );
    add(
        "process",
        strings(rows, |r: &DnsTransaction| r.process.as_deref()),
    );
    add("opcode", strings(rows, |r: &DnsTransaction| Some(r.opcode)));
    add(
        "truncated",
        col!(BooleanBuilder, rows, |r: &DnsTransaction| Some(r.truncated)),
    );
    let fields: Vec<Field> = names
        .iter()
        .zip(&arrays)
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

//! Rows of the core -> Arrow record batches, column by column (no per-row Python objects).
//!
//! Column names and meanings are those of `pcapaudit.model` (FlowRecord, DnsTransaction, Weird);
//! nested values (certificates, alerts, ICMP notes, DNS answers) are lists of structs.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, StringBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder, UInt8Builder,
};
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, RecordBatch, StringArray, StructArray, UInt16Array,
    UInt32Array, UInt8Array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
use pcapaudit_core::flow::{DnsTransaction, FlowRecord, Weird};

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in it {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// A list<utf8> column from per-row string lists.
fn string_lists<'a, I>(rows: impl Iterator<Item = I>) -> (Field, ArrayRef)
where
    I: IntoIterator<Item = &'a String>,
{
    let mut offsets = vec![0i32];
    let mut values = StringBuilder::new();
    for row in rows {
        for s in row {
            values.append_value(s);
        }
        offsets.push(values.len() as i32);
    }
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let arr = ListArray::new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(values.finish()),
        None,
    );
    (Field::new("_", DataType::List(item), false), Arc::new(arr))
}

/// A list<struct> column from per-row counts and the flattened struct children.
fn struct_lists(counts: &[usize], children: Vec<(&str, ArrayRef)>) -> (DataType, ArrayRef) {
    let fields: Fields = children
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect::<Vec<_>>()
        .into();
    let arrays: Vec<ArrayRef> = children.into_iter().map(|(_, a)| a).collect();
    let values = StructArray::new(fields.clone(), arrays, None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
    let offsets = OffsetBuffer::from_lengths(counts.iter().copied());
    let arr = ListArray::new(item.clone(), offsets, Arc::new(values), None);
    (DataType::List(item), Arc::new(arr))
}

struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn new() -> Self {
        Columns {
            fields: Vec::new(),
            arrays: Vec::new(),
        }
    }
    fn add(&mut self, name: &str, arr: ArrayRef) {
        self.fields
            .push(Field::new(name, arr.data_type().clone(), true));
        self.arrays.push(arr);
    }
    fn finish(self) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
    }
}

macro_rules! prim {
    ($builder:ty, $rows:expr, $f:expr) => {{
        let mut b = <$builder>::with_capacity($rows.len());
        for r in $rows {
            b.append_option($f(r));
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

/// Finished flows -> one record batch (the `flows` columns of FlowRecord).
pub fn flows_batch(rows: &[FlowRecord]) -> Result<RecordBatch, ArrowError> {
    let mut c = Columns::new();
    c.add("uid", strings(rows.iter().map(|r| Some(r.uid.as_str()))));
    c.add(
        "ts",
        prim!(Float64Builder, rows, |r: &FlowRecord| Some(r.ts)),
    );
    c.add(
        "ts_last",
        prim!(Float64Builder, rows, |r: &FlowRecord| Some(r.ts_last)),
    );
    c.add("transport", strings(rows.iter().map(|r| Some(r.transport))));
    c.add(
        "src_ip",
        strings(rows.iter().map(|r| Some(r.src_ip.as_str()))),
    );
    c.add(
        "src_port",
        prim!(UInt16Builder, rows, |r: &FlowRecord| Some(r.src_port)),
    );
    c.add(
        "dst_ip",
        strings(rows.iter().map(|r| Some(r.dst_ip.as_str()))),
    );
    c.add(
        "dst_port",
        prim!(UInt16Builder, rows, |r: &FlowRecord| Some(r.dst_port)),
    );
    c.add(
        "ip_version",
        prim!(UInt8Builder, rows, |r: &FlowRecord| Some(r.ip_version)),
    );
    c.add(
        "pkts_c2s",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.pkts_c2s)),
    );
    c.add(
        "pkts_s2c",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.pkts_s2c)),
    );
    c.add(
        "bytes_c2s",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.bytes_c2s)),
    );
    c.add(
        "bytes_s2c",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.bytes_s2c)),
    );
    c.add(
        "payload_c2s",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.payload_c2s)),
    );
    c.add(
        "payload_s2c",
        prim!(UInt64Builder, rows, |r: &FlowRecord| Some(r.payload_s2c)),
    );
    c.add(
        "conn_state",
        strings(rows.iter().map(|r| r.conn_state.as_deref())),
    );
    c.add(
        "state",
        strings(rows.iter().map(|r| Some(r.state.as_str()))),
    );
    c.add(
        "history",
        strings(rows.iter().map(|r| Some(r.history.as_str()))),
    );
    c.add(
        "syn_count",
        prim!(UInt32Builder, rows, |r: &FlowRecord| Some(r.syn_count)),
    );
    c.add(
        "one_direction",
        strings(rows.iter().map(|r| r.one_direction)),
    );
    c.add("vlan", prim!(UInt32Builder, rows, |r: &FlowRecord| r.vlan));
    c.add(
        "inner_vlan",
        prim!(UInt32Builder, rows, |r: &FlowRecord| r.inner_vlan),
    );
    c.add("sni", strings(rows.iter().map(|r| r.sni.as_deref())));
    c.add("alpn", string_lists(rows.iter().map(|r| r.alpn.iter())).1);
    c.add(
        "tls_version",
        strings(rows.iter().map(|r| r.tls_version.as_deref())),
    );
    c.add(
        "tls_cipher",
        strings(rows.iter().map(|r| r.tls_cipher.as_deref())),
    );
    c.add(
        "tls_server_version",
        strings(rows.iter().map(|r| r.tls_server_version.as_deref())),
    );
    c.add(
        "tls_ech",
        prim!(BooleanBuilder, rows, |r: &FlowRecord| Some(r.tls_ech)),
    );
    c.add(
        "tls_handshake",
        strings(rows.iter().map(|r| r.tls_handshake.as_deref())),
    );
    // certificates: list<struct<subject, issuer, ..., san: list<utf8>>>
    {
        let certs: Vec<_> = rows.iter().flat_map(|r| r.certs.iter()).collect();
        let counts: Vec<usize> = rows.iter().map(|r| r.certs.len()).collect();
        let (_, san) = string_lists(certs.iter().map(|c| c.san.iter()));
        let children = vec![
            (
                "subject",
                strings(certs.iter().map(|x| Some(x.subject.as_str()))),
            ),
            (
                "issuer",
                strings(certs.iter().map(|x| Some(x.issuer.as_str()))),
            ),
            (
                "subject_cn",
                strings(certs.iter().map(|x| x.subject_cn.as_deref())),
            ),
            (
                "issuer_cn",
                strings(certs.iter().map(|x| x.issuer_cn.as_deref())),
            ),
            (
                "issuer_org",
                strings(certs.iter().map(|x| x.issuer_org.as_deref())),
            ),
            (
                "sha256",
                strings(certs.iter().map(|x| Some(x.sha256.as_str()))),
            ),
            (
                "self_signed",
                Arc::new(BooleanArray::from(
                    certs
                        .iter()
                        .map(|x| Some(x.self_signed))
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "not_before",
                strings(certs.iter().map(|x| x.not_before.as_deref())),
            ),
            (
                "not_after",
                strings(certs.iter().map(|x| x.not_after.as_deref())),
            ),
            ("san", san),
        ];
        c.add("certs", struct_lists(&counts, children).1);
    }
    {
        let alerts: Vec<_> = rows.iter().flat_map(|r| r.alerts.iter()).collect();
        let counts: Vec<usize> = rows.iter().map(|r| r.alerts.len()).collect();
        let children = vec![
            (
                "sender",
                Arc::new(StringArray::from(
                    alerts
                        .iter()
                        .map(|a| Some(if a.sender == 0 { "client" } else { "server" }))
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "level",
                Arc::new(UInt8Array::from(
                    alerts.iter().map(|a| a.level).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "description",
                Arc::new(UInt8Array::from(
                    alerts.iter().map(|a| a.description).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "after_server_flight",
                Arc::new(BooleanArray::from(
                    alerts
                        .iter()
                        .map(|a| Some(a.after_server_flight))
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ];
        c.add("alerts", struct_lists(&counts, children).1);
    }
    {
        let recs: Vec<_> = rows
            .iter()
            .flat_map(|r| r.client_records_after_server.iter())
            .collect();
        let counts: Vec<usize> = rows
            .iter()
            .map(|r| r.client_records_after_server.len())
            .collect();
        let children = vec![
            (
                "content_type",
                Arc::new(UInt8Array::from(
                    recs.iter().map(|x| x.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "length",
                Arc::new(UInt16Array::from(
                    recs.iter().map(|x| x.1).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ];
        c.add(
            "client_records_after_server",
            struct_lists(&counts, children).1,
        );
    }
    c.add(
        "tls_server_shape",
        strings(rows.iter().map(|r| r.tls_server_shape.as_deref())),
    );
    {
        let lens: Vec<u16> = rows
            .iter()
            .flat_map(|r| r.tls_server_flight.iter().copied())
            .collect();
        let counts: Vec<usize> = rows.iter().map(|r| r.tls_server_flight.len()).collect();
        let children = vec![("length", Arc::new(UInt16Array::from(lens)) as ArrayRef)];
        c.add("tls_server_flight", struct_lists(&counts, children).1);
    }
    c.add(
        "quic_version",
        strings(rows.iter().map(|r| r.quic_version.as_deref())),
    );
    c.add(
        "http_method",
        strings(rows.iter().map(|r| r.http_method.as_deref())),
    );
    c.add(
        "http_host",
        strings(rows.iter().map(|r| r.http_host.as_deref())),
    );
    c.add(
        "http_uri",
        strings(rows.iter().map(|r| r.http_uri.as_deref())),
    );
    c.add(
        "http_status",
        prim!(UInt16Builder, rows, |r: &FlowRecord| r.http_status),
    );
    c.add(
        "connect_host",
        strings(rows.iter().map(|r| r.connect_host.as_deref())),
    );
    c.add(
        "connect_port",
        prim!(UInt16Builder, rows, |r: &FlowRecord| r.connect_port),
    );
    c.add(
        "app_protocol",
        strings(rows.iter().map(|r| r.app_protocol.as_deref())),
    );
    c.add(
        "ldap_simple_bind",
        prim!(BooleanBuilder, rows, |r: &FlowRecord| Some(
            r.ldap_simple_bind
        )),
    );
    c.add(
        "ldap_starttls",
        prim!(BooleanBuilder, rows, |r: &FlowRecord| Some(r.ldap_starttls)),
    );
    c.add(
        "smtp_starttls",
        prim!(BooleanBuilder, rows, |r: &FlowRecord| r.smtp_starttls),
    );
    {
        let notes: Vec<_> = rows.iter().flat_map(|r| r.icmp.iter()).collect();
        let counts: Vec<usize> = rows.iter().map(|r| r.icmp.len()).collect();
        let children = vec![
            (
                "type",
                Arc::new(UInt8Array::from(
                    notes.iter().map(|x| x.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "code",
                Arc::new(UInt8Array::from(
                    notes.iter().map(|x| x.1).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "reporter",
                strings(notes.iter().map(|x| Some(x.2.as_str()))),
            ),
        ];
        c.add("icmp", struct_lists(&counts, children).1);
    }
    c.add(
        "dns_name",
        strings(rows.iter().map(|r| r.dns_name.as_deref())),
    );
    c.add(
        "dns_names",
        string_lists(rows.iter().map(|r| r.dns_names.iter())).1,
    );
    c.add(
        "process",
        strings(rows.iter().map(|r| r.process.as_deref())),
    );
    c.add("pid", prim!(UInt32Builder, rows, |r: &FlowRecord| r.pid));
    c.add(
        "eprocess",
        strings(rows.iter().map(|r| r.eprocess.as_deref())),
    );
    c.add(
        "interface",
        strings(rows.iter().map(|r| r.interface.as_deref())),
    );
    c.finish()
}

/// DNS transactions -> one record batch (answers as list<struct<name, rtype, value, ttl>>).
pub fn dns_batch(rows: &[DnsTransaction]) -> Result<RecordBatch, ArrowError> {
    let mut c = Columns::new();
    c.add("uid", strings(rows.iter().map(|r| Some(r.uid.as_str()))));
    c.add(
        "ts",
        prim!(Float64Builder, rows, |r: &DnsTransaction| Some(r.ts)),
    );
    c.add(
        "client_ip",
        strings(rows.iter().map(|r| Some(r.client_ip.as_str()))),
    );
    c.add(
        "server_ip",
        strings(rows.iter().map(|r| Some(r.server_ip.as_str()))),
    );
    c.add("transport", strings(rows.iter().map(|r| Some(r.transport))));
    c.add(
        "trans_id",
        prim!(UInt16Builder, rows, |r: &DnsTransaction| Some(r.trans_id)),
    );
    c.add("query", strings(rows.iter().map(|r| r.query.as_deref())));
    c.add("qtype", strings(rows.iter().map(|r| r.qtype.as_deref())));
    c.add("rcode", strings(rows.iter().map(|r| r.rcode.as_deref())));
    {
        let ans: Vec<_> = rows.iter().flat_map(|r| r.answers.iter()).collect();
        let counts: Vec<usize> = rows.iter().map(|r| r.answers.len()).collect();
        let children = vec![
            ("name", strings(ans.iter().map(|a| Some(a.name.as_str())))),
            ("rtype", strings(ans.iter().map(|a| Some(a.rtype.as_str())))),
            ("value", strings(ans.iter().map(|a| Some(a.value.as_str())))),
            (
                "ttl",
                Arc::new(UInt32Array::from(
                    ans.iter().map(|a| a.ttl).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ];
        c.add("answers", struct_lists(&counts, children).1);
    }
    c.add(
        "rtt",
        prim!(Float64Builder, rows, |r: &DnsTransaction| r.rtt),
    );
    c.add(
        "process",
        strings(rows.iter().map(|r| r.process.as_deref())),
    );
    c.add("opcode", strings(rows.iter().map(|r| Some(r.opcode))));
    c.add(
        "truncated",
        prim!(BooleanBuilder, rows, |r: &DnsTransaction| Some(r.truncated)),
    );
    c.finish()
}

/// Weird rows -> one record batch.
pub fn weirds_batch(rows: &[Weird]) -> Result<RecordBatch, ArrowError> {
    let mut c = Columns::new();
    c.add("ts", prim!(Float64Builder, rows, |r: &Weird| r.ts));
    c.add("name", strings(rows.iter().map(|r| Some(r.name.as_str()))));
    c.add("uid", strings(rows.iter().map(|r| r.uid.as_deref())));
    c.add(
        "detail",
        strings(rows.iter().map(|r| Some(r.detail.as_str()))),
    );
    c.add(
        "count",
        prim!(UInt64Builder, rows, |r: &Weird| Some(r.count)),
    );
    c.finish()
}

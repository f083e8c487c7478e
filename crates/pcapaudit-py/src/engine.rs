//! `_core.Engine`: the flow table fed batch by batch; finished rows leave as Arrow record batches.

use pcapaudit_core::capture::bpf::{Insn, PacketFilter};
use pcapaudit_core::capture::{PacketBatch, ProcessInfo};
use std::collections::VecDeque;

use pcapaudit_core::flow::{DnsTransaction, Engine, EngineConfig, FlowRecord};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3_arrow::PyRecordBatch;
use std::collections::HashMap;

use crate::capture::Capture;
use crate::columns::{dns_batch, flows_batch, weirds_batch};
use crate::table::{dns_table, flow_table};
use crate::{guard, CoreError};

/// (command, pid, effective command) of a process, as Python's PacketBatch lists them.
type ProcessTuple = (String, Option<u32>, Option<String>);

/// A classic BPF program as (code, jt, jf, k) tuples, per link type (`Engine.set_filter`).
type Programs = HashMap<u32, Vec<(u16, u8, u8, u32)>>;

/// The flow engine. `config` is a dict of EngineConfig values (Python's `engine.EngineConfig` names).
#[pyclass(name = "Engine", module = "pcapaudit._core")]
pub struct PyEngine {
    inner: Engine,
    /// finished rows not handed out yet: Python takes them in chunks, so a flush that ends every flow
    /// at once does not become one giant batch on the Python side
    flows: VecDeque<FlowRecord>,
    dns: VecDeque<DnsTransaction>,
}

fn config_from(d: Option<&Bound<'_, PyDict>>) -> PyResult<EngineConfig> {
    let mut cfg = EngineConfig::default();
    let Some(d) = d else { return Ok(cfg) };
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "idle_tcp" => cfg.idle_tcp = v.extract()?,
            "idle_udp" => cfg.idle_udp = v.extract()?,
            "idle_dns" => cfg.idle_dns = v.extract()?,
            "idle_dns_answered" => cfg.idle_dns_answered = v.extract()?,
            "close_delay" => cfg.close_delay = v.extract()?,
            "unanswered" => cfg.unanswered = v.extract()?,
            "max_flows" => cfg.max_flows = v.extract()?,
            "processes" => cfg.processes = v.extract()?,
            "partition" => cfg.partition = v.extract()?,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown engine option {other:?}"
                )))
            }
        }
    }
    Ok(cfg)
}

/// Append `more` to the rows waiting for Python; into an empty queue without copying them.
fn extend<T>(queue: &mut VecDeque<T>, more: Vec<T>) {
    if queue.is_empty() {
        *queue = VecDeque::from(more);
    } else {
        queue.extend(more);
    }
}

fn arrow_err(e: arrow_schema::ArrowError) -> PyErr {
    CoreError::new_err(format!("internal error building Arrow columns: {e}"))
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(config: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let cfg = config_from(config)?;
        guard("Engine", || {
            Ok(PyEngine {
                inner: Engine::new(cfg),
                flows: VecDeque::new(),
                dns: VecDeque::new(),
            })
        })
    }

    /// Audit only the packets a filter keeps (call before the first batch): `programs` maps a link
    /// type to its classic BPF program as (code, jt, jf, k) tuples (libpcap's compilation; None: no
    /// BPF filter), and packets must have `start <= ts < end` (None: unbounded). The others are
    /// skipped before decoding and counted in stats (filtered, outside_window,
    /// unfiltered_linktypes). A program that does not validate is a ValueError.
    #[pyo3(signature = (programs=None, start=None, end=None))]
    fn set_filter(
        &mut self,
        programs: Option<Programs>,
        start: Option<f64>,
        end: Option<f64>,
    ) -> PyResult<()> {
        if programs.is_none() && start.is_none() && end.is_none() {
            self.inner.set_filter(None);
            return Ok(());
        }
        let programs = programs.map(|m| {
            m.into_iter()
                .map(|(lt, p)| {
                    let insns = p
                        .into_iter()
                        .map(|(code, jt, jf, k)| Insn::new(code, jt, jf, k))
                        .collect();
                    (lt, insns)
                })
                .collect()
        });
        let f = PacketFilter::new(programs, start, end)
            .map_err(|e| PyValueError::new_err(format!("set_filter: {e}")))?;
        self.inner.set_filter(Some(f));
        Ok(())
    }

    /// Read and process one batch of about `max_bytes` from `capture`; False at its end.
    #[pyo3(signature = (capture, max_bytes=8 << 20))]
    fn feed(&mut self, py: Python<'_>, capture: &mut Capture, max_bytes: usize) -> PyResult<bool> {
        let engine = &mut self.inner;
        let reader = capture.reader.get_mut().unwrap_or_else(|e| e.into_inner());
        py.detach(|| {
            guard("Engine.feed", || match reader.next_batch(max_bytes) {
                Some(batch) => {
                    engine.process_batch(&batch, &reader.ifnames, &reader.processes);
                    Ok(true)
                }
                None => Ok(false),
            })
        })
    }

    /// Process packets read elsewhere (live capture, or a batch of the Python reader): columns over one
    /// buffer, with the interface index of each row into `ifnames` and its process index into
    /// `processes` ((command, pid, effective command) tuples) when the capture names them (-1: none).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (buf, off, caplen, wirelen, ts, linktype, iface=None, ifnames=None, proc=None, processes=None))]
    fn feed_columns(
        &mut self,
        py: Python<'_>,
        buf: Vec<u8>,
        off: Vec<i64>,
        caplen: Vec<i64>,
        wirelen: Vec<i64>,
        ts: Vec<f64>,
        linktype: Vec<i64>,
        iface: Option<Vec<i32>>,
        ifnames: Option<Vec<String>>,
        proc: Option<Vec<i32>>,
        processes: Option<Vec<ProcessTuple>>,
    ) -> PyResult<()> {
        let n = off.len();
        if caplen.len() != n || wirelen.len() != n || ts.len() != n || linktype.len() != n {
            return Err(PyValueError::new_err(
                "feed_columns: columns of different lengths",
            ));
        }
        let ifnames = ifnames.unwrap_or_default();
        let processes: Vec<ProcessInfo> = processes
            .unwrap_or_default()
            .into_iter()
            .map(|(command, pid, ecommand)| ProcessInfo {
                command,
                pid,
                ecommand,
            })
            .collect();
        let check = |col: &Option<Vec<i32>>, names: usize, what: &str| -> PyResult<Vec<i32>> {
            match col {
                None => Ok(Vec::new()),
                Some(v) if v.len() != n => Err(PyValueError::new_err(format!(
                    "feed_columns: {what} has {} rows, not {n}",
                    v.len()
                ))),
                Some(v) => Ok(v
                    .iter()
                    .map(|&i| {
                        if i >= 0 && (i as usize) < names {
                            i
                        } else {
                            -1
                        }
                    })
                    .collect()),
            }
        };
        let iface = check(&iface, ifnames.len(), "iface")?;
        let proc = check(&proc, processes.len(), "proc")?;
        let mut batch = PacketBatch::default();
        for i in 0..n {
            let (o, c) = (off[i], caplen[i]);
            if o < 0 || c < 0 || (o as u64).saturating_add(c as u64) > buf.len() as u64 {
                return Err(PyValueError::new_err(format!(
                    "feed_columns: packet {i} lies outside the buffer"
                )));
            }
            batch.off.push(o as usize);
            batch.caplen.push(c as u32);
            batch
                .wirelen
                .push(wirelen[i].clamp(0, u32::MAX as i64) as u32);
            batch.ts.push(ts[i]);
            batch
                .linktype
                .push(linktype[i].clamp(0, u32::MAX as i64) as u32);
        }
        batch.buf = buf;
        batch.iface = iface;
        batch.proc = proc;
        let engine = &mut self.inner;
        py.detach(|| {
            guard("Engine.feed_columns", || {
                engine.process_batch(&batch, &ifnames, &processes);
                Ok(())
            })
        })
    }

    /// Let flows idle past their timeout at `now` (seconds since the epoch) finish while no packet
    /// arrives (live capture).
    fn expire(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let engine = &mut self.inner;
        py.detach(|| {
            guard("Engine.expire", || {
                engine.expire(now, false);
                Ok(())
            })
        })
    }

    /// Flows currently held in the table.
    #[getter]
    fn active_flows(&self) -> usize {
        self.inner.active_flows()
    }

    /// End of input: every remaining flow is finished.
    fn flush(&mut self, py: Python<'_>) -> PyResult<()> {
        let engine = &mut self.inner;
        py.detach(|| {
            guard("Engine.flush", || {
                engine.flush();
                Ok(())
            })
        })
    }

    /// End of input, a part at a time: up to `max_rows` of the remaining flows are finished; true
    /// while more remain (take each part's rows before the next call).
    fn flush_step(&mut self, py: Python<'_>, max_rows: usize) -> PyResult<bool> {
        let engine = &mut self.inner;
        py.detach(|| guard("Engine.flush_step", || Ok(engine.flush_step(max_rows))))
    }

    /// Up to `max_rows` flows finished and not taken yet, as two pyarrow RecordBatches of the same
    /// rows: the records (nested columns, as `FlowRecord` has them) and the flows table's columns.
    #[pyo3(signature = (max_rows=usize::MAX))]
    fn take_flows<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        extend(&mut self.flows, self.inner.take_flows());
        let n = max_rows.min(self.flows.len());
        let rows: Vec<FlowRecord> = self.flows.drain(..n).collect();
        let (rb, tb) = guard("take_flows", || {
            Ok((
                flows_batch(&rows).map_err(arrow_err)?,
                flow_table(&rows).map_err(arrow_err)?,
            ))
        })?;
        Ok((
            PyRecordBatch::new(rb).into_pyarrow(py)?,
            PyRecordBatch::new(tb).into_pyarrow(py)?,
        ))
    }

    /// Up to `max_rows` flows finished and not taken yet: the flows table's columns (a pyarrow
    /// RecordBatch) and the same rows as `FlowRows`, whose records (nested columns) are built only for
    /// the rows Python asks for (most flows never need one).
    #[pyo3(signature = (max_rows=usize::MAX))]
    fn take_flow_table<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<(FlowRows, Bound<'py, PyAny>)> {
        extend(&mut self.flows, self.inner.take_flows());
        let n = max_rows.min(self.flows.len());
        let rows: Vec<FlowRecord> = self.flows.drain(..n).collect();
        let tb = guard("take_flow_table", || flow_table(&rows).map_err(arrow_err))?;
        Ok((FlowRows { rows }, PyRecordBatch::new(tb).into_pyarrow(py)?))
    }

    /// Up to `max_rows` DNS transactions finished and not taken yet, as two pyarrow RecordBatches of
    /// the same rows: the transactions (answers nested) and the dns table's columns.
    #[pyo3(signature = (max_rows=usize::MAX))]
    fn take_dns<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        extend(&mut self.dns, self.inner.take_dns());
        let n = max_rows.min(self.dns.len());
        let rows: Vec<DnsTransaction> = self.dns.drain(..n).collect();
        let (rb, tb) = guard("take_dns", || {
            Ok((
                dns_batch(&rows).map_err(arrow_err)?,
                dns_table(&rows).map_err(arrow_err)?,
            ))
        })?;
        Ok((
            PyRecordBatch::new(rb).into_pyarrow(py)?,
            PyRecordBatch::new(tb).into_pyarrow(py)?,
        ))
    }

    /// Up to `max_rows` DNS transactions finished and not taken yet: the dns table's columns and the
    /// same rows as `DnsRows`, whose records (answers nested) are built only for the rows asked for.
    #[pyo3(signature = (max_rows=usize::MAX))]
    fn take_dns_table<'py>(
        &mut self,
        py: Python<'py>,
        max_rows: usize,
    ) -> PyResult<(DnsRows, Bound<'py, PyAny>)> {
        extend(&mut self.dns, self.inner.take_dns());
        let n = max_rows.min(self.dns.len());
        let rows: Vec<DnsTransaction> = self.dns.drain(..n).collect();
        let tb = guard("take_dns_table", || dns_table(&rows).map_err(arrow_err))?;
        Ok((DnsRows { rows }, PyRecordBatch::new(tb).into_pyarrow(py)?))
    }

    /// Weirds since the last call, as a pyarrow RecordBatch.
    fn take_weirds<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = self.inner.take_weirds();
        let rb = guard("take_weirds", || weirds_batch(&rows).map_err(arrow_err))?;
        PyRecordBatch::new(rb).into_pyarrow(py)
    }

    /// The addresses DNS answers gave for `name` (findings check a server against them).
    fn dns_addresses<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.dns_map().addresses(name))
    }
    /// The run's counters as a dict (packets, bytes, decoded, not_ip, fragments, tunnels, weird counts,
    /// interface copies, flow-table figures, first/last packet time).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("packets", s.packets)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("decoded", s.decoded)?;
        d.set_item("not_ip", s.not_ip)?;
        d.set_item("fragments", s.fragments)?;
        d.set_item("fragmented_datagrams", s.fragmented_datagrams)?;
        d.set_item("tunnels", s.tunnels.into_iter().collect::<Vec<_>>())?;
        d.set_item("weird", s.weird)?;
        d.set_item("weird_counts", s.weird_counts)?;
        d.set_item("copies", s.copies)?;
        d.set_item("active", s.active)?;
        d.set_item("max_active", s.max_active)?;
        d.set_item("ended_early", s.ended_early)?;
        d.set_item("hash_collisions", s.hash_collisions)?;
        d.set_item("orphan_icmp", s.orphan_icmp)?;
        d.set_item("flows_emitted", s.flows_emitted)?;
        d.set_item("dns_evicted", s.dns_evicted)?;
        d.set_item("first_ts", s.first_ts)?;
        d.set_item("last_ts", s.last_ts)?;
        d.set_item("filtered", s.filtered)?;
        d.set_item("outside_window", s.outside_window)?;
        d.set_item("seen_first_ts", s.seen_first_ts)?;
        d.set_item("seen_last_ts", s.seen_last_ts)?;
        d.set_item("unfiltered_linktypes", s.unfiltered_linktypes)?;
        Ok(d)
    }

    /// Weird rows past the per-name cap, one summary row per name ("N more not listed").
    fn weird_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = self.inner.weird_summary();
        let rb = guard("weird_summary", || weirds_batch(&rows).map_err(arrow_err))?;
        PyRecordBatch::new(rb).into_pyarrow(py)
    }

    /// ICMP errors whose quoted flow is not in the capture, since the last call: a list of
    /// (ts, ipver, proto, src bytes, dst bytes, sport, dport, type, code, reporter).
    #[allow(clippy::type_complexity)]
    fn take_orphan_icmp(
        &mut self,
    ) -> Vec<(f64, u8, u8, Vec<u8>, Vec<u8>, u16, u16, u8, u8, String)> {
        self.inner
            .take_orphan_icmp()
            .into_iter()
            .map(|o| {
                let q = o.quoted;
                let addr = |a: u128| {
                    if q.ipver == 4 {
                        (a as u32).to_be_bytes().to_vec()
                    } else {
                        a.to_be_bytes().to_vec()
                    }
                };
                (
                    o.ts,
                    q.ipver,
                    q.proto,
                    addr(q.src),
                    addr(q.dst),
                    q.sport,
                    q.dport,
                    o.icmp_type,
                    o.icmp_code,
                    o.reporter,
                )
            })
            .collect()
    }

    /// Record a weird from outside the core (a truncated capture, ...), counted with the core's own.
    fn add_weird(&mut self, ts: Option<f64>, name: String, detail: String) {
        self.inner.add_weird(pcapaudit_core::flow::Weird {
            ts,
            name,
            uid: None,
            detail,
            count: 1,
        });
    }
}

/// The rows of `rows` at `indices` (negative from the end), cloned; IndexError for one out of range.
fn pick<T: Clone>(rows: &[T], indices: Vec<i64>) -> PyResult<Vec<T>> {
    let n = rows.len() as i64;
    let mut picked = Vec::with_capacity(indices.len());
    for i in indices {
        let j = if i < 0 { i + n } else { i };
        if !(0..n).contains(&j) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "row {i} of {n}"
            )));
        }
        picked.push(rows[j as usize].clone());
    }
    Ok(picked)
}

/// Finished DNS transactions handed to Python (`Engine.take_dns_table`): their records as a pyarrow
/// RecordBatch, for the rows asked for.
#[pyclass(name = "DnsRows", module = "pcapaudit._core", frozen)]
pub struct DnsRows {
    rows: Vec<DnsTransaction>,
}

#[pymethods]
impl DnsRows {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// The records of rows `indices` (in that order) as a RecordBatch (answers nested); IndexError for
    /// a row out of range.
    fn take<'py>(&self, py: Python<'py>, indices: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
        let picked = pick(&self.rows, indices)?;
        let rb = guard("DnsRows.take", || dns_batch(&picked).map_err(arrow_err))?;
        PyRecordBatch::new(rb).into_pyarrow(py)
    }
}

/// Finished flows handed to Python (`Engine.take_flow_table`): their records as a pyarrow RecordBatch,
/// for the rows asked for.
#[pyclass(name = "FlowRows", module = "pcapaudit._core", frozen)]
pub struct FlowRows {
    rows: Vec<FlowRecord>,
}

#[pymethods]
impl FlowRows {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// The records of rows `indices` (in that order) as a RecordBatch of nested columns; IndexError
    /// for a row out of range.
    fn take<'py>(&self, py: Python<'py>, indices: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
        let picked = pick(&self.rows, indices)?;
        let rb = guard("FlowRows.take", || flows_batch(&picked).map_err(arrow_err))?;
        PyRecordBatch::new(rb).into_pyarrow(py)
    }
}

"""Command line: ``pcapaudit audit``, ``pcapaudit live``, ``pcapaudit rules``.

``main(argv) -> int`` never raises for bad input: capture, ruleset and usage problems print one line
to stderr and return 2. Exit codes: 0 no finding at or above ``--fail-on``, 1 findings, 2 cannot run
(or the input was cut short: the report is still written first), 130 interrupted before a report.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections import Counter

from pcapaudit.config import load_config, max_flows_problem, parse_kv, vendor_names
from pcapaudit.errors import CaptureError, ConfigError, PcapAuditError, RulesetError, UsageError, one_line
from pcapaudit.model import Severity

log = logging.getLogger("pcapaudit")

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
FORMATS = ("table", "json", "jsonl", "csv", "parquet", "markdown", "html")
TABLE_NAMES = ("findings", "coverage", "flows", "dns", "weirds")
DEFAULT_TEXT_TABLES = ("findings", "coverage", "flows")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line (main adds a hint to --help), exit 2 (argparse's own convention)
        raise UsageError(message)


COMMANDS = ("audit", "live", "crosscheck", "rules")


def help_hint(argv: list[str]) -> str:
    """``see 'pcapaudit audit --help'``: the help of the command the arguments name."""
    words = ["pcapaudit"]
    cmd = next((a for a in argv if not a.startswith("-")), None)
    if cmd in COMMANDS:
        words.append(cmd)
        rest = argv[argv.index(cmd) + 1:]
        action = next((a for a in rest if not a.startswith("-")), None)
        if cmd == "rules" and action in ("list", "show", "validate"):
            words.append(action)
    return f"see '{' '.join(words)} --help'"


def _whole(text: str, lo: int, hi: int | None = None) -> int | None:
    """``text`` as a whole number from ``lo`` to ``hi``, else None."""
    try:
        n = int(text)
    except ValueError:
        return None
    return n if n >= lo and (hi is None or n <= hi) else None


def _count(text: str) -> int:
    """A whole number, 0 or more (``--limit``)."""
    n = _whole(text, 0)
    if n is None:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return n


def _snaplen(text: str) -> int:
    n = _whole(text, 64, 262144)
    if n is None:
        raise argparse.ArgumentTypeError(f"expected 64 to 262144 bytes per packet, not {text!r} (a TLS "
                                         "ClientHello needs a few hundred)")  # fmt: skip
    return n


def _max_flows(text: str) -> int:
    n = _whole(text, 0)
    problem = max_flows_problem(text if n is None else n)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return n


def _column_list(text: str) -> list[str]:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, not {text!r}")
    return list(dict.fromkeys(cols))


def _common_report_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rules")
    g.add_argument("--rules", action="append", metavar="PATH",
                   help="ruleset file or directory (repeatable; default: the built-in rulesets; env PCAPAUDIT_RULES)")  # fmt: skip
    g.add_argument("--vendor", metavar="LIST",
                   help="comma-separated vendors to audit against, e.g. apple,jamf-pro (default: all rulesets, "
                        "checklist for the vendors seen in the traffic)")  # fmt: skip
    g.add_argument("--tenant", action="append", default=[], metavar="VENDOR.NAME=VALUE",
                   help="fill a tenant placeholder or region, e.g. kandji.uuid=..., jamf-pro.instance=acme, kandji.region=eu")  # fmt: skip
    g.add_argument("--trust-issuer", action="append", default=[], metavar="NAME",
                   help="also accept certificates issued by this CN or O (glob), e.g. your lab or on-prem CA")  # fmt: skip
    g.add_argument("--device", action="append", default=[], metavar="CIDR",
                   help="audited (managed) hosts; 'no ruleset allows' findings only for flows they start")  # fmt: skip
    g.add_argument("--config", metavar="FILE",
                   help="YAML with any of: rules, vendor, tenants, trust_issuers, devices, fail_on, max_flows")  # fmt: skip
    o = p.add_argument_group("output")
    o.add_argument("-f", "--format", choices=FORMATS, default=os.environ.get("PCAPAUDIT_FORMAT", "table"),
                   help="report format (default table; env PCAPAUDIT_FORMAT)")  # fmt: skip
    o.add_argument("-o", "--output", default=os.environ.get("PCAPAUDIT_OUTPUT"), metavar="PATH",
                   help="write the report here instead of stdout; csv/parquet with several tables write "
                        "PATH.<table>.csv (env PCAPAUDIT_OUTPUT)")  # fmt: skip
    o.add_argument("--table", action="append", choices=TABLE_NAMES, metavar="NAME",
                   help=f"tables to output ({', '.join(TABLE_NAMES)}; repeatable)")  # fmt: skip
    o.add_argument("--limit", type=_count, default=50, metavar="N", help="flows shown in table/markdown output (0: all)")
    o.add_argument("--columns", type=_column_list, metavar="LIST",
                   help="columns shown in table/markdown output, in this order, e.g. uid,sni,dst_ip (each table "
                        "shows those it has; the terminal table otherwise fits the terminal's width, COLUMNS)")  # fmt: skip
    o.add_argument("--fail-on", default=None, metavar="SEVERITY",
                   help="exit 1 when a finding has at least this severity: info, low, medium (default), high, none")  # fmt: skip
    o.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    o.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    # the compiled core audits; the pure-Python engine ("fast", "simple") stays only as the tests' oracle
    p.add_argument("--engine", choices=("core", "fast", "simple"), default="core", help=argparse.SUPPRESS)
    p.add_argument("--max-flows", type=_max_flows, default=None, metavar="N",
                   help="flows held at once (shared by the --jobs processes); past it the flows idle the longest end "
                        "early, as under a flood of spoofed traffic (default 200000; 0: no cap)")  # fmt: skip
    p.add_argument("-j", "--jobs", default="auto", metavar="N",
                   help="processes for one capture (flows are partitioned by client): auto (2+ for files of "
                        "64 MB or more on a multi-core machine), or a number")  # fmt: skip
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log on stderr what was read, by how many processes, and how fast")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (exposed for the docs and tests)."""
    from pcapaudit import __version__

    p = _Parser(prog="pcapaudit", description="Audit packet captures against Apple and MDM vendor network requirements.")
    p.add_argument("-V", "--version", action="version", version=f"pcapaudit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    a = sub.add_parser("audit", help="audit pcap/pcapng files (gzip ok, '-' for stdin)")
    a.add_argument("captures", nargs="+", metavar="CAPTURE")
    sel = a.add_argument_group("packets audited")
    sel.add_argument("--filter", metavar="EXPR",
                     help="audit only the packets this BPF filter keeps (tcpdump's language, compiled by "
                          "libpcap)")
    sel.add_argument("--start", metavar="TIME",
                     help="audit only packets at or after TIME (ISO 8601, e.g. 2024-05-01T10:00:00Z; UTC "
                          "when no offset is given; or seconds since the epoch)")
    sel.add_argument("--end", metavar="TIME", help="audit only packets before TIME (as --start)")
    _common_report_args(a)
    _scale_out_arguments(a)
    lv = sub.add_parser("live", help="capture from an interface and audit in real time")
    lv.add_argument("interface", metavar="IFACE", nargs="?")
    lv.add_argument("--list", action="store_true", help="list the interfaces to capture on (as tcpdump -D) and exit")
    lv.add_argument("--bpf", "--filter", dest="bpf", metavar="FILTER", help="BPF capture filter")
    lv.add_argument("--duration", metavar="TIME", help="stop after this long (e.g. 90, 90s, 5m, 1h)")
    lv.add_argument("--count", type=int, metavar="N", help="stop after N packets")
    lv.add_argument("--write", metavar="FILE", help="also keep the raw packets in this pcapng file")
    lv.add_argument("--rotate-mb", type=float, metavar="MB", help="start a new --write file every MB megabytes")
    lv.add_argument("--snaplen", type=_snaplen, default=65535, metavar="BYTES",
                    help="bytes kept of each packet (default 65535; SNI and certificates need whole packets)")
    _common_report_args(lv)
    cc = sub.add_parser("crosscheck", help="compare SNI and DNS names with tshark's dissection (needs pyshark)")
    cc.add_argument("capture", metavar="CAPTURE")
    cc.add_argument("--limit", type=_count, default=50, metavar="N", help="differences shown (0: all)")
    r = sub.add_parser("rules", help="list, show or validate rulesets")
    rs = r.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=_Parser)
    rules_help = "ruleset file or directory (repeatable; default: the built-in rulesets; env PCAPAUDIT_RULES)"
    rl = rs.add_parser("list", help="one line per rule")
    rl.add_argument("--vendor", metavar="LIST", help="only these vendors' rules, comma-separated (e.g. apple,kandji)")
    rl.add_argument("--rules", action="append", metavar="PATH", help=rules_help)
    rl.add_argument("-f", "--format", choices=("table", "json", "csv"), default="table", help="output format")
    rsh = rs.add_parser("show", help="every field of one rule")
    rsh.add_argument("rule_id", help="the rule's id, as `rules list` shows it (e.g. apple.apns)")
    rsh.add_argument("--rules", action="append", metavar="PATH", help=rules_help)
    rv = rs.add_parser("validate", help="check ruleset files (default: the built-in ones)")
    rv.add_argument("files", nargs="*", metavar="FILE", help="ruleset YAML files to check")
    return p


def _options(args):
    from pcapaudit.audit import AuditOptions, config_devices, networks

    path = getattr(args, "config", None)
    cfg = load_config(path) if path else {}
    rules = args.rules or cfg.get("rules") or ([os.environ["PCAPAUDIT_RULES"]] if os.environ.get("PCAPAUDIT_RULES") else None)
    vendors = vendor_names([args.vendor] if args.vendor else cfg.get("vendor"))
    tenants = dict(cfg.get("tenants") or {})
    flag_tenants = parse_kv(args.tenant, "--tenant")
    # what the config file decided, so that the checks made later name the file, not the flag
    args.config_values = {"vendor": bool(cfg.get("vendor")) and not args.vendor,
                          "tenants": set(tenants) - set(flag_tenants)} if path else {}  # fmt: skip
    tenants.update(flag_tenants)
    trust = tuple(cfg.get("trust_issuers") or ()) + tuple(args.trust_issuer)
    devices = networks(config_devices(cfg, path) + tuple(args.device), "--device")
    fail_on = args.fail_on or cfg.get("fail_on") or "medium"
    if str(fail_on).lower() == "none":
        threshold = None
    else:
        try:
            threshold = Severity.parse(str(fail_on))
        except ValueError:
            where, cls = ("--fail-on", UsageError) if args.fail_on or not cfg.get("fail_on") else (f"{path}: fail_on", ConfigError)
            raise cls(f"{where}: unknown severity {str(fail_on)!r} (info, low, medium, high, none)") from None
    opts = AuditOptions(
        rules=rules, vendors=vendors or None,
        tenants=tenants, trust_issuers=trust, devices=devices, engine=args.engine,
    )  # fmt: skip
    max_flows = args.max_flows if getattr(args, "max_flows", None) is not None else cfg.get("max_flows")
    if max_flows is not None:
        from dataclasses import replace

        opts = replace(opts, engine_config=replace(opts.engine_config, max_flows=max_flows or None))
    return opts, threshold


def blame_config(e: PcapAuditError, args) -> PcapAuditError:
    """A ``--vendor``/``--tenant`` error about a value that came from the config file, named by the file."""
    import re

    origin = getattr(args, "config_values", None) or {}
    msg = str(e)
    if origin.get("vendor") and msg.startswith("--vendor "):
        return ConfigError(f"{args.config}: vendor: {msg[len('--vendor '):]}")
    m = re.match(r"--tenant ([^=:\s]+)", msg)
    if m and m.group(1) in origin.get("tenants", ()):
        return ConfigError(f"{args.config}: tenants: {msg[len('--tenant '):]}")
    return e


def _tables(args) -> tuple[str, ...]:
    if args.table:
        return tuple(dict.fromkeys(args.table))
    if args.format in ("json", "jsonl", "csv", "parquet", "html"):
        return TABLE_NAMES
    return DEFAULT_TEXT_TABLES


def report_paths(args) -> list[str]:
    """The files ``write_report`` will write (none when the report goes to stdout)."""
    tables, fmt, out = _tables(args), args.format, args.output
    if not out or out == "-":
        return []
    if fmt in ("csv", "parquet") and len(tables) > 1:
        prefix = out[: -len(fmt) - 1] if out.endswith("." + fmt) else out
        return [f"{prefix}.{t}.{fmt}" for t in tables]
    return [out]


def check_report_paths(args) -> None:
    """Refuse, before any packet is read, a report that could not be written: a format that needs a file
    and has none, a missing or read-only directory, a directory where the file should go (an audit of a
    big capture, or a live capture, must not end in an error)."""
    fmt, out = args.format, args.output
    if fmt not in FORMATS:  # only PCAPAUDIT_FORMAT can bring one: argparse checks -f
        raise UsageError(f"PCAPAUDIT_FORMAT={fmt}: not a report format ({', '.join(FORMATS)})")
    if fmt == "parquet" and out in (None, "-"):
        raise UsageError("--format parquet needs -o PATH")
    if fmt == "csv" and out in (None, "-") and len(_tables(args)) > 1:
        raise UsageError("--format csv with several tables needs -o PREFIX (or one --table)")
    for path in report_paths(args):
        check_writable(path, "the report")
    check_columns(args)


def check_columns(args) -> None:
    """``--columns``: names some shown table has, for the formats that show a view of the tables."""
    cols = getattr(args, "columns", None)
    if not cols:
        return
    if args.format not in ("table", "markdown"):
        raise UsageError("--columns applies to table and markdown output (the other formats have every column)")
    from pcapaudit.report import columns as colmaps

    have: set[str] = set()
    for t in _tables(args):
        have.update(getattr(colmaps, {"coverage": "COVERAGE", "weirds": "WEIRD", "findings": "FINDING", "flows": "FLOW",
                                      "dns": "DNS"}[t] + "_COLUMNS"))  # fmt: skip
        if t == "findings":
            have.add("process")
    unknown = [c for c in cols if c not in have]
    if unknown:
        raise UsageError(f"--columns: no shown table has {', '.join(unknown)} (tables: {', '.join(_tables(args))})")


def terminal_width(args) -> int | None:
    """The width the terminal report fits: COLUMNS when set, else the terminal's when stdout is one;
    None (every cell up to 70 characters, as before) for pipes and files."""
    out = getattr(args, "output", None)
    if out and out != "-":
        return None
    env = os.environ.get("COLUMNS", "").strip()
    if env:
        n = _whole(env, 1)
        return max(n, 40) if n else None
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return None
    import shutil

    return max(shutil.get_terminal_size().columns, 40)


def check_writable(path: str, what: str) -> None:
    """A one-line error now if ``what`` could not be written at ``path`` later."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        why = "is a directory"
    elif not os.path.isdir(parent):
        why = f"no such directory {parent}"
    elif not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        why = "permission denied"
    else:
        return
    raise UsageError(f"{path}: cannot write {what} there ({why})")


def write_report(result, args) -> None:
    """Render and write the report; the output file is opened only now, after the audit succeeded. A file
    that still cannot be written (the disk filled up...) is a one-line error naming it."""
    try:
        _write_report(result, args)
    except BrokenPipeError:
        raise
    except OSError as e:
        where = getattr(e, "filename", None) or ", ".join(report_paths(args)) or "stdout"
        raise PcapAuditError(f"{where}: cannot write the report: {e.strerror or e}") from None


def _write_report(result, args) -> None:
    from pcapaudit.report import render

    tables = _tables(args)
    fmt = args.format
    out = args.output
    if fmt in ("csv", "parquet"):  # check_report_paths saw that they have the -o they need
        if len(tables) == 1 and (out in (None, "-") or fmt == "parquet"):
            if fmt == "parquet":
                render.write_table_parquet(result, tables[0], out)
            else:
                render.write_table_csv(result, tables[0], sys.stdout)
            return
        if len(tables) == 1:
            with open(out, "w", newline="", encoding="utf-8") as fh:
                render.write_table_csv(result, tables[0], fh)
            return
        for t, path in zip(tables, report_paths(args)):
            if fmt == "parquet":
                render.write_table_parquet(result, t, path)
            else:
                with open(path, "w", newline="", encoding="utf-8") as fh:
                    render.write_table_csv(result, t, fh)
        return
    if fmt in ("json", "jsonl"):
        write = render.write_json if fmt == "json" else render.write_jsonl
        if out and out != "-":
            with open(out, "w", encoding="utf-8") as fh:
                write(result, fh, tables)
        else:
            write(result, sys.stdout, tables)
            sys.stdout.flush()
        return
    if fmt == "html":
        text = render.render_html(result, tables)
    else:
        compact = not args.table  # the default view; an explicit --table coverage shows every row
        text = render.render_text(result, tables, "github" if fmt == "markdown" else "simple",
                                  flow_limit=None if args.limit == 0 else args.limit, compact=compact,
                                  width=terminal_width(args), columns=getattr(args, "columns", None))  # fmt: skip
    if out and out != "-":
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _summary_line(result) -> str:
    from pcapaudit.report.render import plural

    n = len(result.finding_records)
    worst = result.worst_severity()
    # info rows (TLS 1.3: "evidence unavailable") are notes, not a blocked or intercepted connection
    kinds = Counter(f.kind.value for f, _ in result.finding_records if f.severity > Severity.INFO)
    info = n - sum(kinds.values())
    kind_txt = "; ".join(x for x in (", ".join(f"{v:,} {k}" for k, v in sorted(kinds.items())),
                                      plural(info, "info note") if info else "") if x)  # fmt: skip
    extra = dict(result.stats.extra)
    return (
        f"pcapaudit: {plural(n, 'finding')}"
        + (f" ({kind_txt}; worst {worst})" if n else "")
        + f" in {plural(result.flow_count, 'flow')} from {plural(result.stats.packets, 'packet')}"
        + _left_out(extra) + "; "
        + f"{result.stats.weird:,} weird"
        + (f"; {plural(copies, 'packet')} seen again on another interface counted once"
           if (copies := extra.get("interface_copies")) else "")
        + (f"; {plural(od, 'TCP flow')} seen in one direction only"
           if (od := extra.get("one_direction_flows")) else "")
        + (f"; {plural(early, 'flow')} ended early to stay under --max-flows"
           if (early := extra.get("flows_ended_early")) else "")
    )  # fmt: skip


def _left_out(extra: dict) -> str:
    """' (N more left out: ...)' when --filter/--start/--end skipped packets."""
    parts = []
    if n := extra.get("filtered_out"):
        parts.append(f"{n:,} not matching --filter")
    if n := extra.get("outside_window"):
        parts.append(f"{n:,} outside --start/--end")
    if not parts:
        return ""
    if len(parts) == 1:
        return f" ({parts[0].replace(' ', ' more ', 1)})"
    total = (extra.get("filtered_out") or 0) + (extra.get("outside_window") or 0)
    return f" ({total:,} more left out: {', '.join(parts)})"


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool, total_bytes: int | None, label: str):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total_bytes
        self.label = label
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, packets: int, done_bytes: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        rate = packets / max(now - self.t0, 1e-6)
        if self.total and done_bytes is not None:
            frac = min(done_bytes / self.total, 1.0)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {packets:,} pkts {rate:,.0f} pkt/s")
        else:
            sys.stderr.write(f"\r{self.label} {packets:,} pkts {rate:,.0f} pkt/s")
        sys.stderr.flush()

    def close(self) -> None:
        """Erase the bar."""
        if self.enabled and self.last:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def cmd_audit(args) -> int:
    """``pcapaudit audit``."""
    from dataclasses import replace

    from pcapaudit.audit import Auditor
    from pcapaudit.capture.filefilter import build as build_filter
    from pcapaudit.capture.pcapfile import CaptureFile

    if _scale_out_wanted(args):  # directories, globs, sensors, --scheduler/--workers, -f parquet -o DIR/
        if args.filter or args.start or args.end:
            raise UsageError("--filter, --start and --end apply to capture files audited here, not yet to "
                             "directories, sensors or a Dask cluster")  # fmt: skip
        return _scale_out_audit(args)
    opts, threshold = _options(args)
    # checked and compiled before any packet is read (a bad expression: one line, exit 2)
    file_filter = build_filter(args.filter, args.start, args.end)
    if file_filter is not None:
        opts = replace(opts, file_filter=file_filter)
    for spec in args.captures:
        if spec != "-" and not os.path.exists(spec):
            raise CaptureError(f"{spec}: no such file")
    check_report_paths(args)
    captures, unreadable = _readable(args.captures)
    jobs = _jobs(args)
    t0 = time.monotonic()
    log.info("auditing %s with %d process%s", ", ".join(args.captures), jobs, "es" if jobs > 1 else "")
    if jobs > 1:
        from pcapaudit.parallel import audit_parallel

        read = []  # the parent process reads every capture whole: its sources know format and packets

        def prog(src):
            read.append(src)
            size = os.path.getsize(src.name) if os.path.isfile(src.name) else None
            bar = Progress(not args.no_progress and not args.quiet, size, os.path.basename(src.name))
            return lambda n, s=src, b=bar: b(n, s.offset)

        result = audit_parallel(opts, captures, jobs, prog, unreadable)
        Progress(False, None, "").close()
        for src in read:
            log.info("%s: %s, %s packets", src.name, src.format, f"{src.packets:,}")
        _log_rate(result, t0)
        return _report(result, args, threshold, interrupted=False)
    auditor = Auditor(opts)
    for e in unreadable:
        auditor.capture_unreadable(e)
    sources = [CaptureFile(spec) for spec in captures]
    interrupted = False
    try:
        for src in sources:
            size = os.path.getsize(src.name) if src.name != "<stdin>" and os.path.isfile(src.name) else None
            prog = Progress(not args.no_progress and not args.quiet, size, os.path.basename(src.name))
            try:
                auditor.run_file(src, progress=lambda n, s=src, p=prog: p(n, s.offset))
            finally:
                prog.close()
            log.info("%s: %s, %s packets", src.name, src.format, f"{src.packets:,}")
    except KeyboardInterrupt:
        interrupted = True
        auditor.errors.append("interrupted: the report covers the packets read before Ctrl-C")
    result = auditor.finish()
    _log_rate(result, t0)
    return _report(result, args, threshold, interrupted)


def _readable(specs: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """(the captures to audit, the errors of those that cannot be opened). Of several captures named, one
    that is no capture (a text file) is an error and a ``capture_unreadable`` weird row, and the others are
    audited, as a directory's files are; when none can be opened (or only one was named) its error is the
    answer, before any report."""
    if len(specs) < 2:
        return list(specs), ()
    from pcapaudit.core import open_capture

    ok, bad = [], []
    for spec in specs:
        if spec == "-":  # standard input can be read once only: read, not probed
            ok.append(spec)
            continue
        try:
            open_capture(spec)
        except CaptureError as e:
            bad.append(str(e))
            continue
        ok.append(spec)
    if not ok:
        raise CaptureError("; ".join(bad))
    return ok, tuple(bad)


def _log_rate(result, t0: float) -> None:
    dt = max(time.monotonic() - t0, 1e-9)
    log.info("audited %s packets in %.2f s (%s packets/s), %s flows, %s DNS transactions, rulesets: %s",
             f"{result.stats.packets:,}", dt, f"{result.stats.packets / dt:,.0f}", f"{result.flow_count:,}",
             f"{result.dns_count:,}", ", ".join(rs.path for rs in result.book.rulesets))  # fmt: skip


def _jobs(args) -> int:
    if args.jobs == "auto":
        from pcapaudit.parallel import auto_jobs

        return 1 if args.engine == "simple" else auto_jobs(list(args.captures))
    try:
        n = int(args.jobs)
    except ValueError:
        raise UsageError(f"--jobs {args.jobs!r}: a number or auto") from None
    if n < 1 or n > 64:
        raise UsageError(f"--jobs {n}: between 1 and 64")
    if n > 1 and "-" in args.captures:
        raise UsageError("--jobs: stdin can only be read by one process (use --jobs 1)")
    return n


def _report(result, args, threshold, interrupted: bool, summary: str | None = None) -> int:
    """Write the report and the summary line (``summary``, default the audit's); the exit code."""
    from pcapaudit.audit import quiet_gc

    try:
        with quiet_gc():  # the report's tables are many objects, none in a cycle
            write_report(result, args)
        sys.stdout.flush()
        if not args.quiet:
            print(summary or _summary_line(result), file=sys.stderr)
    except BrokenPipeError:  # `| head`: the reader stopped; the exit code still says what the audit found
        _streams_gone()
    try:
        return _exit_code(result, threshold, interrupted)
    except BrokenPipeError:
        _streams_gone()
        return _exit_code(result, threshold, interrupted)


def _streams_gone() -> None:
    """stdout and stderr whose reader went away: what is still written goes nowhere (also the
    interpreter's flush at exit)."""
    for name in ("stdout", "stderr"):
        try:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - replaces the stream for the rest of the run
        except OSError:
            pass


def _exit_code(result, threshold, interrupted: bool = False) -> int:
    """The run's errors on stderr, one line each, and the exit code they and the findings give."""
    from pcapaudit.audit import severity_at_least

    for e in result.errors:
        print(f"pcapaudit: error: {one_line(e)}", file=sys.stderr)
    if result.errors or interrupted:
        return EXIT_ERROR
    return EXIT_FINDINGS if severity_at_least(result.finding_records, threshold) else EXIT_OK


# -- audit over files, globs, directories, sensors, on Dask or here (issue 18) -------------------------
def _scale_out_arguments(p) -> None:
    """``pcapaudit audit`` options of the scale-out (files, globs, directories, sensors, Dask)."""
    from pcapaudit import distributed

    g = p.add_argument_group("many captures, sensors and Dask")
    g.add_argument("-r", "--recursive", action="store_true", help="read directories named as CAPTURE recursively")
    g.add_argument("--sensor-pattern", metavar="REGEX",
                   help="the sensor of a file: the group 'sensor' (or the first group) of REGEX searched in its "
                        "path, e.g. '(?P<sensor>[^/]+)/[^/]+$' (default: the capture's interface/link metadata)")  # fmt: skip
    g.add_argument("--max-gap", type=float, default=distributed.DEFAULT_MAX_GAP, metavar="SECONDS",
                   help=f"report a capture_gap between consecutive files of a sensor without a packet for longer "
                        f"(default {distributed.DEFAULT_MAX_GAP:g})")  # fmt: skip
    g.add_argument("--scheduler", default=os.environ.get("PCAPAUDIT_SCHEDULER"), metavar="ADDRESS",
                   help="run the audit as Dask tasks on this scheduler, e.g. tcp://host:8786 (env PCAPAUDIT_SCHEDULER)")  # fmt: skip
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run the audit as Dask tasks on a local cluster of N worker processes")  # fmt: skip
    g.add_argument("--partitions", type=int, default=None, metavar="N",
                   help="flow partitions (tasks) per sensor (default: the cluster's threads / sensors)")  # fmt: skip


def _scale_out_wanted(args) -> bool:
    """Whether ``pcapaudit audit`` goes through the scale-out path."""
    from pcapaudit.distributed import is_dataset_output
    from pcapaudit.inputs import is_capture_spec

    return bool(getattr(args, "scheduler", None) or getattr(args, "workers", None) or getattr(args, "recursive", False)
                or getattr(args, "sensor_pattern", None) or is_dataset_output(args.format, args.output)
                or any(is_capture_spec(c) for c in args.captures))  # fmt: skip


def _scale_out_audit(args) -> int:
    """``pcapaudit audit`` over files, globs, directories, sensors, on Dask or in this process."""
    from pcapaudit.distributed import audit_paths, check_dataset_dir, is_dataset_output

    opts, threshold = _options(args)
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise UsageError(f"--workers {args.workers}: between 1 and 1024")
    if args.partitions is not None and not 1 <= args.partitions <= 1024:
        raise UsageError(f"--partitions {args.partitions}: between 1 and 1024")
    if args.jobs not in ("auto", "1") and not (args.scheduler or args.workers):
        log.warning("--jobs %s: not used for directories, globs or sensors; --workers N runs them on N processes", args.jobs)
    dataset = is_dataset_output(args.format, args.output)
    if dataset:
        check_dataset_dir(args.output)
    else:
        check_report_paths(args)
    try:
        result = audit_paths(args.captures, opts, scheduler=args.scheduler, workers=args.workers,
                             recursive=args.recursive, sensor_pattern=args.sensor_pattern, partitions=args.partitions,
                             max_gap=args.max_gap, dataset=args.output if dataset else None)  # fmt: skip
    except OSError as e:
        if not dataset:
            raise
        raise PcapAuditError(f"{args.output}: cannot write the dataset: {e.strerror or e}") from None
    if not dataset:
        return _report(result, args, threshold, interrupted=False)
    if not args.quiet:
        print(_summary_line(result), file=sys.stderr)
    return _exit_code(result, threshold)


def cmd_live(args) -> int:
    """``pcapaudit live``."""
    if args.list:
        from pcapaudit.capture.libpcap import list_interfaces

        for i, (name, desc, flags) in enumerate(list_interfaces(), 1):
            extra = f" ({desc})" if desc else ""
            print(f"{i}.{name}{extra} [{', '.join(flags)}]" if flags else f"{i}.{name}{extra}")
        return 0
    if not args.interface:
        raise UsageError("live: an interface is needed (pcapaudit live --list shows them)")
    from pcapaudit.capture.libpcap import resolve_interface

    args.interface = resolve_interface(args.interface)  # a number of --list, as tcpdump -i takes it
    opts, threshold = _options(args)
    return _run_live(args, opts, threshold)


def _run_live(args, opts, threshold) -> int:
    """Capture, audit as packets arrive (the panel on stderr), then flush every flow and write the same
    report as ``audit``. Ctrl-C or SIGTERM stop the capture, not the report."""
    from pcapaudit.audit import Auditor
    from pcapaudit.capture.live import LIVE_ENGINE, capture, parse_duration
    from pcapaudit.report.livepanel import LiveDisplay

    duration = parse_duration(args.duration)
    if args.count is not None and args.count <= 0:
        raise UsageError("--count must be positive")
    if args.rotate_mb is not None and (args.rotate_mb <= 0 or not args.write):
        raise UsageError("--rotate-mb needs --write FILE and a positive size")
    check_report_paths(args)
    if args.write:
        check_writable(args.write, "the packets")
    opts.engine_config = LIVE_ENGINE
    display = LiveDisplay(not args.quiet, args.interface)
    auditor = Auditor(opts, on_finding=display.finding)
    auditor.sources.append(f"live:{args.interface}")
    stop = {"flag": False}

    def _stop(signum, frame):  # noqa: ARG001
        stop["flag"] = True

    def _opened():
        log.info("capturing on %s (snaplen %d%s%s)", args.interface, args.snaplen,
                 f", filter {args.bpf!r}" if args.bpf else "", f", writing {args.write}" if args.write else "")  # fmt: skip
        if not args.quiet and not sys.stderr.isatty():
            print(f"pcapaudit: capturing on {args.interface} (Ctrl-C to stop and report)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = capture(auditor, args.interface, snaplen=args.snaplen, bpf=args.bpf, duration=duration,
                      count=args.count, write=args.write, rotate_mb=args.rotate_mb,
                      should_stop=lambda: stop["flag"], on_open=_opened, on_stop=display.stopped,
                      on_status=lambda n, stats, t: display.status(n, auditor.active_flows, len(auditor.flows),
                                                                   stats, t))  # fmt: skip
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    auditor.errors.extend(run.errors)
    t_finish = time.monotonic()
    result = auditor.finish()  # flushes every flow: its findings reach the display, drawn now
    if log.isEnabledFor(logging.INFO):
        _log_rate(result, t_finish - run.elapsed)
    display.close(auditor.packets, auditor.active_flows, len(auditor.flows), run.stats, run.elapsed)
    line = _summary_line(result)
    if run.stats is not None:
        s = run.stats
        line += f"; capture: {s[0]:,} received by filter, {s[1]:,} dropped by kernel, {s[2]:,} by interface"
    if run.files:
        line += f"; packets written to {', '.join(run.files)}"
    return _report(result, args, threshold, False, line)


def cmd_crosscheck(args) -> int:
    """``pcapaudit crosscheck``: exit 0 when tshark and pcapaudit agree, 1 otherwise."""
    from pcapaudit.crosscheck import crosscheck
    from pcapaudit.report.render import render_table

    if not os.path.exists(args.capture):
        raise CaptureError(f"{args.capture}: no such file")
    diff, summary = crosscheck(args.capture)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    if len(diff):
        print(render_table(diff, list(diff.columns), limit=None if args.limit == 0 else args.limit, fit=terminal_width(args)))
    return EXIT_OK if not len(diff) else EXIT_FINDINGS


def cmd_rules(args) -> int:
    """``pcapaudit rules list|show|validate``."""
    from pcapaudit.report.render import clean_text
    from pcapaudit.rules.loader import builtin_dir, load_rulebook

    if args.rules_command == "validate":
        files = args.files or [str(builtin_dir())]
        book = load_rulebook(files)
        n = sum(len(rs.rules) for rs in book.rulesets)
        print(f"ok: {len(book.rulesets)} ruleset(s), {n} rules, {len(book.issuers)} issuer sets "
              f"({', '.join(rs.path for rs in book.rulesets)})")  # fmt: skip
        return EXIT_OK
    book = load_rulebook(args.rules)
    if args.rules_command == "show":
        r = book.rule(args.rule_id)
        if r is None:
            raise UsageError(f"rules show {args.rule_id}: no such rule (try: pcapaudit rules list)")
        rs = book.ruleset(r.vendor)
        src = next((s for s in rs.sources if s.id == r.source), None) if rs else None
        fields = [
            ("id", r.id), ("vendor", r.vendor), ("service", r.service), ("hosts", ", ".join(r.hosts)),
            ("cidrs", ", ".join(r.cidrs)), ("asns", ", ".join(f"AS{a}" for a in r.asns)),
            ("ports", f"{r.transport} {r.ports_text}"), ("initiator", r.initiator), ("responder", r.responder),
            ("required", r.required), ("app_protocol", r.app_protocol), ("tls", r.tls), ("cleartext", r.cleartext),
            ("secure_alternative", r.secure_alternative), ("tls_inspection_allowed", r.tls_inspection_allowed),
            ("pinned", r.pinned), ("expected_issuers", r.expected_issuers), ("server_cidrs", ", ".join(r.server_cidrs)),
            ("proxy", r.proxy), ("legacy", r.legacy), ("region", r.region), ("os", ", ".join(r.os)),
            ("source", (f"{r.source}: {src.title}" + (f" ({src.file})" if src.file else "")) if src else r.source), ("seed rows", ", ".join(r.rows)),
            ("file", r.file), ("notes", r.notes),
        ]  # fmt: skip
        w = max(len(k) for k, _ in fields)
        for k, v in fields:
            if v not in (None, "", ()):
                print(f"{k:<{w}}  {clean_text(v)}")
        return EXIT_OK
    vendors = [v.strip() for v in args.vendor.split(",")] if args.vendor else None
    if vendors:
        unknown = [v for v in vendors if v not in book.vendors]
        if unknown:
            raise UsageError(f"--vendor {','.join(unknown)}: no such ruleset ({', '.join(book.vendors)})")
    rows = [r for r in book.rules if vendors is None or r.vendor in vendors]
    import pandas as pd

    df = pd.DataFrame(
        [{"id": r.id, "vendor": r.vendor, "required": r.required, "ports": f"{r.transport} {r.ports_text}",
          "targets": r.targets_text, "service": r.service, "flags": ",".join(
              x for x, on in (("legacy", r.legacy), ("cleartext", r.cleartext), ("pinned", r.pinned),
                               ("no-inspection", not r.tls_inspection_allowed), (r.region or "", bool(r.region))) if on)}
         for r in rows]  # fmt: skip
    )
    if args.format == "json":
        import json  # not df.to_json, which escapes "/" and non-ASCII text, unlike the reports (render.py)

        sys.stdout.write(json.dumps(df.to_dict(orient="records"), indent=1, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    else:
        from pcapaudit.report.render import render_table

        print(render_table(df, list(df.columns), width=60, fit=terminal_width(args), drop=["flags", "required"]))
        print(f"\n{len(df)} rules in {len({r.vendor for r in rows})} rulesets")
    return EXIT_OK


def _lean_memory() -> None:
    """Give freed Arrow memory back to the system allocator (mimalloc keeps ~70 MB of it on a 1 GB
    capture); only the CLI does this, a library user's process keeps its own choice."""
    try:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except (ImportError, AttributeError):  # pragma: no cover - very old pyarrow
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    _lean_memory()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = None
    try:
        args = parser.parse_args(argv)
        if getattr(args, "quiet", False) and getattr(args, "verbose", 0):
            raise UsageError("-q/--quiet and -v/--verbose together: choose one (-q: no summary line, -v: a log)")
        level = logging.WARNING - 10 * (getattr(args, "verbose", 0) or 0)
        env_level = os.environ.get("PCAPAUDIT_LOGLEVEL")
        logging.basicConfig(level=env_level or max(level, logging.DEBUG), format="pcapaudit: %(levelname)s: %(message)s")
        if args.command == "audit":
            return cmd_audit(args)
        if args.command == "live":
            return cmd_live(args)
        if args.command == "crosscheck":
            return cmd_crosscheck(args)
        if args.command == "rules":
            if not args.rules_command:
                raise UsageError("rules needs an action: list, show or validate")
            return cmd_rules(args)
        raise UsageError(f"a command is needed: {', '.join(COMMANDS)}")
    except UsageError as e:
        if args is not None:
            e = blame_config(e, args)
        print(f"pcapaudit: error: {one_line(e)}", file=sys.stderr)
        if not isinstance(e, ConfigError):
            print(help_hint(argv), file=sys.stderr)
        return EXIT_ERROR
    except (CaptureError, RulesetError, PcapAuditError) as e:
        if args is not None:
            e = blame_config(e, args)
        print(f"pcapaudit: error: {one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # a listing (rules, live --list) whose reader stopped: nothing was lost
        _streams_gone()
        return EXIT_OK
    except KeyboardInterrupt:
        print("pcapaudit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("pcapaudit: error: out of memory", file=sys.stderr)
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())

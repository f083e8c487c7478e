"""Load and validate ruleset YAML files.

The loader is strict: unknown keys, wrong types, bad networks, bad ports, dangling references and
duplicate ids are errors that name the file and the field, e.g.
``rulesets/jamf-pro.yaml: rules[3].cidrs[0]: '17.0.0/8' is not a valid network``.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml

from pcapaudit.errors import RulesetError, one_line
from pcapaudit.rules.schema import (
    DEFAULTABLE,
    FILE_KEYS,
    PLACEHOLDER_KEYS,
    PLACEHOLDER_KINDS,
    RULE_KEYS,
    RULE_REQUIRED_KEYS,
    SCHEMA_VERSION,
    SOURCE_KEYS,
    IssuerSet,
    Placeholder,
    Rule,
    RuleBook,
    Ruleset,
    Source,
)

SPECIAL_FILES = ("issuers.yaml", "asn.yaml")
BUILTIN = "builtin"  # --rules builtin: the shipped rulesets, so that --rules builtin --rules acme.yaml adds one
SEED_ROWS_FILE = "seed-rows.csv"  # beside the vendor files: the row ids their rules may cite
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+\Z")  # \Z: "$" also matches before a final newline
_VENDOR_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\Z")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_HOST_RE = re.compile(r"^(\*\.|\*)?[a-z0-9_{}\[\]\.-]+\Z")
NUMBERED_RE = re.compile(r"^(.*)\[(\d+)\.\.\.(\d+)\](.*)\Z")  # clients[2...6].google.com (expanded by the matcher)
MAX_NUMBERED_HOSTS = 256
MAX_YAML_NODES = 200_000  # every value counted as often as aliases repeat it; the built-in files have ~7,000


def builtin_dir() -> Path:
    """The rulesets shipped with the package (wheel) or beside it (source checkout)."""
    try:
        p = Path(str(resources.files("pcapaudit") / "_rulesets"))
        if p.is_dir():
            return p
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual installs
        pass
    return Path(__file__).resolve().parents[2] / "rulesets"


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # different drive (Windows)
        return str(path)
    return rel if not rel.startswith("../..") else str(path)


class _Ctx:
    def __init__(self, path: Path):
        self.name = _display(path)

    def err(self, where: str, msg: str) -> RulesetError:
        text = f"{self.name}: {where}: {msg}" if where else f"{self.name}: {msg}"
        return RulesetError(one_line(text))


# libyaml's safe loader builds the same data about 9x faster (the built-in rulesets: 0.15 s -> 0.017 s,
# most of a small audit's start-up); PyYAML without libyaml falls back to the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_node_budget(data: object, budget: int = MAX_YAML_NODES) -> bool:
    """False when the document has more than ``budget`` values counted with repetition: YAML aliases
    ("billion laughs") make a small file a huge tree that any message or copy of it would expand."""
    stack = [data]
    seen = 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def _read_yaml(path: Path) -> tuple[object, bytes]:
    ctx = _Ctx(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ctx.err("", "no such file") from None
    except IsADirectoryError:
        raise ctx.err("", "is a directory") from None
    except OSError as e:
        raise ctx.err("", f"cannot read: {e.strerror or e}") from None
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=SAFE_LOADER)
    except UnicodeDecodeError as e:
        raise ctx.err("", f"not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ctx.err(where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise ctx.err("", "invalid YAML: nested too deeply") from None
    if not check_node_budget(data):
        raise ctx.err("", f"more than {MAX_YAML_NODES:,} values (YAML aliases expanding to a huge document?)")
    return data, raw


def _check_keys(ctx: _Ctx, where: str, obj: dict, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for k in obj:
        if k not in allowed:
            hint = _close(str(k), allowed)
            raise ctx.err(f"{where}{'.' if where else ''}{_shown(k)}", "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))


def _schema_ok(v: object) -> bool:
    """The supported schema version, as an integer (not 1.0 or true, which compare equal to 1)."""
    return type(v) is int and v == SCHEMA_VERSION


def _shown(v: object) -> str:
    """A key or id as it goes into a message: as is when printable text, else quoted (newlines escaped)."""
    return v if isinstance(v, str) and v.isprintable() else repr(v)


def _close(word: str, options: Iterable[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.75)
    return m[0] if m else None


def parse_ports(ctx: _Ctx, where: str, items: list) -> tuple[tuple[int, int], ...]:
    """[443, "49152-65535"] -> ((443, 443), (49152, 65535)); errors name the item."""
    out = []
    for i, p in enumerate(items):
        w = f"{where}[{i}]"
        if isinstance(p, bool):
            raise ctx.err(w, f"{p!r} is not a port")
        if isinstance(p, int):
            lo = hi = p
        elif isinstance(p, str) and re.fullmatch(r"\s*[0-9]+\s*-\s*[0-9]+\s*", p):
            lo, hi = (int(x) for x in p.split("-"))
        elif isinstance(p, str) and p.strip().isascii() and p.strip().isdigit():
            lo = hi = int(p)
        else:
            raise ctx.err(w, f"{p!r} is not a port or a range like '49152-65535'")
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
            raise ctx.err(w, f"{p!r} is outside 0-65535")
        if lo > hi:
            raise ctx.err(w, f"{p!r} is a reversed range")
        out.append((lo, hi))
    return tuple(out)


def parse_network(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """'17.0.0.0/8' or '239.255.20.20-239.255.20.29' -> networks. Raises ValueError."""
    if "-" in text and "/" not in text:
        a, b = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
        if a.version != b.version or int(a) > int(b):
            raise ValueError("bad address range")
        return list(ipaddress.summarize_address_range(a, b))
    return [ipaddress.ip_network(text.strip(), strict=True)]


def _networks(ctx: _Ctx, where: str, items: list) -> tuple[str, ...]:
    if not isinstance(items, list):
        raise ctx.err(where, "must be a list of networks")
    out = []
    for i, c in enumerate(items):
        if not isinstance(c, str):
            raise ctx.err(f"{where}[{i}]", f"{c!r} is not a network")
        try:
            parse_network(c)
        except ValueError:
            raise ctx.err(f"{where}[{i}]", f"{c!r} is not a valid network") from None
        out.append(c.strip())
    return tuple(out)


def _typed(ctx: _Ctx, where: str, key: str, value):
    kind, allowed = RULE_KEYS[key]
    w = f"{where}.{key}"
    if kind == "list":
        if not isinstance(value, list):
            raise ctx.err(w, f"must be a list, not {type(value).__name__}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, allowed):
                raise ctx.err(f"{w}[{i}]", f"{v!r} has the wrong type")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ctx.err(w, f"must be true or false, not {value!r}")
        return value
    if not isinstance(value, kind):
        raise ctx.err(w, f"must be a string, not {value!r}")
    if allowed is not None and value not in allowed:
        shown = ", ".join(str(a) for a in allowed if a is not None)
        raise ctx.err(w, f"{value!r} is not one of: {shown}")
    return value


def load_seed_rows(path: Path) -> frozenset[str]:
    """The ``row`` ids of a seed-rows.csv; errors name the file and line."""
    ctx = _Ctx(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ctx.err("", f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ctx.err("", f"cannot read: {e.strerror or e}") from None
    reader = csv.DictReader(text.splitlines())
    ids: set[str] = set()
    try:
        if "row" not in (reader.fieldnames or ()):
            raise ctx.err("line 1", "no 'row' column in the header")
        for rec in reader:
            rid = (rec.get("row") or "").strip()
            if not rid:
                raise ctx.err(f"line {reader.line_num}", "empty row id")
            if rid in ids:
                raise ctx.err(f"line {reader.line_num}", f"duplicate row id {_shown(rid)}")
            ids.add(rid)
    except csv.Error as e:
        raise ctx.err(f"line {reader.line_num}", f"invalid CSV: {e}") from None
    return frozenset(ids)


def load_ruleset_file(
    path: Path, issuer_names: set[str] | None = None, seed_rows: tuple[str, frozenset[str]] | None = None
) -> Ruleset:
    """Parse and validate one vendor file. ``seed_rows`` is (file shown in messages, row ids): when given,
    every id a rule cites under ``rows`` must be one of them; without it rows are not checked."""
    ctx = _Ctx(path)
    data, raw = _read_yaml(path)
    if not isinstance(data, dict):
        raise ctx.err("", "top level must be a mapping")
    _check_keys(ctx, "", data, FILE_KEYS)
    for k in ("schema_version", "vendor", "display_name", "sources", "rules"):
        if k not in data:
            raise ctx.err(k, "missing")
    if not _schema_ok(data["schema_version"]):
        raise ctx.err("schema_version", f"{data['schema_version']!r} is not supported (expected {SCHEMA_VERSION})")
    vendor = data["vendor"]
    if not isinstance(vendor, str) or not _VENDOR_RE.match(vendor):
        raise ctx.err("vendor", f"{vendor!r} is not a lower-case id")
    if path.suffix in (".yaml", ".yml") and path.stem != vendor:
        raise ctx.err("vendor", f"{vendor!r} does not match the file name {path.name!r}")
    if not isinstance(data["display_name"], str):
        raise ctx.err("display_name", "must be a string")
    sources = []
    if not isinstance(data["sources"], list) or not data["sources"]:
        raise ctx.err("sources", "must be a non-empty list")
    for i, s in enumerate(data["sources"]):
        w = f"sources[{i}]"
        if not isinstance(s, dict):
            raise ctx.err(w, "must be a mapping")
        _check_keys(ctx, w, s, SOURCE_KEYS)
        if not isinstance(s.get("id"), str) or not isinstance(s.get("title"), str):
            raise ctx.err(w, "needs string 'id' and 'title'")
        sources.append(Source(s["id"], s.get("file"), s["title"], s.get("url")))
    source_ids = {s.id for s in sources}
    placeholders = []
    if not isinstance(data.get("placeholders") or [], list):
        raise ctx.err("placeholders", "must be a list")
    for i, p in enumerate(data.get("placeholders") or []):
        w = f"placeholders[{i}]"
        if not isinstance(p, dict):
            raise ctx.err(w, "must be a mapping")
        _check_keys(ctx, w, p, PLACEHOLDER_KEYS)
        if not isinstance(p.get("name"), str) or p.get("kind") not in PLACEHOLDER_KINDS:
            raise ctx.err(w, f"needs a 'name' and a 'kind' in {PLACEHOLDER_KINDS}")
        placeholders.append(Placeholder(p["name"], p["kind"], str(p.get("description") or "").strip()))
    ph_names = {p.name for p in placeholders}
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ctx.err("defaults", "must be a mapping")
    _check_keys(ctx, "defaults", defaults, DEFAULTABLE)
    for k, v in defaults.items():
        _typed(ctx, "defaults", k, v)
    if not isinstance(data["rules"], list) or not data["rules"]:
        raise ctx.err("rules", "must be a non-empty list")
    rules = []
    seen: set[str] = set()
    for i, r in enumerate(data["rules"]):
        w = f"rules[{i}]"
        if not isinstance(r, dict):
            raise ctx.err(w, "must be a mapping")
        _check_keys(ctx, w, r, RULE_KEYS)
        merged = {**defaults, **r}
        for k in RULE_REQUIRED_KEYS:
            if k not in merged:
                raise ctx.err(f"{w}.{k}", "missing")
        for k, v in merged.items():
            _typed(ctx, w, k, v)
        rid = merged["id"]
        w = f"rules[{i}] ({_shown(rid)})"
        if not _ID_RE.match(rid) or not rid.startswith(vendor + "."):
            raise ctx.err(f"{w}.id", f"{rid!r} must look like '{vendor}.some-service'")
        if rid in seen:
            raise ctx.err(f"{w}.id", f"duplicate id {rid!r}")
        seen.add(rid)
        if merged["source"] not in source_ids:
            raise ctx.err(f"{w}.source", f"{merged['source']!r} is not one of the sources ({', '.join(sorted(source_ids))})")
        hosts = []
        for j, h in enumerate(merged.get("hosts") or []):
            hh = h.strip().lower().rstrip(".")
            if not hh or not _HOST_RE.match(hh):
                raise ctx.err(f"{w}.hosts[{j}]", f"{h!r} is not a host name or pattern")
            if "[" in hh or "]" in hh:
                m = NUMBERED_RE.match(hh)
                if m is None or "[" in m.group(1) + m.group(4) or "]" in m.group(1) + m.group(4):
                    raise ctx.err(f"{w}.hosts[{j}]", f"{h!r}: brackets only as a numbered set like 'clients[2...6].example.com'")
                lo, hi = int(m.group(2)), int(m.group(3))
                if not lo <= hi < lo + MAX_NUMBERED_HOSTS:
                    raise ctx.err(f"{w}.hosts[{j}]", f"{h!r}: a numbered set must count up over at most {MAX_NUMBERED_HOSTS} numbers")
            for name in PLACEHOLDER_RE.findall(hh):
                if name not in ph_names:
                    raise ctx.err(f"{w}.hosts[{j}]", f"placeholder {{{name}}} is not declared under placeholders")
            hosts.append(hh)
        ports = parse_ports(ctx, f"{w}.ports", merged["ports"])
        if not ports:
            raise ctx.err(f"{w}.ports", "must list at least one port")
        cidrs = _networks(ctx, f"{w}.cidrs", merged.get("cidrs") or [])
        server_cidrs = _networks(ctx, f"{w}.server_cidrs", merged.get("server_cidrs") or [])
        exp = merged.get("expected_issuers")
        if exp is not None and issuer_names is not None and exp not in issuer_names:
            raise ctx.err(f"{w}.expected_issuers", f"{exp!r} is not an issuer set in issuers.yaml")
        if not merged["rows"]:
            raise ctx.err(f"{w}.rows", "must cite at least one seed row")
        if seed_rows is not None:
            for j, row in enumerate(merged["rows"]):
                if row not in seed_rows[1]:
                    raise ctx.err(f"{w}.rows[{j}]", f"{row!r} is not a row of {seed_rows[0]}")
        rules.append(
            Rule(
                id=rid, vendor=vendor, service=merged["service"].strip(), hosts=tuple(hosts), cidrs=cidrs,
                asns=tuple(merged.get("asns") or ()), ports=ports, transport=merged.get("transport", "tcp"),
                initiator=merged.get("initiator"), responder=merged.get("responder"),
                required=merged.get("required", "unstated"), app_protocol=merged.get("app_protocol"),
                tls=merged.get("tls"), cleartext=bool(merged.get("cleartext", False)),
                secure_alternative=merged.get("secure_alternative"),
                tls_inspection_allowed=bool(merged.get("tls_inspection_allowed", True)),
                pinned=bool(merged.get("pinned", False)), expected_issuers=exp, server_cidrs=server_cidrs,
                proxy=merged.get("proxy"), legacy=bool(merged.get("legacy", False)), region=merged.get("region"),
                os=tuple(merged.get("os") or ()), notes=(merged.get("notes") or "").strip() or None,
                source=merged["source"], rows=tuple(merged["rows"]), file=ctx.name,
                met_by=tuple(merged.get("met_by") or ()),
            )
        )  # fmt: skip
    ids = {r.id for r in rules}
    for i, r in enumerate(rules):
        if r.secure_alternative and r.secure_alternative not in ids:
            raise ctx.err(f"rules[{i}] ({r.id}).secure_alternative", f"{r.secure_alternative!r} is not a rule of this file")
    return Ruleset(
        vendor=vendor,
        display_name=data["display_name"],
        sources=tuple(sources),
        placeholders=tuple(placeholders),
        rules=tuple(rules),
        path=ctx.name,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def load_issuers(path: Path) -> dict[str, IssuerSet]:
    """Parse issuers.yaml."""
    ctx = _Ctx(path)
    data, _ = _read_yaml(path)
    if not isinstance(data, dict):
        raise ctx.err("", "top level must be a mapping")
    _check_keys(ctx, "", data, ("schema_version", "sets"))
    if not _schema_ok(data.get("schema_version")):
        raise ctx.err("schema_version", f"{data.get('schema_version')!r} is not supported")
    sets = data.get("sets")
    if not isinstance(sets, dict):
        raise ctx.err("sets", "must be a mapping")
    out = {}
    for name, s in sets.items():
        w = f"sets.{name}"
        if not isinstance(s, dict):
            raise ctx.err(w, "must be a mapping")
        _check_keys(ctx, w, s, ("description", "organizations", "common_names"))
        for k in ("organizations", "common_names"):
            v = s.get(k) or []
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ctx.err(f"{w}.{k}", "must be a list of strings")
        out[str(name)] = IssuerSet(
            str(name), str(s.get("description") or "").strip(), tuple(s.get("organizations") or ()),
            tuple(s.get("common_names") or ()),
        )  # fmt: skip
    for needed in ("public", "inspection"):
        if needed not in out:
            raise ctx.err(f"sets.{needed}", "missing")
    return out


def load_asns(path: Path) -> dict[int, tuple[str, ...]]:
    """Parse asn.yaml."""
    ctx = _Ctx(path)
    data, _ = _read_yaml(path)
    if not isinstance(data, dict):
        raise ctx.err("", "top level must be a mapping")
    _check_keys(ctx, "", data, ("schema_version", "asns"))
    if "schema_version" in data and not _schema_ok(data["schema_version"]):
        raise ctx.err("schema_version", f"{data['schema_version']!r} is not supported")
    out = {}
    asns = data.get("asns") or {}
    if not isinstance(asns, dict):
        raise ctx.err("asns", "must map AS numbers to mappings")
    for asn, entry in asns.items():
        w = f"asns.{asn}"
        if type(asn) is not int or not isinstance(entry, dict):  # not True, a bool
            raise ctx.err(w, "must map an AS number to a mapping")
        _check_keys(ctx, w, entry, ("name", "description", "snapshot", "prefixes"))
        out[asn] = _networks(ctx, f"{w}.prefixes", entry.get("prefixes") or [])
    return out


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = builtin_dir() if str(p) == BUILTIN else Path(p)
        try:
            if p.is_dir():
                out.extend(sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml")))
                continue
        except OSError as e:  # a name too long, a directory without read permission...
            raise RulesetError(f"{_display(p)}: cannot read: {e.strerror or e}") from None
        out.append(p)
    return out


_CACHE: dict[tuple, RuleBook] = {}


def load_rulebook(
    paths: Iterable[str | Path] | None = None,
    tenants: dict[str, str] | None = None,
    trusted_issuers: Iterable[str] = (),
) -> RuleBook:
    """Load vendor rulesets (default: the built-in ones), issuers.yaml and asn.yaml, and check tenants.

    Results are cached on the files' names, sizes and modification times (a notebook or a test suite
    audits many captures with the same rules); an edited file is read again.
    """
    files = _expand(paths) if paths else _expand([builtin_dir()])
    try:
        seeds = [c for c in dict.fromkeys(f.parent / SEED_ROWS_FILE for f in files) if c.exists()]
        stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files + seeds)
    except OSError:
        stamp = None  # a missing file: let the loader report it
    key = (stamp, tuple(sorted((tenants or {}).items())), tuple(trusted_issuers))
    if stamp is not None and key in _CACHE:
        return _CACHE[key]
    book = _load_rulebook(files, tenants, trusted_issuers)
    if stamp is not None:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = book
    return book


def _load_rulebook(files: list[Path], tenants: dict[str, str] | None, trusted_issuers: Iterable[str]) -> RuleBook:
    builtin = builtin_dir()
    issuers_path = next((f for f in files if f.name == "issuers.yaml"), builtin / "issuers.yaml")
    asn_path = next((f for f in files if f.name == "asn.yaml"), builtin / "asn.yaml")
    issuers = load_issuers(issuers_path)
    asns = load_asns(asn_path)
    rulesets = []
    owner: dict[str, str] = {}
    seed_rows: dict[Path, tuple[str, frozenset[str]] | None] = {}
    for f in files:
        if f.name in SPECIAL_FILES:
            continue
        if not f.exists():
            raise RulesetError(f"{_display(f)}: no such file")
        csv_path = f.parent / SEED_ROWS_FILE
        if csv_path not in seed_rows:  # a vendor file cites the rows of the seed-rows.csv beside it, if any
            seed_rows[csv_path] = (_display(csv_path), load_seed_rows(csv_path)) if csv_path.exists() else None
        rs = load_ruleset_file(f, set(issuers), seed_rows[csv_path])
        for r in rs.rules:
            if r.id in owner:
                raise RulesetError(f"{rs.path}: rules ({r.id}).id: duplicate id, also defined in {owner[r.id]}")
            owner[r.id] = rs.path
            for a in r.asns:
                if a not in asns:
                    raise RulesetError(f"{rs.path}: rules ({r.id}).asns: AS{a} has no prefixes in {_display(asn_path)}")
        if any(x.vendor == rs.vendor for x in rulesets):
            raise RulesetError(f"{rs.path}: vendor: {rs.vendor!r} is loaded twice")
        rulesets.append(rs)
    if not rulesets:
        raise RulesetError("no vendor rulesets given (only issuers.yaml/asn.yaml)")
    loaded = {x.vendor for x in rulesets}
    for rs in rulesets:  # met_by: another vendor, or a rule of one; unchecked when that vendor is not loaded
        for r in rs.rules:
            for ref in r.met_by:
                vendor = ref if ref in loaded else ref.partition(".")[0]
                if vendor == rs.vendor:
                    raise RulesetError(f"{rs.path}: rules ({r.id}).met_by: {ref!r} is of the same vendor")
                if vendor in loaded and ref != vendor and ref not in owner:
                    raise RulesetError(f"{rs.path}: rules ({r.id}).met_by: {ref!r} is not a rule of {vendor}")
    tenants = dict(tenants or {})
    for key in tenants:
        vendor, _, name = key.partition(".")
        rs = next((x for x in rulesets if x.vendor == vendor), None)
        if rs is None:
            raise RulesetError(f"--tenant {key}: no ruleset for vendor {vendor!r} ({', '.join(x.vendor for x in rulesets)})")
        names = [p.name for p in rs.placeholders]
        if name == "region":
            regions = sorted({r.region for r in rs.rules if r.region})
            if not regions:
                raise RulesetError(f"--tenant {key}: {vendor} rules have no regions")
            if tenants[key] not in regions:
                raise RulesetError(f"--tenant {key}={tenants[key]}: region must be one of {', '.join(regions)}")
            continue
        if name not in names:
            raise RulesetError(
                f"--tenant {key}: {vendor} has no placeholder {name!r}"
                + (f" (it has: {', '.join(names + ['region'] if any(r.region for r in rs.rules) else names)})" if names else "")
            )
        if not tenants[key] or not re.fullmatch(r"[A-Za-z0-9._-]+", tenants[key]):
            raise RulesetError(f"--tenant {key}={tenants[key]!r}: not a valid host name part")
    return RuleBook(tuple(rulesets), issuers, asns, {k: v.lower() for k, v in tenants.items()}, tuple(trusted_issuers))

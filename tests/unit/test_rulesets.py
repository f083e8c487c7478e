"""Rulesets: strict loader errors, seed-row coverage, tenant placeholders, matching."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from pcapaudit.errors import RulesetError
from pcapaudit.rules.loader import builtin_dir, load_rulebook, parse_network
from pcapaudit.rules.matcher import RuleIndex

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "rulesets"


@pytest.mark.parametrize("path", sorted(ASSETS.glob("invalid-*.yaml")), ids=lambda p: p.stem)
def test_invalid_rulesets_name_file_and_field(path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(RulesetError) as e:
        load_rulebook([path])
    msg = str(e.value)
    assert path.name in msg and expect in msg, msg
    assert "\n" not in msg


def test_duplicate_ids_across_files(tmp_path):
    for v in ("aa", "bb"):
        (tmp_path / f"{v}.yaml").write_text(
            f"schema_version: 1\nvendor: {v}\ndisplay_name: x\nsources: [{{id: t, title: t}}]\n"
            f"rules: [{{id: aa.same, service: s, ports: [1], source: t, rows: [r]}}]\n"
        )
    with pytest.raises(RulesetError, match="bb.yaml"):
        load_rulebook([tmp_path])


def _copy_builtin(dest: Path, names=None) -> Path:
    import shutil

    dest.mkdir()
    for f in builtin_dir().iterdir():
        if f.suffix in (".yaml", ".csv") and (names is None or f.name in names):
            shutil.copy(f, dest / f.name)
    return dest


def _cite_unknown_row(path: Path) -> Path:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("003-dm-01", "003-nonexistent-99"), encoding="utf-8")
    return path


def test_unknown_seed_row_is_rejected_naming_file_rule_and_row(tmp_path, book, capsys):
    from pcapaudit.cli import main

    rule = next(r for r in book.rules if "003-dm-01" in r.rows)
    d = _copy_builtin(tmp_path / "rs")
    apple = _cite_unknown_row(d / "apple.yaml")
    with pytest.raises(RulesetError) as e:
        load_rulebook([d])
    msg = str(e.value)
    assert "apple.yaml: rules[" in msg and f"({rule.id}).rows[" in msg, msg
    assert "'003-nonexistent-99' is not a row of" in msg and "seed-rows.csv" in msg and "\n" not in msg, msg
    assert main(["rules", "validate", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "003-nonexistent-99" in err and rule.id in err, err
    with pytest.raises(RulesetError, match="003-nonexistent-99"):
        load_rulebook([apple])  # one file: the seed-rows.csv beside it still applies


def test_rulesets_without_seed_rows_csv_leave_rows_unchecked(tmp_path, capsys):
    from pcapaudit.cli import main

    d = _copy_builtin(tmp_path / "rs", {"apple.yaml", "issuers.yaml", "asn.yaml"})
    _cite_unknown_row(d / "apple.yaml")
    assert main(["rules", "validate", str(d)]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 ruleset(s)")
    own = tmp_path / "own"
    own.mkdir()
    (own / "acme.yaml").write_text(
        "schema_version: 1\nvendor: acme\ndisplay_name: Acme\nsources: [{id: wiki, title: our wiki}]\n"
        "rules: [{id: acme.api, service: API, hosts: [api.acme.example], ports: [443], source: wiki,\n"
        "         rows: [w1]}]\n"
    )
    assert [r.id for r in load_rulebook([own / "acme.yaml"]).rules] == ["acme.api"]
    assert main(["rules", "validate", str(own)]) == 0
    # "builtin" stands for the shipped rulesets: a user's file comes in beside them
    both = load_rulebook(["builtin", own / "acme.yaml"])
    assert both.rule("acme.api") and both.rule("apple.apns") and "acme" in both.vendors
    assert main(["rules", "validate", "builtin", str(own / "acme.yaml")]) == 0


@pytest.mark.parametrize(
    "text, expect",
    [
        ("id,seed\n003-dm-01,003\n", "seed-rows.csv: line 1: no 'row' column in the header"),
        ("row,seed\n003-dm-01,003\n003-dm-01,003\n", "seed-rows.csv: line 3: duplicate row id 003-dm-01"),
        ("row,seed\n003-dm-01,003\n,003\n", "seed-rows.csv: line 3: empty row id"),
        (b"row\n\xff\n", "seed-rows.csv: not UTF-8 text"),
    ],
    ids=["no-row-column", "duplicate", "empty-id", "not-utf8"],
)
def test_bad_seed_rows_csv_names_file_and_line(tmp_path, text, expect):
    d = _copy_builtin(tmp_path / "rs", {"apple.yaml"})
    csv_path = d / "seed-rows.csv"
    csv_path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RulesetError, match=re.escape(expect)):
        load_rulebook([d])


def test_edited_seed_rows_csv_is_read_again(tmp_path):
    d = _copy_builtin(tmp_path / "rs")
    assert load_rulebook([d]).rule("apple.apns")
    csv_path = d / "seed-rows.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    csv_path.write_text("".join(x for x in lines if not x.startswith("003-dm-01,")), encoding="utf-8")
    with pytest.raises(RulesetError, match="'003-dm-01' is not a row of"):
        load_rulebook([d])


def test_tenant_errors(book):
    with pytest.raises(RulesetError, match="has no placeholder 'uid'"):
        load_rulebook(tenants={"kandji.uid": "x"})
    with pytest.raises(RulesetError, match="no ruleset for vendor 'nope'"):
        load_rulebook(tenants={"nope.x": "y"})
    with pytest.raises(RulesetError, match="region must be one of eu, us"):
        load_rulebook(tenants={"kandji.region": "apac"})


def test_builtin_rulesets_shape(book):
    assert set(book.vendors) == {"apple", "jamf-pro", "kandji", "bigfix-mdm", "endpoint-central", "google-fcm"}
    ids = [r.id for r in book.rules]
    assert len(ids) == len(set(ids)) and len(ids) >= 190
    apns = book.rule("apple.apns")
    assert apns.cidrs == ("17.0.0.0/8",) and {p for lo, hi in apns.ports for p in range(lo, hi + 1)} >= {443, 5223, 2197}
    legacy = [r for r in book.rules if r.legacy]
    assert {r.vendor for r in legacy} == {"jamf-pro", "bigfix-mdm", "endpoint-central"}
    assert all(r.port_ok(2195, "tcp") or r.port_ok(2196, "tcp") for r in legacy)
    fcm = [r for r in book.rules if r.port_ok(5228, "tcp") and 15169 in r.asns]
    assert fcm
    assert any(r.port_ok(2575, "tcp") for r in book.rules)  # HL7
    assert any(r.port_ok(135, "tcp") and r.vendor == "jamf-pro" for r in book.rules)
    assert any(r.port_ok(49152, "tcp") and r.port_ok(65535, "tcp") and r.vendor == "jamf-pro" for r in book.rules)
    ldap = [r for r in book.rules if r.port_ok(389, "tcp") and r.cleartext]
    assert ldap and all(r.secure_alternative for r in ldap)
    assert {r.region for r in book.rules if r.vendor == "kandji"} >= {"us", "eu"}


def _row_ports(text):
    out = []
    for p in filter(None, (x.strip() for x in text.split(";"))):
        lo, _, hi = p.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def _expand(host: str) -> set[str]:
    """The documents' numbered-set shorthand clients[2...6].google.com stands for clients2 ... clients6."""
    m = re.match(r"^(.*)\[(\d+)\.\.\.(\d+)\](.*)$", host)
    if not m:
        return {host}
    return {f"{m.group(1)}{n}{m.group(4)}" for n in range(int(m.group(2)), int(m.group(3)) + 1)}


def test_every_seed_row_is_implemented(book):
    rows = list(csv.DictReader((builtin_dir() / "seed-rows.csv").open(encoding="utf-8")))
    assert len(rows) == 199
    counts = {}
    for r in rows:
        counts[r["seed"]] = counts.get(r["seed"], 0) + 1
    assert counts == {"000": 30, "001": 54, "002": 17, "003": 52, "004": 46}
    by_row = {}
    for rule in book.rules:
        for rid in rule.rows:
            by_row.setdefault(rid, []).append(rule)
    unknown = set(by_row) - {r["row"] for r in rows}
    assert not unknown, unknown
    for row in rows:
        rules = by_row.get(row["row"])
        assert rules, f"seed row {row['row']} has no rule"
        hosts = {x for h in row["hosts"].split(";") if h.strip() for x in _expand(h.strip().lower())}
        have = {h for r in rules for h in r.hosts}
        assert hosts <= have, (row["row"], hosts - have)
        for c in filter(None, (x.strip() for x in row["cidrs"].split(";"))):
            if c.upper().startswith("AS"):
                assert any(int(c[2:]) in r.asns for r in rules), (row["row"], c)
            else:
                assert any(c in r.cidrs for r in rules), (row["row"], c)
        for lo, hi in _row_ports(row["ports"]):
            assert any(
                any(a <= lo and hi <= b for a, b in r.ports) and r.transport in (row["transport"], "any") for r in rules
            ), (row["row"], lo, hi)


HOST_RE = re.compile(r"(?<![\w.-])(\*?[a-z0-9*][a-z0-9.*\-\[\]]*\.(?:com|net|io|build|cn|org))(?![\w-])", re.I)


def test_every_host_in_the_seed_documents_is_in_a_rule(book, seeds):
    have = {h for r in book.rules for h in r.hosts}
    ignore = {"docs.microsoft.com", "google.com"}  # reference links in the documents, not endpoints
    missing = set()
    for doc in sorted(seeds.glob("00*.txt")):
        for m in HOST_RE.finditer(doc.read_text(encoding="utf-8")):
            h = m.group(1).lower().strip(".")
            h = h.split("/")[0]
            if all(x in have for x in _expand(h)):
                continue
            if h in ignore or h.startswith(("uuid", "subdomain")) or "ioadcsconn" in h:
                continue
            if h not in have and not any(x.endswith(h) for x in have):
                missing.add((doc.name, h))
    assert not missing, sorted(missing)


def test_every_network_parses(book):
    for r in book.rules:
        for c in r.cidrs + r.server_cidrs:
            assert parse_network(c)


def test_matcher_exact_wildcard_and_placeholders():
    idx = RuleIndex(load_rulebook())
    hits = idx.match_name("1-courier.push.apple.com")
    assert hits[0].rule.id == "apple.apns" and hits[0].confidence == "wildcard"
    assert idx.match_name("push.apple.com") == () or all(h.rule.id != "apple.apns" for h in idx.match_name("push.apple.com"))
    pat = idx.match_name("4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01.web-api.kandji.io")
    assert pat and pat[0].confidence == "pattern" and pat[0].rule.vendor == "kandji"
    filled = RuleIndex(load_rulebook(tenants={"kandji.uuid": "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01"}))
    hits = filled.match_name("4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01.web-api.kandji.io")
    assert hits[0].confidence == "exact" and hits[0].rule.pinned
    assert idx.match_name("clients4.google.com")  # the document's clients[2...6] shorthand
    assert idx.match_name("lh3.ggpht.com")  # '*ggpht.com' without a dot
    assert [r.id for r in idx.match_ip("17.248.130.1")][0].startswith("apple.notarization")
    assert any(15169 in r.asns for r in idx.match_ip("142.250.10.10"))
    assert idx.match_port("tcp", 3306)


def test_jamf_server_host_placeholder_only_matches_when_filled():
    idx = RuleIndex(load_rulebook())
    assert not any(h.rule.id == "jamf-pro.web-app" for h in idx.match_name("jamf.example.com"))
    idx2 = RuleIndex(load_rulebook(tenants={"jamf-pro.server": "jamf.example.com"}))
    assert idx2.match_name("jamf.example.com")[0].rule.id == "jamf-pro.web-app"


def test_match_ip_gives_what_a_scan_of_every_network_gives(book):
    """match_ip skips the list of networks for addresses outside all of them; the answer must not change."""
    import ipaddress
    import random

    idx = RuleIndex(book)

    def brute(ip):
        a = ipaddress.ip_address(ip)
        nets = idx.nets4 if a.version == 4 else idx.nets6
        found = sorted(((hi - lo, r) for lo, hi, r in nets if lo <= int(a) <= hi), key=lambda x: x[0])
        return tuple(dict.fromkeys(r.id for _, r in found))

    rng = random.Random(3)
    probes = []
    for lo, hi, _r in idx.nets4 + idx.nets6:
        probes += [lo, hi, lo - 1, hi + 1, rng.randint(lo, hi)]
    probes = [ipaddress.ip_address(v) for v in probes if 0 <= v < (1 << 128)]
    probes += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(3000)]
    probes += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(500)]
    hits = 0
    for a in probes:
        if a.version == 4 and int(a) >= 1 << 32:
            continue
        got = tuple(r.id for r in idx.match_ip(str(a)))
        assert got == brute(str(a)), a
        hits += bool(got)
    assert hits > 300  # the edges and insides of every network were probed

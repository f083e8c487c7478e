"""Ruleset data types: what a vendor document says, one ``Rule`` per requirement."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

SCHEMA_VERSION = 1

REQUIRED_LEVELS = ("required", "recommended", "conditional", "optional", "unstated")
TRANSPORTS = ("tcp", "udp", "any")
ROLES = (
    "device", "agent", "admin", "mdm-server", "connector", "vendor", "third-party", "customer-infra",
    "external",
)  # fmt: skip
TLS_MODES = ("required", "optional", "none")
PROXY_VALUES = ("yes", "no", "unstated", "see-apns-proxy-article")
REGIONS = ("us", "eu", "na", "cn", "intl")
PLACEHOLDER_KINDS = ("label", "host")

# key -> (python type(s), allowed values or None); "list" means a YAML sequence
RULE_KEYS: dict[str, tuple] = {
    "id": (str, None),
    "service": (str, None),
    "hosts": ("list", str),
    "cidrs": ("list", str),
    "asns": ("list", int),
    "ports": ("list", (int, str)),
    "transport": (str, TRANSPORTS),
    "initiator": (str, ROLES),
    "responder": (str, ROLES),
    "required": (str, REQUIRED_LEVELS),
    "app_protocol": (str, None),
    "tls": (str, TLS_MODES),
    "cleartext": (bool, None),
    "secure_alternative": (str, None),
    "tls_inspection_allowed": (bool, None),
    "pinned": (bool, None),
    "expected_issuers": (str, None),
    "server_cidrs": ("list", str),
    "proxy": (str, PROXY_VALUES),
    "legacy": (bool, None),
    "region": ((str, type(None)), REGIONS + (None,)),
    "os": ("list", str),
    "notes": (str, None),
    "source": (str, None),
    "rows": ("list", str),
    "met_by": ("list", str),
}
RULE_REQUIRED_KEYS = ("id", "service", "ports", "source", "rows")
DEFAULTABLE = tuple(k for k in RULE_KEYS if k not in ("id", "hosts", "rows", "met_by"))
FILE_KEYS = ("schema_version", "vendor", "display_name", "sources", "placeholders", "defaults", "rules")
SOURCE_KEYS = ("id", "file", "title", "url")
PLACEHOLDER_KEYS = ("name", "kind", "description")


@dataclass(frozen=True, slots=True)
class Source:
    """A vendor document a ruleset is transcribed from."""

    id: str
    file: str | None
    title: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A tenant-specific value in host patterns (``{uuid}``)."""

    name: str
    kind: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """One requirement: these hosts/networks on these ports are needed (and how)."""

    id: str
    vendor: str
    service: str
    hosts: tuple[str, ...]
    cidrs: tuple[str, ...]
    asns: tuple[int, ...]
    ports: tuple[tuple[int, int], ...]
    transport: str
    initiator: str | None
    responder: str | None
    required: str
    app_protocol: str | None
    tls: str | None
    cleartext: bool
    secure_alternative: str | None
    tls_inspection_allowed: bool
    pinned: bool
    expected_issuers: str | None
    server_cidrs: tuple[str, ...]
    proxy: str | None
    legacy: bool
    region: str | None
    os: tuple[str, ...]
    notes: str | None
    source: str
    rows: tuple[str, ...]
    file: str
    # another vendor's rules (an id) or whole vendor (its id) that meet this requirement: Jamf's "devices to
    # APNs" is met by the flows that meet Apple's APNs rule, on a port this rule lists
    met_by: tuple[str, ...] = ()

    def port_ok(self, port: int, transport: str) -> bool:
        """True when ``port``/``transport`` is listed by this rule."""
        if self.transport != "any" and transport != self.transport:
            return False
        return any(lo <= port <= hi for lo, hi in self.ports)

    @property
    def ports_text(self) -> str:
        """'443, 5223, 49152-65535'."""
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)

    @property
    def targets_text(self) -> str:
        """Hosts, networks and ASNs as one string for tables."""
        parts = list(self.hosts) + list(self.cidrs) + [f"AS{a}" for a in self.asns]
        return "; ".join(parts) if parts else "(any host)"


@dataclass(frozen=True, slots=True)
class Ruleset:
    """One vendor file."""

    vendor: str
    display_name: str
    sources: tuple[Source, ...]
    placeholders: tuple[Placeholder, ...]
    rules: tuple[Rule, ...]
    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class IssuerSet:
    """Certificate issuers (O= values, CN globs) accepted for a group of hosts."""

    name: str
    description: str
    organizations: tuple[str, ...]
    common_names: tuple[str, ...]


@dataclass(frozen=True)
class RuleBook:
    """Everything loaded: rulesets, issuer sets, ASN prefixes and tenant values."""

    rulesets: tuple[Ruleset, ...]
    issuers: dict[str, IssuerSet] = field(default_factory=dict)
    asn_prefixes: dict[int, tuple[str, ...]] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)
    trusted_issuers: tuple[str, ...] = ()

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        """All rules of all rulesets, in file order."""
        return tuple(r for rs in self.rulesets for r in rs.rules)

    @cached_property
    def _by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def rule(self, rule_id: str) -> Rule | None:
        """Look a rule up by id."""
        return self._by_id.get(rule_id)

    @property
    def vendors(self) -> tuple[str, ...]:
        """Vendor ids in load order."""
        return tuple(rs.vendor for rs in self.rulesets)

    def ruleset(self, vendor: str) -> Ruleset | None:
        """The ruleset of a vendor id."""
        for rs in self.rulesets:
            if rs.vendor == vendor:
                return rs
        return None

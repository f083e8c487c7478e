"""Lab PKI built with `cryptography` at run time.

Two hierarchies with fixed, deterministic names (keys are fresh on every run):

* public-like:  "pcapaudit Lab Public Root CA" (O=pcapaudit Lab Trust Services)
                  -> "pcapaudit Lab Public Server CA 1" (intermediate) -> one leaf per vendor host
* inspection:   "Corporate Inspection CA" (O=Example Corp Security), the CA of a TLS-inspection
                  appliance; it signs leaves for whatever SNI the intercepting proxy sees.

Files in the PKI directory:
  public-root.pem/.key, public-int.pem/.key, inspection-ca.pem/.key
  trust-public.pem        what a *pinned* client trusts (public root only)
  trust-inspection.pem    public root + Corporate Inspection CA (an *unpinned* client, e.g. a device with
                          the appliance's root installed by profile)
Leaves are issued on demand by `Issuer.leaf(host, hierarchy)` into a cache directory, as
`<hierarchy>-<host>.pem` (leaf + issuing CA, the chain a server sends) and `.key`.

By default every leaf is ECDSA P-256 with the host (and a wildcard) as names: all lab vendors then look
like one TLS stack. `Issuer.leaf(host, hierarchy, profile)` with a name of `PROFILES` gives the vendor
diversity of the real internet instead (another key type and size, more names, subject fields, the root
sent along): the scenarios that measure passive TLS 1.3 evidence use them (tls13-*).
"""
from __future__ import annotations

import datetime as _dt
import os
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PUBLIC_ROOT = {"CN": "pcapaudit Lab Public Root CA", "O": "pcapaudit Lab Trust Services", "C": "US"}
PUBLIC_INT = {"CN": "pcapaudit Lab Public Server CA 1", "O": "pcapaudit Lab Trust Services", "C": "US"}
INSPECTION_CA = {"CN": "Corporate Inspection CA", "O": "Example Corp Security", "OU": "Network Security",
                 "C": "US"}

# Certificate profiles: leaf key type, extra subject fields, extra SAN names, whether the root is sent too.
PROFILES = {
    "apple": {"key": "rsa2048", "sans": 3,
              "subject": {"O": "Apple Inc.", "L": "Cupertino", "ST": "California", "C": "US"}},
    "jamf": {"key": "rsa2048", "subject": {"O": "Jamf Software, LLC", "C": "US"}, "send_root": True},
    "kandji": {"key": "ec256"},
    "google": {"key": "ec256", "sans": 12},
    "datadog": {"key": "rsa3072", "subject": {"O": "Datadog, Inc.", "C": "US"}, "sans": 4},
    "inspection-rsa": {"key": "rsa2048"},  # what most inspection appliances mint
}


def _leaf_key(kind: str):
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    return ec.generate_private_key({"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1()}[kind])


# Leaves for hosts under these parents also carry the wildcard (as real vendor certificates do).
WILDCARD_PARENTS = ("push.apple.com", "jamfcloud.com", "web-api.kandji.io", "web-api.eu.kandji.io",
                    "devices.us-1.kandji.io", "devices.eu.kandji.io", "googleapis.com")


def _name(d: dict) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME}
    order = ["C", "ST", "L", "O", "OU", "CN"]
    return x509.Name([x509.NameAttribute(oids[k], d[k]) for k in order if k in d])


def _write_key(path: str, key) -> None:
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_certs(path: str, *certs) -> None:
    with open(path, "wb") as f:
        for c in certs:
            f.write(c.public_bytes(serialization.Encoding.PEM))


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _ca_cert(subject: dict, key, issuer_name: x509.Name, issuer_key, path_len, days: int) -> x509.Certificate:
    now = _now()
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def build_pki(directory: str) -> "Issuer":
    """Create both hierarchies in `directory` and return an Issuer for it."""
    os.makedirs(directory, exist_ok=True)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _ca_cert(PUBLIC_ROOT, root_key, _name(PUBLIC_ROOT), root_key, None, 3650)
    int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter = _ca_cert(PUBLIC_INT, int_key, root.subject, root_key, 0, 1825)
    insp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    insp = _ca_cert(INSPECTION_CA, insp_key, _name(INSPECTION_CA), insp_key, None, 3650)
    for stem, cert, key in (("public-root", root, root_key), ("public-int", inter, int_key),
                            ("inspection-ca", insp, insp_key)):
        _write_certs(os.path.join(directory, stem + ".pem"), cert)
        _write_key(os.path.join(directory, stem + ".key"), key)
    _write_certs(os.path.join(directory, "trust-public.pem"), root)
    _write_certs(os.path.join(directory, "trust-inspection.pem"), root, insp)
    return Issuer(directory)


class Issuer:
    """Issues leaf certificates from the CA material in a PKI directory (thread-safe, cached)."""

    def __init__(self, directory: str, cache_dir: str | None = None):
        self.directory = directory
        self.cache_dir = cache_dir or os.path.join(directory, "leaves")
        os.makedirs(self.cache_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._ca = {}

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    @property
    def trust_public(self) -> str:
        return self.path("trust-public.pem")

    @property
    def trust_inspection(self) -> str:
        return self.path("trust-inspection.pem")

    def _load_ca(self, hierarchy: str):
        if hierarchy not in self._ca:
            stem = {"public": "public-int", "inspection": "inspection-ca"}[hierarchy]
            with open(self.path(stem + ".pem"), "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            with open(self.path(stem + ".key"), "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
            self._ca[hierarchy] = (cert, key)
        return self._ca[hierarchy]

    def leaf(self, host: str, hierarchy: str = "public", profile: str | None = None) -> tuple[str, str]:
        """Return (chain_pem_path, key_path) for `host` issued by the given hierarchy (`profile`: a name
        of PROFILES, else the default ECDSA P-256 leaf)."""
        safe = host.replace("*", "_wild_")
        stem = f"{hierarchy}-{profile}-{safe}" if profile else f"{hierarchy}-{safe}"
        chain = os.path.join(self.cache_dir, f"{stem}.pem")
        keyp = os.path.join(self.cache_dir, f"{stem}.key")
        prof = PROFILES[profile] if profile else {}
        with self._lock:
            if os.path.exists(chain) and os.path.exists(keyp):
                return chain, keyp
            ca_cert, ca_key = self._load_ca(hierarchy)
            key = _leaf_key(prof.get("key", "ec256"))
            names = [host]
            parent = host.split(".", 1)[1] if "." in host else ""
            if hierarchy == "public" and parent in WILDCARD_PARENTS:
                names.append("*." + parent)
            names += [f"alt{i}.{parent or host}" for i in range(prof.get("sans", 0))]
            subject = {"CN": host}
            if hierarchy != "inspection":
                subject["O"] = "pcapaudit Lab Vendor Hosts"
            if "subject" in prof:
                subject = {"CN": host, **prof["subject"]}
            now = _now()
            cert = (x509.CertificateBuilder()
                    .subject_name(_name(subject))
                    .issuer_name(ca_cert.subject).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=90))
                    .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                          ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                   critical=False)
                    .sign(ca_key, hashes.SHA256()))
            tmp = chain + f".{os.getpid()}.tmp"
            extra = []
            if prof.get("send_root") and hierarchy == "public":
                with open(self.path("public-root.pem"), "rb") as f:
                    extra.append(x509.load_pem_x509_certificate(f.read()))
            _write_certs(tmp, cert, ca_cert, *extra)
            _write_key(keyp + f".{os.getpid()}.tmp", key)
            os.replace(keyp + f".{os.getpid()}.tmp", keyp)
            os.replace(tmp, chain)
            return chain, keyp


def describe_name(name: x509.Name) -> dict:
    out = {}
    for attr, key in ((NameOID.COMMON_NAME, "cn"), (NameOID.ORGANIZATION_NAME, "o")):
        vals = name.get_attributes_for_oid(attr)
        if vals:
            out[key] = vals[0].value
    return out


def describe_der(der: bytes) -> dict:
    """Issuer/subject summary of a DER certificate (as seen by a client)."""
    cert = x509.load_der_x509_certificate(der)
    return {"issuer": describe_name(cert.issuer), "subject": describe_name(cert.subject)}


def describe_pem_file(path: str) -> dict:
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificates(f.read())[0]
    return {"issuer": describe_name(cert.issuer), "subject": describe_name(cert.subject)}

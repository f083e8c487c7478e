#!/usr/bin/env python3
"""Record the pcapaudit scenario captures in the real-traffic lab (tests/lab).

    sudo python3 tests/scenarios/record.py [NAME ...]     # all scenarios when no name is given
    sudo python3 tests/scenarios/record.py --list

Each scenario builds a fresh lab (network namespaces, dnsmasq, lab PKI, real servers/middleboxes),
captures with tcpdump while lab clients run, and writes tests/scenarios/<NAME>/{input.pcap,truth.yaml,
README.md}. truth.yaml is generated from what the lab observed. Needs root, iproute2, nftables,
tcpdump and dnsmasq; traffic never leaves the lab's namespaces.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

from tests.lab import Lab, cleanup_stale, hosts as H  # noqa: E402
from tests.lab.pki import build_pki  # noqa: E402
from tests.lab.protocols import LDAP_BIND_PASSWORD  # noqa: E402
from tests.lab.recording import Recording  # noqa: E402
from tests.lab.topology import forward_filter, https, nat_redirect, tls  # noqa: E402

K, KE = H.KANDJI_TENANT, H.KANDJI_EU_TENANT
K_WEB, K_DEV = f"{K}.web-api.kandji.io", f"{K}.devices.us-1.kandji.io"
APNS_ALPN = ["apns-security-v3"]
BROWSER_ALPN = ["h2", "http/1.1"]

SCENARIOS: dict = {}


def scenario(name, description, capture_role="dev", capture_iface="eth0", fmt="pcap", lab_kw=None, extra=""):
    def deco(fn):
        SCENARIOS[name] = {"fn": fn, "description": description, "capture_role": capture_role,
                           "capture_iface": capture_iface, "fmt": fmt, "lab_kw": lab_kw or {}, "extra": extra}
        return fn
    return deco


fw_filter = forward_filter
fw_redirect = nat_redirect


# ------------------------------------------------------------------------------------------------ 1
@scenario("clean-apple-jamf-enrollment", """
A Mac (192.168.50.10) enrolls into Jamf Cloud through Automated Device Enrollment on an unrestricted
network. It resolves every name through the site resolver, checks the captive portal, syncs time, then
reaches Apple activation (albert), the software-update catalog (gdmf), the DEP profile/enrollment
services (iprofiles, deviceenrollment, mdmenrollment), the Jamf Cloud tenant acme.jamfcloud.com (TLS 1.2
only), OCSP over HTTP, and APNs on 5223. Every certificate chains to the lab public CA
("pcapaudit Lab Public Server CA 1"); TLS 1.3 and TLS 1.2 are mixed. Nothing fails.
""")
def s_clean(lab, rec):
    lab.start_internet()
    steps = [
        {"op": "tcp", "host": "captive.apple.com", "port": 80, "app": "http", "path": "/hotspot-detect.html",
         "label": "captive network assistant"},
        {"op": "udp", "host": "time.apple.com", "port": 123, "app": "ntp", "label": "timed"},
        {"op": "tls", "host": "albert.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http-post",
         "path": "/deviceservices/drmHandshake", "ua": "mobileactivationd", "label": "mobileactivationd"},
        {"op": "tls", "host": "gdmf.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
         "path": "/v2/pmv", "ua": "softwareupdated", "label": "softwareupdated"},
        {"op": "tls", "host": "iprofiles.apple.com", "port": 443, "max": "TLSv1.2", "app": "http-post",
         "path": "/macProfile", "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
        {"op": "tls", "host": "deviceenrollment.apple.com", "port": 443, "max": "TLSv1.2", "app": "http",
         "path": "/devicemanagement/mdm/checkin", "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
        {"op": "tls", "host": "mdmenrollment.apple.com", "port": 443, "app": "http-post", "path": "/session",
         "ua": "cloudconfigurationd", "label": "cloudconfigurationd"},
        {"op": "tls", "host": "acme.jamfcloud.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http-post",
         "path": "/mdm/CheckIn", "ctype": "application/x-apple-aspen-mdm-checkin",
         "body": '<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string></dict></plist>',
         "ua": "MDM/1.0", "label": "mdmclient (Jamf Cloud check-in)"},
        {"op": "tcp", "host": "ocsp.apple.com", "port": 80, "app": "http",
         "path": "/ocsp03-apevsrsa2g101/ME4wTKADAgEAMEUwQzBBMAkGBSsOAwIaBQAEFA", "ua": "com.apple.trustd/3.0",
         "label": "trustd (OCSP)"},
        {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "app": "courier", "label": "apsd (APNs)"},
    ]
    with rec.capture():
        rec.run("dev", steps)


# ------------------------------------------------------------------------------------------------ 2
@scenario("apns-5223-blocked-443-fallback", """
The firewall silently drops TCP to Apple's 17.0.0.0/8 on port 5223. The device's push daemon tries
1-courier.push.apple.com:5223, retransmits its SYN until its connect timeout (7.5 s; Linux 6.x retransmits
a SYN every second at first, so several retransmissions appear: truth.yaml has the exact count), gives up,
and falls back to the same host on 443, where TLS 1.3 with ALPN apns-security-v3 succeeds.
""")
def s_apns_fallback(lab, rec):
    lab.start_internet()
    rec.firewall(fw_filter(["ip daddr 17.0.0.0/8 tcp dport 5223 drop"]),
                 ["forward: ip daddr 17.0.0.0/8 tcp dport 5223 drop"])
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "app": "courier",
             "connect_timeout": 7.5, "label": "apsd (APNs)"},
            {"op": "tls", "host": "1-courier.push.apple.com", "port": 443, "alpn": APNS_ALPN, "app": "courier",
             "label": "apsd (APNs, 443 fallback)"},
        ])


# ------------------------------------------------------------------------------------------------ 3/4
def kandji_inspection(lab, rec, version):
    lab.start_internet()
    lab.start_services("fw", [{"kind": "mitm", "ip": "0.0.0.0", "port": 15443, "min": "TLSv1.2", "max": version,
                               "bypass": ["browser-intake-datadoghq.com"]}], name="mitm")
    rec.firewall(fw_redirect(['iifname "lan0" tcp dport 443 redirect to :15443']),
                 ['nat prerouting: iifname "lan0" tcp dport 443 redirect to :15443 (the inspection proxy)'])
    rec.middleboxes.append({"kind": "tls_inspection_proxy", "where": "fw", "max_tls": version,
                            "issuer": "Corporate Inspection CA (O=Example Corp Security)",
                            "bypass": ["browser-intake-datadoghq.com"],
                            "summary": f"transparent TLS interception of all TCP 443 from the device LAN, "
                                       f"TLS up to {version}, leaves signed by 'Corporate Inspection CA'; "
                                       f"bypass list: browser-intake-datadoghq.com"})
    rec.tenants = {"kandji.uuid": K, "kandji.region": "us"}
    steps = [
        {"op": "tls", "host": K_WEB, "port": 443, "trust": "public", "alpn": BROWSER_ALPN, "app": "http",
         "path": "/api/v1/agent/checkin", "label": "Kandji agent (pinned)"},
        {"op": "tls", "host": K_WEB, "port": 443, "trust": "inspection", "alpn": BROWSER_ALPN, "app": "http",
         "path": "/app/v1/self-service", "label": "Kandji Self Service (unpinned)"},
        {"op": "tls", "host": K_DEV, "port": 443, "trust": "public", "alpn": BROWSER_ALPN, "app": "http",
         "path": "/mdm/checkin", "label": "Kandji agent (pinned)"},
        {"op": "tls", "host": K_DEV, "port": 443, "trust": "inspection", "alpn": BROWSER_ALPN, "app": "http-post",
         "path": "/mdm/connect", "label": "mdmclient (unpinned, trusts the inspection root)"},
        {"op": "tls", "host": "browser-intake-datadoghq.com", "port": 443, "trust": "public", "alpn": BROWSER_ALPN,
         "app": "http-post", "path": "/api/v2/rum", "label": "Kandji Self Service telemetry (bypassed)"},
    ]
    with rec.capture():
        rec.run("dev", steps)


@scenario("kandji-ssl-inspection-tls12", """
A TLS-inspection appliance (transparent proxy in the firewall, TLS 1.2 only) intercepts HTTPS from the
device LAN and re-signs with "Corporate Inspection CA" (O=Example Corp Security). The Kandji agent pins
Kandji's real chain, so its handshakes to the tenant hosts <uuid>.web-api.kandji.io and
<uuid>.devices.us-1.kandji.io fail: OpenSSL sends a fatal unknown_ca alert (visible in clear in TLS 1.2).
Unpinned clients on the same device (Self Service, mdmclient with the inspection root installed by profile)
complete the handshake and the inspection issuer is visible in the TLS 1.2 Certificate message.
browser-intake-datadoghq.com is on the bypass list and passes through with the lab public chain.
""")
def s_kandji12(lab, rec):
    kandji_inspection(lab, rec, "TLSv1.2")


@scenario("kandji-ssl-inspection-tls13", """
Same as kandji-ssl-inspection-tls12 but the inspection proxy speaks TLS 1.3, so the inspection certificate
is encrypted and never visible on the wire. The pinned Kandji agent aborts right after the server's first
flight. Note what OpenSSL 3.0 really does here: its fatal unknown_ca alert goes out as a *plaintext* alert
record (the client has not yet switched its write side to the handshake keys when certificate
verification fails), followed by a TCP RST. The unpinned clients complete (issuer "Corporate Inspection CA"
per the client, not visible in the capture); the datadog bypass flow shows the lab public chain end to end.
""")
def s_kandji13(lab, rec):
    kandji_inspection(lab, rec, "TLSv1.3")


# ------------------------------------------------------------------------------------------------ 3b
# Passive TLS 1.3 interception evidence (issue 20): the same device and the same vendor names, once through
# a re-signing inspection proxy, once through the same box acting as a plain TCP forwarder. The vendor
# servers have per-vendor certificate profiles (tests/lab/pki.py PROFILES: RSA 2048/3072 and ECDSA P-256
# leaves, more or fewer names, a chain with or without the root), as the real internet has.
TLS13_STEPS = [
    ("albert.apple.com", "http-post", "/deviceservices/drmHandshake", "mobileactivationd"),
    ("gdmf.apple.com", "http", "/v2/pmv", "softwareupdated"),
    ("acme.jamfcloud.com", "http", "/healthCheck.html", "mdmclient (Jamf Cloud check-in)"),
    (K_WEB, "http", "/app/v1/self-service", "Kandji Self Service"),
    ("android.googleapis.com", "http", "/checkin", "Android checkin"),
    ("browser-intake-datadoghq.com", "http-post", "/api/v2/rum", "Kandji Self Service telemetry"),
]
TLS13_VENDOR_SUFFIXES = ["apple.com", "jamfcloud.com", "kandji.io", "googleapis.com",
                         "browser-intake-datadoghq.com"]


def tls13_passive(lab, rec, intercept: bool):
    lab.start_internet(replace={("acme.jamfcloud.com", 443): https("acme.jamfcloud.com", profile="jamf")},
                       diverse=True)
    bypass = [] if intercept else TLS13_VENDOR_SUFFIXES
    lab.start_services("fw", [{"kind": "mitm", "ip": "0.0.0.0", "port": 15443, "min": "TLSv1.2",
                               "max": "TLSv1.3", "bypass": bypass, "leaf_profile": "inspection-rsa"}], name="mitm")
    rec.firewall(fw_redirect(['iifname "lan0" tcp dport 443 redirect to :15443']),
                 ['nat prerouting: iifname "lan0" tcp dport 443 redirect to :15443 ('
                  + ('the inspection proxy' if intercept else 'the same box as a plain TCP forwarder') + ')'])
    if intercept:
        rec.middleboxes.append({"kind": "tls_inspection_proxy", "where": "fw", "max_tls": "TLSv1.3",
                                "issuer": "Corporate Inspection CA (O=Example Corp Security)", "bypass": [],
                                "summary": "transparent TLS interception of all TCP 443 from the device LAN, "
                                           "TLS up to TLSv1.3, RSA-2048 leaves signed by "
                                           "'Corporate Inspection CA'"})
    else:
        rec.middleboxes.append({"kind": "tcp_forwarder", "where": "fw",
                                "summary": "the inspection box with every vendor on its bypass list: a "
                                           "transparent TCP forwarder (no TLS termination)"})
    rec.tenants = {"kandji.uuid": K, "kandji.region": "us"}
    trust = "inspection" if intercept else "public"
    steps = [{"op": "tls", "host": h, "port": 443, "trust": trust, "alpn": BROWSER_ALPN, "app": app,
              "path": path, "label": label + (" (trusts the inspection root)" if intercept else "")}
             for h, app, path, label in TLS13_STEPS]
    # the pinned Kandji agent, twice (its retry): it refuses the inspection chain, accepts the real one
    steps += [{"op": "tls", "host": K_DEV, "port": 443, "trust": "public", "alpn": BROWSER_ALPN,
               "app": "http", "path": "/mdm/checkin", "label": "Kandji agent (pinned)"}] * 2
    with rec.capture():
        rec.run("dev", steps)


@scenario("tls13-inspection-passive", """
A transparent TLS-inspection proxy in the firewall terminates every TLS 1.3 connection from the device LAN
on port 443 and re-signs with "Corporate Inspection CA" (RSA-2048 leaves minted per name). The device
trusts the inspection root (installed by profile), so its clients to six names of five vendors (Apple
albert/gdmf, Jamf Cloud, Kandji, Google, Datadog) complete; the pinned Kandji agent refuses the chain twice
(its retry). The vendor servers behind have per-vendor certificates (RSA 2048/3072 or ECDSA P-256 leaves,
more or fewer names, the root sent or not), but on the wire only the proxy's TLS stack answers: one
ServerHello shape and an encrypted flight of a constant size plus twice the name's length, for every
vendor. The same names through the same box as a plain TCP forwarder: tls13-clean-forwarder.
""")
def s_tls13_inspection(lab, rec):
    tls13_passive(lab, rec, intercept=True)


@scenario("tls13-clean-forwarder", """
The counterpart of tls13-inspection-passive: the same device and the same client steps to the same names,
through the same box in the firewall, but with every vendor on its bypass list, so it only forwards TCP
(no TLS termination). Each vendor's own server answers with its own certificate profile (RSA 2048/3072 or
ECDSA P-256 leaves, more or fewer names, the root sent or not): the encrypted server flights differ by
vendor, as on the real internet. The clients trust only the public root (the pinned Kandji agent included),
and everything completes.
""")
def s_tls13_clean(lab, rec):
    tls13_passive(lab, rec, intercept=False)


# ------------------------------------------------------------------------------------------------ 5
@scenario("sni-filtered-rst", """
An SNI-filtering middlebox in the firewall transparently accepts every TCP 443 connection from the device
LAN, reads the ClientHello and decides on the server name: mdmenrollment.apple.com is reset (TCP RST right
after the ClientHello), gdmf.apple.com is silently held (no answer; the client gives up after 3 s), and
albert.apple.com is passed to the real server (lab public chain, TLS 1.3).
""")
def s_sni(lab, rec):
    lab.start_internet()
    lab.start_services("fw", [{"kind": "sni_filter", "ip": "0.0.0.0", "port": 15444,
                               "rst": ["mdmenrollment.apple.com"], "silent": ["gdmf.apple.com"]}], name="snifilter")
    rec.firewall(fw_redirect(['iifname "lan0" tcp dport 443 redirect to :15444']),
                 ['nat prerouting: iifname "lan0" tcp dport 443 redirect to :15444 (the SNI filter)'])
    rec.middleboxes.append({"kind": "sni_filter", "where": "fw", "reset": ["mdmenrollment.apple.com"],
                            "silent": ["gdmf.apple.com"],
                            "summary": "reads the ClientHello; RST (SO_LINGER 0) for mdmenrollment.apple.com, "
                                       "silence for gdmf.apple.com, pass-through otherwise"})
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "albert.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "label": "mobileactivationd"},
            {"op": "tls", "host": "mdmenrollment.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "label": "cloudconfigurationd"},
            {"op": "tls", "host": "gdmf.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "timeout": 3.0, "label": "softwareupdated"},
        ])


# ------------------------------------------------------------------------------------------------ 6
@scenario("legacy-apns-2195", """
The on-prem Jamf Pro server (10.20.0.5) still uses the retired binary APNs provider interface: it opens
TLS 1.2 to gateway.push.apple.com:2195 and sends a command-2 notification frame, and polls
feedback.push.apple.com:2196 (the server returns one feedback tuple and closes). For contrast it also
opens the current HTTP/2 provider API at api.push.apple.com:443 (ALPN h2, TLS 1.3). Captured on the
server's own interface.
""", capture_role="srv")
def s_legacy_apns(lab, rec):
    lab.start_internet()
    src = H.JAMF_PRO
    with rec.capture():
        rec.run("srv", [
            {"op": "tls", "host": "gateway.push.apple.com", "port": 2195, "app": "apns-binary", "src": src,
             "label": "Jamf Pro (legacy APNs provider)"},
            {"op": "tls", "host": "feedback.push.apple.com", "port": 2196, "app": "apns-feedback", "src": src,
             "label": "Jamf Pro (legacy APNs feedback)"},
            {"op": "tls", "host": "api.push.apple.com", "port": 443, "alpn": ["h2"], "app": "h2", "src": src,
             "label": "Jamf Pro (HTTP/2 APNs provider API)"},
        ])


# ------------------------------------------------------------------------------------------------ 7
@scenario("fcm-5228-blocked", """
An Android device (192.168.50.11) tries Firebase Cloud Messaging at mtalk.google.com. The firewall blocks
each FCM port differently: 5228 is rejected with ICMP port-unreachable, 5229 is silently dropped (SYN
retransmitted until the 3 s connect timeout), 5230 is rejected with a TCP reset. HTTPS to
android.googleapis.com:443 then works (lab public chain).
""")
def s_fcm(lab, rec):
    lab.start_internet()
    rec.firewall(fw_filter([
        "ip daddr 142.250.0.0/15 tcp dport 5228 reject with icmp type port-unreachable",
        "ip daddr 142.250.0.0/15 tcp dport 5229 drop",
        "ip daddr 142.250.0.0/15 tcp dport 5230 reject with tcp reset",
    ]), ["forward: ip daddr 142.250.0.0/15 tcp dport 5228 reject with icmp type port-unreachable",
         "forward: ip daddr 142.250.0.0/15 tcp dport 5229 drop",
         "forward: ip daddr 142.250.0.0/15 tcp dport 5230 reject with tcp reset"])
    a = H.ANDROID
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "mtalk.google.com", "port": 5228, "app": "courier", "src": a,
             "label": "Google Play services (FCM)"},
            {"op": "tls", "host": "mtalk.google.com", "port": 5229, "app": "courier", "src": a,
             "label": "Google Play services (FCM)"},
            {"op": "tls", "host": "mtalk.google.com", "port": 5230, "app": "courier", "src": a,
             "label": "Google Play services (FCM)"},
            {"op": "tls", "host": "android.googleapis.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "src": a, "label": "Google Play services"},
        ])


# ------------------------------------------------------------------------------------------------ 8
@scenario("ldap-cleartext", """
The on-prem Jamf Pro server (10.20.0.5) looks up users in Active Directory at dc01.corp.example
(10.20.0.20): a simple bind with the service account's password in cleartext on 389, a subtree search,
unbind. Then the same bind and search over LDAPS on 636 (TLS, lab public chain) for contrast.
Captured on the Jamf Pro server's interface.
""", capture_role="srv")
def s_ldap(lab, rec):
    lab.start_corp()
    src = H.JAMF_PRO
    rec.note(f"the cleartext bind carries the password '{LDAP_BIND_PASSWORD}' "
             "for CN=svc-jamfpro,OU=Service Accounts,DC=corp,DC=example (a lab credential)")
    with rec.capture():
        rec.run("srv", [
            {"op": "tcp", "host": "dc01.corp.example", "port": 389, "app": "ldap", "src": src,
             "label": "Jamf Pro (LDAP)"},
            {"op": "tls", "host": "dc01.corp.example", "port": 636, "app": "ldap", "src": src,
             "label": "Jamf Pro (LDAPS)"},
        ])


# ------------------------------------------------------------------------------------------------ 9
@scenario("hl7-2575", """
An HL7 interface engine (10.20.0.30) sends an ADT^A01 (admit) message framed with MLLP
(0x0b ... 0x1c 0x0d) to the Jamf Infrastructure Manager host jim.corp.example (10.20.0.40) on TCP 2575
and receives an HL7 ACK (MSA|AA). Cleartext, as the protocol is. Captured on the sender's interface.
""", capture_role="srv")
def s_hl7(lab, rec):
    lab.start_corp()
    with rec.capture():
        rec.run("srv", [{"op": "tcp", "host": "jim.corp.example", "port": 2575, "app": "mllp", "src": H.HL7_IFACE,
                         "label": "HL7 interface engine"}])


# ------------------------------------------------------------------------------------------------ 10
@scenario("dcom-135-dynamic", """
An AD CS connector (10.20.0.50) talks DCOM/MS-RPC to the Microsoft CA ca01.corp.example (10.20.0.60):
first a DCE/RPC bind to the endpoint mapper (interface e1af8308-..., v3) on TCP 135, answered by
bind_ack, then a second connection to the dynamic RPC port 49670 with a bind to ICertPassage
(MS-ICPR, 91ae6020-...), answered by bind_ack. Captured on the connector's interface.
""", capture_role="srv")
def s_dcom(lab, rec):
    lab.start_corp()
    src = H.ADCS_CONNECTOR
    with rec.capture():
        rec.run("srv", [
            {"op": "tcp", "host": "ca01.corp.example", "port": 135, "app": "dcerpc-epm", "src": src,
             "label": "AD CS connector (endpoint mapper)"},
            {"op": "tcp", "host": "ca01.corp.example", "port": 49670, "app": "dcerpc-icpr", "src": src,
             "label": "AD CS connector (ICertPassage)"},
        ])


# ------------------------------------------------------------------------------------------------ 11
@scenario("proxy-connect-denied", """
The device is configured with the explicit web proxy 10.10.0.3:3128. The proxy answers
CONNECT mdmenrollment.apple.com:443 with 407 Proxy Authentication Required, CONNECT albert.apple.com:443
with 403 Forbidden, and CONNECT mesu.apple.com:443 with 200 Connection established, after which a real
TLS handshake to mesu.apple.com runs through the tunnel (lab public chain). The device sends no DNS
queries: the proxy resolves the targets.
""")
def s_proxy(lab, rec):
    lab.start_internet()
    lab.start_services("proxy", [{"kind": "http_proxy", "ip": H.PROXY, "port": H.PROXY_PORT,
                                  "deny": {"mdmenrollment.apple.com": 407, "albert.apple.com": 403},
                                  "resolver": H.RESOLVER}], name="proxy")
    rec.middleboxes.append({"kind": "explicit_http_proxy", "where": f"{H.PROXY}:{H.PROXY_PORT}",
                            "deny": {"mdmenrollment.apple.com": 407, "albert.apple.com": 403},
                            "summary": "CONNECT proxy: 407 for mdmenrollment.apple.com, 403 for albert.apple.com, "
                                       "200 + tunnel otherwise"})
    px = {"ip": H.PROXY, "port": H.PROXY_PORT}
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "mdmenrollment.apple.com", "port": 443, "proxy": px, "app": "http",
             "label": "cloudconfigurationd"},
            {"op": "tls", "host": "albert.apple.com", "port": 443, "proxy": px, "app": "http",
             "label": "mobileactivationd"},
            {"op": "tls", "host": "mesu.apple.com", "port": 443, "proxy": px, "alpn": BROWSER_ALPN, "app": "http",
             "path": "/assets/com_apple_MobileAsset_SoftwareUpdate/com_apple_MobileAsset_SoftwareUpdate.xml",
             "label": "softwareupdated"},
        ])


# ------------------------------------------------------------------------------------------------ 12
@scenario("dns-blocked", """
A DNS filter on the site resolver (dnsmasq) blocks Apple enrollment names three ways:
iprofiles.apple.com is answered NXDOMAIN (over UDP, then retried over TCP), deviceenrollment.apple.com is
REFUSED (dnsmasq has no record and no upstream for it), and gdmf.apple.com is sinkholed (A -> 0.0.0.0,
AAAA -> ::). The device does not connect to any of them. A normal lookup of albert.apple.com follows and
its HTTPS connection succeeds. This capture is stored as pcapng.
""", fmt="pcapng", lab_kw={"dns_nxdomain": ["iprofiles.apple.com"], "dns_sinkhole": ["gdmf.apple.com"],
                           "dns_refused": ["deviceenrollment.apple.com"]})
def s_dns(lab, rec):
    lab.start_internet()
    with rec.capture():
        rec.run("dev", [
            {"op": "dns", "qname": "iprofiles.apple.com", "qtype": "A", "label": "cloudconfigurationd"},
            {"op": "dns", "qname": "iprofiles.apple.com", "qtype": "A", "transport": "tcp",
             "label": "cloudconfigurationd (retry over TCP)"},
            {"op": "dns", "qname": "deviceenrollment.apple.com", "qtype": "A", "label": "cloudconfigurationd"},
            {"op": "dns", "qname": "gdmf.apple.com", "qtype": "A", "label": "softwareupdated"},
            {"op": "dns", "qname": "gdmf.apple.com", "qtype": "AAAA", "label": "softwareupdated"},
            {"op": "dns", "qname": "albert.apple.com", "qtype": "A", "label": "mobileactivationd"},
            {"op": "tls", "host": "albert.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "label": "mobileactivationd"},
        ])


# ------------------------------------------------------------------------------------------------ 13
@scenario("apns-wrong-network", """
A spoofing resolver answers 1-courier.push.apple.com with 203.0.113.17, outside Apple's 17.0.0.0/8. The
server there presents a certificate for the name issued by "Corporate Inspection CA" over TLS 1.2 on
both 5223 and 443. The device trusts that CA (installed by profile), so both handshakes complete: the
name matches, but the address and the issuer are wrong.
""", lab_kw={"dns_records": {"1-courier.push.apple.com": H.SPOOF_SERVER}})
def s_apns_wrong(lab, rec):
    spoof = [{"kind": "tcp", "ip": H.SPOOF_SERVER, "port": p, "app": "courier",
              "tls": tls("1-courier.push.apple.com", hierarchy="inspection", max="TLSv1.2",
                         alpn=["apns-security-v3", "apns-pack-v1"])} for p in (5223, 443)]
    lab.start_internet(extra=spoof)
    rec.note("dnsmasq is configured with address=/1-courier.push.apple.com/203.0.113.17 (the spoofed answer)")
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "1-courier.push.apple.com", "port": 5223, "trust": "inspection", "app": "courier",
             "label": "apsd (APNs)"},
            {"op": "tls", "host": "1-courier.push.apple.com", "port": 443, "trust": "inspection", "alpn": APNS_ALPN,
             "app": "courier", "label": "apsd (APNs, 443)"},
        ])


# ------------------------------------------------------------------------------------------------ 14
@scenario("server-fatal-alert", """
identity.apple.com:443 is served by a TLS endpoint that only accepts TLS 1.2 with the static-RSA suite
AES256-SHA256. A current client (offers TLS 1.3/1.2 with ECDHE suites only) gets a fatal
handshake_failure alert in answer to its ClientHello; a legacy client that offers at most TLS 1.1 gets a
fatal protocol_version alert. No certificate is ever sent.
""")
def s_fatal(lab, rec):
    lab.start_internet(replace={("identity.apple.com", 443): https("identity.apple.com", min="TLSv1.2", max="TLSv1.2",
                                                                      ciphers="AES256-SHA256")})
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "identity.apple.com", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "label": "akd (current TLS stack)"},
            {"op": "tls", "host": "identity.apple.com", "port": 443, "max": "TLSv1.1", "min": "TLSv1",
             "ciphers": "DEFAULT:@SECLEVEL=0", "app": "http", "label": "legacy client (TLS <= 1.1)"},
        ])


# ------------------------------------------------------------------------------------------------ 15
@scenario("cleartext-smtp-ec8020", """
Two cleartext protocols seen at the on-prem server segment (captured on the servers' side interface):
the Jamf Pro server (10.20.0.5) sends an enrollment notification through the mail relay
smtp.corp.example (10.20.0.25) over SMTP on port 25 - the relay offers no STARTTLS - and a ManageEngine
Endpoint Central agent on a workstation (192.168.50.10) POSTs its status to the Endpoint Central server
(10.20.0.80) over plain HTTP on 8020, then uses the TLS port 8383 (lab public chain).
""", capture_role="corp")
def s_cleartext(lab, rec):
    lab.start_corp()
    with rec.capture():
        rec.run("srv", [{"op": "tcp", "host": "smtp.corp.example", "port": 25, "app": "smtp", "src": H.JAMF_PRO,
                         "label": "Jamf Pro (SMTP notification)"}])
        rec.run("dev", [
            {"op": "tcp", "host": "endpointcentral.corp.example", "port": 8020, "app": "http-post",
             "path": "/agentServlet/AgentStatusUpdate?computerName=WS-0142&domain=CORP", "ua": "ManageEngine Agent",
             "body": '{"agentVersion":"11.3.2400.10","status":"alive","resourceId":3605}',
             "label": "Endpoint Central agent (HTTP 8020)"},
            {"op": "tls", "host": "endpointcentral.corp.example", "port": 8383, "app": "http",
             "path": "/agentServlet/getAgentSettings", "ua": "ManageEngine Agent",
             "label": "Endpoint Central agent (HTTPS 8383)"},
        ])


# ------------------------------------------------------------------------------------------------ 16
@scenario("kandji-region-mismatch", f"""
A device of an EU Kandji tenant ({KE}) reaches its own EU host <uuid>.web-api.eu.kandji.io:443, but
also the US-region hosts <uuid>.web-api.kandji.io:443 and managed-library.kandji.io:443. All three
handshakes succeed with the lab public chain: nothing is blocked, the finding is the region mismatch.
""")
def s_region(lab, rec):
    lab.start_internet()
    rec.tenants = {"kandji.uuid": KE, "kandji.region": "eu"}
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": f"{KE}.web-api.eu.kandji.io", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "path": "/api/v1/agent/checkin", "label": "Kandji agent"},
            {"op": "tls", "host": f"{KE}.web-api.kandji.io", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "path": "/api/v1/agent/checkin", "label": "Kandji agent (stale US configuration)"},
            {"op": "tls", "host": "managed-library.kandji.io", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "path": "/library/manifest.json", "label": "Kandji agent (Library)"},
        ])


# ------------------------------------------------------------------------------------------------ 17
@scenario("unexpected-traffic", """
Traffic no vendor document explains: HTTPS to example.org (93.184.216.34, not a vendor), HTTPS to the
known Apple host gdmf.apple.com on the unlisted port 8443, and UDP datagrams to 93.184.216.34:9999 that
never get an answer (the server silently discards them).
""")
def s_unexpected(lab, rec):
    lab.start_internet(extra=[https("gdmf.apple.com", 8443)])
    with rec.capture():
        rec.run("dev", [
            {"op": "tls", "host": "example.org", "port": 443, "alpn": BROWSER_ALPN, "app": "http",
             "label": "Safari"},
            {"op": "tls", "host": "gdmf.apple.com", "port": 8443, "alpn": BROWSER_ALPN, "app": "http",
             "path": "/v2/pmv", "label": "third-party updater"},
            {"op": "udp", "host": "example.org", "port": 9999, "app": "raw",
             "payload_hex": "4c414231000000010000002a", "tries": 3, "timeout": 1.0, "label": "unknown app"},
        ])


# ------------------------------------------------------------------------------------------------ main
def record(name: str, issuer, outroot: str = HERE, command: str | None = None) -> dict:
    spec = SCENARIOS[name]
    command = command or f"python3 tests/scenarios/record.py {name}"
    with Lab(issuer=issuer, **spec["lab_kw"]) as lab:
        rec = Recording(lab, name, os.path.join(outroot, name), spec["description"], command,
                        capture_role=spec["capture_role"], capture_iface=spec["capture_iface"], fmt=spec["fmt"])
        spec["fn"](lab, rec)
        return rec.finish(spec["extra"])


def _interrupt(*_):
    raise KeyboardInterrupt("SIGTERM")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="scenarios to record (default: all)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out", default=HERE, help="output root (default: tests/scenarios)")
    args = ap.parse_args(argv)
    if args.list:
        for n in SCENARIOS:
            print(n)
        return 0
    if os.geteuid() != 0:
        print("record.py needs root (network namespaces, nftables, tcpdump)", file=sys.stderr)
        return 2
    names = args.names or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    stale = cleanup_stale()
    if stale:
        print(f"removed stale lab namespaces: {', '.join(stale)}", file=sys.stderr)
    import tempfile
    pkidir = tempfile.mkdtemp(prefix="pa-pki-")
    issuer = build_pki(pkidir)          # one PKI per run, copied into every lab
    failed = []
    try:
        for n in names:
            t0 = time.time()
            try:
                truth = record(n, issuer, args.out)
                outs = ", ".join(f"{c['outcome']}" for c in truth["connections"])
                print(f"{n}: {len(truth['dns'])} dns, {len(truth['connections'])} connections [{outs}] "
                      f"({time.time() - t0:.1f}s)", flush=True)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                failed.append(n)
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'SIGINT'}); the lab was torn down, files of the interrupted scenario "
              "were left as they were", file=sys.stderr)
        return 130
    finally:
        import shutil
        shutil.rmtree(pkidir, ignore_errors=True)
    if args.out == HERE:
        write_index()
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def write_index() -> None:
    """tests/scenarios/README.md: one line per recorded scenario, from the truth files on disk."""
    import yaml
    rows = []
    for name in SCENARIOS:
        tp = os.path.join(HERE, name, "truth.yaml")
        if not os.path.exists(tp):
            rows.append(f"| `{name}` | (not recorded) | | | |")
            continue
        with open(tp) as f:
            t = yaml.safe_load(f)
        size = os.path.getsize(os.path.join(HERE, name, t["capture"]["file"]))
        outcomes = {}
        for x in t["dns"] + t["connections"]:
            outcomes[x["outcome"]] = outcomes.get(x["outcome"], 0) + 1
        summary = ", ".join(f"{k} x{v}" for k, v in outcomes.items())
        rows.append(f"| [`{name}`]({name}/README.md) | {t['capture']['format']}, {t['capture']['packets']} packets, "
                    f"{size} B | {t['capture']['interface']} | {t['recorded_at']} | {summary} |")
    text = f"""# Scenario captures

Recorded in the real-traffic lab (`tests/lab/`, see its README) by

```
sudo python3 tests/scenarios/record.py [NAME ...]     # all when no name is given; --list to list
```

Each directory holds `input.pcap` (the capture; `dns-blocked` is pcapng although named input.pcap),
`truth.yaml` (what the traffic did, generated from the lab's observations — never hand-edited) and
`README.md` (story, firewall/middlebox setup, table of flows, exact command, tool versions).
`expected.yaml` files (the analyzer's expectations) are written separately from truth.yaml.
`verify_with_tshark.py` cross-checks every truth.yaml against tshark's reading of the capture.

| scenario | capture | interface | recorded | outcomes (DNS + connections) |
|---|---|---|---|---|
{chr(10).join(rows)}
"""
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())

"""Address plan of the lab: realistic-looking addresses for vendor hosts and lab roles.

All of these addresses exist only inside the lab's network namespaces (they are added to the `inet`
or `corp` namespace); nothing is ever sent to the real internet.
"""
from __future__ import annotations

KANDJI_TENANT = "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01"
KANDJI_EU_TENANT = "8b1d6e2f-3a4c-4b7d-8e9f-0a1b2c3d4e5f"

# --- lab roles ----------------------------------------------------------------------------------
DEVICE = "192.168.50.10"          # managed Mac / iPhone (namespace dev, eth0)
ANDROID = "192.168.50.11"         # Android device (second address of dev)
LAN_GW = "192.168.50.1"           # fw, lan0
LAN_NET = "192.168.50.0/24"
WAN_FW = "100.64.0.1"             # fw, wan0 (point-to-point link to inet)
WAN_INET = "100.64.0.2"           # inet, eth0
WAN_NET = "100.64.0.0/30"
SRV_NET = "10.20.0.0/24"          # server LAN, bridged in fw (br0 = 10.20.0.1)
SRV_GW = "10.20.0.1"
PROXY_NET = "10.10.0.0/24"
PROXY_GW = "10.10.0.1"            # fw, px0
PROXY = "10.10.0.3"               # explicit HTTP proxy (namespace proxy), port 3128
PROXY_PORT = 3128
RESOLVER = "198.51.100.53"        # dnsmasq in inet (the site's DNS resolver)
SPOOF_SERVER = "203.0.113.17"     # a server outside Apple's 17/8 that a spoofing DNS points APNs at

# on-prem servers (namespace srv: the initiating servers; namespace corp: the servers they talk to)
JAMF_PRO = "10.20.0.5"            # Jamf Pro / MDM server (srv)
HL7_IFACE = "10.20.0.30"          # HL7 interface engine (srv)
ADCS_CONNECTOR = "10.20.0.50"     # AD CS connector (srv)
EC_AGENT_SRV = "10.20.0.105"      # unused spare client address (srv)
DC = "10.20.0.20"                 # domain controller, LDAP 389/636 (corp)
SMTP = "10.20.0.25"               # mail relay (corp)
JIM = "10.20.0.40"                # Jamf Infrastructure Manager, HL7 MLLP 2575 (corp)
CA = "10.20.0.60"                 # Microsoft CA, DCOM 135 + 49670 (corp)
EC_SERVER = "10.20.0.80"          # ManageEngine Endpoint Central server 8020/8383 (corp)

SRV_ADDRS = [JAMF_PRO, HL7_IFACE, ADCS_CONNECTOR]
CORP_ADDRS = [DC, SMTP, JIM, CA, EC_SERVER]
CORP_NAMES = {DC: "dc01.corp.example", SMTP: "smtp.corp.example", JIM: "jim.corp.example",
              CA: "ca01.corp.example", EC_SERVER: "endpointcentral.corp.example"}

# --- vendor hosts ("the internet", namespace inet) ------------------------------------------------
HOSTS = {
    # Apple, 17.0.0.0/8
    "albert.apple.com": "17.253.21.201",
    "captive.apple.com": "17.253.21.202",
    "gdmf.apple.com": "17.253.21.203",
    "iprofiles.apple.com": "17.253.21.204",
    "deviceenrollment.apple.com": "17.253.21.205",
    "mdmenrollment.apple.com": "17.253.21.206",
    "identity.apple.com": "17.253.21.207",
    "ocsp.apple.com": "17.253.21.208",
    "time.apple.com": "17.253.21.209",
    "mesu.apple.com": "17.253.21.210",
    "1-courier.push.apple.com": "17.57.146.20",
    "gateway.push.apple.com": "17.188.128.22",
    "feedback.push.apple.com": "17.188.128.23",
    "api.push.apple.com": "17.188.128.24",
    # Google FCM / Android, 142.250.0.0/15
    "mtalk.google.com": "142.250.102.188",
    "android.googleapis.com": "142.250.102.95",
    # Jamf Cloud (AWS)
    "acme.jamfcloud.com": "3.140.18.44",
    # Kandji US (AWS us-east) and EU (AWS eu-central)
    f"{KANDJI_TENANT}.web-api.kandji.io": "52.3.100.10",
    f"{KANDJI_TENANT}.devices.us-1.kandji.io": "52.3.100.11",
    "managed-library.kandji.io": "52.3.100.12",
    f"{KANDJI_EU_TENANT}.web-api.eu.kandji.io": "18.156.10.20",
    f"{KANDJI_EU_TENANT}.web-api.kandji.io": "52.3.100.13",
    # a third party on Kandji's inspection-bypass list
    "browser-intake-datadoghq.com": "3.233.146.10",
    # not a vendor at all
    "example.org": "93.184.216.34",
}

INET_ADDRS = sorted(set(HOSTS.values()) | {RESOLVER, SPOOF_SERVER})


def ip(host: str) -> str:
    return HOSTS[host]

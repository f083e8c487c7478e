"""TLS after an upgrade in a clear-text protocol (SMTP/IMAP/XMPP STARTTLS, POP3 STLS, FTP AUTH TLS, LDAP
StartTLS, RDP's TLS after the X.224 exchange, HTTP/1.1 Upgrade: TLS): the flow gets the SNI, certificate and
TLS fields from the byte after the accepting answer, as Zeek's SMTP/IMAP/XMPP analyzers start their SSL
analyzer after the STARTTLS reply. A refused upgrade stays clear text."""

from __future__ import annotations

import pandas as pd
import pytest

import pcapaudit
from tests.craft import UPGRADES, self_signed_der, upgrade_session, write


@pytest.fixture(scope="module")
def der():
    return self_signed_der("mail.example.com")


@pytest.mark.parametrize("kind", sorted(UPGRADES))
def test_tls_after_an_accepted_upgrade_is_read(tmp_path, der, kind):
    path = write(tmp_path / f"{kind}.pcap", upgrade_session(kind, "mail.example.com", der))
    (f,) = pcapaudit.audit(str(path)).flows.itertuples()
    assert f.app_protocol == f"{kind}+tls"
    assert f.sni == "mail.example.com"
    assert f.tls_version == "TLSv1.2" and f.tls_server_version == "TLSv1.2"
    assert f.cert_subject is not None and "mail.example.com" in f.cert_subject
    assert f.cert_self_signed


@pytest.mark.parametrize("kind", sorted(UPGRADES))
def test_a_refused_upgrade_stays_clear_text(tmp_path, der, kind):
    path = write(tmp_path / f"{kind}.pcap", upgrade_session(kind, "mail.example.com", der, accepted=False))
    (f,) = pcapaudit.audit(str(path)).flows.itertuples()
    assert pd.isna(f.sni)
    assert pd.isna(f.app_protocol) or not f.app_protocol.endswith("+tls")
    if kind == "smtp":
        assert f.smtp_starttls is False or f.smtp_starttls == 0


def test_an_upgraded_smtp_flow_is_not_cleartext_and_a_refused_one_is(tmp_path, der):
    ok = upgrade_session("smtp", "mail.example.com", der)
    no = upgrade_session("smtp", "mail.example.com", der, accepted=False, sport=50101, t0=1_700_000_001.0)
    r = pcapaudit.audit(str(write(tmp_path / "s.pcap", ok + no)))
    flows = r.flows.set_index("src_port")
    assert flows.loc[50100, "app_protocol"] == "smtp+tls" and bool(flows.loc[50100, "smtp_starttls"])
    assert flows.loc[50101, "app_protocol"] == "smtp" and not bool(flows.loc[50101, "smtp_starttls"])

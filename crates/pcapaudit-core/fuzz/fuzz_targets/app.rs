//! Fuzz target: app (sniffers, LDAP/SMTP scans, TLS upgrade finders). The first two bytes split the
//! input into a client and a server stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::app;

fuzz_target!(|data: &[u8]| {
    let _ = app::sniff_client(data, 389);
    let _ = app::sniff_server(data);
    let _ = app::ldap_message_op(data);
    let _ = app::ldap_scan(data);
    let _ = app::smtp_scan(data);
    if data.len() < 2 {
        return;
    }
    let cut = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (client, server) = data[2..].split_at(cut);
    for (i, f) in [
        app::ftp_upgrade,
        app::smtp_upgrade,
        app::pop3_upgrade,
        app::imap_upgrade,
        app::xmpp_upgrade,
        app::rdp_upgrade,
        app::http_upgrade,
    ]
    .iter()
    .enumerate()
    {
        if let Some(app::Upgrade::Tls {
            client: c,
            server: s,
        }) = f(client, server)
        {
            // offsets inside the streams (HTTP's client offset may count a body still to come)
            assert!(s <= server.len());
            assert!(i == 6 || c <= client.len());
        }
    }
});

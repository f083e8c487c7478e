//! First-bytes protocol sniffing and the LDAP/SMTP checks (StartTLS, simple bind in clear).
//! Mirrors `pcapaudit/decode/app.py`.

/// Guess the protocol from the first client bytes (None: not enough bytes / unknown).
pub fn sniff_client(_data: &[u8], _dport: u16) -> Option<&'static str> {
    None
}

/// Guess the protocol from the first server bytes.
pub fn sniff_server(_data: &[u8]) -> Option<&'static str> {
    None
}

/// LDAP client stream -> (simple bind, simple bind with a password, StartTLS requested, done).
/// Same tuple as Python's `ldap_scan`.
pub fn ldap_scan(_data: &[u8]) -> (bool, bool, bool, bool) {
    (false, false, false, false)
}

/// SMTP client stream -> Some(true) STARTTLS sent, Some(false) mail sent in clear, None undecided.
/// Same meaning as Python's `smtp_scan`.
pub fn smtp_scan(_data: &[u8]) -> Option<bool> {
    None
}

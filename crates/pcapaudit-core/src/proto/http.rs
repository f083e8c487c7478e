//! HTTP/1.x request line, Host header, CONNECT / absolute-form targets and response status.
//! Mirrors `pcapaudit/decode/http.py`.

/// The request line and Host header of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub host: Option<String>,
    /// bytes up to and including the blank line
    pub head_len: usize,
}

impl HttpRequest {
    /// (host, port) for CONNECT, parsed from the request target (authority form).
    pub fn connect_target(&self) -> Option<(String, Option<u16>)> {
        if self.method != "CONNECT" {
            return None;
        }
        Some(split_authority(&self.uri, None))
    }
}

/// "host:port", "[v6]:port" -> (host, port).
pub fn split_authority(auth: &str, default_port: Option<u16>) -> (String, Option<u16>) {
    (auth.to_string(), default_port)
}

/// (host, port) of an absolute-form URI ("http://host:port/...").
pub fn url_target(_uri: &str) -> Option<(String, Option<u16>)> {
    None
}

/// A request line has started (method and a space).
pub fn looks_like_request(_data: &[u8]) -> bool {
    false
}

/// Parse a complete request head (None until the blank line is in `data`, or when not HTTP).
pub fn parse_request(_data: &[u8]) -> Option<HttpRequest> {
    None
}

/// Content-Length of a head, if any.
pub fn content_length(_head: &[u8]) -> Option<usize> {
    None
}

/// (status code, head length) of a complete response head.
pub fn parse_status(_data: &[u8]) -> Option<(u16, usize)> {
    None
}

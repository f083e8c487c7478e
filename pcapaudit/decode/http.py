"""HTTP/1.x request heads (method, Host, CONNECT target) and response status lines.

Only the first request and the first response of a connection are read; that is where a proxy's
CONNECT and its verdict (200, 403, 407) live, and where the Host of a clear-text request is.
"""

from __future__ import annotations

from typing import NamedTuple

METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ")
MAX_HEAD = 16 * 1024


class HttpRequest(NamedTuple):
    """The request line and Host header of one request."""

    method: str
    uri: str
    host: str | None
    head_len: int  # bytes up to and including the blank line

    @property
    def connect_target(self) -> tuple[str, int | None] | None:
        """(host, port) for CONNECT, parsed from the request target (authority form)."""
        if self.method != "CONNECT":
            return None
        return split_authority(self.uri)


def _text(b: bytes) -> str:
    return b.decode("latin-1").strip()


def split_authority(auth: str, default_port: int | None = None) -> tuple[str, int | None]:
    """'host:443' -> ('host', 443); '[::1]:443' -> ('::1', 443); bad ports become None."""
    auth = auth.strip()
    if auth.startswith("["):
        host, _, rest = auth[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_s = auth.rpartition(":") if auth.count(":") == 1 else (auth, "", "")
    # ASCII digits only: str.isdigit() also accepts "³", which int() refuses
    port = int(port_s) if port_s.isascii() and port_s.isdigit() and int(port_s) < 65536 else default_port
    return host.rstrip(".").lower(), port


SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def url_target(uri: str) -> tuple[str, int | None] | None:
    """'http://user@host:8080/x' -> ('host', 8080), with the scheme's port when the URL has none (None for
    an unknown scheme); None when ``uri`` is not an absolute URL (an origin-form path, a CONNECT target)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "/" in scheme:
        return None
    auth = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    auth = auth.rpartition("@")[2]  # drop any user:password@
    return split_authority(auth, SCHEME_PORTS.get(scheme.lower()))


def looks_like_request(data: bytes) -> bool:
    """True when the stream starts with an HTTP method."""
    return data[:8].startswith(METHODS)


def parse_request(data: bytes) -> HttpRequest | None:
    """Parse the request head at the start of ``data``; None until the blank line has arrived."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end < 0:
        end2 = data.find(b"\n\n", 0, MAX_HEAD)
        if end2 < 0:
            if len(data) >= MAX_HEAD:
                raise ValueError("HTTP request head longer than 16 KiB")
            return None
        end, sep = end2, 2
    else:
        sep = 4
    head = data[:end]
    lines = head.split(b"\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2:
        raise ValueError("malformed HTTP request line")
    method = _text(parts[0])
    uri = _text(parts[1])
    host = None
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"host":
            host = _text(v)
            break
    if host is not None:
        host = split_authority(host)[0]
    elif method != "CONNECT" and (target := url_target(uri)) is not None:  # absolute-form request to a proxy
        host = target[0]
    return HttpRequest(method, uri, host, end + sep)


def content_length(head: bytes) -> int | None:
    """The Content-Length of a message head, None when it has none (or a broken one)."""
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            v = value.strip()
            return int(v) if v.isdigit() and len(v) < 12 else None
    return None


def parse_status(data: bytes) -> tuple[int, int] | None:
    """('HTTP/1.1 407 ...') -> (407, head length); None until the head is complete."""
    if not data.startswith(b"HTTP/"):
        raise ValueError("not an HTTP response")
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    sep = 4
    if end < 0:
        end = data.find(b"\n\n", 0, MAX_HEAD)
        sep = 2
        if end < 0:
            if len(data) >= MAX_HEAD:
                raise ValueError("HTTP response head longer than 16 KiB")
            # the status line alone is enough to know the verdict
            nl = data.find(b"\n")
            if nl < 0:
                return None
            end, sep = -1, 0
    line = data[: data.find(b"\n")] if b"\n" in data else data
    parts = line.split(b" ")
    if len(parts) < 2 or not parts[1][:3].isdigit():
        raise ValueError("malformed HTTP status line")
    return int(parts[1][:3]), (end + sep if end >= 0 else -1)

//! The HTTP/1.1 server side of the RPC, without sockets: a request reader fed whatever
//! arrives, which gives the head as soon as it is complete (so that a request without the
//! session id or the credentials is answered before its body is read) and then the whole
//! request; and the bytes of a response. The head is parsed with httparse; a body comes
//! with Content-Length (chunked bodies are refused: no RPC client sends them). Head and
//! body are capped.

use std::fmt;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted: a `torrent-add` whose `metainfo` is the base64 of a
/// 12 MiB `.torrent`.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 64;

/// Why a request cannot be read; each maps to the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP (400).
    Malformed(String),
    /// The head is over [`MAX_HEAD`] (431).
    HeadTooLarge,
    /// The body is over [`MAX_BODY`] (413).
    BodyTooLarge(u64),
    /// A body without Content-Length (411), or chunked (501).
    NoLength,
}

impl HttpError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::HeadTooLarge => 431,
            Self::BodyTooLarge(_) => 413,
            Self::NoLength => 411,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed request: {why}"),
            Self::HeadTooLarge => write!(f, "request head over {MAX_HEAD} bytes"),
            Self::BodyTooLarge(n) => write!(f, "request body of {n} bytes, over {MAX_BODY}"),
            Self::NoLength => write!(f, "a request body needs Content-Length"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`…
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Headers in order, names in lower case, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// Bytes of body to come.
    pub content_length: usize,
    /// The connection stays open after the response.
    pub keep_alive: bool,
}

impl Head {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its head.
    pub head: Head,
    /// Its body.
    pub body: Vec<u8>,
}

/// Reads requests, one after another, from a connection's bytes.
#[derive(Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
    head: Option<Head>,
}

impl RequestReader {
    /// A reader with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held (a head not yet complete, or a body coming in).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The current request's head, once it is complete.
    pub fn head(&mut self) -> Result<Option<&Head>, HttpError> {
        if self.head.is_none() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                    return Err(HttpError::HeadTooLarge);
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            };
            if n > MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_string(),
                    )
                })
                .collect();
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.to_ascii_lowercase())
            };
            if get("transfer-encoding").is_some_and(|v| v != "identity") {
                return Err(HttpError::NoLength);
            }
            let content_length = match get("content-length") {
                Some(v) => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| HttpError::Malformed(format!("Content-Length {v}")))?;
                    if n > MAX_BODY as u64 {
                        return Err(HttpError::BodyTooLarge(n));
                    }
                    n as usize
                }
                None => 0,
            };
            let version = req.version.unwrap_or(1);
            let connection = get("connection").unwrap_or_default();
            let keep_alive = if version == 0 {
                connection.contains("keep-alive")
            } else {
                !connection.contains("close")
            };
            self.head = Some(Head {
                method: req.method.unwrap_or("").to_string(),
                path: req.path.unwrap_or("").to_string(),
                headers,
                content_length,
                keep_alive,
            });
            self.buf.drain(..n);
        }
        Ok(self.head.as_ref())
    }

    /// The whole current request, once its body is in; the bytes after it stay for the
    /// next one.
    pub fn take(&mut self) -> Result<Option<Request>, HttpError> {
        let Some(len) = self.head()?.map(|h| h.content_length) else {
            return Ok(None);
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        let head = self.head.take().expect("parsed above");
        Ok(Some(Request { head, body }))
    }
}

/// The reason phrase of the statuses the RPC uses.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A response's bytes: status line, `headers`, Content-Length, Connection, the body.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"POST /transmission/rpc/ HTTP/1.1\r\nHost: 127.0.0.1:9091\r\n\
        X-Transmission-Session-Id: abc\r\nContent-Type: application/x-www-form-urlencoded\r\n\
        Content-Length: 24\r\n\r\n{\"method\":\"session-get\"}";

    #[test]
    fn a_request_read_in_pieces_of_any_size_gives_its_head_then_itself() {
        for step in [1, 2, 7, POST.len()] {
            let mut r = RequestReader::new();
            let mut got = None;
            let mut head_seen_before_body = false;
            for chunk in POST.chunks(step) {
                r.feed(chunk);
                if let Some(h) = r.head().unwrap() {
                    assert_eq!(h.header("x-transmission-session-id"), Some("abc"));
                    head_seen_before_body |= r.buffered() < 24;
                }
                if let Some(req) = r.take().unwrap() {
                    got = Some(req);
                }
            }
            let req = got.expect("complete");
            assert_eq!(req.head.method, "POST");
            assert_eq!(req.head.path, "/transmission/rpc/");
            assert_eq!(req.body, b"{\"method\":\"session-get\"}");
            assert!(req.head.keep_alive);
            assert!(head_seen_before_body || step == POST.len());
        }
    }

    #[test]
    fn two_requests_in_one_read_come_out_one_after_the_other() {
        let mut r = RequestReader::new();
        let mut both = POST.to_vec();
        both.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
        r.feed(&both);
        assert_eq!(r.take().unwrap().unwrap().head.method, "POST");
        let second = r.take().unwrap().unwrap();
        assert_eq!(second.head.method, "GET");
        assert!(!second.head.keep_alive, "HTTP/1.0 closes by default");
        assert_eq!(r.take().unwrap(), None);
    }

    #[test]
    fn oversized_heads_and_bodies_chunked_bodies_and_garbage_are_refused() {
        let mut r = RequestReader::new();
        r.feed(b"GET / HTTP/1.1\r\nX: ");
        r.feed(&vec![b'a'; MAX_HEAD + 1]);
        assert_eq!(r.head().unwrap_err(), HttpError::HeadTooLarge);
        let mut r = RequestReader::new();
        r.feed(b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
        assert_eq!(r.head().unwrap_err().status(), 413);
        let mut r = RequestReader::new();
        r.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.head().unwrap_err().status(), 411);
        let mut r = RequestReader::new();
        r.feed(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(r.head().unwrap_err().status(), 400);
        let mut r = RequestReader::new();
        r.feed(b"\x16\x03\x01 hello\r\n\r\n");
        assert_eq!(r.head().unwrap_err().status(), 400);
    }

    #[test]
    fn a_response_carries_its_length_and_connection() {
        let out = response(409, &[("X-Transmission-Session-Id", "s1")], b"no", false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 409 Conflict\r\n"));
        assert!(text.contains("X-Transmission-Session-Id: s1\r\n"));
        assert!(text.contains("Content-Length: 2\r\nConnection: close\r\n\r\nno"));
    }
}

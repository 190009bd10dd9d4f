//! The HTTP/1.1 side of an announce, without sockets: the request's bytes, and a response
//! reader fed whatever arrives. The head is parsed with httparse; the body ends by
//! Content-Length, by chunked transfer encoding, or by the connection closing. Head and body
//! are capped so that a hostile server cannot make the client hoard memory.

use super::TrackerError;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted: room for tens of thousands of compact peers.
pub const MAX_BODY: usize = 1024 * 1024;

/// The request for `target` (path and query) on `host:port`.
pub fn request(host: &str, port: u16, target: &str) -> Vec<u8> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let host = if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: btmini/{}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one response from the bytes of a connection, in pieces of any size.
#[derive(Debug, Default)]
pub struct ResponseReader {
    buf: Vec<u8>,
    head: Option<(u16, Option<String>, Framing, usize)>,
    /// Chunked decoding: next unparsed byte in `buf`, and the body so far.
    chunk_pos: usize,
    body: Vec<u8>,
}

enum Chunk {
    NeedMore,
    Done,
}

impl ResponseReader {
    /// A reader with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes; `Some` once the response is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Response>, TrackerError> {
        self.buf.extend_from_slice(bytes);
        if self.head.is_none() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let head_len = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                    return Err(TrackerError::TooLarge(MAX_HEAD));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(TrackerError::Http(format!("malformed response ({e})"))),
            };
            let status = resp.code.unwrap_or(0);
            let mut framing = Framing::UntilClose;
            let mut location = None;
            for h in resp.headers.iter() {
                let value = String::from_utf8_lossy(h.value).trim().to_owned();
                if h.name.eq_ignore_ascii_case("content-length") {
                    let n: usize = value
                        .parse()
                        .map_err(|_| TrackerError::Http(format!("bad Content-Length '{value}'")))?;
                    if n > MAX_BODY {
                        return Err(TrackerError::TooLarge(MAX_BODY));
                    }
                    if framing != Framing::Chunked {
                        framing = Framing::Length(n);
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
                {
                    framing = Framing::Chunked;
                } else if h.name.eq_ignore_ascii_case("location") {
                    location = Some(value);
                }
            }
            self.head = Some((status, location, framing, head_len));
            self.chunk_pos = head_len;
        }
        let (_, _, framing, head_len) = self.head.clone().expect("set above");
        match framing {
            Framing::Length(n) if self.buf.len() - head_len >= n => {
                self.buf.truncate(head_len + n);
                Ok(Some(self.finish_with(head_len)))
            }
            Framing::Length(_) => Ok(None),
            Framing::UntilClose if self.buf.len() - head_len > MAX_BODY => {
                Err(TrackerError::TooLarge(MAX_BODY))
            }
            Framing::UntilClose => Ok(None),
            Framing::Chunked => match self.dechunk()? {
                Chunk::Done => {
                    let body = std::mem::take(&mut self.body);
                    let (status, location, _, _) = self.head.take().expect("head");
                    Ok(Some(Response {
                        status,
                        location,
                        body,
                    }))
                }
                Chunk::NeedMore => Ok(None),
            },
        }
    }

    /// The connection closed: the response if it was complete (or delimited by the close),
    /// otherwise an error saying it was cut short.
    pub fn eof(&mut self) -> Result<Response, TrackerError> {
        match self.head.clone() {
            Some((_, _, Framing::UntilClose, head_len)) => Ok(self.finish_with(head_len)),
            Some(_) => Err(TrackerError::Network(
                "connection closed before the response was complete".into(),
            )),
            None if self.buf.is_empty() => Err(TrackerError::Network(
                "connection closed without a response".into(),
            )),
            None => Err(TrackerError::Network(
                "connection closed in the middle of the response head".into(),
            )),
        }
    }

    fn finish_with(&mut self, head_len: usize) -> Response {
        let (status, location, _, _) = self.head.take().expect("head");
        let body = self.buf.split_off(head_len);
        Response {
            status,
            location,
            body,
        }
    }

    /// Decodes as many whole chunks as have arrived.
    fn dechunk(&mut self) -> Result<Chunk, TrackerError> {
        let bad = |what: &str| TrackerError::Http(format!("bad chunked body: {what}"));
        loop {
            let rest = &self.buf[self.chunk_pos..];
            let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                if rest.len() > 1024 {
                    return Err(bad("chunk size line too long"));
                }
                return Ok(Chunk::NeedMore);
            };
            let line = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("size line"))?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| bad("size line"))?;
            if size == 0 {
                // Trailer headers, if any, end with an empty line.
                let after = &rest[eol + 2..];
                if after.starts_with(b"\r\n") {
                    return Ok(Chunk::Done);
                }
                return match after.windows(4).position(|w| w == b"\r\n\r\n") {
                    Some(_) => Ok(Chunk::Done),
                    None if after.len() > MAX_HEAD => Err(TrackerError::TooLarge(MAX_HEAD)),
                    None => Ok(Chunk::NeedMore),
                };
            }
            if self.body.len() + size > MAX_BODY {
                return Err(TrackerError::TooLarge(MAX_BODY));
            }
            let need = eol + 2 + size + 2;
            if rest.len() < need {
                return Ok(Chunk::NeedMore);
            }
            if &rest[need - 2..need] != b"\r\n" {
                return Err(bad("chunk not followed by CRLF"));
            }
            self.body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            self.chunk_pos += need;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` whole and one byte at a time; both must give the same result.
    fn read(bytes: &[u8], close: bool) -> Result<Response, TrackerError> {
        let whole = {
            let mut r = ResponseReader::new();
            match r.feed(bytes) {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) if close => r.eof(),
                Ok(None) => Err(TrackerError::Network("incomplete".into())),
                Err(e) => Err(e),
            }
        };
        let bytewise = {
            let mut r = ResponseReader::new();
            let mut out = None;
            for b in bytes {
                match r.feed(std::slice::from_ref(b)) {
                    Ok(Some(resp)) => {
                        out = Some(Ok(resp));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out = Some(Err(e));
                        break;
                    }
                }
            }
            out.unwrap_or_else(|| {
                if close {
                    r.eof()
                } else {
                    Err(TrackerError::Network("incomplete".into()))
                }
            })
        };
        assert_eq!(whole, bytewise);
        whole
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            String::from_utf8(request("127.0.0.1", 6969, "/a?x=1")).unwrap(),
            format!(
                "GET /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:6969\r\nUser-Agent: btmini/{}\r\n\
                 Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(
            String::from_utf8(request("::1", 80, "/"))
                .unwrap()
                .contains("Host: [::1]\r\n")
        );
    }

    #[test]
    fn content_length_body() {
        let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;ext=1\r\nd8:\r\n7\r\nnothing\r\n1\r\ne\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(read(raw, false).unwrap().body, b"d8:nothinge");
        let raw =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(read(raw, false).unwrap().body, b"0123456789");
    }

    #[test]
    fn body_until_close() {
        let r = read(b"HTTP/1.0 200 OK\r\n\r\nd5:peers0:e", true).unwrap();
        assert_eq!(r.body, b"d5:peers0:e");
    }

    #[test]
    fn redirect_location() {
        let r = read(
            b"HTTP/1.1 302 Found\r\nLocation: http://b/x\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.location.as_deref()), (302, Some("http://b/x")));
    }

    #[test]
    fn truncated_oversized_and_malformed() {
        let cut = read(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", true);
        assert!(
            matches!(cut, Err(TrackerError::Network(m)) if m.contains("before the response was complete"))
        );
        let cut = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            true,
        );
        assert!(matches!(cut, Err(TrackerError::Network(_))));
        assert!(
            matches!(read(b"HTTP/1.1 20", true), Err(TrackerError::Network(m)) if m.contains("head"))
        );
        assert!(
            matches!(read(b"", true), Err(TrackerError::Network(m)) if m.contains("without a response"))
        );

        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            read(huge.as_bytes(), true),
            Err(TrackerError::TooLarge(MAX_BODY))
        );
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(endless.len() + MAX_BODY + 1, b'x');
        assert_eq!(read(&endless, true), Err(TrackerError::TooLarge(MAX_BODY)));
        let mut big_chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..=MAX_BODY / 4096 {
            big_chunks.extend_from_slice(b"1000\r\n");
            big_chunks.resize(big_chunks.len() + 4096, b'y');
            big_chunks.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            read(&big_chunks, true),
            Err(TrackerError::TooLarge(MAX_BODY))
        );
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.resize(MAX_HEAD + 10, b'h');
        assert_eq!(
            read(&long_head, true),
            Err(TrackerError::TooLarge(MAX_HEAD))
        );

        assert!(matches!(
            read(b"SSH-2.0-OpenSSH\r\n\r\n", true),
            Err(TrackerError::Http(_))
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true),
            Err(TrackerError::Http(m)) if m.contains("Content-Length")
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true),
            Err(TrackerError::Http(m)) if m.contains("chunked")
        ));
    }
}

//! What happens to a request before a method sees it, as Transmission 3.00 does it
//! (libtransmission/rpc-server.c): the path, the `Host` header (a name that is not an IP
//! address or `localhost` is refused with 421 unless a password is required: DNS
//! rebinding), HTTP basic auth (401 with `WWW-Authenticate: Basic`), and the session id
//! handshake (409 with `X-Transmission-Session-Id`; the client repeats the request with
//! it). The checks run on the head alone, so a refused request's body is never read.

use super::http::{Head, response};
use base64::Engine;
use std::net::IpAddr;

/// The RPC's path; Transmission's clients also use it with a trailing slash.
pub const RPC_PATH: &str = "/transmission/rpc";
/// Where the web client's files are served from, with `--web-ui`.
pub const WEB_PATH: &str = "/transmission/web/";

/// What a request is for, once its head passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A JSON call to the RPC.
    Rpc,
    /// A file of the web client: the path inside its folder (no `..`).
    Web(String),
}

/// The server's settings and its session id.
#[derive(Debug, Clone)]
pub struct Server {
    session_id: String,
    /// `user:password`, when the RPC requires them.
    auth: Option<String>,
    web: bool,
}

impl Server {
    /// A server with `session_id` (random, new each run), requiring `auth`
    /// (`user:password`) if given, serving the web client when `web`.
    pub fn new(session_id: String, auth: Option<String>, web: bool) -> Self {
        Self {
            session_id,
            auth,
            web,
        }
    }

    /// The session id clients must send.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Checks a request's head: where it goes, or the response that refuses it (the
    /// connection is then closed, its body unread).
    pub fn vet(&self, head: &Head) -> Result<Route, Vec<u8>> {
        let path = head.path.split('?').next().unwrap_or("");
        let route = if path == RPC_PATH || path == "/transmission/rpc/" {
            Route::Rpc
        } else if self.web && (path == "/" || path == "/transmission" || path == "/transmission/") {
            return Err(response(
                301,
                &[("Location", WEB_PATH)],
                b"",
                head.keep_alive,
            ));
        } else if let (true, Some(file)) = (self.web, path.strip_prefix(WEB_PATH)) {
            let file = if file.is_empty() { "index.html" } else { file };
            if file.split('/').any(|c| c == ".." || c.is_empty()) || file.contains('\\') {
                return Err(refuse(404, "no such file"));
            }
            Route::Web(file.to_string())
        } else {
            return Err(refuse(404, "unknown path"));
        };
        if self.auth.is_none() && !host_allowed(head.header("host")) {
            return Err(refuse(
                421,
                "<h1>421: Misdirected Request</h1><p>btmini received your request, but the \
                 hostname was unrecognized. Use the IP address or localhost, or require a \
                 password (--rpc-auth).</p>",
            ));
        }
        if let Some(want) = &self.auth {
            let given = head
                .header("authorization")
                .and_then(|v| {
                    v.strip_prefix("Basic ")
                        .or_else(|| v.strip_prefix("basic "))
                })
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                });
            if given.as_deref() != Some(want.as_bytes()) {
                return Err(response(
                    401,
                    &[
                        ("WWW-Authenticate", "Basic realm=\"Transmission\""),
                        ("Content-Type", "text/html; charset=UTF-8"),
                    ],
                    b"<h1>401: Unauthorized</h1>",
                    false,
                ));
            }
        }
        if route == Route::Rpc {
            if head.header("x-transmission-session-id") != Some(self.session_id.as_str()) {
                let body = format!(
                    "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>\
                     <p><code>X-Transmission-Session-Id: {}</code></p>",
                    self.session_id
                );
                return Err(response(
                    409,
                    &[
                        ("X-Transmission-Session-Id", &self.session_id),
                        ("Content-Type", "text/html; charset=UTF-8"),
                    ],
                    body.as_bytes(),
                    false,
                ));
            }
            if head.method != "POST" {
                return Err(refuse(405, "the RPC takes POST"));
            }
        } else if head.method != "GET" && head.method != "HEAD" {
            return Err(refuse(405, "the web client's files take GET"));
        }
        Ok(route)
    }

    /// The HTTP response carrying a JSON reply.
    pub fn json(&self, body: &[u8], keep_alive: bool) -> Vec<u8> {
        response(
            200,
            &[
                ("Content-Type", "application/json; charset=UTF-8"),
                ("X-Transmission-Session-Id", &self.session_id),
            ],
            body,
            keep_alive,
        )
    }
}

/// A refusal with a short HTML body; the connection closes.
pub fn refuse(status: u16, why: &str) -> Vec<u8> {
    response(
        status,
        &[("Content-Type", "text/html; charset=UTF-8")],
        why.as_bytes(),
        false,
    )
}

/// Transmission's `isHostnameAllowed` without a whitelist: an IP address (with or without
/// a port, IPv6 in brackets) or `localhost`.
fn host_allowed(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => return ip.parse::<IpAddr>().is_ok(),
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") || name == "localhost."
}

#[cfg(test)]
mod tests {
    use super::super::http::RequestReader;
    use super::*;

    fn head(text: &str) -> Head {
        let mut r = RequestReader::new();
        r.feed(text.as_bytes());
        r.head().unwrap().unwrap().clone()
    }

    fn status(v: &[u8]) -> u16 {
        String::from_utf8_lossy(&v[9..12]).parse().unwrap()
    }

    #[test]
    fn the_session_id_handshake_the_trailing_slash_and_the_method() {
        let s = Server::new("sid1".into(), None, false);
        let first = s
            .vet(&head(
                "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1:9091\r\n\r\n",
            ))
            .unwrap_err();
        assert_eq!(status(&first), 409);
        assert!(String::from_utf8_lossy(&first).contains("X-Transmission-Session-Id: sid1\r\n"));
        for path in ["/transmission/rpc", "/transmission/rpc/"] {
            let h = head(&format!(
                "POST {path} HTTP/1.1\r\nHost: localhost:9091\r\nX-Transmission-Session-Id: sid1\r\n\r\n"
            ));
            assert_eq!(s.vet(&h), Ok(Route::Rpc));
        }
        let get = head(
            "GET /transmission/rpc HTTP/1.1\r\nHost: [::1]:9091\r\nX-Transmission-Session-Id: sid1\r\n\r\n",
        );
        assert_eq!(status(&s.vet(&get).unwrap_err()), 405);
        let lost = head("GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(status(&s.vet(&lost).unwrap_err()), 404);
    }

    #[test]
    fn a_host_name_is_refused_without_a_password_as_against_dns_rebinding() {
        let open = Server::new("s".into(), None, false);
        let req = |host: &str| {
            head(&format!(
                "POST /transmission/rpc HTTP/1.1\r\nHost: {host}\r\nX-Transmission-Session-Id: s\r\n\r\n"
            ))
        };
        assert_eq!(
            status(&open.vet(&req("evil.example:9091")).unwrap_err()),
            421
        );
        assert_eq!(open.vet(&req("10.0.0.5:9091")), Ok(Route::Rpc));
        assert_eq!(open.vet(&req("LOCALHOST")), Ok(Route::Rpc));
        let no_host =
            head("POST /transmission/rpc HTTP/1.1\r\nX-Transmission-Session-Id: s\r\n\r\n");
        assert_eq!(status(&open.vet(&no_host).unwrap_err()), 421);
        // With a password, any name: the password is the defence.
        let closed = Server::new("s".into(), Some("u:p".into()), false);
        let with = |host: &str| {
            head(&format!(
                "POST /transmission/rpc HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic dTpw\r\n\
                 X-Transmission-Session-Id: s\r\n\r\n"
            ))
        };
        assert_eq!(closed.vet(&with("nas.example:9091")), Ok(Route::Rpc));
    }

    #[test]
    fn basic_auth_asks_with_www_authenticate_and_checks_the_pair() {
        let s = Server::new("s".into(), Some("user:pa:ss".into()), false);
        let without = head("POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let refused = s.vet(&without).unwrap_err();
        assert_eq!(status(&refused), 401);
        assert!(String::from_utf8_lossy(&refused).contains("WWW-Authenticate: Basic"));
        let wrong = head(
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic dXNlcjp4\r\n\r\n",
        );
        assert_eq!(status(&s.vet(&wrong).unwrap_err()), 401);
        // user:pa:ss, then the session id handshake.
        let right = head(
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic dXNlcjpwYTpzcw==\r\n\r\n",
        );
        assert_eq!(status(&s.vet(&right).unwrap_err()), 409);
    }

    #[test]
    fn the_web_client_is_served_only_when_asked_and_never_outside_its_folder() {
        let off = Server::new("s".into(), None, false);
        let get = |path: &str| head(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        assert_eq!(
            status(&off.vet(&get("/transmission/web/")).unwrap_err()),
            404
        );
        let on = Server::new("s".into(), None, true);
        assert_eq!(
            on.vet(&get("/transmission/web/")),
            Ok(Route::Web("index.html".into()))
        );
        assert_eq!(
            on.vet(&get("/transmission/web/javascript/main.js?x=1")),
            Ok(Route::Web("javascript/main.js".into()))
        );
        assert_eq!(status(&on.vet(&get("/")).unwrap_err()), 301);
        for bad in [
            "/transmission/web/../secret",
            "/transmission/web/a//b",
            "/transmission/web/a\\..\\b",
        ] {
            assert_eq!(status(&on.vet(&get(bad)).unwrap_err()), 404, "{bad}");
        }
    }
}

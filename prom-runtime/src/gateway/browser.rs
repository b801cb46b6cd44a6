//! Tokens from browsers, which cannot set an `Authorization` header on an `EventSource` nor on a
//! WebSocket: the token may come, on `GET /topics/{topic}/events` only,
//!
//! - as the query parameter `access_token` (Server-Sent Events; as Mercure and OAuth 2.0's
//!   RFC 6750 §2.3 do), or
//! - as a WebSocket subprotocol `base64url.bearer.prom.<base64url(token), no padding>` offered
//!   next to [`WS_PROTOCOL`], which the server selects (as Kubernetes does with
//!   `base64url.bearer.authorization.k8s.io.`): a browser accepts only an answer it offered, and
//!   the token is never echoed.
//!
//! Anywhere else a token in the query is refused (400), so it cannot end up in URLs of routes
//! that are not meant for it. Once checked, the token is removed from the request (query and
//! subprotocol list), so no handler, log line or problem document downstream can show it; the
//! server's own reports redact `access_token` too ([`crate::server::target::redacted`]).

use crate::server::problem::{Kind, Problem};
use crate::server::target::decode_component;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::http::{HeaderValue, Method, Uri};

/// The query parameter carrying a token on `GET` subscribe routes.
pub const ACCESS_TOKEN: &str = "access_token";

/// The prefix of the WebSocket subprotocol carrying a base64url token.
pub const WS_TOKEN_PREFIX: &str = "base64url.bearer.prom.";

/// The WebSocket subprotocol the server selects; a browser sending its token as a subprotocol
/// must offer it too.
pub const WS_PROTOCOL: &str = "prom.v1";

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `Authorization: Bearer TOKEN`.
    Header,
    /// `?access_token=TOKEN`.
    Query,
    /// `Sec-WebSocket-Protocol: prom.v1, base64url.bearer.prom.TOKEN`.
    Subprotocol,
}

/// The token a request presents and how, after removing it from the query and the subprotocol
/// list. `subscribe` says whether the request is a `GET` of a subscribe route, the only one
/// that may carry a token elsewhere than in the header.
pub fn take_token(request: &mut Request, subscribe: bool) -> Result<Option<(Vec<u8>, Transport)>, Problem> {
    let mut found: Vec<(Vec<u8>, Transport)> = Vec::new();
    if let Some(value) = request.headers().get(AUTHORIZATION) {
        // A malformed header is passed on as is: the check then finds no token in it (401).
        found.push((value.as_bytes().to_vec(), Transport::Header));
    }
    let subscribe = subscribe && request.method() == Method::GET;
    if let Some(token) = take_query_token(request, subscribe)? {
        found.push((token, Transport::Query));
    }
    if let Some(token) = take_subprotocol_token(request, subscribe)? {
        found.push((token, Transport::Subprotocol));
    }
    if found.len() > 1 {
        return Err(Problem::new(
            Kind::BadRequest,
            "the request carries a token in more than one way (Authorization header, `access_token`, \
             WebSocket subprotocol); send it one way",
        ));
    }
    Ok(found.pop().map(|(token, transport)| match transport {
        Transport::Header => (token, transport),
        // The check takes `Authorization` values: wrap the bare token.
        _ => ([b"Bearer ".as_slice(), &token].concat(), transport),
    }))
}

/// Removes `access_token` from the query and returns its value.
fn take_query_token(request: &mut Request, subscribe: bool) -> Result<Option<Vec<u8>>, Problem> {
    let Some(raw) = request.uri().query() else { return Ok(None) };
    let mut token = None;
    let mut kept = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        if decode_component(name, true).ok().as_deref() != Some(ACCESS_TOKEN) {
            kept.push(part);
            continue;
        }
        if !subscribe {
            return Err(Problem::new(
                Kind::BadRequest,
                "`access_token` is accepted only on GET /topics/{topic}/events (for browsers' EventSource); \
                 send `Authorization: Bearer TOKEN` instead, and rotate the token if this URL was shared",
            ));
        }
        if token.is_some() {
            return Err(Problem::new(Kind::BadRequest, "`access_token` is given twice; give it once"));
        }
        // The value is never quoted: it is (part of) a secret.
        let decoded = decode_component(value, true).map_err(|_| {
            Problem::new(
                Kind::BadRequest,
                "`access_token` is not a percent-encoded UTF-8 text; encode it with encodeURIComponent",
            )
        })?;
        token = Some(decoded.into_bytes());
    }
    if token.is_some() {
        set_query(request, &kept.join("&"))?;
    }
    Ok(token)
}

/// Rewrites the request's query (empty: none).
fn set_query(request: &mut Request, query: &str) -> Result<(), Problem> {
    let path = request.uri().path();
    let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query =
        Some(target.parse().map_err(|_| Problem::new(Kind::BadRequest, "the request target is malformed"))?);
    *request.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| Problem::new(Kind::BadRequest, "the request target is malformed"))?;
    Ok(())
}

/// Removes a `base64url.bearer.prom.` entry from `Sec-WebSocket-Protocol` and returns its token.
fn take_subprotocol_token(request: &mut Request, subscribe: bool) -> Result<Option<Vec<u8>>, Problem> {
    let mut offered: Vec<String> = Vec::new();
    for value in request.headers().get_all(SEC_WEBSOCKET_PROTOCOL) {
        let Ok(text) = value.to_str() else { continue };
        offered.extend(text.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()));
    }
    let mut tokens = offered.iter().filter_map(|p| p.strip_prefix(WS_TOKEN_PREFIX));
    let Some(encoded) = tokens.next() else { return Ok(None) };
    if !subscribe {
        return Err(Problem::new(
            Kind::BadRequest,
            "a token subprotocol is accepted only on GET /topics/{topic}/events",
        ));
    }
    if tokens.next().is_some() {
        return Err(Problem::new(Kind::BadRequest, "more than one token subprotocol is offered; offer one"));
    }
    if !offered.iter().any(|p| p == WS_PROTOCOL) {
        return Err(Problem::new(
            Kind::BadRequest,
            format!(
                "a token subprotocol needs `{WS_PROTOCOL}` offered next to it (the server selects that one: \
                 browsers accept only a subprotocol they offered); \
                 new WebSocket(url, [\"{WS_PROTOCOL}\", \"{WS_TOKEN_PREFIX}\" + base64url(token)])"
            ),
        ));
    }
    let token = base64url_decode(encoded).ok_or_else(|| {
        Problem::new(
            Kind::BadRequest,
            format!("the token subprotocol is not `{WS_TOKEN_PREFIX}` followed by base64url without padding"),
        )
    })?;
    let rest: Vec<&str> =
        offered.iter().map(String::as_str).filter(|p| !p.starts_with(WS_TOKEN_PREFIX)).collect();
    let headers = request.headers_mut();
    headers.remove(SEC_WEBSOCKET_PROTOCOL);
    if let Ok(value) = HeaderValue::from_str(&rest.join(", ")) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(Some(token))
}

/// Decodes base64url (RFC 4648 §5) without padding; `None` for anything else.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    };
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        let bits = chunk.len() * 6;
        acc <<= 24 - bits;
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..bits / 8]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::target::parse_query_string;
    use axum::body::Body;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    #[test]
    fn server_reports_redact_the_query_token() {
        let uri: Uri = "/topics/t/events?from=1&access_token=s3cret&access%5Ftoken=x".parse().expect("uri");
        assert_eq!(
            crate::server::target::redacted(&uri),
            "/topics/t/events?from=1&access_token=REDACTED&access%5Ftoken=REDACTED"
        );
        let error = parse_query_string("access_token=%zzs3cret").expect_err("undecodable");
        assert!(!error.contains("s3cret") && !error.contains("%zz"), "{error}");
    }

    #[test]
    fn base64url_round_trips_known_vectors() {
        assert_eq!(base64url_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64url_decode("Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64url_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64url_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64url_decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        for bad in ["Z", "Zm9v=", "Zm+v", "Zm/v"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_query_token_is_taken_out_of_the_request() {
        let mut r = request("GET", "/topics/t/events?from=earliest&access_token=s%2Bcret&group=g", &[]);
        let taken = take_token(&mut r, true).expect("ok");
        assert_eq!(taken, Some((b"Bearer s+cret".to_vec(), Transport::Query)));
        assert_eq!(r.uri().to_string(), "/topics/t/events?from=earliest&group=g");
        let mut only = request("GET", "/topics/t/events?access_token=x", &[]);
        take_token(&mut only, true).expect("ok");
        assert_eq!(only.uri().to_string(), "/topics/t/events");
    }

    #[test]
    fn a_query_token_is_refused_outside_get_subscribe_and_never_quoted() {
        let mut post = request("POST", "/topics/t/events?access_token=secret-value", &[]);
        let problem = take_token(&mut post, true).expect_err("publish");
        assert_eq!(problem.kind(), Kind::BadRequest);
        assert!(!problem.body().to_string().contains("secret-value"), "{}", problem.body());
        let mut read = request("GET", "/processes/snap/1?access_token=secret-value", &[]);
        assert!(take_token(&mut read, false).is_err());
        let mut bad = request("GET", "/topics/t/events?access_token=%zzsecret", &[]);
        let problem = take_token(&mut bad, true).expect_err("undecodable");
        let text = problem.body().to_string();
        assert!(!text.contains("secret") && !text.contains("%zz"), "{text}");
        let mut twice = request("GET", "/topics/t/events", &[("authorization", "Bearer a")]);
        *twice.uri_mut() = "/topics/t/events?access_token=b".parse().expect("uri");
        assert!(take_token(&mut twice, true).is_err(), "two ways");
    }

    #[test]
    fn a_subprotocol_token_needs_the_protocol_and_is_removed() {
        // base64url("tok/en+1") = "dG9rL2VuKzE"
        let offered = format!("{WS_PROTOCOL}, {WS_TOKEN_PREFIX}dG9rL2VuKzE");
        let mut r = request("GET", "/topics/t/events", &[("sec-websocket-protocol", &offered)]);
        let taken = take_token(&mut r, true).expect("ok");
        assert_eq!(taken, Some((b"Bearer tok/en+1".to_vec(), Transport::Subprotocol)));
        assert_eq!(r.headers()[SEC_WEBSOCKET_PROTOCOL], WS_PROTOCOL);
        let alone = format!("{WS_TOKEN_PREFIX}dG9rL2VuKzE");
        let mut r = request("GET", "/topics/t/events", &[("sec-websocket-protocol", &alone)]);
        let problem = take_token(&mut r, true).expect_err("no prom.v1");
        let text = problem.body().to_string();
        assert!(text.contains(WS_PROTOCOL) && !text.contains("dG9r"), "{text}");
        let bad = format!("{WS_PROTOCOL}, {WS_TOKEN_PREFIX}a=b");
        let mut r = request("GET", "/topics/t/events", &[("sec-websocket-protocol", &bad)]);
        assert!(take_token(&mut r, true).is_err());
    }
}

//! RFC 9457 problem documents: the body of every error answer of the server.
//!
//! A problem names its kind with a stable `type` (a `tag:` URI, which RFC 9457 suggests for types
//! that are not meant to be dereferenced), a fixed `title` per kind, the HTTP `status` and a
//! `detail` that says what was wrong and how to fix it. Details never carry driver internals
//! (hosts, replica-set names, error labels): those are reported server-side.

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The kinds of problem the server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The request is malformed (undecodable text, unknown or repeated parameters, operators).
    BadRequest,
    /// No document has the key, or no route has the path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// No valid bearer token came with the request.
    Unauthorized,
    /// The token is valid but not for this action on this topic.
    Forbidden,
    /// The body is larger than the server takes.
    PayloadTooLarge,
    /// The body's media type is not one the route takes.
    UnsupportedMediaType,
    /// The payload does not satisfy the topic's schema (`errors` lists each JSON pointer).
    InvalidPayload,
    /// The store (MongoDB or the embedded store) did not answer in time or failed.
    StoreUnavailable,
    /// The server is at its connection limit.
    Overloaded,
    /// The request took longer than the request timeout.
    Timeout,
    /// A bug: a handler failed or panicked.
    Internal,
}

impl Kind {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Kind::BadRequest => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Kind::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Kind::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            Kind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Kind::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Kind::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
            }
            Kind::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            Kind::InvalidPayload => (StatusCode::BAD_REQUEST, "invalid-payload", "Invalid payload"),
            Kind::StoreUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", "Snapshot store unavailable")
            }
            Kind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Server overloaded"),
            Kind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
            Kind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error"),
        }
    }

    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The problem `type` URI of this kind.
    pub fn type_uri(self) -> String {
        format!("tag:prom,2026:problem/{}", self.parts().1)
    }
}

/// One problem document, ready to become a response.
#[derive(Debug, Clone)]
pub struct Problem {
    kind: Kind,
    detail: String,
    retry_after: Option<Duration>,
    extensions: Map<String, Value>,
}

impl Problem {
    /// A problem of `kind` with a human-readable `detail`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem { kind, detail: detail.into(), retry_after: None, extensions: Map::new() }
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Problem {
        self.retry_after = Some(after);
        self
    }

    /// Adds an extension member (RFC 9457 §3.2), such as `allowed_filters`.
    pub fn with(mut self, name: &str, value: Value) -> Problem {
        self.extensions.insert(name.to_string(), value);
        self
    }

    /// The kind of this problem.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The document as JSON.
    pub fn body(&self) -> Value {
        let (status, _, title) = self.kind.parts();
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": title,
            "status": status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(members) = &mut body {
            members.extend(self.extensions.clone());
        }
        body
    }

    /// The `Retry-After` value in whole seconds, rounded up and at least 1.
    fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|after| after.as_secs().saturating_add(u64::from(after.subsec_nanos() > 0)).max(1))
    }

    /// The whole answer as HTTP/1.1 bytes, for answering before any router runs (the connection
    /// limit); it closes the connection.
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let status = self.kind.status();
        let body = self.body().to_string();
        let retry = self.retry_after_secs().map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
        )
        .into_bytes()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_rfc_9457_members() {
        let problem = Problem::new(Kind::StoreUnavailable, "try later")
            .retry_after(Duration::from_millis(1500))
            .with("allowed_filters", json!(["a"]));
        let body = problem.body();
        assert_eq!(body["type"], "tag:prom,2026:problem/store-unavailable");
        assert_eq!(body["title"], "Snapshot store unavailable");
        assert_eq!(body["status"], 503);
        assert_eq!(body["detail"], "try later");
        assert_eq!(body["allowed_filters"], json!(["a"]));
        let raw = String::from_utf8(problem.to_http1_bytes()).expect("UTF-8");
        assert!(raw.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{raw}");
        assert!(raw.contains("retry-after: 2\r\n") && raw.contains("connection: close\r\n"), "{raw}");
        let response = problem.into_response();
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }
}

//! `POST /topics/{topic}/events`: one JSON payload, or an NDJSON batch published atomically.
//!
//! The payload goes through [`Producer::publish`] like every publish (schema check, canonical
//! numbers, key, partition, dual-write); nothing is stored unless the whole body is valid.

use super::Gateway;
use super::failures::problem_of;
use crate::publish::PublishOptions;
use crate::record::Receipt;
use crate::server::problem::{Kind, Problem};
use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;

/// The header whose value becomes the publish's dedup key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest idempotency key taken.
const MAX_KEY_LEN: usize = 256;

/// How the body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON payload.
    Json,
    /// One JSON payload per line, published atomically.
    Ndjson,
}

pub(super) async fn publish(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    match run(&gateway, request).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn run(gateway: &Gateway, request: Request) -> Result<Response, Problem> {
    let topic = super::topic_of(request.uri().path())
        .ok_or_else(|| Problem::new(Kind::NotFound, "the path names no topic"))?;
    let reporter = &gateway.options.reporter;
    let doing = format!("publishing to `{topic}`");
    // The topic first: an unknown one is a 404 before any body is read.
    gateway.producer.registry().route(&topic).map_err(|e| problem_of(&e, &doing, reporter))?;
    let format = format_of(request.headers())?;
    let key = idempotency_key(request.headers())?;
    let trace = trace_of(request.headers());
    let limit = gateway.options.max_body_bytes;
    let body = read_body(request, limit).await?;
    let options =
        |dedup: Option<String>| PublishOptions { dedup, trace: trace.clone(), ..PublishOptions::default() };
    match format {
        Format::Json => {
            let payload = parse(&body, None)?;
            let receipt = gateway
                .producer
                .publish(&topic, payload, options(key))
                .await
                .map_err(|e| problem_of(&e, &doing, reporter))?;
            Ok(created(receipt_json(&receipt)))
        }
        Format::Ndjson => {
            let mut items = Vec::new();
            for (index, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let number = index + 1;
                let payload = parse(line, Some(number))?;
                // One key per line, so a retried batch is recognised line by line.
                let dedup = key.as_ref().map(|k| format!("{k}#{number}"));
                items.push((topic.clone(), payload, options(dedup), number));
            }
            if items.is_empty() {
                return Err(Problem::new(
                    Kind::BadRequest,
                    "the NDJSON body holds no payload: send one JSON value per line",
                ));
            }
            // Each line is checked alone first, so an invalid one is named by its line.
            for (topic, payload, opts, number) in &items {
                crate::publish::prepare(gateway.producer.registry(), topic, payload.clone(), opts).map_err(
                    |e| {
                        problem_of(&e, &format!("{doing}, line {number}"), reporter)
                            .with("line", json!(number))
                    },
                )?;
            }
            let batch = items.into_iter().map(|(topic, payload, opts, _)| (topic, payload, opts)).collect();
            let receipts =
                gateway.producer.publish_all(batch).await.map_err(|e| problem_of(&e, &doing, reporter))?;
            Ok(created(json!({ "events": receipts.iter().map(receipt_json).collect::<Vec<_>>() })))
        }
    }
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// The receipt as the client sees it.
fn receipt_json(receipt: &Receipt) -> Value {
    json!({
        "id": receipt.id,
        "offset": receipt.offset,
        "partition": receipt.partition,
        "duplicate": receipt.duplicate,
    })
}

/// The caller's W3C trace context (`traceparent`, `tracestate`), which the published events
/// continue. A malformed or repeated `traceparent` is ignored with a warning, never refused: a
/// tracing problem must not lose an event.
fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    const SOURCE: &str = "the gateway's traceparent request header";
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = String::from_utf8_lossy(parents.next()?.as_bytes()).into_owned();
    if parents.next().is_some() {
        tracing::warn!(source = SOURCE, "ignoring a request with more than one traceparent header");
        return None;
    }
    // Several `tracestate` headers are one list, joined by commas (RFC 9110 field lines).
    let states: Vec<String> = headers
        .get_all(TRACESTATE)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    let state = (!states.is_empty()).then(|| states.join(","));
    TraceContext::accept(Some(&parent), state.as_deref(), SOURCE)
}

/// The body's format from `Content-Type` (none: JSON).
fn format_of(headers: &HeaderMap) -> Result<Format, Problem> {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Ok(Format::Json) };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(Format::Ndjson),
        _ => Err(Problem::new(
            Kind::UnsupportedMediaType,
            format!(
                "the body is `{text}`; send `application/json` (one payload) or `application/x-ndjson` (one \
                 payload per line, published atomically)"
            ),
        )),
    }
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= MAX_KEY_LEN => Ok(Some(key.to_string())),
        _ => Err(Problem::new(
            Kind::BadRequest,
            format!("the `Idempotency-Key` header must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )),
    }
}

/// Reads at most `limit` bytes of body; more is a 413, told as early as `Content-Length` allows.
async fn read_body(request: Request, limit: usize) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            Kind::PayloadTooLarge,
            format!(
                "the body is larger than the limit of {limit} bytes; split it, or raise `prom serve --max-body`"
            ),
        )
    };
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut stream = Body::into_data_stream(request.into_body());
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Problem::new(Kind::BadRequest, format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Parses one payload; the error names the line (NDJSON), line and column.
fn parse(text: &[u8], line: Option<usize>) -> Result<Value, Problem> {
    serde_json::from_slice(text).map_err(|e| {
        let at = match line {
            Some(number) => format!("line {number}, column {}", e.column()),
            None => format!("line {}, column {}", e.line(), e.column()),
        };
        let mut problem = Problem::new(Kind::BadRequest, format!("the body is not JSON at {at}: {e}"));
        if let Some(number) = line {
            problem = problem.with("line", json!(number));
        }
        problem
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types_choose_the_format() {
        let mut headers = HeaderMap::new();
        assert_eq!(format_of(&headers).ok(), Some(Format::Json));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert_eq!(format_of(&headers).ok(), Some(Format::Json));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        assert_eq!(format_of(&headers).ok(), Some(Format::Ndjson));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(format_of(&headers).map_err(|p| p.kind()).err(), Some(Kind::UnsupportedMediaType));
    }
}

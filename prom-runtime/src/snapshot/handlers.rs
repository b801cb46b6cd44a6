//! The HTTP handlers: projection reads ([`super::read`], MongoDB or the embedded store) behind the
//! routes of one snapshot API.
//!
//! Every read runs under the store deadline ([`super::ApiOptions::store_timeout`]): when the
//! store is unreachable the client gets a short 503 problem document at once, and the store's
//! error (hosts, replica set, file) goes to the server's reporter only.

use super::problem::{Kind, Problem};
use super::query::{self, ListQuery};
use super::read::{Found, PageRequest, ProjectionRead, ReadError};
use super::{ApiOptions, SnapshotSpec};
use crate::error::Error;
use crate::timetravel::TimeTravel;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Api {
    spec: SnapshotSpec,
    options: ApiOptions,
    store: Arc<dyn ProjectionRead>,
    cache_control: HeaderValue,
    openapi: Value,
    outages: Throttle,
}

/// At most one store-failure report a second per API: an outage under load would otherwise
/// print a line per request. Suppressed reports are counted in the next one.
struct Throttle {
    started: Instant,
    /// Milliseconds after `started` of the last report, plus one (0: never reported).
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    const EVERY_MS: u64 = 1000;

    fn new() -> Throttle {
        Throttle { started: Instant::now(), last_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// Calls `report` with how many reports were suppressed since the last one, or counts this
    /// one as suppressed.
    fn report(&self, report: impl FnOnce(u64)) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= Self::EVERY_MS;
        if due && self.last_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            report(self.suppressed.swap(0, Ordering::AcqRel));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The routes of `spec` (`GET`/`HEAD` snap, list, openapi.json) with their state.
pub(super) fn routes(store: Arc<dyn ProjectionRead>, spec: &SnapshotSpec, options: &ApiOptions) -> Router {
    let cache_control = HeaderValue::from_str(&format!("max-age={}", spec.max_age.as_secs()))
        .unwrap_or(HeaderValue::from_static("no-cache"));
    let api = Arc::new(Api {
        spec: spec.clone(),
        options: options.clone(),
        store,
        cache_control,
        openapi: super::openapi::document(spec),
        outages: Throttle::new(),
    });
    let path = &spec.path;
    // `get` also answers HEAD, with the same headers and no body.
    Router::new()
        .route(&format!("{path}/snap/{{key}}"), get(snap))
        .route(&format!("{path}/list"), get(list))
        .route(&format!("{path}/openapi.json"), get(openapi))
        .with_state(api)
}

/// The answer for paths no route serves.
pub(super) async fn not_found(uri: Uri) -> Response {
    let detail = format!(
        "no snapshot API serves `{}`; see `<path>/openapi.json` of a declared API for its routes",
        uri.path()
    );
    Problem::new(Kind::NotFound, detail).into_response()
}

/// The answer for a method a route does not take.
pub(super) async fn method_not_allowed() -> Response {
    Problem::new(Kind::MethodNotAllowed, "the snapshot API is read-only: use GET or HEAD").into_response()
}

async fn snap(State(api): State<Arc<Api>>, uri: Uri, headers: HeaderMap) -> Response {
    // The key is decoded here, strictly, from the raw path: the router's decoder would turn
    // undecodable escapes into other text.
    let prefix = format!("{}/snap/", api.spec.path);
    let raw_key = uri.path().strip_prefix(&prefix).unwrap_or_default();
    let key = match query::decode_component(raw_key, false) {
        Ok(key) => key,
        Err(e) => return Problem::new(Kind::BadRequest, format!("the key `{raw_key}`: {e}")).into_response(),
    };
    let at = match query::parse_query_string(uri.query().unwrap_or_default())
        .and_then(|p| query::parse_snap(&p))
    {
        Ok(at) => at,
        Err(message) => {
            return Problem::new(Kind::BadRequest, message)
                .with("parameter", json!("at"))
                .with("expected", json!("RFC 3339 (2026-11-24T13:00:00Z) or ms since the epoch"))
                .into_response();
        }
    };
    let found = match at {
        None => read(&api, api.store.get(&api.spec.collection, &key)).await,
        Some(at_ms) => match api.options.time_travel.get(&api.spec.projector) {
            Some(Ok(travel)) => read(&api, travelled(travel, &key, at_ms)).await,
            Some(Err(why)) => {
                let detail = format!("this API cannot answer `at`: {why}");
                return Problem::new(Kind::BadRequest, detail).with("parameter", json!("at")).into_response();
            }
            None => {
                let detail = "this server serves no time travel for this API; ask without `at`";
                return Problem::new(Kind::BadRequest, detail).with("parameter", json!("at")).into_response();
            }
        },
    };
    let found = match found {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(found) = found else {
        let detail = match at {
            None => format!("no document has the key `{key}`"),
            Some(at_ms) => {
                format!("no document had the key `{key}` at {}", crate::record::format_ts(at_ms))
            }
        };
        return Problem::new(Kind::NotFound, detail).into_response();
    };
    let etag = query::etag(&found.bytes);
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return internal(&api, "cannot format the ETag".into());
    };
    let cached =
        headers.get(IF_NONE_MATCH).and_then(|h| h.to_str().ok()).is_some_and(|h| query::none_match(h, &etag));
    let headers = [(ETAG, etag_value), (CACHE_CONTROL, api.cache_control.clone())];
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (StatusCode::OK, headers, Json(found.body)).into_response()
}

/// The document of `key` at `at_ms`, as time travel folds it; its ETag is computed over its
/// JSON text.
async fn travelled(travel: &TimeTravel, key: &str, at_ms: i64) -> Result<Option<Found>, ReadError> {
    let travelled = travel.state_at(key, at_ms).await.map_err(|e| match e {
        Error::CorruptSnapshot { .. } => ReadError::Corrupt(e.to_string()),
        other => ReadError::Unavailable(other.to_string()),
    })?;
    let Some(body) = travelled.state else { return Ok(None) };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ReadError::Corrupt(format!("the state of `{key}` cannot be encoded: {e}")))?;
    Ok(Some(Found { key: key.to_owned(), body, bytes }))
}

async fn list(State(api): State<Arc<Api>>, RawQuery(raw): RawQuery) -> Response {
    let allowed = &api.spec.filters;
    let parsed = query::parse_query_string(raw.as_deref().unwrap_or_default())
        .and_then(|pairs| query::parse_list(&pairs, allowed, api.spec.max_limit));
    let request = match parsed {
        Ok(request) => request,
        Err(message) => {
            let detail = format!(
                "{message}; this list accepts `limit`, `cursor` and the filters [{}]",
                allowed.join(", ")
            );
            return Problem::new(Kind::BadRequest, detail)
                .with("allowed_filters", json!(allowed))
                .into_response();
        }
    };
    match page(&api, request).await {
        Ok(body) => {
            (StatusCode::OK, [(CACHE_CONTROL, api.cache_control.clone())], Json(body)).into_response()
        }
        Err(response) => response,
    }
}

/// Reads one page: one more document than asked, to know whether another page follows.
async fn page(api: &Api, request: ListQuery) -> Result<Value, Response> {
    let limit = request.limit;
    let asked =
        PageRequest { after: request.after, filters: request.filters, limit: limit.saturating_add(1) };
    let mut docs: Vec<Found> = read(api, api.store.page(&api.spec.collection, asked)).await?;
    let more = docs.len() as u64 > limit;
    docs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = match docs.last() {
        Some(last) if more => Value::String(query::encode_cursor(&last.key)),
        _ => Value::Null,
    };
    let items: Vec<Value> = docs.into_iter().map(|d| d.body).collect();
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

async fn openapi(State(api): State<Arc<Api>>) -> Response {
    Json(api.openapi.clone()).into_response()
}

/// Runs one read under the store deadline; an unavailable store becomes a 503 problem for the
/// client and a report (with the store's own words) for the operator, a document that cannot be
/// presented a 500.
async fn read<T>(api: &Api, operation: impl Future<Output = Result<T, ReadError>>) -> Result<T, Response> {
    let deadline = api.options.store_timeout;
    let (spec, retry_after) = (&api.spec, deadline.max(std::time::Duration::from_secs(1)));
    let store = api.store.store();
    match tokio::time::timeout(deadline, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(ReadError::Corrupt(reason))) => Err(internal(api, reason)),
        Ok(Err(e)) => {
            api.outages.report(|suppressed| {
                api.options.reporter.report(&format!(
                    "snapshot API `{}`: reading the collection `{}` from {store} failed: {e}{}",
                    spec.projector,
                    spec.collection,
                    suppressed_note(suppressed)
                ));
            });
            let detail = "the snapshot store cannot be read right now; retry later";
            Err(Problem::new(Kind::StoreUnavailable, detail).retry_after(retry_after).into_response())
        }
        Err(_) => {
            api.outages.report(|suppressed| {
                api.options.reporter.report(&format!(
                    "snapshot API `{}`: {store} did not answer a read of `{}` within {deadline:?} (the \
                     store deadline, --store-timeout){}",
                    spec.projector,
                    spec.collection,
                    suppressed_note(suppressed)
                ));
            });
            let detail =
                format!("the snapshot store did not answer within {} ms; retry later", deadline.as_millis());
            Err(Problem::new(Kind::StoreUnavailable, detail).retry_after(retry_after).into_response())
        }
    }
}

fn suppressed_note(suppressed: u64) -> String {
    match suppressed {
        0 => String::new(),
        n => format!(" ({n} similar failures in the last second not reported)"),
    }
}

/// A 500 problem for a stored document the API cannot present; the reason goes to the reporter.
fn internal(api: &Api, reason: String) -> Response {
    api.options.reporter.report(&format!("snapshot API `{}`: {reason}", api.spec.projector));
    Problem::new(Kind::Internal, "a stored document cannot be presented; the server log says why")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::Throttle;

    #[test]
    fn outage_reports_are_throttled_and_count_what_they_drop() {
        let mut throttle = Throttle::new();
        throttle.started -= std::time::Duration::from_secs(5);
        let mut reports = Vec::new();
        for _ in 0..5 {
            throttle.report(|suppressed| reports.push(suppressed));
        }
        assert_eq!(reports, [0], "one report a second");
        // As if the last report was 5 s ago.
        throttle.last_ms.store(1, std::sync::atomic::Ordering::Relaxed);
        throttle.report(|suppressed| reports.push(suppressed));
        assert_eq!(reports, [0, 4], "the next report counts the dropped ones");
    }
}

//! The HTTP handlers: MongoDB reads behind the routes of one snapshot API.

use super::SnapshotSpec;
use super::query::{self, ListQuery};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::{Collection, Database};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    spec: SnapshotSpec,
    collection: Collection<RawDocumentBuf>,
    cache_control: HeaderValue,
    openapi: Value,
}

/// The routes of `spec` (`GET`/`HEAD` snap, list, openapi.json) with their state.
pub(super) fn routes(db: &Database, spec: &SnapshotSpec) -> Router {
    let cache_control = HeaderValue::from_str(&format!("max-age={}", spec.max_age.as_secs()))
        .unwrap_or(HeaderValue::from_static("no-cache"));
    let api = Arc::new(Api {
        spec: spec.clone(),
        collection: db.collection(&spec.collection),
        cache_control,
        openapi: super::openapi::document(spec),
    });
    let path = &spec.path;
    // `get` also answers HEAD, with the same headers and no body.
    Router::new()
        .route(&format!("{path}/snap/{{key}}"), get(snap))
        .route(&format!("{path}/list"), get(list))
        .route(&format!("{path}/openapi.json"), get(openapi))
        .with_state(api)
}

async fn snap(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(key)) = key else {
        return error(StatusCode::BAD_REQUEST, "the key is not valid UTF-8 text".into(), None);
    };
    let found = match api.collection.find_one(doc! { "_id": &key }).await {
        Ok(found) => found,
        Err(e) => return unavailable(&api, &e),
    };
    let Some(raw) = found else {
        return error(StatusCode::NOT_FOUND, format!("no document has the key `{key}`"), None);
    };
    let etag = query::etag(raw.as_bytes());
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot format the ETag".into(), None);
    };
    let cached =
        headers.get(IF_NONE_MATCH).and_then(|h| h.to_str().ok()).is_some_and(|h| query::none_match(h, &etag));
    let headers = [(ETAG, etag_value), (CACHE_CONTROL, api.cache_control.clone())];
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    match to_json(&raw) {
        Ok(body) => (StatusCode::OK, headers, Json(body)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e, None),
    }
}

async fn list(
    State(api): State<Arc<Api>>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let allowed = &api.spec.filters;
    let parsed = match params {
        Ok(Query(pairs)) => query::parse_list(&pairs, allowed, api.spec.max_limit),
        Err(e) => Err(format!("the query string cannot be read: {e}")),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, message, Some(allowed)),
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
    let mut clauses: Vec<Document> = Vec::new();
    if let Some(after) = request.after {
        clauses.push(doc! { "_id": { "$gt": after } });
    }
    for (field, value) in request.filters {
        // `$eq`: the value is compared literally, whatever it looks like.
        let mut clause = Document::new();
        clause.insert(field, doc! { "$eq": value });
        clauses.push(clause);
    }
    let filter = if clauses.is_empty() {
        Document::new()
    } else {
        doc! { "$and": clauses }
    };
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let found = api.collection.find(filter).sort(doc! { "_id": 1 }).limit(limit.saturating_add(1)).await;
    let mut docs: Vec<RawDocumentBuf> = match found {
        Ok(cursor) => cursor.try_collect().await.map_err(|e| unavailable(api, &e))?,
        Err(e) => return Err(unavailable(api, &e)),
    };
    let more = docs.len() as u64 > request.limit;
    docs.truncate(usize::try_from(request.limit).unwrap_or(usize::MAX));
    let next_cursor = match docs.last() {
        Some(last) if more => {
            let id = last.get_str("_id").map_err(|_| {
                error(StatusCode::INTERNAL_SERVER_ERROR, "a document's `_id` is not text".into(), None)
            })?;
            Value::String(query::encode_cursor(id))
        }
        _ => Value::Null,
    };
    let items = docs
        .iter()
        .map(to_json)
        .collect::<Result<Vec<Value>, String>>()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e, None))?;
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

async fn openapi(State(api): State<Arc<Api>>) -> Response {
    Json(api.openapi.clone()).into_response()
}

/// A stored document as JSON (relaxed extended JSON: numbers stay numbers).
fn to_json(raw: &RawDocumentBuf) -> Result<Value, String> {
    let document = raw.to_document().map_err(|e| format!("a stored document cannot be read: {e}"))?;
    Ok(Bson::Document(document).into_relaxed_extjson())
}

fn unavailable(api: &Api, e: &mongodb::error::Error) -> Response {
    let message = format!("cannot read the collection `{}`: {e}", api.spec.collection);
    error(StatusCode::SERVICE_UNAVAILABLE, message, None)
}

fn error(status: StatusCode, message: String, allowed: Option<&[String]>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(allowed) = allowed {
        body["allowed_filters"] = json!(allowed);
        body["error"] = json!(format!(
            "{message}; this list accepts `limit`, `cursor` and the filters [{}]",
            allowed.join(", ")
        ));
    }
    (status, Json(body)).into_response()
}

//! The OpenAPI 3.1 description of one projector's snapshot API.

use super::SnapshotSpec;
use serde_json::{Value, json};

/// The OpenAPI 3.1 document for `spec`; the list operation names exactly the declared filters.
pub fn document(spec: &SnapshotSpec) -> Value {
    let path = &spec.path;
    let error = json!({ "$ref": "#/components/responses/Problem" });
    let mut list_params = vec![
        json!({
            "name": "limit", "in": "query", "required": false,
            "description": format!("Documents per page; larger values are capped at {}.", spec.max_limit),
            "schema": { "type": "integer", "minimum": 1, "default": spec.max_limit }
        }),
        json!({
            "name": "cursor", "in": "query", "required": false,
            "description": "`next_cursor` of the previous page.",
            "schema": { "type": "string" }
        }),
    ];
    list_params.extend(spec.filters.iter().map(|field| {
        json!({
            "name": field, "in": "query", "required": false,
            "description": format!("Only documents whose `{field}` equals this string."),
            "schema": { "type": "string" }
        })
    }));
    let cache = json!({ "Cache-Control": { "schema": { "type": "string" } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{} snapshots", spec.projector),
            "version": "1",
            "description": format!(
                "Read-only view of the `{}` collection kept by the changelog projector `{}`.",
                spec.collection, spec.projector
            )
        },
        "paths": {
            format!("{path}/snap/{{key}}"): {
                "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
                "get": {
                    "operationId": "getSnapshot",
                    "summary": "The document of one key, now or (with `at`) as it was at a past time.",
                    "parameters": [{
                        "name": "If-None-Match", "in": "header", "required": false,
                        "schema": { "type": "string" }
                    }, {
                        "name": "at", "in": "query", "required": false,
                        "description": "Time travel: the document as the projector would have stored it after \
                                        the key's events published at or before this time (RFC 3339, like \
                                        2026-11-24T13:00:00Z, or ms since the epoch). 404 when the key had \
                                        no document then.",
                        "schema": { "type": "string", "format": "date-time" }
                    }],
                    "responses": {
                        "200": {
                            "description": "The document.",
                            "headers": {
                                "ETag": { "schema": { "type": "string" } },
                                "Cache-Control": cache["Cache-Control"]
                            },
                            "content": { "application/json": { "schema": { "type": "object" } } }
                        },
                        "304": { "description": "The document still has the ETag given in If-None-Match." },
                        "400": error,
                        "404": error,
                        "503": error
                    }
                },
                "head": {
                    "operationId": "headSnapshot",
                    "summary": "The headers of `GET` without the body.",
                    "responses": { "200": { "description": "The document exists." }, "304": {
                        "description": "Not modified."
                    }, "404": { "description": "No document has this key." } }
                }
            },
            format!("{path}/list"): {
                "get": {
                    "operationId": "listSnapshots",
                    "summary": "Documents in `_id` order, a page at a time.",
                    "parameters": list_params,
                    "responses": {
                        "200": {
                            "description": "One page.",
                            "headers": cache,
                            "content": { "application/json": { "schema": {
                                "type": "object",
                                "required": ["items", "next_cursor"],
                                "properties": {
                                    "items": { "type": "array", "items": { "type": "object" } },
                                    "next_cursor": { "type": ["string", "null"] }
                                }
                            } } }
                        },
                        "400": error,
                        "503": error
                    }
                }
            }
        },
        "components": {
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem document: what was wrong and how to fix it (503s \
                                    carry a Retry-After header).",
                    "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                    "content": { "application/problem+json": { "schema": {
                        "type": "object",
                        "required": ["type", "title", "status", "detail"],
                        "properties": {
                            "type": { "type": "string", "format": "uri-reference" },
                            "title": { "type": "string" },
                            "status": { "type": "integer" },
                            "detail": { "type": "string" },
                            "allowed_filters": { "type": "array", "items": { "type": "string" } }
                        }
                    } } }
                }
            }
        }
    })
}

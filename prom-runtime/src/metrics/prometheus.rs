//! The `prom` CLI's exporter: a Prometheus recorder installed behind the facade, rendered as the
//! text exposition format at `GET /metrics` (on `prom serve`'s port, or on its own small server
//! for `prom run --metrics ADDR`).

use crate::server::fallback;
use crate::server::problem::{Kind, Problem};
use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// The content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of `prom_handler_duration_seconds`: 1 ms to 60 s, roughly ×2.5 apart.
const HANDLER_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder (once; later calls return
/// the same handle). `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        prom_spec::metrics::HANDLER_DURATION.name.to_owned(),
                    ),
                    &HANDLER_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            super::describe();
            Some(handle)
        })
        .clone()
}

/// A router serving `GET /metrics` from `handle`, to merge into another router (`prom serve`).
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(render)).with_state(handle)
}

/// [`router`] alone on a server (`prom run --metrics`): other paths and methods get problem
/// documents.
pub fn standalone(handle: PrometheusHandle) -> Router {
    router(handle).method_not_allowed_fallback(fallback::method_not_allowed).fallback(not_found)
}

async fn not_found(uri: Uri) -> Response {
    let detail = format!("nothing is served at `{}`; this server serves only `GET /metrics`", uri.path());
    Problem::new(Kind::NotFound, detail).into_response()
}

async fn render(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    // Upkeep drains histogram buffers so a scrape sees every observation made before it.
    handle.run_upkeep();
    ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render())
}

//! The HTTP gateway: publish and subscribe for programs that are not Rust (other languages,
//! browsers, `curl`), on the same server and port as the snapshot APIs.
//!
//! - `POST /topics/{topic}/events` publishes a JSON payload (or an NDJSON batch, atomically)
//!   through the same [`Producer`] every Rust publisher uses (`publish.rs`);
//! - `GET /topics/{topic}/events` streams the topic as Server-Sent Events or, on a WebSocket
//!   upgrade, as WebSocket messages (`subscribe.rs`, which also says what `group` guarantees);
//! - with [`Tokens`], every request needs a bearer token scoped to its action and topic
//!   ([`auth`]).
//!
//! Every error answer is an RFC 9457 problem document ([`crate::server::problem`]).

pub mod auth;
pub mod browser;
mod failures;
mod publish;
mod subscribe;

use crate::bus::AnyBus;
use crate::publish::Producer;
use crate::server::Reporter;
use crate::server::fallback;
use crate::server::problem::{Kind, Problem};
use crate::server::target::decode_component;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use auth::{Action, Tokens, TokensError, Verdict};

/// The largest request body [`GatewayOptions::default`] accepts: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the gateway behaves; [`GatewayOptions::default`] gives the `prom serve` defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayOptions {
    /// The largest body `POST /topics/{topic}/events` takes (413 beyond).
    pub max_body_bytes: usize,
    /// The tokens every request must present; `None` serves everyone (loopback only in `prom serve`).
    pub tokens: Option<Arc<Tokens>>,
    /// The most events a stream reads ahead of what the connection has taken: the bound on
    /// what one slow client costs the server.
    pub page_size: usize,
    /// How often an idle stream sends a keep-alive (an SSE comment, a WebSocket ping); keep it
    /// below the server's idle timeout.
    pub keep_alive: Duration,
    /// How long a WebSocket send may wait for a client that does not read before the session
    /// is closed with a reason.
    pub send_timeout: Duration,
    /// Where failures clients must not see (store errors) are reported.
    pub reporter: Reporter,
}

impl Default for GatewayOptions {
    fn default() -> GatewayOptions {
        GatewayOptions {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            tokens: None,
            page_size: 100,
            keep_alive: Duration::from_secs(15),
            send_timeout: Duration::from_secs(30),
            reporter: Reporter::silent(),
        }
    }
}

impl GatewayOptions {
    /// Sets [`GatewayOptions::max_body_bytes`].
    pub fn with_max_body_bytes(mut self, bytes: usize) -> GatewayOptions {
        self.max_body_bytes = bytes;
        self
    }

    /// Requires `tokens` on every request.
    pub fn with_tokens(mut self, tokens: Tokens) -> GatewayOptions {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Sets [`GatewayOptions::page_size`] (at least 1).
    pub fn with_page_size(mut self, events: usize) -> GatewayOptions {
        self.page_size = events.max(1);
        self
    }

    /// Sets [`GatewayOptions::keep_alive`].
    pub fn with_keep_alive(mut self, every: Duration) -> GatewayOptions {
        self.keep_alive = every;
        self
    }

    /// Sets [`GatewayOptions::send_timeout`].
    pub fn with_send_timeout(mut self, timeout: Duration) -> GatewayOptions {
        self.send_timeout = timeout;
        self
    }

    /// Sets where store failures are reported.
    pub fn with_reporter(mut self, reporter: Reporter) -> GatewayOptions {
        self.reporter = reporter;
        self
    }
}

/// What every handler shares.
struct Gateway {
    producer: Producer<AnyBus>,
    options: GatewayOptions,
    /// Turns true when the server stops: open streams end then.
    stop: watch::Receiver<bool>,
}

/// The gateway's routes over `producer`; streams end when `stop` turns true. `rest` serves
/// every other path (the snapshot APIs), behind the same token check (action `read`); without
/// it, other paths get a 404 problem document.
pub fn router(
    producer: Producer<AnyBus>,
    options: GatewayOptions,
    stop: watch::Receiver<bool>,
    rest: Option<Router>,
) -> Router {
    let tokens = options.tokens.clone();
    let gateway = Arc::new(Gateway { producer, options, stop });
    let routes = Router::new()
        .route("/topics/{topic}/events", get(subscribe::subscribe).post(publish::publish))
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(gateway);
    let routes = match rest {
        Some(rest) => routes.fallback_service(rest),
        None => routes.fallback(fallback::not_found),
    };
    match tokens {
        Some(tokens) => routes.layer(middleware::from_fn_with_state(tokens, authorize)),
        None => routes,
    }
}

/// The action and topic of a request: publish or subscribe on `/topics/{topic}/events`,
/// otherwise a read (the snapshot APIs).
fn action_of(method: &Method, path: &str) -> (Action, Option<String>) {
    match topic_of(path) {
        Some(topic) if method == Method::POST => (Action::Publish, Some(topic)),
        Some(topic) => (Action::Subscribe, Some(topic)),
        None => (Action::Read, None),
    }
}

/// The decoded `{topic}` of a `/topics/{topic}/events` path.
fn topic_of(path: &str) -> Option<String> {
    let raw = path.strip_prefix("/topics/")?.strip_suffix("/events")?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    decode_component(raw, false).ok()
}

/// The token check in front of every route. Browsers' tokens (query or WebSocket subprotocol,
/// on subscribe routes only) are taken out of the request before it goes on ([`browser`]).
async fn authorize(State(tokens): State<Arc<Tokens>>, mut request: Request, next: Next) -> Response {
    let (action, topic) = action_of(request.method(), request.uri().path());
    let presented = match browser::take_token(&mut request, action == Action::Subscribe) {
        Ok(presented) => presented,
        Err(problem) => return problem.into_response(),
    };
    match tokens.check(presented.as_ref().map(|(token, _)| token.as_slice()), action, topic.as_deref()) {
        Verdict::Allowed => next.run(request).await,
        Verdict::Unauthenticated => {
            let detail = "send a valid token as `Authorization: Bearer TOKEN` (the tokens are configured \
                          with `prom serve --tokens FILE` or PROM_API_TOKENS); browsers subscribing may send \
                          it as `?access_token=TOKEN` (Server-Sent Events) or as the WebSocket subprotocol \
                          `base64url.bearer.prom.<base64url token>` next to `prom.v1`";
            let mut response = Problem::new(Kind::Unauthorized, detail).into_response();
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Verdict::Forbidden(name) => {
            let on = topic.map(|t| format!(" on topic `{t}`")).unwrap_or_default();
            let detail = format!(
                "token `{name}` does not allow `{action}`{on}; use a token scoped to it, or add the action \
                 and a matching topic pattern to `{name}` in the tokens file"
            );
            Problem::new(Kind::Forbidden, detail).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_actions_and_decoded_topics() {
        assert_eq!(action_of(&Method::POST, "/topics/a.b/events"), (Action::Publish, Some("a.b".into())));
        assert_eq!(action_of(&Method::GET, "/topics/a%2Eb/events"), (Action::Subscribe, Some("a.b".into())));
        assert_eq!(action_of(&Method::GET, "/processes/snap/1"), (Action::Read, None));
        assert_eq!(action_of(&Method::GET, "/topics//events"), (Action::Read, None));
        assert_eq!(action_of(&Method::GET, "/topics/a/b/events"), (Action::Read, None));
    }
}

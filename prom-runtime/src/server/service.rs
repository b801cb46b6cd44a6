//! What every request goes through before and after the router: strict decoding of its target,
//! the request timeout, a panic guard, and in-flight tracking until its answer is sent.

use super::Reporter;
use super::connections::{Activity, InFlight};
use super::problem::{Kind, Problem};
use super::target;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, Uri};
use axum::response::IntoResponse;
use futures_util::FutureExt;
use http_body::{Frame, SizeHint};
use std::any::Any;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// An answer's body that keeps its request counted as in flight until the connection drops it
/// (after its last byte was handed to the socket).
pub(super) struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Answers one request: the router's answer, or a problem document; never fails, never panics.
pub(super) async fn answer<B>(
    router: Router,
    request: Request<B>,
    activity: Arc<Activity>,
    request_timeout: Duration,
    reporter: Reporter,
) -> Result<Response<Answer>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (in_flight, handling) = activity.start_request();
    let response = match check_target(request.uri()) {
        Err(problem) => problem.into_response(),
        Ok(()) => run(router, request, request_timeout, &reporter).await,
    };
    drop(handling);
    Ok(response.map(|body| Answer { body, _in_flight: in_flight }))
}

async fn run<B>(
    mut router: Router,
    request: Request<B>,
    limit: Duration,
    reporter: &Reporter,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let target = format!("{} {}", request.method(), target::redacted(request.uri()));
    let handled = AssertUnwindSafe(router.call(request.map(Body::new))).catch_unwind();
    match tokio::time::timeout(limit, handled).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(panic)) => {
            reporter.report(&format!("a handler panicked on `{target}`: {}", panic_message(&*panic)));
            Problem::new(Kind::Internal, "the server failed on this request; the server log says why")
                .into_response()
        }
        Err(_) => {
            reporter.report(&format!("`{target}` took longer than the request timeout ({limit:?})"));
            let detail = format!("the answer took longer than {} ms; retry later", limit.as_millis());
            Problem::new(Kind::Timeout, detail).retry_after(Duration::from_secs(1)).into_response()
        }
    }
}

/// Refuses paths and query strings that do not percent-decode to UTF-8 text.
fn check_target(uri: &Uri) -> Result<(), Problem> {
    target::decode_component(uri.path(), false)
        .map_err(|e| Problem::new(Kind::BadRequest, format!("the path `{}`: {e}", uri.path())))?;
    if let Some(raw) = uri.query() {
        target::parse_query_string(raw).map_err(|e| Problem::new(Kind::BadRequest, e))?;
    }
    Ok(())
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::super::connections::Clock;
    use super::super::problem::PROBLEM_JSON;
    use super::*;
    use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
    use axum::routing::get;
    use std::sync::Mutex;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn panics_and_slow_handlers_become_problem_documents() {
        let router = Router::new()
            .route("/panic", get(boom))
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(3600))));
        let activity = Arc::new(Activity::new(Clock::new()));
        let reported = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&reported);
        let reporter = Reporter::new(move |m| sink.lock().expect("lock").push(m.to_string()));
        for (path, status) in [("/panic", 500), ("/slow", 503), ("/p?x=%ff", 400)] {
            let request = Request::get(path).body(Body::empty()).expect("request");
            let limit = Duration::from_millis(50);
            let Ok(response) =
                answer(router.clone(), request, Arc::clone(&activity), limit, reporter.clone()).await;
            assert_eq!(response.status(), status, "{path}");
            assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON, "{path}");
            assert_eq!(response.headers().contains_key(RETRY_AFTER), status == 503, "{path}");
            assert!(!activity.is_idle(), "{path}: counted until the answer is sent");
            drop(response);
            assert!(activity.is_idle(), "{path}: the sent answer ends the request");
        }
        let reported = reported.lock().expect("lock").join("\n");
        assert!(reported.contains("panicked on `GET /panic`: boom"), "{reported}");
        assert!(reported.contains("`GET /slow` took longer than the request timeout"), "{reported}");
    }

    #[test]
    fn targets_must_decode_to_utf8() {
        for good in ["/processes/list?status=up%20x", "/processes/snap/a%2Fb", "/"] {
            assert!(check_target(&good.parse().expect("uri")).is_ok(), "{good}");
        }
        for bad in ["/processes/list?status=%ff", "/processes/snap/%ff", "/p/%zz", "/p?%c3=1"] {
            let problem = check_target(&bad.parse().expect("uri")).expect_err(bad);
            assert_eq!(problem.body()["status"], 400, "{bad}");
        }
    }
}

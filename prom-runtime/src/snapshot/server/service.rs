//! What every request goes through before and after the router: strict decoding of its target,
//! the request timeout, a panic guard, and in-flight tracking until its answer is sent.

use super::super::Reporter;
use super::super::problem::{Kind, Problem};
use super::super::query;
use super::connections::{Activity, InFlight};
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
    let target = format!("{} {}", request.method(), request.uri());
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
    query::decode_component(uri.path(), false)
        .map_err(|e| Problem::new(Kind::BadRequest, format!("the path `{}`: {e}", uri.path())))?;
    if let Some(raw) = uri.query() {
        query::parse_query_string(raw).map_err(|e| Problem::new(Kind::BadRequest, e))?;
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
    use super::*;

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

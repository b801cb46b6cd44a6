//! The answers for requests no route takes: problem documents, like every other error.

use super::problem::{Kind, Problem};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};

/// The answer for a path no route serves.
pub async fn not_found(uri: Uri) -> Response {
    let detail = format!(
        "nothing is served at `{}`; the gateway serves `/topics/{{topic}}/events` (POST to publish, GET to \
         subscribe), and each snapshot API its declared path",
        uri.path()
    );
    Problem::new(Kind::NotFound, detail).into_response()
}

/// The answer for a method a route does not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let detail = format!(
        "`{}` does not take {method}; see the README's gateway section for each route's methods",
        uri.path()
    );
    Problem::new(Kind::MethodNotAllowed, detail).into_response()
}

//! The snapshot HTTP API: a read-only JSON view of the collections changelog projectors keep.
//!
//! For every changelog projector with `snapshot_api`, under its `path`: `GET|HEAD
//! {path}/snap/{key}` (one document, strong ETag, `If-None-Match` → 304; with `?at=T` the
//! document as it was at T, by [`crate::timetravel`]), `GET {path}/list`
//! (pages in `_id` order, filtered only by the declared fields) and `GET {path}/openapi.json`.
//! [`query`] is the pure part (parameters, cursors, ETags), [`openapi`] the description,
//! [`read`] the store reads (MongoDB or the embedded store's tables), [`handlers`] the routes;
//! the error documents ([`problem`]) and the connection handling (limits and timeouts) are the
//! HTTP server's ([`crate::server`]).

mod handlers;
pub mod openapi;
pub mod query;
pub mod read;

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::system::{Projector, ProjectorKind, System};
use crate::timetravel::{FoldSpec, TimeTravel};
use axum::Router;
#[cfg(feature = "mongo")]
use mongodb::Database;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

// The server's pieces under their old paths, so `snapshot::problem` and `snapshot::Limits` keep working.
pub use crate::server::{Limits, Reporter, problem};

/// The page size limit when the spec sets no `max_limit`.
pub const DEFAULT_MAX_LIMIT: u64 = 100;

/// How long a snapshot read may wait for its store when no `--store-timeout` is given.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the snapshot handlers read MongoDB and report failures.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiOptions {
    /// The longest a request waits for MongoDB before answering 503.
    pub store_timeout: Duration,
    /// Where driver errors go.
    pub reporter: Reporter,
    /// Time travel (`GET {path}/snap/{key}?at=T`) by projector name, or why that projector's
    /// API cannot answer it; an API missing here answers `at` with a 400.
    pub time_travel: TimeTravels,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            store_timeout: DEFAULT_STORE_TIMEOUT,
            reporter: Reporter::silent(),
            time_travel: BTreeMap::new(),
        }
    }
}

impl ApiOptions {
    /// These options with `time_travel` (see [`time_travel`]).
    pub fn with_time_travel(mut self, time_travel: TimeTravels) -> ApiOptions {
        self.time_travel = time_travel;
        self
    }
}

/// Time travel of each API, by projector name: `Ok` or why it has none.
pub type TimeTravels = BTreeMap<String, std::result::Result<TimeTravel, String>>;

/// Time travel for every API of `specs` on `bus` (the embedded store or MongoDB): by projector
/// name, the projector topic's [`TimeTravel`], or why its topic has no per-key history (no
/// `key`, a changelog key that is not the topic's key, projectors that disagree).
pub async fn time_travel<B: crate::EventBus>(
    bus: &B,
    system: &System,
    registry: &Arc<Registry>,
    specs: &[SnapshotSpec],
) -> Result<TimeTravels> {
    let mut out = BTreeMap::new();
    for (projector, fold) in folds(system, registry, specs) {
        let travel = match fold {
            Ok(fold) => Ok(TimeTravel::on(bus, registry.clone(), fold).await?),
            Err(why) => Err(why),
        };
        out.insert(projector, travel);
    }
    Ok(out)
}

/// [`time_travel`] on the embedded store, which needs no waiting.
pub fn time_travel_embedded(
    bus: &crate::SqliteBus,
    system: &System,
    registry: &Arc<Registry>,
    specs: &[SnapshotSpec],
) -> TimeTravels {
    folds(system, registry, specs)
        .map(|(projector, fold)| {
            (projector, fold.map(|fold| TimeTravel::on_sqlite(bus.clone(), registry.clone(), fold)))
        })
        .collect()
}

/// The fold of each API's topic, by projector name.
fn folds<'a>(
    system: &'a System,
    registry: &'a Registry,
    specs: &'a [SnapshotSpec],
) -> impl Iterator<Item = (String, std::result::Result<FoldSpec, String>)> + 'a {
    specs.iter().filter_map(move |spec| {
        let projector = system.projectors.iter().find(|p| p.name == spec.projector)?;
        let fold = FoldSpec::for_topic(system, registry, &projector.topic).map_err(|e| e.to_string());
        Some((spec.projector.clone(), fold))
    })
}

/// One projector's snapshot API, resolved from the spec.
#[derive(Debug, Clone)]
pub struct SnapshotSpec {
    /// The projector's name.
    pub projector: String,
    /// The collection it serves.
    pub collection: String,
    /// Mount path without a trailing slash (`/processes`).
    pub path: String,
    /// Fields `GET {path}/list` may filter on, in declaration order.
    pub filters: Vec<String>,
    /// `Cache-Control: max-age` (zero when the spec sets none).
    pub max_age: Duration,
    /// The largest page `GET {path}/list` returns.
    pub max_limit: u64,
}

impl SnapshotSpec {
    /// The snapshot API of `projector`, or `None` when it declares none.
    pub fn from_projector(projector: &Projector) -> Result<Option<SnapshotSpec>> {
        // Only changelog projectors keep one document per key, so only they have the API.
        let ProjectorKind::Changelog(changelog) = &projector.kind else { return Ok(None) };
        let Some(api) = &changelog.snapshot_api else { return Ok(None) };
        let name = &projector.name;
        let fail =
            |what: String| Error::system(format!("projector `{name}`"), format!("snapshot_api {what}"));
        let collection = changelog.collection.clone();
        let path = mount_path(&api.path).map_err(&fail)?;
        let mut filters = Vec::new();
        for filter in &api.filters {
            query::check_field_name(filter).map_err(&fail)?;
            if !filters.contains(filter) {
                filters.push(filter.clone());
            }
        }
        let max_limit = api.max_limit.unwrap_or(DEFAULT_MAX_LIMIT);
        if max_limit == 0 {
            return Err(fail("`max_limit` is 0, so no page could hold a document".into()));
        }
        let max_age = api.max_age.unwrap_or(Duration::ZERO);
        Ok(Some(SnapshotSpec { projector: name.clone(), collection, path, filters, max_age, max_limit }))
    }

    /// Every snapshot API the system declares, in projector order.
    pub fn all(system: &System) -> Result<Vec<SnapshotSpec>> {
        let mut out = Vec::new();
        for projector in &system.projectors {
            out.extend(SnapshotSpec::from_projector(projector)?);
        }
        Ok(out)
    }
}

/// Checks a mount path and drops a trailing slash; the router panics on paths it cannot parse,
/// so anything outside plain segments is refused here.
fn mount_path(path: &str) -> std::result::Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    };
    match trimmed.strip_prefix('/') {
        Some(rest) if rest.split('/').all(plain) => Ok(trimmed.to_string()),
        _ => Err(format!(
            "`path: {path}` must be `/` followed by segments of letters, digits, `-`, `_`, `.` or `~` \
             (like /processes), and not the root"
        )),
    }
}

/// The routes of `specs`, reading from `db` with the default [`ApiOptions`].
#[cfg(feature = "mongo")]
pub fn router(db: &Database, specs: &[SnapshotSpec]) -> Result<Router> {
    router_with(db, specs, &ApiOptions::default())
}

/// The routes of `specs`, reading from `db`; two APIs on one path are refused. Unknown paths
/// and methods get problem documents too.
#[cfg(feature = "mongo")]
pub fn router_with(db: &Database, specs: &[SnapshotSpec], options: &ApiOptions) -> Result<Router> {
    router_on(Arc::new(read::MongoRead::new(db.clone())), specs, options)
}

/// The routes of `specs`, reading from `store` (MongoDB or the embedded store); two APIs on one
/// path are refused. Unknown paths and methods get problem documents too.
pub fn router_on(
    store: Arc<dyn read::ProjectionRead>,
    specs: &[SnapshotSpec],
    options: &ApiOptions,
) -> Result<Router> {
    if options.store_timeout.is_zero() {
        return Err(Error::setting(
            "snapshot API store timeout",
            "it is 0, so every read would fail; give at least 1ms",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut router = Router::new();
    for spec in specs {
        if !seen.insert(spec.path.as_str()) {
            return Err(Error::system(
                format!("projector `{}`", spec.projector),
                format!("snapshot_api path `{}` is already served by another projector", spec.path),
            ));
        }
        router = router.merge(handlers::routes(store.clone(), spec, options));
    }
    Ok(router.fallback(handlers::not_found).method_not_allowed_fallback(handlers::method_not_allowed))
}

/// Serves `router` on `listener` with the default [`Limits`] until `shutdown` completes
/// (requests in flight finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    crate::server::serve(listener, router, Limits::default(), Reporter::silent(), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::mount_path;

    #[test]
    fn mount_paths_are_plain_segments() {
        assert_eq!(mount_path("/processes/").as_deref(), Ok("/processes"));
        assert_eq!(mount_path("/a/b-c").as_deref(), Ok("/a/b-c"));
        for bad in ["", "/", "processes", "/a//b", "/{key}", "/a/*rest", "/a b"] {
            assert!(mount_path(bad).is_err(), "{bad}");
        }
    }
}

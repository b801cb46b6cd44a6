//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod orders;

/// A changelog of process states keyed by id, with its projector (the time-travel tests').
pub const PROCESS_STATE_SPEC: &str = r#"
topics:
  process.state:
    key: /processId
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
            status: { type: string }
            _deleted: { type: boolean }
projectors:
  processes:
    kind: changelog
    topic: process.state
    collection: processes
    version: /seq
"#;

use prom_runtime::{AnyBus, MemoryBus, SqliteBus};

/// A store under test; `handle` opens another handle on the same data (for SQLite, a new
/// connection set, as another process would).
pub struct Store {
    mem: Option<MemoryBus>,
    dir: Option<tempfile::TempDir>,
    #[cfg(feature = "mongo")]
    mongo: Option<mongo::Target>,
}

impl Store {
    pub fn memory() -> Store {
        Store {
            mem: Some(MemoryBus::new()),
            dir: None,
            #[cfg(feature = "mongo")]
            mongo: None,
        }
    }

    /// A memory store around `bus` (a [`MemoryBus`] made another way).
    pub fn of(bus: AnyBus) -> Store {
        let AnyBus::Memory(mem) = bus else { panic!("Store::of takes a memory bus") };
        Store {
            mem: Some(mem),
            dir: None,
            #[cfg(feature = "mongo")]
            mongo: None,
        }
    }

    pub fn sqlite() -> Store {
        Store {
            mem: None,
            dir: Some(tempfile::tempdir().expect("tempdir")),
            #[cfg(feature = "mongo")]
            mongo: None,
        }
    }

    /// A fresh database on the server `PROM_MONGO_URL` names, or `None` (the test is skipped)
    /// when no server was given and none was promised (`PROM_REQUIRE_MONGO=1` makes it fail).
    #[cfg(feature = "mongo")]
    pub fn mongo() -> Option<Store> {
        let target = mongo::Target::from_env()?;
        Some(Store { mem: None, dir: None, mongo: Some(target) })
    }

    /// Drops the test's MongoDB database (a no-op for the other backends).
    pub async fn cleanup(&self) {
        #[cfg(feature = "mongo")]
        if let Some(target) = &self.mongo {
            target.drop_database().await;
        }
    }

    /// The embedded store's directory, for a store made by [`Store::sqlite`].
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// The `prom` arguments that select this store (`--store DIR` or `--mongo URL`).
    pub fn cli_args(&self) -> Vec<String> {
        #[cfg(feature = "mongo")]
        if let Some(target) = &self.mongo {
            return vec!["--mongo".into(), target.url_with_database()];
        }
        match &self.dir {
            Some(dir) => vec!["--store".into(), dir.path().display().to_string()],
            None => Vec::new(),
        }
    }

    /// The store's name in assertion messages.
    pub fn name(&self) -> &'static str {
        #[cfg(feature = "mongo")]
        if self.mongo.is_some() {
            return "mongodb";
        }
        if self.dir.is_some() { "sqlite" } else { "memory" }
    }

    pub fn handle(&self) -> AnyBus {
        #[cfg(feature = "mongo")]
        if let Some(target) = &self.mongo {
            return target.open().into();
        }
        match (&self.mem, &self.dir) {
            (Some(mem), _) => mem.clone().into(),
            (None, Some(dir)) => SqliteBus::open(dir.path()).expect("open store").into(),
            (None, None) => unreachable!("a store is memory or sqlite"),
        }
    }
}

#[cfg(unix)]
pub mod serve;
pub mod sse;

#[cfg(feature = "mongo")]
pub mod mongo {
    use prom_runtime::bus::mongo::MongoBus;

    /// A per-test database on the MongoDB server of `PROM_MONGO_URL`.
    pub struct Target {
        pub url: String,
        pub database: String,
    }

    /// Whether the test run promised a server (scripts/test.sh sets `PROM_REQUIRE_MONGO=1`).
    pub fn required() -> bool {
        std::env::var("PROM_REQUIRE_MONGO").is_ok_and(|v| v == "1")
    }

    impl Target {
        pub fn from_env() -> Option<Target> {
            match std::env::var("PROM_MONGO_URL") {
                Ok(url) if !url.trim().is_empty() => {
                    let database = format!("prom_test_{}", uuid::Uuid::now_v7().simple());
                    Some(Target { url, database })
                }
                _ => {
                    assert!(
                        !required(),
                        "PROM_REQUIRE_MONGO=1, but PROM_MONGO_URL is not set: run `scripts/mongo.sh start` \
                         and export the URL it prints (scripts/test.sh does both)"
                    );
                    eprintln!("skipped: PROM_MONGO_URL is not set (scripts/mongo.sh start prints one)");
                    None
                }
            }
        }

        /// Opens a new client (as another process would).
        pub async fn open_async(&self) -> MongoBus {
            match MongoBus::open_database(&self.url, Some(&self.database)).await {
                Ok(bus) => bus,
                Err(e) => panic!("cannot open MongoDB at PROM_MONGO_URL: {e}"),
            }
        }

        /// Opens a new client from synchronous test code (needs the multi-thread runtime).
        pub fn open(&self) -> MongoBus {
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(self.open_async()))
        }

        /// The URL with the test's database in its path, as `prom --mongo` takes it.
        pub fn url_with_database(&self) -> String {
            let url = self.url.trim();
            match url.split_once("/?") {
                Some((hosts, query)) => format!("{hosts}/{}?{query}", self.database),
                None if !url.contains('?') => format!("{}/{}", url.trim_end_matches('/'), self.database),
                None => panic!("write PROM_MONGO_URL as mongodb://HOST:PORT/?OPTIONS for this test: {url}"),
            }
        }

        /// Drops the test's database; an account without `dropDatabase` (an application's
        /// `readWrite`, as `scripts/mongo.sh start-auth` makes) drops its collections instead,
        /// which removes the database as well.
        pub async fn drop_database(&self) {
            let bus = self.open_async().await;
            let db = bus.database();
            if let Err(e) = db.drop().await {
                assert!(e.to_string().contains("Unauthorized"), "drop the test database: {e}");
                for name in db.list_collection_names().await.expect("list the test collections") {
                    db.collection::<prom_runtime::bus::mongo::mongodb::bson::Document>(&name)
                        .drop()
                        .await
                        .expect("drop a test collection");
                }
            }
        }
    }
}

/// Generates one test per backend for each named async fn taking a `&Store`.
#[macro_export]
macro_rules! backend_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::Store::memory()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::Store::sqlite()).await;
                }
            )*
        }
        #[cfg(feature = "mongo")]
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = super::common::Store::mongo() else { return };
                    super::$name(&store).await;
                    store.cleanup().await;
                }
            )*
        }
    };
}

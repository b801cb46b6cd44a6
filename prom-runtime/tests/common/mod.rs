//! Helpers shared by the integration tests.
#![allow(dead_code)]

use prom_runtime::{AnyBus, MemoryBus, SqliteBus};

/// A store under test; `handle` opens another handle on the same data (for SQLite, a new
/// connection set, as another process would).
pub struct Store {
    mem: Option<MemoryBus>,
    dir: Option<tempfile::TempDir>,
}

impl Store {
    pub fn memory() -> Store {
        Store { mem: Some(MemoryBus::new()), dir: None }
    }

    pub fn sqlite() -> Store {
        Store { mem: None, dir: Some(tempfile::tempdir().expect("tempdir")) }
    }

    pub fn handle(&self) -> AnyBus {
        match (&self.mem, &self.dir) {
            (Some(mem), _) => mem.clone().into(),
            (None, Some(dir)) => SqliteBus::open(dir.path()).expect("open store").into(),
            (None, None) => unreachable!("a store is memory or sqlite"),
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
    };
}

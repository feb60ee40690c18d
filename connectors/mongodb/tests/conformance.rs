//! The shared connector conformance suite (`sluice-conformance`) for the `mongodb` sink and
//! source, against the server from `scripts/services.sh up mongodb` (`SLUICE_TEST_MONGODB_URL`;
//! SecantusDB, a one-node replica set, here; a real replica set elsewhere). Each test has its
//! own collections: the sink's, made with a validator that wants `seq` to be a number (so a
//! record whose `seq` is text is refused), and the source's `<name>_in`, whose change stream
//! the source reads from the operation time noted when the fixture was made. The kill -9 loops
//! are the crash proofs: generated records into MongoDB and MongoDB's change stream into
//! MongoDB, both exactly-once (one transaction per batch with the checkpoint).

mod common;

use std::ops::Range;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct MongoHarness;

#[async_trait]
impl Harness for MongoHarness {
    fn source_type(&self) -> Option<&'static str> {
        Some("mongodb")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("mongodb")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_mongodb::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: true,
            can_seek: true,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        common::create_validated(&fx.name).await;
        let t = common::operation_time().await;
        std::fs::write(fx.path("start"), format!("{}.{}", t.time, t.increment)).unwrap();
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), common::url().into());
        t.insert("database".into(), common::DB.into());
        t.insert("collection".into(), fx.name.clone().into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        common::keys(&fx.name).await
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let start = std::fs::read_to_string(fx.path("start")).expect("the fixture's start time");
        let mut from = toml::Table::new();
        from.insert("at_operation_time".into(), start.into());
        let mut t = toml::Table::new();
        t.insert("url".into(), common::url().into());
        t.insert("database".into(), common::DB.into());
        t.insert("collection".into(), format!("{}_in", fx.name).into());
        t.insert("start_from".into(), from.into());
        t.insert("output".into(), "document".into());
        t.insert("batch".into(), 20.into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        common::feed(&format!("{}_in", fx.name), seqs).await;
    }

    /// `seq` must be a number (the collection's validator): text there is refused.
    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":\"not a number\",\"note\":\"refused\"}}",
            test_key(1)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("url".into(), "mongodb://127.0.0.1:1".into());
        t.insert("timeout".into(), "2s".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(MongoHarness);

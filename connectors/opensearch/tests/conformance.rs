//! The shared connector conformance suite (`sluice-conformance`) for the `opensearch` sink,
//! against the server from `scripts/services.sh up` (`SLUICE_TEST_OPENSEARCH_URL`; osmem-server
//! here, a real cluster elsewhere): one index per test, made with `seq` mapped as a number so
//! that a record whose `seq` is not one is refused. Reading back goes through `_refresh`,
//! `_count` and `_search`. The kill -9 loops are the crash proof: with position-derived ids the
//! index holds every generated record exactly once.

mod common;

use opensearch::http::Method;
use serde_json::json;
use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct OpenSearchHarness;

#[async_trait]
impl Harness for OpenSearchHarness {
    fn source_type(&self) -> Option<&'static str> {
        None
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("opensearch")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_opensearch::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: false,
            can_seek: false,
            readback_shows_aborted: false,
            // Ids derived from source positions: a replay overwrites its document.
            replays_overwrite: true,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        common::create_index(
            &fx.name,
            json!({"key": {"type": "keyword"}, "seq": {"type": "long"}, "note": {"type": "text"}}),
        )
        .await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), common::url().into());
        t.insert("index".into(), fx.name.clone().into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let (status, _) = common::call(Method::Head, &format!("/{}", fx.name), None).await;
        assert_eq!(status, 200, "the fixture's index {} is gone", fx.name);
        common::docs(&fx.name)
            .await
            .into_iter()
            .map(|d| {
                d.source["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a document without a key: {}", d.source))
                    .to_string()
            })
            .collect()
    }

    /// `seq` is mapped as a number: a text there is a mapping error (400) for that item alone.
    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":\"not a number\",\"note\":\"refused\"}}",
            test_key(1)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("url".into(), "http://127.0.0.1:1".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(OpenSearchHarness);

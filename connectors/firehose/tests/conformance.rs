//! The shared conformance suite (`sluice-conformance`) for the `firehose` sink, against moto
//! from `scripts/services.sh up moto` (`SLUICE_TEST_AWS_ENDPOINT`): a delivery stream per test
//! into its own bucket, read back from the objects moto writes. At-least-once: the kill -9
//! loops require every record at least once. The refused record is one above Firehose's
//! 1,000 KiB per-record limit (moto takes anything; per-record failures of the service itself
//! are in `tests/canned.rs`).

mod common;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct FirehoseHarness;

fn name(fx: &Fixture) -> String {
    fx.name.replace('_', "-")
}

#[async_trait]
impl Harness for FirehoseHarness {
    fn source_type(&self) -> Option<&'static str> {
        None
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("firehose")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_firehose::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims::default()
    }

    async fn prepare(&self, fx: &Fixture) {
        common::create_stream(&name(fx)).await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        common::sink_table(&name(fx))
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        common::delivered_lines(&name(fx))
            .await
            .into_iter()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                v["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no key: {l}"))
                    .to_string()
            })
            .collect()
    }

    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":1,\"note\":\"{}\"}}",
            test_key(1),
            "x".repeat(1_000 * 1024)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("endpoint".into(), "http://127.0.0.1:1".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(FirehoseHarness);

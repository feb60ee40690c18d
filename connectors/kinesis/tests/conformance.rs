//! The shared connector conformance suite (`sluice-conformance`) for the `kinesis` source and
//! sink, against the endpoint from `scripts/services.sh up kinesis`
//! (`SLUICE_TEST_KINESIS_ENDPOINT`; kinesis-local here, AWS elsewhere). Each test gets two
//! streams: `<fixture>` that the sink writes and `<fixture>-in` that the source reads (two
//! shards each). Reading back goes through GetRecords on every shard. The kill -9 loops prove
//! at-least-once both ways: generated records → Kinesis, and Kinesis → Kinesis.
//!
//! Kinesis refuses no record for its content, only for its size: the refused record is one over
//! 1 MiB, which the sink dead-letters with `RecordTooLarge` before sending.

mod common;

use std::ops::Range;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::{test_key, test_value};
use sluice_core::{Registry, async_trait};

struct KinesisHarness;

fn input(fx: &Fixture) -> String {
    format!("{}-in", fx.name)
}

#[async_trait]
impl Harness for KinesisHarness {
    fn source_type(&self) -> Option<&'static str> {
        Some("kinesis")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("kinesis")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_kinesis::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: false,
            can_seek: true,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        let client = common::client().await;
        common::create_stream(&client, &fx.name, 2).await;
        common::create_stream(&client, &input(fx), 2).await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        common::base_config(&fx.name)
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let client = common::client().await;
        common::read_all(&client, &fx.name)
            .await
            .into_iter()
            .map(|(_, _, data)| {
                let v: serde_json::Value = serde_json::from_slice(&data)
                    .unwrap_or_else(|e| panic!("a record that is not JSON: {e}"));
                v["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a record without a key: {v}"))
                    .to_string()
            })
            .collect()
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = common::base_config(&input(fx));
        t.insert("max_records".into(), 20.into());
        t.insert("poll_interval".into(), "200ms".into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let client = common::client().await;
        let records: Vec<(String, Vec<u8>)> = seqs
            .map(|s| (test_key(s), test_value(s).into_bytes()))
            .collect();
        common::put(&client, &input(fx), &records).await;
    }

    /// Over 1 MiB: no Kinesis record can hold it.
    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":1,\"note\":\"{}\"}}",
            test_key(1),
            "x".repeat(1024 * 1024)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("endpoint".into(), "http://127.0.0.1:1".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(KinesisHarness);

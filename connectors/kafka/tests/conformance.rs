//! The shared connector conformance suite (`sluice-conformance`) for the `kafka` source and sink,
//! against the broker from `scripts/services.sh up` (`SLUICE_TEST_KAFKA_BROKERS`): two topics
//! per test (`<name>_in` for the source, `<name>` for the sink) and a transactional id and group
//! of its own.

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_connector_kafka::{KafkaSink, admin};
use sluice_core::testing::{key_of, test_record};
use sluice_core::{Guarantee, Registry, Sink, async_trait};

struct KafkaHarness;

fn table(pairs: &[(&str, toml::Value)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[async_trait]
impl Harness for KafkaHarness {
    fn source_type(&self) -> Option<&'static str> {
        Some("kafka")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("kafka")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_kafka::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: true,
            can_seek: true,
            // Tansu shows records of aborted transactions to read_committed consumers.
            readback_shows_aborted: std::env::var("SLUICE_TEST_KAFKA_STRICT_EOS").as_deref()
                != Ok("1"),
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        let b = common::brokers();
        for topic in [fx.name.clone(), format!("{}_in", fx.name)] {
            admin::create_topic(&b, &topic, 2).await.unwrap();
        }
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        table(&[
            ("brokers", common::brokers().into()),
            ("topic", fx.name.clone().into()),
            ("transactional_id", fx.name.clone().into()),
            ("transaction_timeout", "10s".into()),
        ])
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let (b, topic) = (common::brokers(), fx.name.clone());
        let values = tokio::task::spawn_blocking(move || {
            admin::read_all(&b, &topic, true, Duration::from_secs(60))
        })
        .await
        .unwrap()
        .unwrap();
        values
            .iter()
            .map(|v| key_of(v).unwrap_or_else(|| panic!("a value without a key: {v:?}")))
            .collect()
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        table(&[
            ("brokers", common::brokers().into()),
            (
                "topics",
                toml::Value::Array(vec![format!("{}_in", fx.name).into()]),
            ),
            ("group", fx.name.clone().into()),
            ("session_timeout", "6s".into()),
            ("batch_size", 20.into()),
            ("batch_wait", "20ms".into()),
        ])
    }

    /// A fresh group per run, and a short session: with exactly-once the source starts at the
    /// sink's checkpoint, not at the group's offsets, and a new member of the old group would
    /// wait for the killed one to time out.
    fn kill_loop_source_config(&self, fx: &Fixture, run: u32) -> toml::Table {
        let mut t = self.source_config(fx);
        t.insert("group".into(), format!("{}_{run}", fx.name).into());
        t.insert("session_timeout".into(), "2s".into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let cfg = common::sink_config(&common::brokers(), &format!("topic = '{}_in'", fx.name));
        let mut sink = KafkaSink::new(cfg);
        sink.open(&common::sink_ctx(
            "conformance-feed",
            Guarantee::AtLeastOnce,
        ))
        .await
        .unwrap();
        let p = Arc::from("feed");
        let records: Vec<_> = seqs.map(|s| test_record(&p, s)).collect();
        let report = sink.write(&records, None).await.unwrap();
        assert!(
            report.rejected.is_empty() && report.retry.is_empty(),
            "{report:?}"
        );
        sink.close().await.unwrap();
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("brokers".into(), "127.0.0.1:1".into());
        t.insert("transaction_timeout".into(), "3s".into());
        t.insert("message_timeout".into(), "2s".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(KafkaHarness);

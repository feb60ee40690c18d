//! The shared conformance suite (`sluice-conformance`) for the `sns` sink, against moto server
//! from `scripts/services.sh up moto` (`SLUICE_TEST_AWS_ENDPOINT`): one standard topic per
//! test, read back through an SQS queue subscribed to it. A message over SNS's 256 KiB is the refused record. At-least-once: the kill -9 loops lose nothing and
//! may publish a record twice (a standard topic has no deduplication; see `tests/sink.rs` for
//! FIFO topics, where SNS drops the copies).

mod common;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct SnsHarness;

/// moto's account (`SLUICE_TEST_AWS_ACCOUNT` for another endpoint).
fn account() -> String {
    std::env::var("SLUICE_TEST_AWS_ACCOUNT").unwrap_or_else(|_| "123456789012".into())
}

fn arn(fx: &Fixture) -> String {
    format!("arn:aws:sns:{}:{}:{}", common::region(), account(), fx.name)
}

/// The queue subscribed to the fixture's topic (made in `prepare`, read in `written_keys`).
fn queue_name(fx: &Fixture) -> String {
    format!("{}_q", fx.name)
}

#[async_trait]
impl Harness for SnsHarness {
    fn source_type(&self) -> Option<&'static str> {
        None
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("sns")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_sns::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: false,
            can_seek: false,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    // moto fans each message out to the SQS queue the test reads back through at ~14 ms a
    // message: 2,000 records would not fit the suite's time per run.
    fn kill_loop_records(&self) -> Option<u64> {
        Some(400)
    }

    async fn prepare(&self, fx: &Fixture) {
        let made = common::create_topic(&fx.name).await;
        assert_eq!(
            made,
            arn(fx),
            "set SLUICE_TEST_AWS_ACCOUNT to the endpoint's account"
        );
        common::subscribe_queue_named(&made, &queue_name(fx)).await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("topic_arn".into(), arn(fx).into());
        t.insert("endpoint".into(), common::endpoint().into());
        t.insert("region".into(), common::region().into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let queue = format!("{}/{}/{}", common::endpoint(), account(), queue_name(fx));
        common::sent_keys(&queue).await
    }

    /// Over SNS's 256 KiB message limit.
    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":1,\"note\":\"{}\"}}",
            test_key(1),
            "x".repeat(300 * 1024)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("endpoint".into(), "http://127.0.0.1:1".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(SnsHarness);

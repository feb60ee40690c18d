//! The shared conformance suite (`sluice-conformance`) for the `http` sink, against the scripted
//! webhook of `common` (a real HTTP server on 127.0.0.1, one path per fixture). The webhook
//! answers 400 to a record whose `seq` is not a number: the refused record. The kill -9 loops'
//! children post to the parent's webhook; at-least-once: no record lost, copies allowed.

mod common;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct HttpHarness;

fn path(fx: &Fixture) -> String {
    format!("fx/{}", fx.name)
}

#[async_trait]
impl Harness for HttpHarness {
    fn source_type(&self) -> Option<&'static str> {
        None
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("http")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_http::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: false,
            can_seek: false,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, _fx: &Fixture) {}

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), common::url(&path(fx)).into());
        t.insert("retry_backoff".into(), "50ms".into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        common::delivered_keys(&path(fx))
    }

    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":\"not a number\",\"note\":\"refused\"}}",
            test_key(1)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("url".into(), "http://127.0.0.1:1/hook".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(HttpHarness);

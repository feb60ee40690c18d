//! The shared conformance suite (`sluice-conformance`) for the `s3` sink, against moto from
//! `scripts/services.sh up moto` (`SLUICE_TEST_AWS_ENDPOINT`): one bucket per test, Parquet
//! with a configured schema (`seq` an int64, so a record whose `seq` is text is refused and
//! dead-lettered) and zstd pages. Reading back lists every object and reads every row with the
//! `parquet` crate. The kill -9 loops are the crash proof of exactly-once: every generated
//! record in exactly one committed object.

mod common;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::test_key;
use sluice_core::{Registry, async_trait};

struct S3Harness;

fn bucket(fx: &Fixture) -> String {
    fx.name.replace('_', "-")
}

#[async_trait]
impl Harness for S3Harness {
    fn source_type(&self) -> Option<&'static str> {
        None
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("s3")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_s3::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: true,
            can_seek: false,
            readback_shows_aborted: false,
            replays_overwrite: true,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        common::create_bucket(&bucket(fx)).await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        common::sink_table(
            &bucket(fx),
            "prefix = 'conformance/dt={date}/'\nformat = 'parquet'\ncompression = 'zstd'\nschema = { key = 'string', seq = 'int64', note = 'string' }",
        )
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        common::all_documents(&bucket(fx))
            .await
            .into_iter()
            .map(|(object, d)| {
                d["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a row without a key in {object}: {d}"))
                    .to_string()
            })
            .collect()
    }

    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"seq\":\"not a number\",\"note\":\"refused\"}}",
            test_key(1)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let mut t = self.sink_config(fx);
        t.insert("endpoint".into(), "http://127.0.0.1:1".into());
        Some(t)
    }
}

sluice_conformance::conformance_tests!(S3Harness);

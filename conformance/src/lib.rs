//! The conformance suite of Sluice connectors: the checks every connector must pass against its
//! real service, run from ONE test file in the connector's crate.
//!
//! A connector crate adds `sluice-conformance` as a dev-dependency, implements [`Harness`] (how to
//! point its source and sink at the service, make a fresh destination per test, read back what
//! its sink wrote, feed its source) and writes `tests/conformance.rs`:
//!
//! ```ignore
//! struct FileHarness;
//! impl sluice_conformance::Harness for FileHarness { /* ... */ }
//! sluice_conformance::conformance_tests!(FileHarness);
//! ```
//!
//! The macro expands into one `#[test]` per check (see [`checks`] for the list), so the test
//! runner reports each on its own. Checks that a connector's claims make meaningless (a source
//! check for a sink-only connector) pass after saying so on stderr; everything a connector
//! claims is checked. Record counts and kill counts of the kill -9 loops come from
//! `SLUICE_CONFORMANCE_RECORDS` / `SLUICE_CONFORMANCE_KILLS` for long chaos runs.
#![deny(missing_docs)]

pub mod checks;

/// The guide to writing a connector (`docs/writing-a-connector.md`); its worked example runs as
/// a doc test here, so it keeps compiling.
#[doc = include_str!("../../docs/writing-a-connector.md")]
pub mod guide {}

mod job;
mod kill;

use std::ops::Range;

use async_trait::async_trait;
use sluice_core::Registry;

pub use job::Fixture;
pub use kill::CHILD_ENV;
/// The TOML crate of the config tables a [`Harness`] returns.
pub use toml;

/// What a connector claims; the suite checks each claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// The sink is transactional (`Sink::transactional`): exactly-once, so no record is written
    /// twice across crashes and covered records are dropped on redelivery.
    pub exactly_once: bool,
    /// The source can start at any checkpoint (`Source::can_seek`).
    pub can_seek: bool,
    /// Reading the destination back also shows records of aborted transactions (a broker whose
    /// `read_committed` is not honoured): duplicates after a crash are then bounded by what the
    /// open transactions held instead of zero.
    pub readback_shows_aborted: bool,
    /// A record written again (a replay after a crash, at-least-once) replaces its earlier copy
    /// instead of adding one (an OpenSearch sink with ids derived from source positions): the
    /// kill -9 loops then also require every record exactly once.
    pub replays_overwrite: bool,
}

/// How the suite drives one connector against its service. Every method that takes a
/// [`Fixture`] works on that fixture's own destination, so tests never share data.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The connector's source `type` in job files, if it has a source.
    fn source_type(&self) -> Option<&'static str>;

    /// The connector's sink `type` in job files, if it has a sink.
    fn sink_type(&self) -> Option<&'static str>;

    /// Register the crate's connectors (its `register` function).
    fn register(&self, registry: &mut Registry);

    /// What the connector claims.
    fn claims(&self) -> Claims;

    /// Make the fixture's fresh destination and source data store (a table, a topic, a
    /// directory), empty.
    async fn prepare(&self, fx: &Fixture);

    /// The sink's config (without `type`) writing into the fixture's destination, records with
    /// JSON values `{"key": ..., "seq": ..., "note": ...}` (see `sluice_core::testing`).
    fn sink_config(&self, fx: &Fixture) -> toml::Table;

    /// The `key` of every record the sink wrote into the fixture's destination, once per copy.
    async fn written_keys(&self, fx: &Fixture) -> Vec<String>;

    /// The source's config (without `type`) reading what [`Harness::feed_source`] wrote, in
    /// small batches (about 20 records: the kill loop needs time to kill), ending at the end of
    /// the data when the source can be bounded.
    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let _ = fx;
        toml::Table::new()
    }

    /// The source config of run `run` (1, 2, ...) of the kill loop from the source; by default
    /// [`Harness::source_config`]. A source whose restart after a kill waits for the killed
    /// member to time out (a consumer group) can take a fresh group per run when its position
    /// comes from the sink's checkpoint (exactly-once).
    fn kill_loop_source_config(&self, fx: &Fixture, run: u32) -> toml::Table {
        let _ = run;
        self.source_config(fx)
    }

    /// Add records `seqs` (values from `sluice_core::testing::test_value`) to the source's data.
    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let _ = (fx, seqs);
    }

    /// True when the source ends at the end of its data (`next_batch` returns `None`).
    fn source_is_bounded(&self) -> bool {
        false
    }

    /// A record value the sink must reject for good (NOT NULL or type violation), when the
    /// destination can refuse records; `None` when it cannot.
    fn rejected_value(&self) -> Option<String> {
        None
    }

    /// A sink config pointing at an endpoint that does not answer (a closed port), for sinks
    /// that talk to a service: opening or writing must fail with a retryable external error
    /// (or report every record as `retry`), quickly and with the real cause.
    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let _ = fx;
        None
    }

    /// Most records one sink write holds in the kill loops' jobs (the bound on duplicates when
    /// [`Claims::readback_shows_aborted`]).
    fn kill_loop_batch(&self) -> usize {
        50
    }

    /// The most records a kill -9 loop moves through this connector when
    /// `SLUICE_CONFORMANCE_RECORDS` does not say (a slow emulator); the suite's default when
    /// `None`.
    fn kill_loop_records(&self) -> Option<u64> {
        None
    }
}

/// Records and kills of a kill -9 loop: `SLUICE_CONFORMANCE_RECORDS` (default 2000, or the
/// harness's [`Harness::kill_loop_records`]) and `SLUICE_CONFORMANCE_KILLS` (default 10, never
/// fewer than 10).
pub fn kill_loop_size(harness_records: Option<u64>) -> (u64, u32) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let records = env("SLUICE_CONFORMANCE_RECORDS")
        .or(harness_records)
        .unwrap_or(2000)
        .max(100);
    let kills = env("SLUICE_CONFORMANCE_KILLS")
        .map_or(10, |k| u32::try_from(k).unwrap_or(u32::MAX))
        .max(10);
    (records, kills)
}

/// The runtime every check runs on: two workers, like the machines CI runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}

/// One test of the suite: its name as the test runner knows it (for re-running it as a
/// kill-loop child) and a name for its fixtures.
#[derive(Clone, Debug)]
pub struct Test {
    /// `module::check`, without the test binary's crate name (what `--exact` wants).
    pub full_name: String,
    /// The check's name.
    pub check: &'static str,
}

impl Test {
    /// The test `check` in `module_path` (from `module_path!()`).
    pub fn new(module_path: &str, check: &'static str) -> Self {
        let module = module_path.split_once("::").map_or("", |(_, rest)| rest);
        let full_name = if module.is_empty() {
            check.to_string()
        } else {
            format!("{module}::{check}")
        };
        Self { full_name, check }
    }
}

/// Expands into one `#[test]` per conformance check for the harness `$make` builds (an
/// expression of a type implementing [`Harness`]; it is built once per test). Invoke it once per
/// service in its own module to run the suite against several (`mod postgres { ... }`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            config_schema_docs_and_deserialisation_agree,
            unknown_keys_are_refused_with_their_path,
            claims_match_the_connectors,
            sink_write_close_reopen_returns_the_committed_checkpoint,
            exactly_once_drops_covered_records_on_redelivery,
            partial_failures_map_to_rejected_or_retry,
            unreachable_service_fails_fast_and_retryably,
            double_close_is_harmless,
            source_resumes_after_its_checkpoint,
            next_batch_is_cancel_safe,
            kill_nine_loop_into_the_sink,
            kill_nine_loop_from_the_source,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let test = $crate::Test::new(module_path!(), stringify!($check));
                let harness = $make;
                $crate::runtime().block_on($crate::checks::$check(&harness, &test));
            }
        )*
    };
}

//! The shared connector conformance suite (`sluice-conformance`) for the `file` source and sink:
//! files in a scratch directory per test.

use std::io::Write;
use std::ops::Range;

use sluice_conformance::{Claims, Fixture, Harness};
use sluice_core::testing::{key_of, test_value};
use sluice_core::{Registry, async_trait};

struct FileHarness;

impl FileHarness {
    fn output(fx: &Fixture) -> std::path::PathBuf {
        fx.path("out/out.jsonl")
    }
}

#[async_trait]
impl Harness for FileHarness {
    fn source_type(&self) -> Option<&'static str> {
        Some("file")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("file")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_file::register(registry);
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
        std::fs::write(fx.path("in.jsonl"), "").unwrap();
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("path".into(), Self::output(fx).display().to_string().into());
        // Small files: rotation is part of what a crash must survive.
        t.insert("rotate_bytes".into(), "64KiB".into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let out = Self::output(fx);
        let mut files = vec![out.clone()];
        files.extend(
            (1..)
                .map(|n| std::path::PathBuf::from(format!("{}.{n}", out.display())))
                .take_while(|p| p.exists()),
        );
        let mut keys = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for line in text.lines() {
                keys.push(
                    key_of(line.as_bytes())
                        .unwrap_or_else(|| panic!("a corrupt line in {}: {line:?}", f.display())),
                );
            }
        }
        keys
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert(
            "path".into(),
            fx.path("in.jsonl").display().to_string().into(),
        );
        // About 20 lines per batch.
        t.insert("read_size".into(), "2KiB".into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(fx.path("in.jsonl"))
            .unwrap();
        for seq in seqs {
            writeln!(f, "{}", test_value(seq)).unwrap();
        }
        f.sync_all().unwrap();
    }

    fn source_is_bounded(&self) -> bool {
        true
    }
}

sluice_conformance::conformance_tests!(FileHarness);

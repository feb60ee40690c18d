//! Hostile plugins: every limit fails the batch with a clear error, and the same transform
//! processes the next batch normally.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{loader, records, spec};
use serde_json::json;
use sluice_core::transform::{Outcome, Transform, TransformErrorKind};
use sluice_core::units::{ByteSize, HumanDuration};

/// Run a batch that triggers the fixture, then a clean one; return the error.
fn fails_then_recovers(
    name: &str,
    trigger: &str,
    limits: impl FnOnce(&mut sluice_core::transform::TransformLimits),
) -> sluice_core::transform::TransformError {
    let (_dir, loader) = loader();
    let mut s = spec(name, json!({}));
    limits(&mut s.limits);
    let mut t = loader.transform(&s, Path::new("/")).unwrap();
    let bad = records(&["fine", trigger, "fine"]);
    let err = t.process(&bad).unwrap_err();
    assert_eq!(err.plugin, name);
    let good = records(&["fine", "also fine"]);
    let out = t.process(&good).unwrap();
    assert_eq!(
        out,
        good.iter()
            .map(|r| Outcome::Ok(vec![r.clone()]))
            .collect::<Vec<_>>()
    );
    err
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let started = Instant::now();
    let err = fails_then_recovers("infinite-loop", "loop", |l| {
        l.deadline = HumanDuration(Duration::from_millis(100));
    });
    assert_eq!(err.kind, TransformErrorKind::Deadline, "{err}");
    assert!(err.to_string().contains("infinite-loop"), "{err}");
    assert!(err.message.contains("100ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let err = fails_then_recovers("infinite-loop", "loop", |l| l.fuel = 5_000_000);
    assert_eq!(err.kind, TransformErrorKind::Fuel, "{err}");
    assert!(err.message.contains("5000000"), "{err}");
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let err = fails_then_recovers("memory-bomb", "bomb", |l| l.memory = ByteSize(16 << 20));
    assert_eq!(err.kind, TransformErrorKind::Memory, "{err}");
    assert!(err.message.contains(&(16u64 << 20).to_string()), "{err}");
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let err = fails_then_recovers("trap", "boom", |_| {});
    assert_eq!(err.kind, TransformErrorKind::Trap, "{err}");
    assert!(err.message.contains("boom: intentional trap"), "{err}");
}

#[test]
fn oversized_output_is_refused() {
    let err = fails_then_recovers("oversized-output", "big", |l| {
        l.max_output = ByteSize(256 << 10)
    });
    assert_eq!(err.kind, TransformErrorKind::OutputTooLarge, "{err}");
    assert!(err.message.contains("262144"), "{err}");
}

#[test]
fn malformed_output_is_refused() {
    let (_dir, loader) = loader();
    let mut t = loader
        .transform(&spec("malformed", json!({})), Path::new("/"))
        .unwrap();
    let err = t.process(&records(&["a"])).unwrap_err();
    assert_eq!(err.kind, TransformErrorKind::Malformed, "{err}");
    assert!(
        err.message.contains("3 outcomes for 1 input records"),
        "{err}"
    );
}

/// Also: plugin logs reach the host's `tracing`, tagged with the plugin's name.
#[test]
fn sandbox_grants_no_files_environment_or_clock() {
    let (_dir, loader) = loader();
    let mut t = loader
        .transform(&spec("sandbox-probe", json!({})), Path::new("/"))
        .unwrap();
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let out =
        tracing::subscriber::with_default(subscriber, || t.process(&records(&["probe"]))).unwrap();
    let logged = logs.text();
    assert!(logged.contains("sandbox probe: fs=denied"), "{logged}");
    assert!(logged.contains("plugin=\"sandbox-probe\""), "{logged}");
    let [Outcome::Failed(report)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(report.contains("fs=denied"), "{report}");
    assert!(report.contains("env=0"), "{report}");
    assert!(report.contains("clock=0"), "{report}");
}

#[test]
fn a_file_that_is_not_a_component_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"\0asm junk").unwrap();
    let mut s = spec("noop", json!({}));
    s.plugin = path;
    s.name = Some("junk".into());
    let err = loader().1.transform(&s, Path::new("/")).unwrap_err();
    assert_eq!(err.kind, TransformErrorKind::Init);
    assert!(err.message.contains("is not a valid component"), "{err}");
}

/// Log lines written by the fmt subscriber, for assertions.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> CapturedLogs {
        self.clone()
    }
}

#[test]
fn a_plugin_stuck_in_init_fails_to_load_with_the_deadline() {
    let (_dir, loader) = loader();
    let mut s = spec("infinite-loop", json!({"in_init": true}));
    s.limits.deadline = HumanDuration(Duration::from_millis(50));
    let err = loader.transform(&s, Path::new("/")).unwrap_err();
    assert_eq!(err.kind, TransformErrorKind::Init, "{err}");
    assert!(err.message.contains("deadline exceeded"), "{err}");
}

#[test]
fn a_plugin_writing_to_stderr_keeps_working() {
    let (_dir, loader) = loader();
    let mut t = loader
        .transform(&spec("trap", json!({})), Path::new("/"))
        .unwrap();
    // 1.5 MiB of standard error over 6 batches: more than one instance's capture buffer holds.
    let noisy = records(&["noisy"; 256]);
    for _ in 0..6 {
        let out = t.process(&noisy).unwrap();
        assert_eq!(out.len(), 256);
    }
    let err = t.process(&records(&["noisy", "boom"])).unwrap_err();
    assert!(err.message.contains("boom: intentional trap"), "{err}");
}

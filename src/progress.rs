//! Progress reporting for `sluice run`: a live line on a terminal, periodic log lines otherwise.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_core::metrics::JobMetrics;
use tokio_util::sync::CancellationToken;

/// Sinks the terminal line names before it shortens the rest to a count (the line must fit).
const LINE_SINKS: usize = 4;

/// True while the live line is on the terminal without a newline after it.
static LINE_SHOWN: AtomicBool = AtomicBool::new(false);

/// Standard error for log lines: clears the live line first, so that a log line never starts in
/// the middle of it (the next tick draws the line again, below).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if LINE_SHOWN.swap(false, Ordering::Relaxed) {
            err.write_all(b"\r\x1b[2K")?;
        }
        err.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Replace the live line (`None`: clear it), under stderr's lock so that log lines wait.
fn draw(line: Option<&str>) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{}", line.unwrap_or_default());
    let _ = err.flush();
    LINE_SHOWN.store(line.is_some(), Ordering::Relaxed);
}

/// Report progress until `done` fires.
pub async fn report(metrics: Arc<JobMetrics>, done: CancellationToken) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(10)
    };
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = done.cancelled() => break,
        }
        let read = JobMetrics::get(&metrics.records_in);
        let rate = read.saturating_sub(last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), read);
        let total = JobMetrics::get(&metrics.expected_total);
        let dlq = JobMetrics::get(&metrics.dead_lettered);
        let written = metrics.written();
        if tty {
            draw(Some(&line(
                read,
                total,
                rate,
                &written,
                dlq,
                started.elapsed(),
            )));
        } else {
            tracing::info!(
                read,
                rate = rate as u64,
                written = %written_list(&written, usize::MAX, "=", ","),
                dead_lettered = dlq,
                "Progress."
            );
        }
    }
    if tty {
        draw(None);
    }
}

/// The terminal line: `read 20000/1000000 (2%) · 8000 rec/s · written archive 20000, alerts 201
/// · dead-lettered 0 · 3s`.
fn line(
    read: u64,
    total: u64,
    rate: f64,
    written: &[(String, u64)],
    dlq: u64,
    elapsed: Duration,
) -> String {
    let totals = if total > 0 {
        format!(
            "{read}/{total} ({:.0}%)",
            100.0 * read as f64 / total as f64
        )
    } else {
        read.to_string()
    };
    format!(
        "read {totals} · {rate:.0} rec/s · written {} · dead-lettered {dlq} · {:.0}s",
        written_list(written, LINE_SINKS, " ", ", "),
        elapsed.as_secs_f64()
    )
}

/// `archive 20000, alerts 201` (with `sep` between name and count and `join` between sinks), at
/// most `max` sinks, then `+N more`.
fn written_list(written: &[(String, u64)], max: usize, sep: &str, join: &str) -> String {
    let mut parts: Vec<String> = written
        .iter()
        .take(max)
        .map(|(name, n)| format!("{name}{sep}{n}"))
        .collect();
    if written.len() > max {
        parts.push(format!("+{} more", written.len() - max));
    }
    parts.join(join)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_what_each_sink_wrote() {
        let written = vec![
            ("archive".to_string(), 20_000),
            ("device-state".to_string(), 19_500),
            ("alerts".to_string(), 201),
        ];
        assert_eq!(
            line(
                20_000,
                1_000_000,
                8000.0,
                &written,
                0,
                Duration::from_secs(3)
            ),
            "read 20000/1000000 (2%) · 8000 rec/s · written archive 20000, device-state 19500, alerts 201 · dead-lettered 0 · 3s"
        );
        let many: Vec<(String, u64)> = (0..6).map(|i| (format!("s{i}"), i)).collect();
        assert_eq!(
            written_list(&many, LINE_SINKS, " ", ", "),
            "s0 0, s1 1, s2 2, s3 3, +2 more"
        );
    }
}

//! Progress reporting for `sluice run`: a live line on a terminal, periodic log lines otherwise.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::metrics::JobMetrics;
use tokio_util::sync::CancellationToken;

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
        let out = metrics.records_out_min();
        let rate = (out - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), out);
        let total = JobMetrics::get(&metrics.expected_total);
        let dlq = JobMetrics::get(&metrics.dead_lettered);
        let read = JobMetrics::get(&metrics.records_in);
        if tty {
            let pct = if total > 0 {
                format!(" ({:.0}%)", 100.0 * read as f64 / total as f64)
            } else {
                String::new()
            };
            let totals = if total > 0 {
                format!("{read}/{total}{pct}")
            } else {
                read.to_string()
            };
            eprint!(
                "\r\x1b[2Kread {totals} · written {out} · {rate:.0} rec/s · dead-lettered {dlq} · {:.0}s",
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!(
                read,
                written = out,
                rate = rate as u64,
                dead_lettered = dlq,
                "Progress."
            );
        }
    }
    if tty {
        eprint!("\r\x1b[2K");
    }
}

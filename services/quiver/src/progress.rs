//! The progress line client commands print on stderr while they send or receive rows.

use std::time::Duration;

/// A progress bar: `done` of `total` `unit`s after `elapsed`, and the rate.
pub fn progress_line(done: u64, total: u64, unit: &str, elapsed: Duration) -> String {
    let width = 30usize;
    let filled = (done.min(total) * width as u64)
        .checked_div(total)
        .map_or(width, |f| f as usize);
    format!(
        "[{}{}] {done}/{total} {unit}, {:.0} rows/s",
        "#".repeat(filled),
        " ".repeat(width - filled),
        done as f64 / elapsed.as_secs_f64().max(1e-9)
    )
}

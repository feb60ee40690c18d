//! How the file connectors' failures become [`ConnectorError`]s: I/O errors are external
//! faults, retryable when the operating system says they may pass (interruptions, timeouts, a
//! full disk; see `ConnectorError::io`), and always name the file; a blocking task that died is
//! an internal error.

use std::path::Path;

use sluice_core::ConnectorError;

/// An I/O error while doing `what` (e.g. "opening") to `path`.
pub(crate) fn io(what: &str, path: &Path, err: &std::io::Error) -> ConnectorError {
    ConnectorError::io(&format!("{what} {}", path.display()), err)
}

/// A blocking task (a read or a write off the async executor) that panicked or was cancelled.
pub(crate) fn task(what: &str, err: &tokio::task::JoinError) -> ConnectorError {
    ConnectorError::internal(format!("{what} task: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::ErrorKind;

    #[test]
    fn io_errors_name_the_file_and_say_whether_to_retry() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = io("writing", Path::new("/data/out.jsonl"), &full);
        assert_eq!((e.kind, e.retryable), (ErrorKind::External, true));
        assert!(
            e.message.starts_with("writing /data/out.jsonl: "),
            "{}",
            e.message
        );
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = io("opening", Path::new("in.jsonl"), &gone);
        assert_eq!((e.kind, e.retryable), (ErrorKind::External, false));
    }
}

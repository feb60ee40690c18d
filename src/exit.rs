//! Exit codes of `sluice`: one per domain of failure, so scripts and supervisors can tell a job
//! to fix from a service to wait for. Listed in the README.

use std::process::ExitCode;

use sluice_core::{ErrorKind, Fault};

/// A bug or broken invariant inside Sluice.
pub const INTERNAL: u8 = 1;
/// The job file (or its stored state) is wrong: fix it; running again as is fails again.
/// Also command-line usage errors.
pub const CONFIG: u8 = 2;
/// A bad record stopped the job (`errors.tolerance = "none"`): its position is not committed.
pub const DATA: u8 = 3;
/// A service refused for good (permissions, a missing table, a rejected write).
pub const EXTERNAL: u8 = 4;
/// A service failed in a way that may pass (unreachable, timed out) and retries ran out:
/// running again later may succeed.
pub const TRANSIENT: u8 = 5;
/// Stopped without draining: a second SIGINT/SIGTERM, or `--shutdown-timeout` passed. Positions
/// stay at the last commit; a restart resumes there (128 + SIGINT, as shells report it).
pub const NOT_DRAINED: u8 = 130;

/// The exit code for an error.
pub fn code(err: &dyn Fault) -> ExitCode {
    ExitCode::from(match (err.kind(), err.retryable()) {
        (ErrorKind::Config, _) => CONFIG,
        (ErrorKind::Data, _) => DATA,
        (ErrorKind::External, true) => TRANSIENT,
        (ErrorKind::External, false) => EXTERNAL,
        (ErrorKind::Internal, _) => INTERNAL,
    })
}

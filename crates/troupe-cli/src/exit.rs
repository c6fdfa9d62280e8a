//! Exit codes and how failures are reported. User errors, failed runs and bugs differ.

use std::process::ExitCode;

/// The crew ran and every task completed.
pub const OK: u8 = 0;
/// The crew ran but did not complete (a task failed, a limit stopped it, it timed out).
pub const RUN_FAILED: u8 = 1;
/// The user's input is wrong: crew file, arguments, inputs, configuration.
pub const USER_ERROR: u8 = 2;
/// Something broke inside Troupe or the machine (I/O, a bug).
pub const INTERNAL: u8 = 3;
/// The run paused: a task waits for a person's approval (`troupe approve` continues it).
pub const AWAITING_APPROVAL: u8 = 4;
/// Stopped by Ctrl-C (128 + SIGINT, as shells expect).
pub const INTERRUPTED: u8 = 130;

/// An error for the user, with the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn user(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: USER_ERROR,
            error: error.into(),
        }
    }
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: INTERNAL,
            error: error.into(),
        }
    }
}

/// Prints the error chain once (`{:#}`), cleaned for the terminal, and returns its exit code.
pub fn report(f: &Failure) -> ExitCode {
    let text = format!("{:#}", f.error);
    if text.starts_with("error") {
        crate::term::err_line(&text);
    } else {
        crate::term::err_line(&format!("error: {text}"));
    }
    ExitCode::from(f.code)
}

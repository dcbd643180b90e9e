//! SIGTERM and SIGINT: the first asks the service to stop and arms a deadline that exits the
//! process if stopping takes longer than [`SHUTDOWN_LIMIT`]; the second exits at once with
//! the shell's status for that signal.
//!
//! It must not stop anything itself: it only sets the stop flag the service watches, and
//! leaves the process (`_exit`) only when a clean stop was refused or did not finish.

use std::time::Duration;

use tokio::sync::watch;

use super::{ServiceError, SHUTDOWN_LIMIT};

/// Exit status after a second signal: the shell's 128 + signal number.
fn exit_status(signal: libc::c_int) -> i32 {
    128 + signal
}

/// Leaves the process now, without running exit handlers: used when a clean stop was
/// refused (second signal) or did not finish in time, where waiting on a wedged thread in an
/// exit handler would defeat the point.
fn exit_now(status: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(status) }
}

/// Watches SIGTERM and SIGINT: the first sets `stop` and arms the exit deadline, the second
/// exits at once.
pub(super) fn spawn_signal_handler(stop: watch::Sender<bool>) -> Result<(), ServiceError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log::info!("{first}: shutting down (a second signal exits at once)");
        let _ = stop.send(true);
        // A plain thread, so the deadline holds even if the runtime is what hangs.
        let _ = std::thread::Builder::new()
            .name("exit-deadline".into())
            .spawn(|| {
                std::thread::sleep(SHUTDOWN_LIMIT - Duration::from_millis(100));
                log::error!("shutdown took too long; exiting");
                exit_now(1);
            });
        let second = tokio::select! {
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
        };
        log::warn!("second signal: exiting now");
        exit_now(exit_status(second));
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_signal_exits_with_the_shell_status() {
        assert_eq!(exit_status(libc::SIGINT), 130);
        assert_eq!(exit_status(libc::SIGTERM), 143);
    }
}

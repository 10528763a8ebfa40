//! The systemd side of `fathometer run` (`Type=notify`): READY once the store is open and
//! the HTTP port bound, WATCHDOG pings from the main loop, a one-line STATUS, and
//! RELOADING/READY around a reload. Outside systemd (no `NOTIFY_SOCKET`) every call does
//! nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager's notification socket, as systemd hands it over.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}

/// Startup is over: the daemon serves and works.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts. systemd (253 and later) wants the monotonic time with it, to tell this
/// reload's READY from an earlier one.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading")]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
    }
}

/// The one-line summary `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The main loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: twice per `WatchdogSec=`, as sd_watchdog_enabled(3)
/// advises; `None` when systemd watches nothing.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|limit| (limit / 2).max(Duration::from_millis(100)))
}

/// The STATUS line: what an operator wants from `systemctl status` at a glance.
pub fn status_line(
    remailers: Option<usize>,
    last_build: Option<i64>,
    queued: u64,
    now: i64,
) -> String {
    let remailers = remailers
        .map_or_else(|| "remailers not counted yet".to_owned(), |n| format!("{n} remailers"));
    let build = match last_build {
        Some(t) => format!("last build {} s ago", (now - t).max(0)),
        None => "no build yet".to_owned(),
    };
    format!("{remailers}; {build}; outbox {queued} queued")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_remailers_build_age_and_outbox() {
        assert_eq!(
            status_line(Some(12), Some(1000), 3, 1042),
            "12 remailers; last build 42 s ago; outbox 3 queued"
        );
        assert_eq!(
            status_line(None, None, 0, 5),
            "remailers not counted yet; no build yet; outbox 0 queued"
        );
    }
}

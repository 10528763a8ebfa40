//! Time: the one clock, and the spans every stage agrees on.
//!
//! Nothing in the library reads the system clock except [`SystemClock`]: every pure function
//! takes `now` as a parameter, and the application passes the [`Clock`] it was given, so that
//! a test or the simulation can drive time.

/// Seconds since the Unix epoch, UTC.
pub type UnixTime = i64;

pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days in the statistics window (`stats_days`).
pub const STATS_DAYS: usize = 12;

/// The ping period of decision 2: each key is pinged once in every 2-hour slot, and a ping
/// may be retried only until its slot ends.
pub const SLOT_SECS: i64 = 7200;

/// A self-check that has not come back after this long marks a window of the pinger's own
/// failure (decision 8).
pub const SELF_CHECK_DEADLINE_SECS: i64 = 30 * 60;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

/// The system's clock: the only place the library reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// A clock that says what it is told (tests, the simulation, `--now`).
#[derive(Debug, Default)]
pub struct FixedClock(pub std::sync::atomic::AtomicI64);

impl FixedClock {
    pub fn at(t: UnixTime) -> FixedClock {
        FixedClock(std::sync::atomic::AtomicI64::new(t))
    }

    pub fn set(&self, t: UnixTime) {
        self.0.store(t, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Days from 0001-01-01 (chrono's "day 1 of the common era" is day number 1) to 1970-01-01.
pub const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The UTC calendar date containing unix time `t` (clamped to chrono's date range).
pub fn utc_date(t: UnixTime) -> chrono::NaiveDate {
    let days = t.div_euclid(SECONDS_PER_DAY);
    i32::try_from(days + UNIX_EPOCH_DAYS_FROM_CE)
        .ok()
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(if days < 0 { chrono::NaiveDate::MIN } else { chrono::NaiveDate::MAX })
}

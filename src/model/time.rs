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

/// A time as people write it in a command or an announcement, as of `now`: `now`, a span
/// from now (`+90m`, `+2h`, `+1d`, `+45s`), RFC 3339 (`2026-12-02T16:30:00Z`, any offset), or
/// `2026-12-02 16:30[:00] [UTC]` or `2026-12-02` (midnight; always UTC).
pub fn parse_time(text: &str, now: UnixTime) -> Result<UnixTime, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(span) = t.strip_prefix('+') {
        let (digits, unit) =
            span.split_at(span.find(|c: char| !c.is_ascii_digit()).unwrap_or(span.len()));
        let n: i64 = digits.parse().map_err(|_| format!("`{t}`: a span is +<number><s|m|h|d>"))?;
        let scale = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => SECONDS_PER_DAY,
            _ => return Err(format!("`{t}`: a span is +<number><s|m|h|d>")),
        };
        return n
            .checked_mul(scale)
            .and_then(|s| now.checked_add(s))
            .ok_or_else(|| format!("`{t}` is too far ahead"));
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    let plain = t.strip_suffix("UTC").unwrap_or(t).trim();
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(plain, format) {
            return Ok(d.and_utc().timestamp());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(plain, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp());
    }
    Err(format!(
        "`{t}` is not a time: write `now`, `+2h`, `2026-12-02 16:30 UTC` or `2026-12-02T16:30:00Z`"
    ))
}

#[cfg(test)]
mod parse_time_tests {
    use super::parse_time;

    #[test]
    fn the_forms_people_write() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("+90m", now), Ok(now + 5400));
        assert_eq!(parse_time(" +2h", now), Ok(now + 7200));
        assert_eq!(parse_time("+1d", now), Ok(now + 86_400));
        assert_eq!(parse_time("2026-12-02T16:30:00Z", now), Ok(1_796_229_000));
        assert_eq!(parse_time("2026-12-02T17:30:00+01:00", now), Ok(1_796_229_000));
        assert_eq!(parse_time("2026-12-02 16:30 UTC", now), Ok(1_796_229_000));
        assert_eq!(parse_time("2026-12-02 16:30:00", now), Ok(1_796_229_000));
        assert_eq!(parse_time("2026-12-02", now), Ok(1_796_229_000 - 16 * 3600 - 1800));
        for bad in ["", "tomorrow", "+2y", "+h", "2026-13-02 16:30", "+99999999999999999d"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}

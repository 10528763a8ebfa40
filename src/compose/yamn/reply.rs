//! What a YAMN remailer answers to `remailer-conf` (`yamn.md` §10): its capability line
//! (`v2`, and `middle` for a middleman; no `mix` token) and the summary lines of every key in
//! its pubring, which is how a pinger learns of other YAMN remailers. A `remailer-key` reply
//! is read with [`super::PublicKey::all_from_text`].

/// A remailer's capabilities as its conf reply gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub name: String,
    pub address: String,
    /// The whole `$remailer{"name"} = "<address> ...";` line.
    pub caps_line: String,
    pub middleman: bool,
    /// The remailers it lists as supported.
    pub supported: Vec<Summary>,
}

/// A 7-field YAMN key summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    pub address: String,
    pub key_id: String,
    pub version: String,
    pub caps: String,
    pub valid_from_day: i64,
    pub valid_until_day: i64,
}

impl Summary {
    /// A summary line as YAMN writes and reads one (`yamn.md` §8.1): exactly 7 fields split
    /// on single spaces; a name of 2 to 12 characters; an address of 3 to 52 with an `@`; a
    /// 32-hex key ID; version `4:...`; caps `E` or `M`; dates `YYYY-MM-DD`. The error says
    /// which field is wrong.
    pub fn parse(line: &str) -> Result<Summary, String> {
        let fields: [&str; 7] = line
            .split(' ')
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| "not 7 fields separated by single spaces".to_owned())?;
        let [name, address, key_id, version, caps, from, until] = fields;
        if !(2..=12).contains(&name.len()) {
            return Err("the name is not 2 to 12 characters".into());
        }
        if !(3..=52).contains(&address.len()) || !address.contains('@') {
            return Err("the address is not 3 to 52 characters with an @".into());
        }
        if key_id.len() != 32 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the key ID is not 32 hex digits".into());
        }
        if !version.starts_with("4:") || !matches!(caps, "E" | "M") {
            return Err("not a YAMN key (version 4:..., caps E or M)".into());
        }
        Ok(Summary {
            name: name.to_ascii_lowercase(),
            address: address.to_ascii_lowercase(),
            key_id: key_id.to_ascii_lowercase(),
            version: version.to_owned(),
            caps: caps.to_owned(),
            valid_from_day: date_to_day(from).ok_or("valid-from is not YYYY-MM-DD")?,
            valid_until_day: date_to_day(until).ok_or("valid-until is not YYYY-MM-DD")?,
        })
    }
}

/// The capabilities in a conf reply's body (or whole mail), None without a YAMN capability
/// line (one with the `v2` token).
pub fn parse_conf(text: &str) -> Option<Capabilities> {
    let caps_line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("$remailer{\"") && l.ends_with("\";"))?;
    let (name, rest) = caps_line.strip_prefix("$remailer{\"")?.split_once("\"}")?;
    let value = rest.trim().strip_prefix("=")?.trim().strip_prefix('"')?.strip_suffix("\";")?;
    let (address, tokens) = value.strip_prefix('<')?.split_once('>')?;
    let tokens: Vec<&str> = tokens.split_whitespace().collect();
    if !tokens.contains(&"v2") {
        return None;
    }
    let supported = text
        .lines()
        .skip_while(|l| l.trim() != "SUPPORTED MIXMASTER (TYPE II) REMAILERS")
        .skip(1)
        .filter_map(|l| Summary::parse(l.trim_end_matches('\r')).ok())
        .collect();
    Some(Capabilities {
        name: name.to_ascii_lowercase(),
        address: address.to_ascii_lowercase(),
        caps_line: caps_line.to_owned(),
        middleman: tokens.contains(&"middle"),
        supported,
    })
}

/// `YYYY-MM-DD` to days since 1970-01-01.
pub fn date_to_day(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp().div_euclid(86_400))
}

/// Days since 1970-01-01 to `YYYY-MM-DD`.
pub fn day_to_date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

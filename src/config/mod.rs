//! The operator's TOML configuration.
//!
//! Every table refuses unknown keys, and every value that can be wrong is checked while it is
//! deserialised (the newtypes below use `try_from`), so that toml's error carries the span of
//! the offending value. [`ConfigError`] turns that span into `file:line: key: message`, which
//! is what `fathometer check-config` prints.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Model;
pub use crate::model::address::{Delimiter, MailAddress};

/// Where the daemon looks when neither `--config` nor `FATHOMETER_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fathometer/fathometer.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pinger: PingerConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub mailbox: MailboxConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub stats: StatsConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub publish: PublishConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub replay_probe: ReplayProbeConfig,
    /// The file this configuration was read from, and its text, to locate problems found
    /// after parsing (see [`environment`]).
    #[serde(skip)]
    pub origin: Option<Origin>,
}

/// Where a configuration came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub text: String,
}

/// What is published, and how often (the lists follow `[stats] build_interval_secs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Seconds between keyring rebuilds (pubring.mix, type2.list, pgp-*.asc); Echolot's 8 h.
    #[serde(default = "default_keyring_interval")]
    pub keyring_interval_secs: Secs<WEEK>,
    /// Also write one type I list per key type: rlist-{rsa,dsa,clear}.txt and rlist2-*.txt
    /// (Echolot's `separate_rlists`; on in Debian's Echolot package).
    #[serde(default = "yes")]
    pub separate_rlists: bool,
    /// Also write clist.txt, every list in one file (Echolot's `combined_list`).
    #[serde(default = "yes")]
    pub combined_list: bool,
    /// Write `<file>.meta` with an `Expires:` line beside every published file, for Apache
    /// mod_cern_meta when another web server serves the results (the built-in one does not
    /// need them).
    #[serde(default)]
    pub meta_files: bool,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            keyring_interval_secs: default_keyring_interval(),
            separate_rlists: true,
            combined_list: true,
            meta_files: false,
        }
    }
}

fn default_keyring_interval() -> Secs<WEEK> {
    Secs(8 * 3600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingerConfig {
    /// Our return address; ping tags go between the local part and the `@`.
    pub address: MailAddress,
    #[serde(default = "default_delimiter")]
    pub recipient_delimiter: Delimiter,
    /// SQLite database, secret and published results live here.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Shown in published pages and in the allpingers.txt stanza.
    #[serde(default = "default_site_name")]
    pub name: String,
    /// Who runs this pinger; shown in published pages.
    #[serde(default)]
    pub operator_address: Option<MailAddress>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    #[serde(default = "default_smtp_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: Port,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the SMTP password (first line); kept out of the config so the config can
    /// be world-readable.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// First wait after a temporary failure (the MTA down, a 4xx); doubled on each further
    /// failure, up to 30 minutes, while the ping's 2-hour slot lasts.
    #[serde(default = "default_retry")]
    pub retry_secs: Secs<1800>,
    /// PEM file of the certificate authorities trusted for this server, instead of the
    /// system's store (a private CA). Needs `tls`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: default_smtp_host(),
            port: default_smtp_port(),
            tls: TlsMode::None,
            user: None,
            password_file: None,
            retry_secs: default_retry(),
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Maildir that receives our returns (ignored when `[mailbox.imap]` is present).
    #[serde(default)]
    pub maildir: Option<PathBuf>,
    #[serde(default)]
    pub imap: Option<ImapConfig>,
    /// How often a Maildir is scanned, or IMAP polled when the server lacks IDLE. Latency
    /// does not depend on it: it is measured at delivery.
    #[serde(default = "default_poll")]
    pub poll_secs: Secs<3600>,
    /// Days the raw bytes of quarantined mail and of replies are kept in the database; after
    /// that only the verdict and its reason remain.
    #[serde(default = "default_quarantine_days")]
    pub quarantine_days: Count<1, 3650>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: Port,
    pub user: String,
    pub password_file: PathBuf,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default = "default_imap_folder")]
    pub folder: String,
    /// As `smtp.ca_file`, for the IMAP server.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: ListenAddr,
    /// Connections served at once. The daemon lowers it further to stay below its open-file
    /// limit, so HTTP clients can never take the descriptors mail needs.
    #[serde(default = "default_max_connections")]
    pub max_connections: Count<1, 65536>,
    /// A client must send a request's header within this time, and an idle kept-alive
    /// connection is closed after it.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: Secs<300>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout(),
        }
    }
}

fn default_header_timeout() -> Secs<300> {
    Secs(10)
}

fn default_max_connections() -> Count<1, 65536> {
    Count(256)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    #[serde(default)]
    pub model: Model,
    /// Echolot's `stats_sort_by_latency`: 0 = by reliability then nick, 1 = latency
    /// ascending as second key, -1 = descending.
    #[serde(default)]
    pub sort_by_latency: SortByLatency,
    /// Operator-maintained broken chains, one `(a b)` per line (Echolot's broken1.txt /
    /// broken2.txt). Relative paths are relative to the config file.
    #[serde(default)]
    pub broken_type1_file: Option<PathBuf>,
    #[serde(default)]
    pub broken_type2_file: Option<PathBuf>,
    /// Groups of remailers sharing a machine or operator (Echolot's sameop.txt).
    #[serde(default)]
    pub same_operator_file: Option<PathBuf>,
    /// Whether broken chains found by our own chain pings are published.
    #[serde(default = "yes")]
    pub publish_broken_chains: bool,
    /// Seconds between two statistics builds (Echolot's `buildstats`).
    #[serde(default = "default_build_interval")]
    pub build_interval_secs: Secs<DAY>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            model: Model::default(),
            sort_by_latency: SortByLatency(0),
            broken_type1_file: None,
            broken_type2_file: None,
            same_operator_file: None,
            publish_broken_chains: true,
            build_interval_secs: default_build_interval(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// How often the scheduler wakes up to look for due slots.
    #[serde(default = "default_tick")]
    pub tick_secs: Secs<600>,
    /// A slot missed by more than this (the daemon was down) is skipped, not replayed.
    #[serde(default = "default_lateness")]
    pub max_lateness_secs: Secs<DAY>,
    /// Ping two-hop chains (weekly, daily for interesting chains).
    #[serde(default = "yes")]
    pub chain_pings: bool,
    /// Ping types this pinger sends; a subset of mix, cpunk-rsa, cpunk-dsa, cpunk-clear.
    #[serde(default = "all_ping_types")]
    pub ping_types: Vec<crate::model::PingType>,
    /// How often the pinger mails itself a control message (decision 8).
    #[serde(default = "default_self_check")]
    pub self_check_secs: Secs<DAY>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            tick_secs: default_tick(),
            max_lateness_secs: default_lateness(),
            chain_pings: true,
            ping_types: all_ping_types(),
            self_check_secs: default_self_check(),
        }
    }
}

/// Telling the operator about status events (a remailer went silent, resumed, changed its
/// key, announced downtime; the pinger's own outages).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// A program run once per event, with its arguments, the event as JSON on its standard
    /// input (e.g. `["/usr/local/bin/notify-events", "--channel", "ops"]`). Empty: none.
    #[serde(default)]
    pub command: Vec<String>,
    /// The command is killed after this long.
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: Secs<300>,
    /// Also mail each event to this address, through the configured MTA.
    #[serde(default)]
    pub mail_to: Option<MailAddress>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { command: Vec::new(), timeout_secs: default_hook_timeout(), mail_to: None }
    }
}

fn default_hook_timeout() -> Secs<300> {
    Secs(10)
}

/// The consensus of the pinger network (issue 15): the other pingers whose published lists
/// are read, how often, and how many must be fresh for an agreed view.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// The base URLs other pingers serve their mlist2.txt, rlist2.txt and pubring.mix at.
    /// Empty: no consensus is computed.
    #[serde(default)]
    pub peers: Vec<PeerUrl>,
    /// The community index of pingers (`allpingers.txt`, as `fathometer allpingers` writes
    /// its stanzas), an http(s) URL fetched every interval or a local file: every usable
    /// section is a peer besides `peers`, this pinger's own section (by its name) excepted.
    #[serde(default)]
    pub allpingers: Option<AllpingersSource>,
    /// Seconds between two fetches of every peer (default an hour).
    #[serde(default = "default_consensus_interval")]
    pub interval_secs: Secs<DAY>,
    /// Fresh pingers (ours included) needed for an agreed consensus; 0: a majority of the
    /// peers and us.
    #[serde(default = "no_quorum")]
    pub quorum: Count<0, 1000>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            peers: Vec::new(),
            allpingers: None,
            interval_secs: default_consensus_interval(),
            quorum: no_quorum(),
        }
    }
}

/// The replay-protection probe: one type II packet mailed to each remailer twice, byte for
/// byte; a remailer that delivers both has broken replay protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayProbeConfig {
    /// Probe every type II remailer (at a hashed time in every period of `every_secs`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// One probe per remailer per this many seconds (default a week).
    #[serde(default = "default_probe_every")]
    pub every_secs: Secs<{ 52 * WEEK }>,
    /// Seconds between the first copy and the replayed second one (default 10 minutes).
    #[serde(default = "default_probe_gap")]
    pub gap_secs: Secs<DAY>,
    /// Seconds returns are awaited after the second copy before a single return counts as
    /// "protected" (default 2 days: a remailer's pool can hold mail for hours).
    #[serde(default = "default_probe_wait")]
    pub wait_secs: Secs<{ 12 * DAY }>,
}

impl Default for ReplayProbeConfig {
    fn default() -> Self {
        ReplayProbeConfig {
            enabled: true,
            every_secs: default_probe_every(),
            gap_secs: default_probe_gap(),
            wait_secs: default_probe_wait(),
        }
    }
}

fn default_probe_every() -> Secs<{ 52 * WEEK }> {
    Secs(WEEK)
}

fn default_probe_gap() -> Secs<DAY> {
    Secs(600)
}

fn default_probe_wait() -> Secs<{ 12 * DAY }> {
    Secs(2 * DAY)
}

fn no_quorum() -> Count<0, 1000> {
    Count(0)
}

fn default_consensus_interval() -> Secs<DAY> {
    Secs(3600)
}

/// Another pinger's base URL: `http://` or `https://`, a host, no user or password.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PeerUrl(pub String);

impl TryFrom<String> for PeerUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split('/').next().unwrap_or_default()).unwrap_or_default();
        if host.is_empty()
            || host.contains('@')
            || !url.is_ascii()
            || url.contains(char::is_whitespace)
        {
            return Err(format!("{url:?} is not an http:// or https:// base URL"));
        }
        Ok(PeerUrl(url.trim_end_matches('/').to_owned()))
    }
}

/// Where the community index of pingers is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AllpingersSource {
    Url(String),
    File(PathBuf),
}

impl TryFrom<String> for AllpingersSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = PeerUrl::try_from(s.clone())
                .map_err(|_| format!("{s:?} is not an http:// or https:// URL"))?;
            return Ok(AllpingersSource::Url(url.0));
        }
        if s.contains("://") || s.trim().is_empty() {
            return Err(format!("{s:?} is neither an http(s) URL nor a file"));
        }
        Ok(AllpingersSource::File(PathBuf::from(s)))
    }
}

/// Learning about remailers from their replies (`echolot.md` §5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Send remailer-conf, -key, -help, -stats and -adminkey requests (daily, and at once
    /// after `fathometer add`).
    #[serde(default = "yes")]
    pub requests: bool,
    /// Add an address named in the supported-remailer lists of at least this many distinct
    /// remailers (Echolot's `reliable_auto_add_min`). 0 turns automatic adding off.
    #[serde(default = "default_auto_add_min")]
    pub auto_add_min: Count<0, 1000>,
    /// Days a remailer's recommendation counts.
    #[serde(default = "default_candidate_days")]
    pub candidate_days: Count<1, 365>,
    /// After this many unanswered daily conf requests a remailer is marked unresponsive.
    #[serde(default = "default_unanswered_limit")]
    pub unanswered_limit: Count<1, 1000>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            requests: true,
            auto_add_min: default_auto_add_min(),
            candidate_days: default_candidate_days(),
            unanswered_limit: default_unanswered_limit(),
        }
    }
}

fn default_auto_add_min() -> Count<0, 1000> {
    Count(6)
}
fn default_candidate_days() -> Count<1, 365> {
    Count(5)
}
fn default_unanswered_limit() -> Count<1, 1000> {
    Count(5)
}
fn yes() -> bool {
    true
}
fn default_delimiter() -> Delimiter {
    Delimiter::default()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}
fn default_site_name() -> String {
    "fathometer".into()
}
fn default_smtp_host() -> String {
    "127.0.0.1".into()
}
fn default_smtp_port() -> Port {
    Port(25)
}
/// A host name or address that never leaves this machine: a password sent there in clear
/// text crosses no network.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn default_imap_port() -> Port {
    Port(143)
}
fn default_imap_folder() -> String {
    "INBOX".into()
}
fn default_listen() -> ListenAddr {
    ListenAddr("127.0.0.1:8080".parse().expect("literal socket address"))
}
fn default_build_interval() -> Secs<DAY> {
    Secs(300)
}
impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            maildir: None,
            imap: None,
            poll_secs: default_poll(),
            quarantine_days: default_quarantine_days(),
        }
    }
}
fn default_quarantine_days() -> Count<1, 3650> {
    Count(30)
}
fn default_retry() -> Secs<1800> {
    Secs(60)
}
fn default_poll() -> Secs<3600> {
    Secs(10)
}
fn default_self_check() -> Secs<DAY> {
    Secs(900)
}
fn default_tick() -> Secs<600> {
    Secs(30)
}
fn default_lateness() -> Secs<DAY> {
    Secs(600)
}
fn all_ping_types() -> Vec<crate::model::PingType> {
    crate::model::PingType::ALL.to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Port(pub u16);

impl TryFrom<i64> for Port {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(Port(p)),
            _ => Err(format!("{n} is not a TCP port (1..65535)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenAddr(pub SocketAddr);

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(ListenAddr)
            .map_err(|_| format!("`{s}` is not an address:port to listen on, e.g. 127.0.0.1:8080"))
    }
}

/// Seconds in a day and in a week, the upper bounds of the longer intervals.
pub const DAY: u64 = 86_400;
pub const WEEK: u64 = 7 * DAY;

/// A number of seconds from 1 to `MAX`. Every interval has an upper bound, so that no
/// arithmetic on it can overflow and no typo (an extra zero, `i64::MAX`) turns a daemon into
/// one that never rebuilds, never polls or reports itself unhealthy from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Secs<const MAX: u64>(pub u64);

impl<const MAX: u64> Secs<MAX> {
    /// The value as signed seconds, the unit of every timestamp (it fits: `MAX` is small).
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }
}

impl<const MAX: u64> TryFrom<i64> for Secs<MAX> {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u64::try_from(n) {
            Ok(s) if (1..=MAX).contains(&s) => Ok(Secs(s)),
            _ => Err(format!("{n} is not between 1 and {MAX} seconds ({})", human_secs(MAX))),
        }
    }
}

/// `86400` → `1 day`, for the bounds in error messages.
fn human_secs(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s % WEEK == 0 => plural(s / WEEK, "week"),
        s if s % DAY == 0 => plural(s / DAY, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// A count from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Count<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Count<MIN, MAX> {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(c) if (MIN..=MAX).contains(&c) => Ok(Count(c)),
            _ => Err(format!("{n} is not between {MIN} and {MAX}")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct SortByLatency(pub i8);

impl TryFrom<i64> for SortByLatency {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match n {
            -1..=1 => Ok(SortByLatency(n as i8)),
            _ => Err(format!("{n} must be -1, 0 or 1")),
        }
    }
}

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key, e.g. `stats.model`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file; relative paths in it are resolved against the
    /// directory of the file, so a service can be started from any working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.origin = Some(Origin { path: path.to_owned(), text });
        Ok(config)
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| locate_error(&e, text, path))?;
        config.check_consistency(text, path)?;
        Ok(config)
    }

    fn check_consistency(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        if let (Some(_), Some(_)) = (&self.mailbox.maildir, &self.mailbox.imap) {
            return Err(ConfigError {
                path: path.to_owned(),
                line: find_key_line(text, "mailbox", "maildir"),
                key: Some("mailbox.maildir".into()),
                message: "give either `maildir` or an `[mailbox.imap]` table, not both".into(),
            });
        }
        if self.smtp.password_file.is_some() && self.smtp.user.is_none() {
            return Err(ConfigError {
                path: path.to_owned(),
                line: find_key_line(text, "smtp", "password_file"),
                key: Some("smtp.password_file".into()),
                message: "a password file needs `smtp.user` as well".into(),
            });
        }
        let error = |table: &str, key: &str, message: String| ConfigError {
            path: path.to_owned(),
            line: find_key_line(text, table, key),
            key: Some(format!("{table}.{key}")),
            message,
        };
        // With an allpingers index the number of pingers is only known when it is read.
        let pingers = self.consensus.peers.len() as u64 + 1;
        if self.consensus.allpingers.is_none() && u64::from(self.consensus.quorum.0) > pingers {
            return Err(error(
                "consensus",
                "quorum",
                format!(
                    "{} is more than the {pingers} pingers there are (the peers and us)",
                    self.consensus.quorum.0
                ),
            ));
        }
        if self.smtp.ca_file.is_some() && self.smtp.tls == TlsMode::None {
            return Err(error("smtp", "ca_file", "needs `tls = \"starttls\"` or `\"tls\"`".into()));
        }
        if self.smtp.user.is_some()
            && self.smtp.tls == TlsMode::None
            && !is_loopback(&self.smtp.host)
        {
            return Err(error(
                "smtp",
                "user",
                format!(
                    "the password would cross the network to {} in clear text: set `tls` to \
                     \"starttls\" (port 587) or \"tls\" (port 465)",
                    self.smtp.host
                ),
            ));
        }
        if let Some(imap) = &self.mailbox.imap {
            if imap.ca_file.is_some() && imap.tls == TlsMode::None {
                return Err(error(
                    "mailbox.imap",
                    "ca_file",
                    "needs `tls = \"starttls\"` or `\"tls\"`".into(),
                ));
            }
            if imap.tls == TlsMode::None && !is_loopback(&imap.host) {
                return Err(error(
                    "mailbox.imap",
                    "host",
                    format!(
                        "the password would cross the network to {} in clear text: set `tls` \
                         to \"starttls\" (port 143) or \"tls\" (port 993)",
                        imap.host
                    ),
                ));
            }
        }
        if self.schedule.tick_secs.0 >= self.schedule.max_lateness_secs.0 {
            return Err(ConfigError {
                path: path.to_owned(),
                line: find_key_line(text, "schedule", "tick_secs"),
                key: Some("schedule.tick_secs".into()),
                message: format!(
                    "must be shorter than `schedule.max_lateness_secs` ({}): slots further back \
                     than that are skipped, so longer ticks would skip slots every time",
                    self.schedule.max_lateness_secs.0
                ),
            });
        }
        if self.schedule.ping_types.is_empty() {
            return Err(ConfigError {
                path: path.to_owned(),
                line: find_key_line(text, "schedule", "ping_types"),
                key: Some("schedule.ping_types".into()),
                message: "at least one ping type is needed".into(),
            });
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.pinger.state_dir);
        if let Some(AllpingersSource::File(p)) = self.consensus.allpingers.as_mut() {
            fix(p);
        }
        if let Some(p) = self.mailbox.maildir.as_mut() {
            fix(p);
        }
        if let Some(p) = self.smtp.password_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.smtp.ca_file.as_mut() {
            fix(p);
        }
        if let Some(imap) = self.mailbox.imap.as_mut() {
            fix(&mut imap.password_file);
            if let Some(p) = imap.ca_file.as_mut() {
                fix(p);
            }
        }
        for p in [
            &mut self.stats.broken_type1_file,
            &mut self.stats.broken_type2_file,
            &mut self.stats.same_operator_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.pinger.state_dir.join("fathometer.sqlite")
    }

    pub fn secret_path(&self) -> PathBuf {
        self.pinger.state_dir.join("secret")
    }

    pub fn results_dir(&self) -> PathBuf {
        self.pinger.state_dir.join("results")
    }

    pub fn private_results_dir(&self) -> PathBuf {
        self.pinger.state_dir.join("results.private")
    }
}

/// Turns toml's error (byte span + message) into line and dotted key.
fn locate_error(err: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let message = err.message().trim().to_string();
    let Some(span) = err.span() else {
        return ConfigError { path: path.to_owned(), line: None, key: None, message };
    };
    let line_index = text[..span.start.min(text.len())].matches('\n').count();
    let line_text = text.lines().nth(line_index).unwrap_or("");
    let table = enclosing_table(text, line_index);
    // For an unknown field toml points at the key itself; for a bad value, at the value.
    // Either way the key is what stands before `=` on that line.
    let key_on_line = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let key = match (table, key_on_line) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    };
    ConfigError { path: path.to_owned(), line: Some(line_index + 1), key, message }
}

/// The `[table]` header in force at 0-based line `line_index`.
fn enclosing_table(text: &str, line_index: usize) -> Option<String> {
    text.lines().take(line_index + 1).filter_map(table_header).last()
}

fn table_header(line: &str) -> Option<String> {
    let t = line.trim();
    let inner = t.strip_prefix("[[").and_then(|r| r.split("]]").next());
    let inner = inner.or_else(|| t.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    Some(inner.trim().to_string())
}

/// 1-based line of `key` inside `[table]`, for errors found after deserialisation.
pub(crate) fn find_key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(t) = table_header(line) {
            current = Some(t);
            continue;
        }
        let k = line.split_once('=').map(|(k, _)| k.trim());
        if current.as_deref() == Some(table) && k == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const MINIMAL: &str = "[pinger]\naddress = \"pinger@localhost\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.pinger.address.as_str(), "pinger@localhost");
        assert_eq!(c.pinger.recipient_delimiter.as_str(), "+");
        assert_eq!(c.smtp.port, Port(25));
        assert_eq!(c.http.listen.0.to_string(), "127.0.0.1:8080");
        assert_eq!(c.stats.model, Model::Methodology);
        assert_eq!(c.schedule.ping_types.len(), 5, "mix, the three cpunk types and yamn");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text =
            "[pinger]\naddress = \"p@localhost\"\n\n[stats]\nmodel = \"echolot\"\nfrobnicate = 3\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, Some(6));
        assert_eq!(e.key.as_deref(), Some("stats.frobnicate"));
        assert!(e.message.contains("frobnicate"), "{e}");
        assert!(e.to_string().starts_with("test.toml:6: key `stats.frobnicate`"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[stats]\nmodel = \"magic\"\n", 5, "stats.model"),
            ("[smtp]\nport = 70000\n", 5, "smtp.port"),
            ("[http]\nlisten = \"localhost\"\n", 5, "http.listen"),
            ("[smtp]\ntls = \"ssl3\"\n", 5, "smtp.tls"),
            ("[schedule]\ntick_secs = 0\n", 5, "schedule.tick_secs"),
            ("[stats]\nsort_by_latency = 2\n", 5, "stats.sort_by_latency"),
        ];
        for (tail, line, key) in cases {
            let text = format!("{MINIMAL}\n{tail}");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, Some(line), "{tail}: {e}");
            assert_eq!(e.key.as_deref(), Some(key), "{tail}: {e}");
        }
    }

    #[test]
    fn every_interval_and_count_has_an_upper_bound() {
        let cases = [
            ("[stats]\nbuild_interval_secs = 9223372036854775807\n", "stats.build_interval_secs"),
            ("[mailbox]\npoll_secs = 9223372036854775807\n", "mailbox.poll_secs"),
            ("[mailbox]\npoll_secs = 3601\n", "mailbox.poll_secs"),
            ("[publish]\nkeyring_interval_secs = 604801\n", "publish.keyring_interval_secs"),
            ("[smtp]\nretry_secs = 1801\n", "smtp.retry_secs"),
            ("[schedule]\nself_check_secs = 86401\n", "schedule.self_check_secs"),
            ("[http]\nmax_connections = 0\n", "http.max_connections"),
            ("[http]\nheader_timeout_secs = 301\n", "http.header_timeout_secs"),
            ("[discovery]\nunanswered_limit = 4294967296\n", "discovery.unanswered_limit"),
            ("[mailbox]\nquarantine_days = 0\n", "mailbox.quarantine_days"),
        ];
        for (tail, key) in cases {
            let e = parse(&format!("{MINIMAL}\n{tail}")).unwrap_err();
            assert_eq!((e.line, e.key.as_deref()), (Some(5), Some(key)), "{tail}: {e}");
            assert!(e.message.contains("is not between"), "{e}");
        }
        let e = parse(&format!("{MINIMAL}\n[stats]\nbuild_interval_secs = 86401\n")).unwrap_err();
        assert!(e.message.contains("between 1 and 86400 seconds (1 day)"), "{e}");
        assert!(parse(&format!("{MINIMAL}\n[stats]\nbuild_interval_secs = 86400\n")).is_ok());
    }

    #[test]
    fn a_tick_longer_than_the_lateness_would_skip_slots() {
        let e =
            parse(&format!("{MINIMAL}\n[schedule]\ntick_secs = 600\nmax_lateness_secs = 600\n"))
                .unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("schedule.tick_secs")), "{e}");
    }

    #[test]
    fn bad_address_is_rejected_with_its_line() {
        let e = parse("[pinger]\naddress = \"no-at-sign\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("pinger.address"));
        assert!(e.message.contains("not a mail address"), "{e}");
    }

    #[test]
    fn missing_required_key_is_an_error() {
        let e = parse("[pinger]\nstate_dir = \"x\"\n").unwrap_err();
        assert!(e.message.contains("address"), "{e}");
    }

    #[test]
    fn maildir_and_imap_together_are_rejected() {
        let text = format!(
            "{MINIMAL}[mailbox]\nmaildir = \"m\"\n[mailbox.imap]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("mailbox.maildir"));
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, format!("{MINIMAL}state_dir = \"st\"\n")).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.pinger.state_dir, dir.path().join("st"));
        assert_eq!(c.database_path(), dir.path().join("st/fathometer.sqlite"));
    }

    #[test]
    fn the_allpingers_index_is_a_url_or_a_file_beside_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        let load = |value: &str| {
            std::fs::write(
                &path,
                format!("{MINIMAL}[consensus]\nallpingers = \"{value}\"\nquorum = 5\n"),
            )
            .unwrap();
            Config::load(&path)
        };
        let url = load("https://noreply.example/allpingers.txt").unwrap();
        assert_eq!(
            url.consensus.allpingers,
            Some(AllpingersSource::Url("https://noreply.example/allpingers.txt".into()))
        );
        // A quorum larger than the named peers is fine: the index has more.
        let file = load("index/allpingers.txt").unwrap();
        assert_eq!(
            file.consensus.allpingers,
            Some(AllpingersSource::File(dir.path().join("index/allpingers.txt")))
        );
        let bad = load("ftp://noreply.example/allpingers.txt").unwrap_err().to_string();
        assert!(bad.contains("consensus.allpingers"), "{bad}");
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.http.listen.0.ip().to_string(), "127.0.0.1");
    }
}

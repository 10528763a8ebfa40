//! Another pinger's published statistics, as read from its `mlist2.txt` or `rlist2.txt`
//! (`echolot.md` §7.4): what the consensus of the pinger network is computed from.

/// One row of a peer's v2 list.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    pub nick: String,
    /// Median latency in seconds (whole minutes; the list has no seconds), None when the
    /// peer shows `99:59` (no return yet, or 100 hours and more).
    pub latency: Option<i64>,
    /// Reliability as the list shows it, 0.0 to 100.0.
    pub reliability: f64,
    /// The options column (`D`, `M`, ...), trimmed.
    pub options: String,
}

/// A peer's whole v2 list.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerList {
    /// `Mixmaster` or `Cypherpunk`.
    pub kind: String,
    /// When the peer generated it (its `Generated:` line), Unix seconds.
    pub generated: i64,
    pub rows: Vec<PeerRow>,
    /// The broken chains it lists, `(a b)`, `(a *)`, `(* b)`, per section (type I, type II).
    pub broken_type1: Vec<(String, String)>,
    pub broken_type2: Vec<(String, String)>,
    /// `nick` → address, from its `Remailer-Capabilities:` lines.
    pub addresses: Vec<(String, String)>,
    /// `nick` → the capability line verbatim (printable ASCII only, at most 400 characters).
    pub caps_lines: Vec<(String, String)>,
}

impl PeerList {
    /// The address the peer gives for `nick`, if it gives one.
    pub fn address_of(&self, nick: &str) -> Option<&str> {
        self.addresses.iter().find(|(n, _)| n == nick).map(|(_, a)| a.as_str())
    }

    /// The capability line the peer gives for `nick`.
    pub fn caps_of(&self, nick: &str) -> Option<&str> {
        self.caps_lines.iter().find(|(n, _)| n == nick).map(|(_, c)| c.as_str())
    }
}

/// Where the consensus reads one pinger: the name it goes by (its base URL) and the URL of
/// each file read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSource {
    /// The base URL, without a trailing slash: the key of its files in the store.
    pub id: String,
    /// (file, URL) for `mlist2.txt`, `rlist2.txt`, `pubring.mix` and `pgp-all.asc`.
    pub files: Vec<(&'static str, String)>,
}

impl PeerSource {
    /// A pinger serving the four files under `base`.
    pub fn at_base(base: &str) -> PeerSource {
        let id = base.trim_end_matches('/').to_owned();
        let files = PEER_FILES.iter().map(|&f| (f, format!("{id}/{f}"))).collect();
        PeerSource { id, files }
    }

    /// The URL of `file`.
    pub fn url(&self, file: &str) -> Option<&str> {
        self.files.iter().find(|(f, _)| *f == file).map(|(_, u)| u.as_str())
    }
}

/// The files read from every pinger.
pub const PEER_FILES: [&str; 4] = ["mlist2.txt", "rlist2.txt", "pubring.mix", "pgp-all.asc"];

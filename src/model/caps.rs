//! The capability line a remailer publishes, `$remailer{"nick"} = "<address> flags";`, with
//! the one parser every stage uses, and the checks of nicks and addresses from strangers.

use super::ping::PingType;

/// Nicks longer than this are refused (Mixmaster keeps 19 characters, Echolot shows 12).
pub const MAX_NICK_CHARS: usize = 32;

/// A remailer's capability line: `$remailer{"nick"} = "<address> flag flag ...";`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub nick: String,
    pub address: String,
    pub flags: Vec<String>,
    /// The whole line as received (it is published verbatim in rlist.txt).
    pub line: String,
}

impl Capabilities {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// `testing` in the line: the operator asks pingers not to publish it yet
    /// ([`says_testing`]).
    pub fn is_testing(&self) -> bool {
        says_testing(&self.line)
    }

    /// Plaintext type I is accepted: `cpunk` without `pgponly` (Echolot's cpunk-clear rule).
    pub fn accepts_clear(&self) -> bool {
        self.has("cpunk") && !self.has("pgponly")
    }
}

/// Whether a capability line (stored verbatim) says `testing`: its remailer's operator asks
/// pingers not to publish it yet. Echolot matches the word anywhere in the line; so do we, so
/// that an imported history publishes exactly what Echolot published.
pub fn says_testing(line: &str) -> bool {
    contains_word(line, "testing")
}

/// The first capability line of a text (a conf or key reply, a saved reply file) that parses.
pub fn find_caps_line(text: &str) -> Option<Capabilities> {
    text.lines().filter(|l| l.trim_start().starts_with("$remailer{")).find_map(parse_caps_line)
}

/// Parses one capability line; None unless it has the exact shape (the nick and address are
/// checked, the flags must be plain words).
pub fn parse_caps_line(line: &str) -> Option<Capabilities> {
    let trimmed = line.trim();
    let rest = trimmed.strip_prefix("$remailer{\"")?;
    let (nick, rest) = rest.split_once("\"}")?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
    let rest = rest.strip_prefix('<')?;
    let (address, rest) = rest.split_once('>')?;
    let flags_part = rest.trim_end().strip_suffix(';')?.trim_end().strip_suffix('"')?;
    if !valid_nick(nick) || !valid_address(address) {
        return None;
    }
    let flags: Vec<String> = flags_part.split_whitespace().map(str::to_owned).collect();
    if flags.iter().any(|f| f.len() > 64 || !f.chars().all(|c| c.is_ascii_graphic() && c != '"')) {
        return None;
    }
    Some(Capabilities {
        nick: nick.to_owned(),
        address: address.to_ascii_lowercase(),
        flags,
        line: trimmed.to_owned(),
    })
}

/// A nick is printable ASCII without spaces or quotes. Anything else it contains (markup,
/// say) is escaped where it is shown.
pub fn valid_nick(nick: &str) -> bool {
    !nick.is_empty()
        && nick.chars().count() <= MAX_NICK_CHARS
        && nick.chars().all(|c| c.is_ascii_graphic() && c != '"')
}

/// A plausible mail address: one `@`, printable ASCII, no brackets, at most 254 characters.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && address.chars().all(|c| c.is_ascii_graphic() && !"<>()[]\",;:\\".contains(c))
}

/// The key types a remailer supports according to its capabilities (`mixmaster.md` §5.1):
/// `mix` for type II, `pgp` for encrypted type I (RSA or DSA keys decide which), and clear
/// type I when it accepts unencrypted mail.
pub fn supported_types(caps: &Capabilities) -> Vec<PingType> {
    let mut types = Vec::new();
    if caps.has("mix") {
        types.push(PingType::Mix);
    }
    if caps.has("pgp") {
        types.push(PingType::CpunkRsa);
        types.push(PingType::CpunkDsa);
    }
    if caps.accepts_clear() {
        types.push(PingType::CpunkClear);
    }
    types
}

pub fn contains_word(text: &str, word: &str) -> bool {
    word_matches(text, word).next().is_some()
}

/// The number `n` of the first `\bprefix(\d+)\b` in `text` (case-insensitive), e.g. `klen1000`.
pub fn word_number(text: &str, prefix: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let prefix = prefix.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&prefix).map(|p| p + from) {
        from = pos + 1;
        if pos > 0 && is_word_byte(bytes[pos - 1]) {
            continue;
        }
        let digits_start = pos + prefix.len();
        let digits_len = bytes[digits_start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let end = digits_start + digits_len;
        if digits_len == 0 || bytes.get(end).is_some_and(|&b| is_word_byte(b)) {
            continue;
        }
        // Saturate absurdly long numbers: only "at least 900" matters to anyone.
        return Some(text[digits_start..end].parse().unwrap_or(u64::MAX));
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn word_matches<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&word).map(|p| p + from) {
        from = pos + 1;
        let end = pos + word.len();
        let left_ok = pos == 0 || !is_word_byte(bytes[pos - 1]);
        let right_ok = end >= bytes.len() || !is_word_byte(bytes[end]);
        if left_ok && right_ok {
            starts.push(pos);
        }
    }
    starts.into_iter()
}

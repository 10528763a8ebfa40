//! Reading an Echolot home in place (`echolot.md` §8): the metadata, one ping log pair per
//! key, the chain-ping logs, the thesaurus and the from-lines. Nothing is written there.
//! What cannot be read is reported with its file and line, and the rest goes on; only a
//! metadata file that cannot be read at all stops the import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::perl::{self, Value};
use crate::model::{ChainType, ImportedChain, ImportedPing, PingType, RemailerStatus, RequestKind};

/// No file of a home is read past this size: Echolot's are far smaller.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Raw replies are kept up to this size, as the ingester keeps them.
const MAX_REPLY_BYTES: usize = 256 << 10;

/// One remailer as Echolot knew it.
#[derive(Debug, Clone, PartialEq)]
pub struct EcholotRemailer {
    pub address: String,
    pub nick: Option<String>,
    pub caps: Option<String>,
    pub hidden: bool,
    pub status: RemailerStatus,
    pub status_reason: Option<String>,
    pub keys: Vec<EcholotKey>,
}

/// One key of a remailer.
#[derive(Debug, Clone, PartialEq)]
pub struct EcholotKey {
    pub ping_type: PingType,
    pub key_id: String,
    /// What `import-keys` reads: a Mix key entry (its summary line, a blank line, the key)
    /// or an armoured OpenPGP key. `None` when Echolot has none (`N/A`).
    pub material: Option<String>,
}

/// A raw reply from the thesaurus.
#[derive(Debug, Clone, PartialEq)]
pub struct EcholotReply {
    pub address: String,
    pub kind: RequestKind,
    pub received_at: i64,
    pub body: String,
}

/// A From: line a remailer's returns had.
#[derive(Debug, Clone, PartialEq)]
pub struct EcholotFromLine {
    pub address: String,
    pub ping_type: PingType,
    pub with_from: bool,
    pub from: String,
    pub seen_at: i64,
}

/// Everything read from a home, and what was skipped and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EcholotHome {
    pub remailers: Vec<EcholotRemailer>,
    pub pings: Vec<ImportedPing>,
    pub chains: Vec<ImportedChain>,
    pub replies: Vec<EcholotReply>,
    pub from_lines: Vec<EcholotFromLine>,
    /// One line per thing skipped: the file (and line) and the reason.
    pub skipped: Vec<String>,
    /// The pinger's configuration, when `pingd.conf` was read.
    pub config: Option<Value>,
}

/// Where a home keeps things: its `pingd.conf` may move them (paths relative to the home).
struct Layout {
    data: PathBuf,
    thesaurus: PathBuf,
}

fn read_limited(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!("larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn layout(home: &Path, config: Option<&Value>) -> Layout {
    let setting = |value: Option<&Value>, default: &str| -> PathBuf {
        let path = PathBuf::from(value.and_then(Value::as_text).unwrap_or(default));
        if path.is_absolute() { path } else { home.join(path) }
    };
    let data = config
        .and_then(|c| c.get("storage"))
        .and_then(|s| s.get("File"))
        .and_then(|f| f.get("basedir"));
    Layout {
        data: setting(data, "data"),
        thesaurus: setting(config.and_then(|c| c.get("thesaurusdir")), "results/thesaurus"),
    }
}

/// Reads the home at `home` (and its `pingd.conf`, from `pingd_conf` or the home itself).
pub fn read_home(home: &Path, pingd_conf: Option<&Path>) -> Result<EcholotHome, String> {
    let mut out = EcholotHome::default();
    let conf_path = pingd_conf.map(Path::to_path_buf).unwrap_or_else(|| home.join("pingd.conf"));
    if conf_path.exists() {
        match read_limited(&conf_path)
            .map_err(|e| e.to_string())
            .and_then(|t| perl::parse_assignment(&t, "CONFIG").map_err(|e| e.to_string()))
        {
            Ok(c) => out.config = Some(c),
            Err(e) => {
                out.skipped.push(format!("{}: {e}; the defaults are assumed", conf_path.display()))
            }
        }
    } else if pingd_conf.is_some() {
        return Err(format!("{} does not exist", conf_path.display()));
    }
    let layout = layout(home, out.config.as_ref());
    let metadata_path = layout.data.join("metadata");
    let text = read_limited(&metadata_path)
        .map_err(|e| format!("{}: {e} (is this an Echolot home?)", metadata_path.display()))?;
    let metadata = perl::parse_assignment(&text, "METADATA")
        .map_err(|e| format!("{}: {e}", metadata_path.display()))?;

    let addresses = metadata.get("addresses").and_then(Value::as_hash).cloned().unwrap_or_default();
    let learnt = metadata.get("remailers").and_then(Value::as_hash).cloned().unwrap_or_default();
    let mut ids: BTreeMap<i64, String> = BTreeMap::new();
    for (address, entry) in &addresses {
        let Ok(address) = crate::config::MailAddress::try_from(address.to_ascii_lowercase()) else {
            out.skipped.push(format!("metadata: `{address}` is not a mail address"));
            continue;
        };
        let address = address.as_str().to_owned();
        if let Some(id) = entry.get("id").and_then(Value::as_i64) {
            ids.insert(id, address.clone());
        }
        let remailer = learnt.get(&address).or_else(|| {
            learnt.iter().find(|(a, _)| a.eq_ignore_ascii_case(&address)).map(|(_, v)| v)
        });
        out.remailers.push(remailer_of(
            &address,
            entry,
            remailer,
            &layout,
            &mut out.pings,
            &mut out.skipped,
        ));
    }
    for address in learnt.keys().filter(|a| !addresses.keys().any(|b| b.eq_ignore_ascii_case(a))) {
        out.skipped.push(format!(
            "metadata: {address} has keys or capabilities but is not an address Echolot pings"
        ));
    }
    for family in ChainType::ALL {
        read_chains(&layout.data, family, &mut out);
    }
    read_thesaurus(&layout.thesaurus, &ids, &mut out);
    read_from_lines(&metadata, &mut out);
    Ok(out)
}

fn status_of(entry: &Value) -> (RemailerStatus, Option<String>) {
    let status = entry.get("status").and_then(Value::as_text).unwrap_or("active");
    let pingit = entry.get("pingit").is_none_or(Value::truthy);
    match status {
        "active" if pingit => (RemailerStatus::Active, None),
        "active" => (RemailerStatus::Disabled, Some("not pinged in Echolot (pingit = 0)".into())),
        "ttl timeout" => (
            RemailerStatus::Unresponsive,
            Some("stopped answering requests (Echolot: ttl timeout)".into()),
        ),
        other => (RemailerStatus::Disabled, Some(format!("Echolot: {other}"))),
    }
}

fn remailer_of(
    address: &str,
    entry: &Value,
    learnt: Option<&Value>,
    layout: &Layout,
    pings: &mut Vec<ImportedPing>,
    skipped: &mut Vec<String>,
) -> EcholotRemailer {
    let (status, status_reason) = status_of(entry);
    let conf = learnt.and_then(|r| r.get("conf"));
    let text =
        |v: Option<&Value>| v.and_then(Value::as_text).map(str::to_owned).filter(|s| !s.is_empty());
    let mut remailer = EcholotRemailer {
        address: address.to_owned(),
        nick: text(conf.and_then(|c| c.get("nick"))),
        caps: text(conf.and_then(|c| c.get("capabilities"))),
        hidden: !entry.get("showit").is_none_or(Value::truthy),
        status,
        status_reason,
        keys: Vec::new(),
    };
    let keys = learnt.and_then(|r| r.get("keys")).and_then(Value::as_hash);
    for (type_name, by_id) in keys.into_iter().flatten() {
        let Ok(ping_type) = type_name.parse::<PingType>() else {
            skipped.push(format!("metadata: {address}: unknown key type `{type_name}`"));
            continue;
        };
        for (key_id, key) in by_id.as_hash().into_iter().flatten() {
            let material = key_material(ping_type, key);
            remailer.keys.push(EcholotKey { ping_type, key_id: key_id.clone(), material });
            match key.get("stats").and_then(Value::as_text) {
                Some(base) if is_plain_name(base) => {
                    read_ping_logs(&layout.data, base, address, ping_type, key_id, pings, skipped);
                }
                Some(base) => skipped.push(format!(
                    "metadata: {address} {type_name} key {key_id}: ping log name `{base}` leaves the data directory"
                )),
                None => skipped.push(format!(
                    "metadata: {address} {type_name} key {key_id}: no ping log named (no history)"
                )),
            }
        }
    }
    remailer
}

/// A file name, not a path: no separator, not `.` or `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn key_material(ping_type: PingType, key: &Value) -> Option<String> {
    let material =
        key.get("key").and_then(Value::as_text).filter(|k| *k != "N/A" && !k.trim().is_empty())?;
    if ping_type == PingType::Mix {
        // A pubring.mix entry: the summary line, a blank line, the key block.
        let summary = key.get("summary").and_then(Value::as_text).unwrap_or_default();
        Some(format!("{summary}\n\n{material}\n"))
    } else {
        Some(material.to_owned())
    }
}

/// The `.done` (`sent latency`) and `.out` (`sent`) logs of one key.
fn read_ping_logs(
    data: &Path,
    base: &str,
    address: &str,
    ping_type: PingType,
    key_id: &str,
    pings: &mut Vec<ImportedPing>,
    skipped: &mut Vec<String>,
) {
    let mut by_sent: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for (extension, done) in [("out", false), ("done", true)] {
        let path = data.join(format!("{base}.{extension}"));
        let text = match read_limited(&path) {
            Ok(t) => t,
            Err(e) => {
                skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parsed = match (done, fields.as_slice()) {
                (_, []) => continue,
                (false, [sent]) => sent.parse::<i64>().ok().map(|s| (s, None)),
                (true, [sent, latency]) => sent
                    .parse::<i64>()
                    .ok()
                    .zip(latency.parse::<i64>().ok().filter(|l| *l >= 0))
                    .map(|(s, l)| (s, Some(s.saturating_add(l)))),
                _ => None,
            };
            match parsed {
                Some((sent, returned)) if sent > 0 => {
                    // A return recorded in .done wins over a stale .out line (Echolot
                    // rewrites .out after appending to .done, not atomically).
                    let entry = by_sent.entry(sent).or_insert(returned);
                    if returned.is_some() {
                        *entry = returned;
                    }
                }
                _ => skipped.push(format!(
                    "{}:{}: `{}` is not {}",
                    path.display(),
                    i + 1,
                    line.chars().take(80).collect::<String>(),
                    if done { "`<sent> <latency>`" } else { "a send time" }
                )),
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            skipped
                .push(format!("{}: the last line is cut short (a truncated log)", path.display()));
        }
    }
    for (sent, returned) in by_sent {
        pings.push(ImportedPing {
            address: address.to_owned(),
            ping_type,
            key_id: Some(key_id.to_owned()),
            sent,
            returned,
        });
    }
}

/// `chainpings.<family>.out` (every chain ping sent) and `.done` (those that came back, with
/// their latency).
fn read_chains(data: &Path, family: ChainType, out: &mut EcholotHome) {
    let mut sent: BTreeMap<(i64, String, String), Option<i64>> = BTreeMap::new();
    for (extension, done) in [("out", false), ("done", true)] {
        let path = data.join(format!("chainpings.{family}.{extension}"));
        if !path.exists() {
            continue;
        }
        let text = match read_limited(&path) {
            Ok(t) => t,
            Err(e) => {
                out.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let expected = if done { 8 } else { 7 };
            let time = f.first().and_then(|t| t.parse::<i64>().ok());
            let latency = if done { f.get(7).and_then(|l| l.parse::<i64>().ok()) } else { Some(0) };
            match (f.len() == expected, time, latency) {
                (true, Some(t), Some(l)) if t > 0 && l >= 0 => {
                    let key = (t, f[1].to_ascii_lowercase(), f[4].to_ascii_lowercase());
                    let entry = sent.entry(key).or_insert(None);
                    if done {
                        *entry = Some(t + l);
                    }
                }
                _ => out.skipped.push(format!(
                    "{}:{}: `{}` is not a chain ping line",
                    path.display(),
                    i + 1,
                    line.chars().take(80).collect::<String>()
                )),
            }
        }
    }
    for ((t, addr1, addr2), returned) in sent {
        out.chains.push(ImportedChain { chain_type: family, addr1, addr2, sent: t, returned });
    }
}

/// `<id>.<kind>` raw replies, by the ids of the metadata's addresses.
fn read_thesaurus(dir: &Path, ids: &BTreeMap<i64, String>, out: &mut EcholotHome) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<_> = entries.flatten().collect();
    files.sort_by_key(|e| e.file_name());
    for entry in files {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((id, kind)) = name.split_once('.') else { continue };
        let (Ok(id), Some(kind)) = (id.parse::<i64>(), RequestKind::parse(kind)) else { continue };
        let Some(address) = ids.get(&id) else {
            out.skipped.push(format!("{}: no address has id {id}", entry.path().display()));
            continue;
        };
        let received_at = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        match read_limited(&entry.path()) {
            Ok(mut body) => {
                let mut cut = body.len().min(MAX_REPLY_BYTES);
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
                out.replies.push(EcholotReply {
                    address: address.clone(),
                    kind,
                    received_at,
                    body,
                });
            }
            Err(e) => out.skipped.push(format!("{}: {e}", entry.path().display())),
        }
    }
}

fn read_from_lines(metadata: &Value, out: &mut EcholotHome) {
    let Some(all) = metadata.get("fromlines").and_then(Value::as_hash) else { return };
    for (address, by_type) in all {
        for (type_name, by_flag) in by_type.as_hash().into_iter().flatten() {
            let Ok(ping_type) = type_name.parse::<PingType>() else { continue };
            for (flag, line) in by_flag.as_hash().into_iter().flatten() {
                let (Some(from), Some(seen_at)) = (
                    line.get("from").and_then(Value::as_text),
                    line.get("last_update").and_then(Value::as_i64),
                ) else {
                    continue;
                };
                out.from_lines.push(EcholotFromLine {
                    address: address.to_ascii_lowercase(),
                    ping_type,
                    with_from: flag == "1",
                    from: from.to_owned(),
                    seen_at,
                });
            }
        }
    }
}

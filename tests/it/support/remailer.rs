//! A type I (cypherpunk) remailer double for integration tests.
//!
//! A real type I remailer (Mixmaster 3 with `PGP y`, or an old cypherpunk remailer) cannot run in
//! the test environment, so this double stands in for one. It is meant to be FAITHFUL to the
//! protocol as Mixmaster 3 implements it (see the project's spec `mixmaster.md` §4 and §4.1, and
//! `echolot.md` §3.2 for what a pinger sends), so that a pinger that works against it also works
//! against the real network:
//!
//! - Header names are case-insensitive. A mail is type I when the mail header, or a `::`
//!   pseudo-header block at the start of the body, carries one of the trigger headers (`Anon-To`,
//!   `Request-Remailing-To`, `Remail-To`, `Anon-Send-To`, `Send-To`, `Encrypted`, `Test-To`,
//!   `Anon-Post-To`, `Post-To`, `Remix-To`, `Encrypt-To`).
//! - `Encrypted:` (any value): the first `-----BEGIN PGP MESSAGE-----` .. `-----END PGP
//!   MESSAGE-----` block is decrypted with this remailer's key (real GnuPG, which, like
//!   Mixmaster, accepts RSA and ElGamal session keys and 3DES/CAST5/Blowfish/AES), whatever
//!   followed the armour is appended, and the result is parsed again as headers (it may begin
//!   with a `::` line). This repeats for nested encryption to the same remailer.
//! - `Anon-To:`, `Request-Remailing-To:`, `Remail-To:`, `Anon-Send-To:` give the recipients
//!   (comma-separated lists and several headers are joined). Only ONE pseudo-header block is
//!   read per layer: in a chain hop the decrypted text is `::\nAnon-To: next\n\n::\nEncrypted:
//!   PGP\n\n<armour>`, and everything after the first block (here, the next hop's `::` block and
//!   armour, which this remailer cannot decrypt) is the body that is forwarded.
//! - After the header block, a `##` line starts lines (up to an empty line) that are pasted into
//!   the outgoing header. Without a pasted `From:` the mail comes `From: Anonymous
//!   <nobody@<domain>>`.
//! - The outgoing mail is `From`, `To`, `Date`, `Message-ID`, the pasted headers, an empty line
//!   and the remaining body, sent by SMTP with the remailer's address as envelope sender.
//! - `Null:` makes the message a dummy that is discarded silently.
//!
//! Simplifications (documented deviations from Mixmaster, none of which a pinger relies on):
//! `Latent-Time` is ignored (delivery is immediate); no remixing into type II, no `Comments:`
//! disclaimer, no `Sender:` when a From is pasted, no header/destination block lists;
//! `Test-To`, `Anon-Post-To`, `Post-To`, `Remix-To`, `Encrypt-To`, `Cutmarks` and the
//! `Encrypt-Key`-style reply-block headers are not implemented and are reported in `errors()`;
//! plaintext (cpunk-clear) messages are accepted (as with `UNENCRYPTED y`). Empty lines before
//! the body's `::` line are tolerated. Messages already in `new/` when the double starts are
//! left alone (they belong to an earlier run), so a test only sees its own mail.
//!
//! Test-only behaviours (`Behaviour`) let tests simulate a replaying, corrupting or dead
//! remailer. They apply to "final deliveries", i.e. outgoing mail whose body is not itself a
//! type I message for a next hop (does not begin with a `::` line).

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fathometer::compose::mixmaster::{self, OsRandom};
use fathometer_testkit::mixmaster::{Decoded, SecretKey, decode_packet};

use super::gpg::GpgHome;

/// What the double does with the mail it would deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// A well-behaved remailer.
    #[default]
    Forward,
    /// Forwards every final delivery twice (a replay).
    Duplicate,
    /// Alters one base64 character inside the PGP MESSAGE armour of the final payload before
    /// delivering (so the armour checksum no longer matches).
    Corrupt,
    /// Swallows everything (still counted in `handled()`).
    Drop,
}

#[derive(Default)]
struct Shared {
    handled: usize,
    errors: Vec<String>,
    forwarded: Vec<String>,
    profile: Option<Profile>,
    /// What it does now ([`TestRemailer::set_behaviour`] changes it while it runs).
    behaviour: Behaviour,
    /// True for a remailer whose replay protection is broken: it forgets packet IDs.
    no_replay_log: bool,
    /// The IDs of the type II packets it processed (Mixmaster's `id.log`).
    packet_ids: HashSet<[u8; 16]>,
    /// Type II packets dropped because their ID was in the log.
    replays_dropped: usize,
    /// YAMN's ID log.
    yamn_ids: fathometer::simulation::yamn::IdLog,
}

/// What the double says about itself when asked (`mixmaster.md` §5): with a profile it
/// answers `remailer-conf`, `-key`, `-help`, `-stats` and `-adminkey` requests as Mixmaster
/// 3.0.2d does (immediately, to Reply-To or else From, `From: <name> <address>`).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub nick: String,
    /// Capability words after the address, e.g. "cpunk max mix pgp pgponly".
    pub caps: String,
    /// The armoured type I key (the DSA/ElGamal key), if any.
    pub pgp_key: Option<String>,
    /// `pubring.mix` entries (header line, blank line, key block) of its Mix keys.
    pub mix_entries: Vec<String>,
    /// Header lines of the type II remailers it lists as supported.
    pub supported_type2: Vec<String>,
    /// Its Mix secret keys: with them it also handles type II packets (see [`Worker::mix`]).
    pub mix_secret: Vec<SecretKey>,
    /// Its YAMN secret keys: with them it handles YAMN packets (see [`Worker::yamn`]), on
    /// day `yamn_day` (the vector keys are valid 2026-12-02 to 2026-12-16 only).
    pub yamn_secret: Vec<fathometer::simulation::yamn::SecretKey>,
    pub yamn_day: i64,
}

impl Profile {
    fn caps_line(&self, address: &str) -> String {
        format!("$remailer{{\"{}\"}} = \"<{address}> {}\";", self.nick, self.caps)
    }

    /// The subject and body of the answer to `request` (help, stats, ...), None if unknown.
    fn answer(&self, request: &str, address: &str) -> Option<(String, String)> {
        let nick = &self.nick;
        let caps = self.caps_line(address);
        Some(match request {
            "remailer-conf" => {
                let mut body = format!(
                    "Remailer-Type: Mixmaster 3.0.2d\nSupported formats:\n   Mixmaster\n   \
                     Cypherpunk with PGP encryption\nPool size: 0\n\n{caps}\n\n\
                     SUPPORTED CPUNK (TYPE I) REMAILERS\n\n\
                     SUPPORTED MIXMASTER (TYPE II) REMAILERS\n"
                );
                for line in &self.supported_type2 {
                    body.push_str(line);
                    body.push('\n');
                }
                (format!("Capabilities of the {nick} remailer"), body)
            }
            "remailer-key" => {
                let mut body = format!("{caps}\n\n");
                if let Some(key) = &self.pgp_key {
                    body.push_str(&format!("Here is the DSA PGP key:\n\n{key}\n"));
                }
                body.push_str("Here is the Mixmaster key:\n\n=-=-=-=-=-=-=-=-=-=-=-=\n");
                for entry in &self.mix_entries {
                    body.push_str(entry);
                    body.push('\n');
                }
                (format!("Remailer key for {nick}"), body)
            }
            "remailer-stats" => (
                format!("Statistics for the {nick} remailer"),
                "Number of messages in the past 24 hours:\n    4h:    Mix:   0     PGP:    0\n"
                    .to_owned(),
            ),
            "remailer-help" | "help" => (
                format!("Your help request for the {nick} remailer"),
                format!("Help for the {nick} test remailer.\n"),
            ),
            "remailer-adminkey" => (
                format!("Admin key for the {nick} remailer"),
                format!("Remailer Administrator key for {nick} would go here (test).\n"),
            ),
            _ => return None,
        })
    }
}

/// A running remailer double; dropping it stops (and joins) its thread.
pub struct TestRemailer {
    address: String,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestRemailer {
    /// Starts a thread that polls `maildir/new` every ~50 ms and handles each message like a
    /// type I remailer, then moves it to `cur/`. Messages present in `new/` at start are ignored.
    pub fn start(
        address: &str,
        maildir: PathBuf,
        gpg: GpgHome,
        smtp: SocketAddr,
        behaviour: Behaviour,
    ) -> Self {
        let new_dir = maildir.join("new");
        assert!(new_dir.is_dir(), "{} is not a Maildir (no new/)", maildir.display());
        let backlog: HashSet<OsString> = std::fs::read_dir(&new_dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let shared = Arc::new(Mutex::new(Shared { behaviour, ..Shared::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            address: address.to_string(),
            domain: address.rsplit_once('@').map_or("localhost", |(_, d)| d).to_string(),
            maildir,
            gpg,
            smtp,
            shared: Arc::clone(&shared),
        };
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("remailer-double {address}"))
            .spawn(move || worker.run(&stop2, backlog))
            .expect("spawn remailer thread");
        Self { address: address.to_string(), shared, stop, thread: Some(thread) }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Messages processed (including ones that failed or were dropped).
    pub fn handled(&self) -> usize {
        self.lock().handled
    }

    /// Everything it could not handle, as "<maildir file>: <reason>".
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Raw text (LF line ends, as handed to SMTP before CRLF conversion) of every message sent.
    pub fn forwarded(&self) -> Vec<String> {
        self.lock().forwarded.clone()
    }

    /// Changes what it does with the next message (a remailer going down and coming back).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Turns its replay log off: like a Mixmaster whose `id.log` is lost or ignored, it
    /// processes a packet it has seen before again.
    pub fn without_replay_log(&self) {
        self.lock().no_replay_log = true;
    }

    /// Type II packets it dropped as replays.
    pub fn replays_dropped(&self) -> usize {
        self.lock().replays_dropped
    }

    /// Makes it answer information requests (`remailer-conf`, ...) with `profile`.
    pub fn set_profile(&self, profile: Profile) {
        self.lock().profile = Some(profile);
    }

    /// Waits until `handled() >= n`; false on timeout.
    pub fn wait_handled(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.handled() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.handled() >= n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TestRemailer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    address: String,
    domain: String,
    maildir: PathBuf,
    gpg: GpgHome,
    smtp: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

/// One outgoing mail.
struct Outgoing {
    rcpts: Vec<String>,
    text: String,
    /// Body is a type I message for a further hop (not a final delivery).
    hop: bool,
}

impl Worker {
    fn run(self, stop: &AtomicBool, backlog: HashSet<OsString>) {
        let new_dir = self.maildir.join("new");
        let cur_dir = self.maildir.join("cur");
        while !stop.load(Ordering::SeqCst) {
            let mut names: Vec<OsString> = match std::fs::read_dir(&new_dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .filter(|n| !backlog.contains(n) && !n.to_string_lossy().starts_with('.'))
                    .collect(),
                Err(e) => {
                    self.error("new/", format!("cannot read {}: {e}", new_dir.display()));
                    Vec::new()
                }
            };
            names.sort();
            for name in names {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = new_dir.join(&name);
                let label = name.to_string_lossy().into_owned();
                let raw = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(_) => continue, // taken away meanwhile
                };
                let mut dest_name = name.clone();
                if !label.contains(":2,") {
                    dest_name.push(":2,S");
                }
                // Move first, so a message is never handled twice.
                if std::fs::rename(&path, cur_dir.join(&dest_name)).is_err() {
                    continue;
                }
                let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(&text)));
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.error(&label, e),
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        self.error(&label, format!("panic while handling: {msg}"));
                    }
                }
                self.lock().handled += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, label: &str, reason: String) {
        self.lock().errors.push(format!("{label}: {reason}"));
    }

    fn handle(&self, text: &str) -> Result<(), String> {
        let Some(out) = self.process(text)? else {
            return Ok(()); // Null: dummy message
        };
        let behaviour = self.lock().behaviour;
        if behaviour == Behaviour::Drop {
            return Ok(());
        }
        let final_delivery = !out.hop;
        let mut text = out.text;
        if final_delivery && behaviour == Behaviour::Corrupt {
            text = corrupt_armour(&text)
                .ok_or("Corrupt: no PGP MESSAGE armour in the final payload; not delivered")?;
        }
        let copies = if final_delivery && behaviour == Behaviour::Duplicate { 2 } else { 1 };
        for _ in 0..copies {
            smtp_send(self.smtp, &self.address, &out.rcpts, &text)?;
            self.lock().forwarded.push(text.clone());
        }
        Ok(())
    }

    /// Type I processing (mixmaster.md §4.1). `Ok(None)` for a `Null:` dummy.
    fn process(&self, mail: &str) -> Result<Option<Outgoing>, String> {
        let mail =
            mail.strip_prefix("From ").map_or(mail, |r| r.split_once('\n').map_or("", |x| x.1));
        let (mail_fields, _, body) = parse_block(mail);
        // A YAMN remailer answers requests its own way, and some not at all.
        let subject = mail_fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("subject"))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let profile = self.lock().profile.clone();
        if let Some(p) = profile.as_ref().filter(|p| !p.yamn_secret.is_empty())
            && subject.starts_with("remailer-")
        {
            let from = mail_fields.iter().find(|(n, _)| n.eq_ignore_ascii_case("from"));
            return self.yamn_answer(p, &subject, from.map(|(_, v)| v.as_str()));
        }
        if let Some(answer) = self.answer_request(&mail_fields)? {
            return Ok(Some(answer));
        }
        if body.contains("-----BEGIN REMAILER MESSAGE-----") {
            if body.contains("Remailer-Type: yamn") {
                return self.yamn(mail);
            }
            return self.mix(mail);
        }
        let mut req = Request::default();
        for (name, value) in &mail_fields {
            req.apply(name, value);
        }
        // The body may start with a `::` pseudo-header block.
        let mut text = body.to_string();
        {
            let trimmed = text.trim_start_matches('\n');
            if let Some(rest) = strip_line(trimmed, "::") {
                let (fields, _, rest) = parse_block(rest);
                for (name, value) in &fields {
                    req.apply(name, value);
                }
                text = rest.to_string();
            }
        }
        if !req.type1 {
            return Err("not a type I message: no Anon-To/Encrypted/... header in the mail \
                        header or in a :: block"
                .into());
        }
        let mut layers = 0;
        while req.encrypted {
            req.encrypted = false;
            layers += 1;
            if layers > 16 {
                return Err("more than 16 nested Encrypted layers".into());
            }
            let (armour, rest) = find_armour(&text)
                .ok_or("Encrypted: header but no -----BEGIN PGP MESSAGE----- block")?;
            let dec = self
                .gpg
                .decrypt(armour.as_bytes())
                .map_err(|e| format!("cannot decrypt the PGP message: {e}"))?;
            let mut plain = String::from_utf8_lossy(&dec.plaintext).replace("\r\n", "\n");
            if !rest.is_empty() && !plain.ends_with('\n') {
                plain.push('\n');
            }
            plain.push_str(rest);
            // Parsed again as headers; it may begin with a `::` line.
            let after = strip_line(&plain, "::").unwrap_or(&plain);
            let (fields, _, rest) = parse_block(after);
            for (name, value) in &fields {
                req.apply(name, value);
            }
            text = rest.to_string();
        }
        if req.null {
            return Ok(None);
        }
        if !req.unsupported.is_empty() {
            return Err(format!(
                "unsupported type I header(s) for this double: {}",
                req.unsupported.join(", ")
            ));
        }
        if req.dests.is_empty() {
            return Err("type I message without a destination (Anon-To etc.)".into());
        }
        // `##`: header lines pasted into the outgoing mail.
        let mut pasted: Vec<String> = Vec::new();
        let mut pasted_from = None;
        if let Some(rest) = strip_line(&text, "##") {
            let (fields, lines, rest) = parse_block(rest);
            for (name, value) in &fields {
                if name.eq_ignore_ascii_case("from") {
                    pasted_from = Some(value.clone());
                }
            }
            pasted = lines
                .into_iter()
                .filter(|l| !l.split(':').next().unwrap_or("").trim().eq_ignore_ascii_case("from"))
                .collect();
            text = rest.to_string();
        }
        let hop = line_is(text.lines().next().unwrap_or(""), "::");
        let mut out = String::new();
        match pasted_from {
            Some(f) => out.push_str(&format!("From: {f}\n")),
            None => out.push_str(&format!("From: Anonymous <nobody@{}>\n", self.domain)),
        }
        out.push_str(&format!("To: {}\n", req.dests.join(", ")));
        out.push_str(&format!("Date: {}\n", rfc2822_now()));
        out.push_str(&format!("Message-ID: <{}@{}>\n", message_id(&text), self.domain));
        for l in &pasted {
            out.push_str(l);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&text);
        Ok(Some(Outgoing { rcpts: req.dests, text: out, hop }))
    }
}

impl Worker {
    /// A type II packet, handled as Mixmaster 3.0.2d does (`mixmaster.md` §1.6, §1.7), with the
    /// project's decoder (`fathometer::compose::mixmaster`, itself checked against real remailers'
    /// output by the v1-v6 vectors): dearmor, decrypt with its secret key, then forward the
    /// next packet (type 0) or deliver the payload (type 1). The delivered mail has the
    /// headers a real remailer adds (From Anonymous, the Comments disclaimer, Message-ID) and,
    /// as when Mixmaster sends through an SMTP relay, one extra empty line before the body.
    /// Like Mixmaster it keeps the ID of every packet it processed and drops a packet whose
    /// ID it has seen (`Ok(None)`), unless [`TestRemailer::without_replay_log`].
    /// Not implemented: the pool (delivery is immediate), multi-part messages.
    fn mix(&self, mail: &str) -> Result<Option<Outgoing>, String> {
        let keys = self.lock().profile.as_ref().map(|p| p.mix_secret.clone()).unwrap_or_default();
        if keys.is_empty() {
            return Err("a type II packet, but this double has no Mix key".into());
        }
        let packet = mixmaster::dearmor(mail).map_err(|e| format!("dearmor: {e}"))?;
        let today =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 86_400;
        let decoded = decode_packet(&packet, &keys, today as i64, &mut OsRandom)
            .map_err(|e| format!("type II packet refused: {e}"))?;
        {
            let mut shared = self.lock();
            let fresh = shared.packet_ids.insert(decoded.fields().packet_id);
            if !fresh && !shared.no_replay_log {
                shared.replays_dropped += 1;
                return Ok(None);
            }
        }
        let out = match decoded {
            Decoded::Intermediate { next_address, next_packet, .. } => {
                let text = format!(
                    "From: {}\nTo: {next_address}\n\n{}",
                    self.address,
                    mixmaster::armor(&next_packet)
                );
                Ok(Outgoing { rcpts: vec![next_address], text, hop: true })
            }
            Decoded::Final { payload, .. } => {
                let body = String::from_utf8_lossy(&payload.user_data).into_owned();
                let own_from =
                    payload.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("from:"));
                let mut out = String::new();
                if !own_from {
                    out.push_str(&format!("From: Anonymous <nobody@{}>\n", self.domain));
                }
                out.push_str(&format!(
                    "Comments: This message did not originate from the Sender address above.\n\
                     \tIt was remailed automatically by anonymizing remailer software.\n\
                     \tPlease report problems or inappropriate use to the\n\
                     \tremailer administrator at <abuse@{}>.\n",
                    self.domain
                ));
                out.push_str(&format!("To: {}\n", payload.destinations.join(",")));
                for h in &payload.headers {
                    out.push_str(h);
                    out.push('\n');
                }
                out.push_str(&format!("Message-ID: <{}@{}>\n\n\n", message_id(&body), self.domain));
                out.push_str(&body);
                Ok(Outgoing { rcpts: payload.destinations, text: out, hop: false })
            }
            Decoded::Partial { .. } => {
                Err("multi-part type II messages: not in this double".into())
            }
        };
        out.map(Some)
    }

    /// A YAMN packet, handled as YAMN 0.2.7 does (`yamn.md` §3, §6), with the project's
    /// decoder (`fathometer::simulation::yamn`, which reproduces the real remailers' outputs
    /// of the vectors byte for byte): dearmour, decode with its secret keys on `yamn_day`
    /// (its ID log drops a replay), then mail the next packet as YAMN does, or deliver the
    /// plaintext to its `To:`/`Cc:` with `Date:` and `Message-Id:` replaced and the From:
    /// address its own (display name kept, `custom_from: false`). Not implemented: the pool
    /// (delivery is immediate), multi-chunk messages, header order shuffling.
    fn yamn(&self, mail: &str) -> Result<Option<Outgoing>, String> {
        use fathometer::compose::yamn as armor;
        use fathometer::simulation::yamn::{Decoded as YamnDecoded, decode_packet as decode};
        let (keys, day) = {
            let shared = self.lock();
            let p = shared.profile.as_ref();
            (p.map(|p| p.yamn_secret.clone()).unwrap_or_default(), p.map_or(0, |p| p.yamn_day))
        };
        if keys.is_empty() {
            return Err("a YAMN packet, but this double has no YAMN key".into());
        }
        let packet = armor::dearmor(mail).map_err(|e| format!("YAMN dearmor: {e}"))?;
        let decoded = {
            let mut shared = self.lock();
            decode(&packet, &keys, day, &mut shared.yamn_ids)
        };
        match decoded.map_err(|e| format!("YAMN packet refused: {e}"))? {
            YamnDecoded::Intermediate { next_address, next_packet, .. } => {
                let text = format!(
                    "To: {next_address}\nFrom: {}\nSubject: {}\n\n{}",
                    self.address,
                    armor::REMAILER_TYPE,
                    armor::armor(&next_packet)
                );
                Ok(Some(Outgoing { rcpts: vec![next_address], text, hop: true }))
            }
            YamnDecoded::Exit { plaintext, chunks, .. } => {
                if chunks != 1 {
                    return Err("multi-chunk YAMN messages: not in this double".into());
                }
                let plaintext = String::from_utf8_lossy(&plaintext).into_owned();
                let (head, body) = plaintext.split_once("\n\n").unwrap_or((&plaintext, ""));
                let (fields, _, _) = parse_block(&format!("{head}\n\n"));
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                let rcpts: Vec<String> = [field("to"), field("cc")]
                    .into_iter()
                    .flatten()
                    .flat_map(|v| v.split(',').map(clean_addr).collect::<Vec<_>>())
                    .filter(|a| !a.is_empty())
                    .collect();
                if rcpts.is_empty() {
                    return Ok(None);
                }
                let name = field("from")
                    .and_then(|f| f.split_once('<').map(|(n, _)| n.trim().to_owned()))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "Anonymous Remailer".into());
                let mut out = format!(
                    "Message-Id: <{}@{}>\nDate: {}\nFrom: {name} <{}>\n",
                    message_id(body),
                    self.domain,
                    rfc2822_now(),
                    self.address
                );
                for (n, v) in &fields {
                    let lower = n.to_ascii_lowercase();
                    if !["from", "date", "message-id"].contains(&lower.as_str())
                        && !lower.starts_with("yamn-")
                    {
                        out.push_str(&format!("{n}: {v}\n"));
                    }
                }
                out.push('\n');
                out.push_str(body);
                Ok(Some(Outgoing { rcpts, text: out, hop: false }))
            }
        }
    }

    /// An information request (Subject equal to `remailer-conf` etc.): the answer mail.
    fn answer_request(&self, fields: &[(String, String)]) -> Result<Option<Outgoing>, String> {
        let field = |name: &str| {
            fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        };
        let subject = field("subject").unwrap_or("").trim().to_ascii_lowercase();
        if !subject.starts_with("remailer-") && subject != "help" {
            return Ok(None);
        }
        let profile = self.lock().profile.clone();
        let Some((subject_out, body)) =
            profile.as_ref().and_then(|p| p.answer(&subject, &self.address))
        else {
            return Err(format!("no answer to a `{subject}` request"));
        };
        let to = clean_addr(field("reply-to").or(field("from")).ok_or("request without From")?);
        let name = format!("Test Remailer {}", profile.map(|p| p.nick).unwrap_or_default());
        let text = format!(
            "From: {name} <{}>\nTo: {to}\nSubject: {subject_out}\nDate: {}\n\
             Message-ID: <{}@{}>\n\n{body}",
            self.address,
            rfc2822_now(),
            message_id(&body),
            self.domain
        );
        Ok(Some(Outgoing { rcpts: vec![to], text, hop: true }))
    }
}

impl Worker {
    /// An information request to a YAMN remailer, answered as YAMN 0.2.7 does (`yamn.md`
    /// §10): at once, to the request's whole `From:` value (a `Name <addr>` From fails as
    /// YAMN's SMTP relay fails, `501 Syntax: RCPT TO`), `From:` its bare address, no Date or
    /// Message-Id; `remailer-conf` with the `v2` capability string and the summary lines of
    /// its pubring, `remailer-key` with its key.txt, help and adminkey; nothing to
    /// `remailer-stats` or anything else.
    fn yamn_answer(
        &self,
        p: &Profile,
        subject: &str,
        from: Option<&str>,
    ) -> Result<Option<Outgoing>, String> {
        let nick = &p.nick;
        let middle = if p.caps.contains("middle") { " middle" } else { "" };
        let (subject_out, body) = if subject.starts_with("remailer-key") {
            let mut body = "Here is the Mixmaster key:\n\n=-=-=-=-=-=-=-=-=-=-=-=\n".to_owned();
            for entry in &p.mix_entries {
                body.push_str(entry);
            }
            body.push('\n');
            (format!("Remailer key for {nick}"), body)
        } else if subject.starts_with("remailer-conf") {
            let mut body = format!(
                "Remailer-Type: Mixmaster 0.2.7\nSupported Formats:\n   Mixmaster\nPool size: 0\n\
                 Maximum message size: 12 kB\nThe following header lines will be filtered:\n\n\
                 $remailer{{\"{nick}\"}} = \"<{}>{middle} v2\";\n\n\
                 SUPPORTED MIXMASTER (TYPE II) REMAILERS\n",
                self.address
            );
            for line in &p.supported_type2 {
                body.push_str(line);
                body.push('\n');
            }
            (format!("Capabilities of the {nick} remailer"), body)
        } else if subject.starts_with("remailer-help") {
            (
                format!("Your help request for the {nick} Anonymous Remailer"),
                format!("Help for the {nick} YAMN test remailer.\n"),
            )
        } else if subject.starts_with("remailer-adminkey") {
            (format!("Admin key for the {nick} remailer"), "No admin key here (test).\n".into())
        } else {
            // "ignoring request for remailer-stats"
            return Ok(None);
        };
        let to = from.ok_or("request without From")?.trim().to_owned();
        if to.contains('<') {
            return Err(format!("501 Syntax: RCPT TO:<{to}> (YAMN relays the whole From value)"));
        }
        let text = format!("Subject: {subject_out}\nFrom: {}\nTo: {to}\n\n{body}", self.address);
        Ok(Some(Outgoing { rcpts: vec![to], text, hop: true }))
    }
}

#[derive(Default)]
struct Request {
    type1: bool,
    encrypted: bool,
    null: bool,
    dests: Vec<String>,
    unsupported: Vec<String>,
}

impl Request {
    fn apply(&mut self, name: &str, value: &str) {
        let n = name.to_ascii_lowercase();
        match n.as_str() {
            "anon-to" | "request-remailing-to" | "remail-to" | "anon-send-to" => {
                self.type1 = true;
                self.dests.extend(
                    value.split(',').map(|s| s.trim()).filter(|s| !s.is_empty()).map(clean_addr),
                );
            }
            "encrypted" => {
                self.type1 = true;
                self.encrypted = true;
            }
            "send-to" => self.type1 = true,
            "test-to" | "anon-post-to" | "post-to" | "remix-to" | "encrypt-to" => {
                self.type1 = true;
                self.unsupported.push(name.to_string());
            }
            "null" => self.null = true,
            "cutmarks" | "encrypt-key" | "encrypt-idea" | "encrypt-des" | "encrypt-3des"
            | "encrypt-cast" | "encrypt-cast5" => self.unsupported.push(name.to_string()),
            _ => {} // Latent-Time and anything else: ignored
        }
    }
}

/// `Name <a@b>` or `<a@b>` -> `a@b`.
fn clean_addr(s: &str) -> String {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim().to_string(),
        _ => s.to_string(),
    }
}

fn line_is(line: &str, what: &str) -> bool {
    line.trim_end() == what
}

/// If `text` starts with the line `what`, the text after that line.
fn strip_line<'a>(text: &'a str, what: &str) -> Option<&'a str> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    line_is(first, what).then_some(rest)
}

/// Reads a header block: "Name: value" lines (with folded continuation lines) up to and
/// including an empty line. A line that is not a header ends the block (it stays in the rest).
/// Returns the fields, the raw (unfolded-as-written) lines, and the rest of the text.
fn parse_block(text: &str) -> (Vec<(String, String)>, Vec<String>, &str) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let line = text[pos..end].trim_end_matches('\n');
        if line.trim().is_empty() {
            return (fields, raw, &text[end..]);
        }
        if line.starts_with([' ', '\t']) && !fields.is_empty() {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            if let Some(l) = raw.last_mut() {
                l.push('\n');
                l.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':').filter(|(n, _)| is_field_name(n)) {
            fields.push((name.to_string(), value.trim().to_string()));
            raw.push(line.to_string());
        } else {
            return (fields, raw, &text[pos..]);
        }
        pos = end;
    }
    (fields, raw, "")
}

fn is_field_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

const BEGIN: &str = "-----BEGIN PGP MESSAGE-----";
const END: &str = "-----END PGP MESSAGE-----";

/// The first armoured PGP message (through the END line) and the text after its line.
fn find_armour(text: &str) -> Option<(&str, &str)> {
    let start = text.find(BEGIN)?;
    let end_rel = text[start..].find(END)?;
    let end = start + end_rel + END.len();
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    Some((&text[start..line_end], &text[line_end..]))
}

/// Changes one base64 character in the middle of the first data line of the first PGP MESSAGE
/// armour of `mail`. None when there is no armour.
pub fn corrupt_armour(mail: &str) -> Option<String> {
    let start = mail.find(BEGIN)?;
    let end = start + mail[start..].find(END)?;
    // Skip the BEGIN line and the armour headers, up to the empty line.
    let mut pos = start + mail[start..].find('\n')? + 1;
    let mut in_headers = true;
    while pos < end {
        let line_end = pos + mail[pos..].find('\n')?;
        let line = mail[pos..line_end].trim_end();
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if !line.contains(": ") {
                in_headers = false;
                continue; // armour without a header section: this is data
            }
        } else if line.len() > 2 && !line.starts_with('=') {
            let i = pos + line.len() / 2;
            let c = mail.as_bytes()[i];
            let new = if c == b'A' { 'B' } else { 'A' };
            let mut s = String::with_capacity(mail.len());
            s.push_str(&mail[..i]);
            s.push(new);
            s.push_str(&mail[i + 1..]);
            return Some(s);
        }
        pos = line_end + 1;
    }
    None
}

/// A minimal blocking SMTP client (no TLS, no auth), enough for the local Postfix: EHLO, MAIL
/// FROM, RCPT TO (each), DATA with CRLF line ends and dot-stuffing, QUIT.
pub fn smtp_send(smtp: SocketAddr, from: &str, rcpts: &[String], text: &str) -> Result<(), String> {
    let ctx = |what: &str, e: std::io::Error| format!("SMTP {smtp} {what}: {e}");
    let stream =
        TcpStream::connect_timeout(&smtp, Duration::from_secs(5)).map_err(|e| ctx("connect", e))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| ctx("timeout", e))?;
    stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(|e| ctx("timeout", e))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| ctx("clone", e))?);
    let mut w = stream;

    fn reply(r: &mut BufReader<TcpStream>) -> Result<(u16, String), String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).map_err(|e| format!("SMTP read: {e}"))?;
            if n == 0 {
                return Err(format!("SMTP connection closed; got so far: {all:?}"));
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, all));
            }
        }
    }
    let mut expect = |w: &mut TcpStream, cmd: Option<&str>, ok: &[u16]| -> Result<(), String> {
        if let Some(c) = cmd {
            w.write_all(format!("{c}\r\n").as_bytes()).map_err(|e| format!("SMTP write: {e}"))?;
        }
        let (code, text) = reply(&mut reader)?;
        if ok.contains(&code) {
            Ok(())
        } else {
            Err(format!("SMTP {}: unexpected reply {}", cmd.unwrap_or("greeting"), text.trim()))
        }
    };
    expect(&mut w, None, &[220])?;
    expect(&mut w, Some("EHLO localhost"), &[250])?;
    expect(&mut w, Some(&format!("MAIL FROM:<{from}>")), &[250])?;
    for r in rcpts {
        expect(&mut w, Some(&format!("RCPT TO:<{r}>")), &[250, 251])?;
    }
    expect(&mut w, Some("DATA"), &[354])?;
    let mut data = String::with_capacity(text.len() + 64);
    for line in text.replace("\r\n", "\n").split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    w.write_all(data.as_bytes()).map_err(|e| format!("SMTP write: {e}"))?;
    expect(&mut w, None, &[250])?;
    let _ = expect(&mut w, Some("QUIT"), &[221]);
    Ok(())
}

/// Messages in `maildir`'s `new/` and `cur/` whose content contains `marker`.
pub fn maildir_messages_containing(maildir: &Path, marker: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(maildir.join(sub)) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            if let Ok(b) = std::fs::read(e.path()) {
                let s = String::from_utf8_lossy(&b).into_owned();
                if s.contains(marker) {
                    found.push((e.path(), s));
                }
            }
        }
    }
    found.sort();
    found
}

/// Waits until at least `n` messages containing `marker` are in `maildir`; returns them (maybe
/// fewer, on timeout).
pub fn wait_for_messages(
    maildir: &Path,
    marker: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(PathBuf, String)> {
    let end = Instant::now() + timeout;
    loop {
        let found = maildir_messages_containing(maildir, marker);
        if found.len() >= n || Instant::now() >= end {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes the messages in `maildir` that contain `marker`; returns how many.
pub fn remove_messages_containing(maildir: &Path, marker: &str) -> usize {
    let found = maildir_messages_containing(maildir, marker);
    found.iter().filter(|(p, _)| std::fs::remove_file(p).is_ok()).count()
}

fn message_id(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:016x}.{nanos:x}", h.finish())
}

/// Current time as an RFC 2822 date in UTC.
fn rfc2822_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

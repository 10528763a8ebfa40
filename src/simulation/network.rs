//! The simulated remailer network: Mixmaster remailers that decode the pinger's real type II
//! packets with their own (generated) keys, as a Mixmaster 3.0.2d remailer does, and deliver
//! after a latency drawn from their profile; a simulated MTA that routes mail between them and
//! into the pinger's real Maildir, with the delivery time as the file's time (which is where
//! the pinger measures latency). Every decision comes from one seeded generator, so a seed
//! replays the same network. The ground truth of what happened is kept for the invariants.
//!
//! A stand-in, not the real thing: no real remailer can run inside a simulation. What a
//! remailer does with a packet is the decoder checked against the real remailers' vectors
//! (`super::mixmaster`); what it adds to the delivered mail follows `mixmaster.md` §1.7.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::mixmaster::{DecodeError, Decoded, SecretKey, decode_packet, keygen};
use crate::compose::Outgoing;
use crate::compose::mixmaster::{self, RngRandom};
use crate::model::SECONDS_PER_DAY;

/// How a simulated remailer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Minutes of latency, almost nothing lost.
    Good,
    /// Hours of latency.
    Slow,
    /// A third of the mail lost.
    Lossy,
    /// Down for a day or two every week, good otherwise.
    Flaky,
    /// Good until a third of the way through, then silent for good.
    Dying,
    /// One delivery in five altered on the way.
    Corrupting,
    /// Accepts mail as a middle hop only (the `middle` capability); good otherwise.
    Middleman,
    /// Its MTA refuses a quarter of the mail (a full disk, a quota) and sends a delivery
    /// status notification to the envelope sender, which for a ping is the pinger's tagged
    /// return address.
    Bouncing,
    /// Makes a new key a day into the run and every [`ROTATION_SECS`] after, announces only
    /// the new one in its key replies, and keeps decoding with the old one for
    /// [`GRACE_SECS`] (as Mixmaster keeps an old secret key until it expires); good otherwise.
    Rotating,
}

/// How often the rotating remailer makes a new key.
pub const ROTATION_SECS: i64 = 4 * SECONDS_PER_DAY;
/// How long it still decodes with the key it replaced: the pinger, asking for keys daily,
/// must have moved to the new key by then.
pub const GRACE_SECS: i64 = 3 * SECONDS_PER_DAY;

impl Profile {
    /// The profiles of a network of `n`, in order: varied enough for every list and chart.
    pub fn cycle(n: usize) -> Vec<Profile> {
        const ORDER: [Profile; 7] = [
            Profile::Good,
            Profile::Slow,
            Profile::Lossy,
            Profile::Rotating,
            Profile::Flaky,
            Profile::Corrupting,
            Profile::Dying,
        ];
        (0..n)
            .map(|i| match i {
                8 => Profile::Middleman,
                9 => Profile::Bouncing,
                _ => ORDER[i % ORDER.len()],
            })
            .collect()
    }
}

/// One simulated remailer.
pub struct SimRemailer {
    pub nick: String,
    pub address: String,
    pub profile: Profile,
    pub key: SecretKey,
    /// The day its current key was made.
    pub key_created_day: i64,
    /// Keys it replaced, with the instant it stops decoding with each.
    pub retired: Vec<(SecretKey, i64)>,
    /// When it makes its next key (the rotating profile).
    pub next_rotation: Option<i64>,
}

impl SimRemailer {
    /// Its `type2.list` line, as its conf reply lists it among the remailers it supports.
    fn type2_line(&self) -> String {
        let date = |day: i64| {
            chrono::DateTime::from_timestamp(day * SECONDS_PER_DAY, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        format!(
            "{} {} {} 2:3.0.2d C {} {}",
            self.nick,
            self.address,
            self.key.public().key_id_hex(),
            date(self.key_created_day),
            date(self.key_created_day + 3650)
        )
    }

    /// Its capability line.
    fn caps_line(&self) -> String {
        let middle = if self.profile == Profile::Middleman { " middle" } else { "" };
        format!("$remailer{{\"{}\"}} = \"<{}> mix{middle} klen1000\";", self.nick, self.address)
    }

    /// Its capability line and `pubring.mix` entry, as a remailer-key reply carries them.
    pub fn key_reply(&self) -> String {
        use base64::Engine as _;
        let public = self.key.public();
        let id = public.key_id_hex();
        let binary = public.to_binary();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&binary);
        let wrapped: Vec<&str> =
            b64.as_bytes().chunks(40).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
        format!(
            "{caps}\n\n{line}\n\n\
             -----Begin Mix Key-----\n{id}\n{len}\n{body}\n-----End Mix Key-----\n",
            caps = self.caps_line(),
            line = self.type2_line(),
            len = binary.len(),
            body = wrapped.join("\n"),
        )
    }

    /// Whether it is up at `t` (the flaky one is down two days a week, the dying one for good
    /// after `dies_at`).
    fn up(&self, t: i64, dies_at: i64) -> bool {
        match self.profile {
            Profile::Flaky => (t / SECONDS_PER_DAY) % 7 >= 2,
            Profile::Dying => t < dies_at,
            _ => true,
        }
    }
}

/// What reached the pinger's Maildir for a tagged address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arrival {
    /// The return as the pinger built it.
    Intact,
    /// The return, altered on the way (the corrupting profile).
    Altered,
    /// A delivery status notification: the message never reached the remailer.
    Bounce,
}

/// What is on its way, and where to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Destination {
    /// A remailer (by index) receives the armoured packet.
    Remailer(usize),
    /// The pinger's Maildir receives the mail.
    Pinger,
}

/// A mail on its way: when it arrives, its order among equal times, where, the bytes, what
/// it is (for the ground truth), and its envelope sender.
type InFlight = (i64, u64, Destination, Vec<u8>, Arrival, String);

/// What the simulation knows happened, for the invariants.
#[derive(Debug, Default, Clone)]
pub struct GroundTruth {
    /// Every mail the MTA accepted from the pinger, by its envelope sender (the tagged return
    /// address): when, and whether the pinger heard the MTA say so (a pinger killed between
    /// the MTA's 250 and its own record never did).
    pub accepted: BTreeMap<String, Vec<(i64, bool)>>,
    /// Every mail delivered into the pinger's Maildir, by recipient address: when, and what.
    pub delivered: BTreeMap<String, Vec<(i64, Arrival)>>,
    /// Mail lost by remailers (profile or down time).
    pub lost: u64,
    /// Copies delivered twice on purpose (the duplicate fault).
    pub duplicated: u64,
    /// Mail to the pinger lost on its own inbound path (the inbound fault): the pinger's
    /// failure, which its self-checks must reveal.
    pub lost_inbound: u64,
    /// Packets that reached a remailer encrypted to a key it no longer decodes with (the
    /// pinger kept using a key past the remailer's grace): when, and to whom.
    pub stale_key: Vec<(i64, String)>,
    /// Keys made by rotating remailers.
    pub rotations: u64,
    /// Requests for information the remailers answered.
    pub replies_sent: u64,
    /// Packets a remailer could not decode (should be none: the pinger builds them).
    pub undecodable: Vec<String>,
}

/// The network, the MTA between it and the pinger, and the pinger's Maildir.
pub struct Network {
    pub remailers: Vec<SimRemailer>,
    pub truth: GroundTruth,
    rng: StdRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    maildir: PathBuf,
    pinger_domain: String,
    dies_at: i64,
    /// The duplicate fault: this share of deliveries to the pinger is delivered twice.
    pub duplicate_share: f64,
    /// The inbound fault: mail to the pinger is lost before its mailbox (a broken alias, a
    /// full quota) while this is set.
    pub inbound_down: bool,
}

impl Network {
    /// `n` remailers with keys generated from `seed` (1024-bit, as most remailers have),
    /// delivering to the Maildir `maildir` of the pinger at `pinger_domain`. The dying one
    /// stops at `dies_at`.
    pub fn new(
        seed: u64,
        n: usize,
        maildir: &Path,
        pinger_domain: &str,
        start: i64,
        dies_at: i64,
    ) -> Network {
        let mut rng = StdRng::seed_from_u64(seed);
        let remailers = Profile::cycle(n)
            .into_iter()
            .enumerate()
            .map(|(i, profile)| {
                let nick = format!(
                    "{}{}",
                    NICKS[i % NICKS.len()],
                    if i < NICKS.len() { String::new() } else { (i / NICKS.len()).to_string() }
                );
                let key = keygen::generate(1024, &mut rng)
                    .expect("a 1024-bit key from two 512-bit primes");
                SimRemailer {
                    address: format!("{nick}@sim.example"),
                    nick,
                    profile,
                    key,
                    key_created_day: start.div_euclid(SECONDS_PER_DAY) - 30,
                    retired: Vec::new(),
                    next_rotation: (profile == Profile::Rotating)
                        .then_some(start + SECONDS_PER_DAY),
                }
            })
            .collect();
        Network {
            remailers,
            truth: GroundTruth::default(),
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            maildir: maildir.to_owned(),
            pinger_domain: pinger_domain.to_ascii_lowercase(),
            dies_at,
            duplicate_share: 0.0,
            inbound_down: false,
        }
    }

    fn push(&mut self, at: i64, to: Destination, text: Vec<u8>, sender: &str) {
        self.push_marked(at, to, text, Arrival::Intact, sender);
    }

    fn push_marked(
        &mut self,
        at: i64,
        to: Destination,
        text: Vec<u8>,
        what: Arrival,
        sender: &str,
    ) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, to, text, what, sender.to_owned())));
    }

    /// The simulated MTA takes a mail from the pinger at `now`; `heard`: the pinger lives to
    /// hear it.
    pub fn accept(&mut self, now: i64, mail: &Outgoing, heard: bool) {
        let from = mail.envelope_from.to_ascii_lowercase();
        self.truth.accepted.entry(from).or_default().push((now, heard));
        let to = mail.to.to_ascii_lowercase();
        if let Some(i) = self.remailers.iter().position(|r| r.address == to) {
            let at = now + self.rng.gen_range(1..30);
            self.push(at, Destination::Remailer(i), mail.message.clone(), &mail.envelope_from);
        } else if to.ends_with(&format!("@{}", self.pinger_domain)) {
            // Our own mail (the self-check) comes straight back.
            let at = now + self.rng.gen_range(1..60);
            self.push(at, Destination::Pinger, mail.message.clone(), &mail.envelope_from);
        } else {
            self.truth.lost += 1;
        }
    }

    /// Mail still on its way.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Everything due by `now` happens, in time order: remailers decode and forward or
    /// deliver, mail lands in the Maildir.
    pub fn run_until(&mut self, now: i64) -> std::io::Result<()> {
        while self.queue.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Some(Reverse((at, _, to, text, what, sender))) = self.queue.pop() else { break };
            self.rotate_keys(at);
            match to {
                Destination::Pinger => self.deliver(at, &text, what)?,
                Destination::Remailer(i) => self.remailer_handles(i, at, &text, &sender),
            }
        }
        Ok(())
    }

    /// Rotating remailers due a new key by `at` make one.
    fn rotate_keys(&mut self, at: i64) {
        for i in 0..self.remailers.len() {
            while let Some(due) = self.remailers[i].next_rotation.filter(|&t| t <= at) {
                let key = keygen::generate(1024, &mut self.rng)
                    .expect("a 1024-bit key from two 512-bit primes");
                let remailer = &mut self.remailers[i];
                let old = std::mem::replace(&mut remailer.key, key);
                remailer.retired.push((old, due + GRACE_SECS));
                remailer.key_created_day = due.div_euclid(SECONDS_PER_DAY);
                remailer.next_rotation = Some(due + ROTATION_SECS);
                self.truth.rotations += 1;
            }
        }
    }

    /// A request for information (`remailer-key`, `remailer-conf`) answered as Mixmaster
    /// answers it (`mixmaster.md` §5), to the request's From; other requests go unanswered.
    fn answer_request(&mut self, i: usize, at: i64, subject: &str, text: &[u8]) {
        let remailer = &self.remailers[i];
        let Some(reply_to) = header(text, "from").map(|f| angle_address(&f)) else { return };
        let (title, body) = match subject.trim().to_ascii_lowercase().as_str() {
            "remailer-key" => (format!("Remailer key for {}", remailer.nick), remailer.key_reply()),
            "remailer-conf" => {
                let supported: Vec<String> =
                    self.remailers.iter().map(SimRemailer::type2_line).collect();
                (
                    format!("Capabilities of the {} remailer", remailer.nick),
                    format!(
                        "Remailer-Type: Mixmaster 3.0.2d\nSupported formats:\n   Mixmaster\n\
                         Pool size: 0\n\n{}\n\nSUPPORTED CPUNK (TYPE I) REMAILERS\n\n\
                         SUPPORTED MIXMASTER (TYPE II) REMAILERS\n{}\n",
                        remailer.caps_line(),
                        supported.join("\n")
                    ),
                )
            }
            _ => return,
        };
        let mail = format!(
            "From: {nick} <{addr}>\nTo: {reply_to}\nSubject: {title}\n\n{body}",
            nick = remailer.nick,
            addr = remailer.address,
        );
        let sender = remailer.address.clone();
        let delay = self.rng.gen_range(30..600);
        self.truth.replies_sent += 1;
        self.push(at + delay, Destination::Pinger, mail.into_bytes(), &sender);
    }

    fn remailer_handles(&mut self, i: usize, at: i64, text: &[u8], sender: &str) {
        if let Some(subject) = header(text, "subject").filter(|s| s.starts_with("remailer-")) {
            if self.remailers[i].up(at, self.dies_at) {
                self.answer_request(i, at, &subject, text);
            }
            return;
        }
        let remailer = &self.remailers[i];
        let lost_share = match remailer.profile {
            Profile::Lossy => 0.33,
            Profile::Good
            | Profile::Middleman
            | Profile::Corrupting
            | Profile::Bouncing
            | Profile::Rotating => 0.01,
            Profile::Slow | Profile::Flaky | Profile::Dying => 0.03,
        };
        if remailer.profile == Profile::Bouncing && self.rng.gen_bool(0.25) {
            let dsn = bounce(&remailer.address, sender, at, text);
            let sender_domain = sender.rsplit('@').next().unwrap_or_default().to_owned();
            if sender_domain == self.pinger_domain {
                let delay = self.rng.gen_range(5..120);
                self.push_marked(at + delay, Destination::Pinger, dsn, Arrival::Bounce, "");
            } else {
                // To another remailer (the first hop of a chain): nobody reads it.
                self.truth.lost += 1;
            }
            return;
        }
        if !remailer.up(at, self.dies_at) || self.rng.gen_bool(lost_share) {
            self.truth.lost += 1;
            return;
        }
        let latency = match remailer.profile {
            Profile::Slow => self.rng.gen_range(2 * 3600..6 * 3600),
            _ => self.rng.gen_range(120..1500),
        };
        let (profile, address) = (remailer.profile, remailer.address.clone());
        let text = String::from_utf8_lossy(text);
        let packet = match mixmaster::dearmor(&text) {
            Ok(p) => p,
            Err(e) => {
                self.truth.undecodable.push(format!("{address}: dearmor: {e}"));
                return;
            }
        };
        let today = at.div_euclid(SECONDS_PER_DAY);
        let mut draw = RngRandom(StdRng::seed_from_u64(self.rng.r#gen()));
        let remailer = &self.remailers[i];
        let mut keys = vec![remailer.key.clone()];
        keys.extend(remailer.retired.iter().filter(|k| at < k.1).map(|k| k.0.clone()));
        let decoded = decode_packet(&packet, &keys, today, &mut draw);
        if let Err(DecodeError::UnknownKey(id)) = &decoded
            && remailer.retired.iter().any(|k| &k.0.public().key_id_hex() == id)
        {
            self.truth.stale_key.push((at, address));
            self.truth.lost += 1;
            return;
        }
        match decoded {
            Ok(Decoded::Intermediate { next_address, next_packet, .. }) => {
                let next = next_address.to_ascii_lowercase();
                match self.remailers.iter().position(|r| r.address == next) {
                    Some(j) => {
                        let mail = format!(
                            "From: {address}\nTo: {next}\n\n{}",
                            mixmaster::armor(&next_packet)
                        );
                        self.push(
                            at + latency,
                            Destination::Remailer(j),
                            mail.into_bytes(),
                            &address,
                        );
                    }
                    None => self.truth.lost += 1,
                }
            }
            Ok(Decoded::Final { payload, .. }) => {
                if profile == Profile::Middleman {
                    // A middleman delivers to nobody but another remailer.
                    self.truth.lost += 1;
                    return;
                }
                let mut body = payload.user_data;
                let mut what = Arrival::Intact;
                if profile == Profile::Corrupting && self.rng.gen_bool(0.2) {
                    // Inside the armour, past its first line: the pinger must notice.
                    let start = body.iter().position(|&b| b == b'\n').map_or(0, |p| p + 40);
                    if start < body.len() {
                        // The first letter or digit from a drawn place on (the bytes
                        // themselves are the pinger's random ones: whether the drawn byte is
                        // one must not decide it, or a seed would not replay).
                        // One draw whatever the length (which varies with the payload's
                        // random bytes): a range drawn from could take more.
                        let share: f64 = self.rng.r#gen();
                        let from = start + ((body.len() - start) as f64 * share) as usize;
                        let from = from.min(body.len() - 1);
                        let found = (from..body.len())
                            .chain(start..from)
                            .find(|&i| body[i].is_ascii_alphanumeric());
                        if let Some(i) = found {
                            body[i] = if body[i] == b'A' { b'B' } else { b'A' };
                            what = Arrival::Altered;
                        }
                    }
                }
                let domain = address.split('@').nth(1).unwrap_or("sim.example").to_owned();
                let mut mail = format!(
                    "From: Anonymous <nobody@{domain}>\nComments: This message did not originate \
                     from the Sender address above.\n\tIt was remailed automatically by \
                     anonymizing remailer software.\nTo: {}\n",
                    payload.destinations.join(",")
                );
                for h in &payload.headers {
                    mail.push_str(h);
                    mail.push('\n');
                }
                mail.push_str(&format!("Message-ID: <{}.{}@{domain}>\n\n\n", at, self.seq));
                let mut bytes = mail.into_bytes();
                bytes.extend_from_slice(&body);
                self.push_marked(at + latency, Destination::Pinger, bytes, what, &address);
            }
            Ok(Decoded::Partial { .. }) => self.truth.lost += 1,
            Err(e) => self.truth.undecodable.push(format!("{address}: {e}")),
        }
    }

    /// Writes a mail into the Maildir as an MTA does (tmp/, then new/), dated `at`.
    fn deliver(&mut self, at: i64, text: &[u8], what: Arrival) -> std::io::Result<()> {
        if self.inbound_down {
            self.truth.lost_inbound += 1;
            return Ok(());
        }
        let recipient = header(text, "to").unwrap_or_default().to_ascii_lowercase();
        self.truth.delivered.entry(recipient.clone()).or_default().push((at, what));
        self.write_maildir(at, text)?;
        if self.duplicate_share > 0.0 && self.rng.gen_bool(self.duplicate_share) {
            self.truth.duplicated += 1;
            self.truth.delivered.entry(recipient).or_default().push((at + 60, what));
            // A remailer that sends a mail twice sends two mails (its MTA gives each its own
            // trace), not the same bytes twice.
            let mut copy =
                format!("Received: by {} (second copy)\n", self.pinger_domain).into_bytes();
            copy.extend_from_slice(text);
            self.write_maildir(at + 60, &copy)?;
        }
        Ok(())
    }

    fn write_maildir(&mut self, at: i64, text: &[u8]) -> std::io::Result<()> {
        self.seq += 1;
        let name = format!("{at}.M{}P0.sim", self.seq);
        let tmp = self.maildir.join("tmp").join(&name);
        std::fs::write(&tmp, text)?;
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64);
        std::fs::File::options().write(true).open(&tmp)?.set_modified(time)?;
        std::fs::rename(&tmp, self.maildir.join("new").join(&name))
    }
}

/// The delivery status notification the MTA at `remailer` sends `sender` for `original`
/// (RFC 3464, as Postfix writes one: the report, then the original's headers).
fn bounce(remailer: &str, sender: &str, at: i64, original: &[u8]) -> Vec<u8> {
    let domain = remailer.rsplit('@').next().unwrap_or("sim.example");
    let date = chrono::DateTime::from_timestamp(at, 0).map(|d| d.to_rfc2822()).unwrap_or_default();
    let original = String::from_utf8_lossy(original);
    let headers: String =
        original.lines().take_while(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
    format!(
        "From: MAILER-DAEMON@mx.{domain} (Mail Delivery System)\nTo: {sender}\n\
         Subject: Undelivered Mail Returned to Sender\nDate: {date}\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{at}\"\n\n\
         --b{at}\nContent-Type: text/plain\n\nI'm sorry to have to inform you that your \
         message could not be delivered.\n\n--b{at}\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.{domain}\n\nFinal-Recipient: rfc822; {remailer}\n\
         Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full\n\n\
         --b{at}\nContent-Type: text/rfc822-headers\n\n{headers}\n--b{at}--\n"
    )
    .into_bytes()
}

/// `user@host` out of `Name <user@host>`, or the whole field.
fn angle_address(field: &str) -> String {
    match (field.rfind('<'), field.rfind('>')) {
        (Some(open), Some(close)) if open < close => field[open + 1..close].trim().to_owned(),
        _ => field.trim().to_owned(),
    }
}

/// The first value of a header field of a mail.
fn header(text: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

const NICKS: [&str; 12] = [
    "austria", "bunker", "cloaked", "dizum", "egress", "frell", "gobi", "hermes", "inwa", "jaggy",
    "kulin", "lemur",
];

//! GnuPG 2.2 test helper: every `GpgHome` is a throw-away `--homedir` in its own temporary
//! directory, so tests never touch (or depend on) a user's keyrings. All calls run the real `gpg`
//! with `--batch --no-tty --pinentry-mode loopback`; keys carry no passphrase. Failures panic with
//! gpg's own output, except `decrypt*`, which hand it back as `Err` so tests can assert on it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The key shapes a pinger meets in the wild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyShape {
    /// What Mixmaster 3 makes for its type I side: DSA-1024 primary + ElGamal-1024 subkey,
    /// SHA-1 self-signatures (`--cert-digest-algo SHA1`).
    OldDsaElg1024,
    /// DSA-2048 primary + ElGamal-2048 subkey.
    DsaElg2048,
    /// One RSA-1024 key that signs and encrypts (no subkey).
    Rsa1024,
    /// RSA-2048 primary + RSA-2048 encryption subkey (GnuPG's usual layout).
    Rsa2048,
}

/// The result of a successful `gpg --decrypt`.
#[derive(Debug, Clone)]
pub struct Decrypted {
    pub plaintext: Vec<u8>,
    /// Symmetric cipher from `DECRYPTION_INFO`: "3DES", "CAST5", "AES128", "AES192", "AES256",
    /// "BLOWFISH", "IDEA", "TWOFISH", "CAMELLIA128", ... (or "ALGO<n>" for anything else).
    pub cipher: String,
    /// Public-key algorithm of the session key packet that was used (1 RSA, 16 ElGamal);
    /// `None` for a symmetrically encrypted message.
    pub pkesk_algo: Option<u8>,
    /// Whether the data was integrity protected (SEIPD with MDC, `GOODMDC`).
    pub mdc: bool,
}

/// A temporary GnuPG home directory. Dropping it stops its gpg-agent and deletes the directory.
pub struct GpgHome {
    dir: tempfile::TempDir,
}

impl Default for GpgHome {
    fn default() -> Self {
        Self::new()
    }
}

impl GpgHome {
    pub fn new() -> Self {
        // Short path under /tmp: gpg-agent's socket path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("gpgh")
            .tempdir_in("/tmp")
            .or_else(|_| tempfile::Builder::new().prefix("gpgh").tempdir())
            .expect("create a temporary GnuPG home");
        // gpg refuses (warns about) group/world-accessible homes; TempDir is 0700 on Unix.
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(self.dir.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(["--no-options", "--no-permission-warning", "--no-auto-check-trustdb"])
            .env_remove("GPG_AGENT_INFO")
            .env("LC_ALL", "C");
        c
    }

    /// Runs gpg with `input` on stdin (written from a thread, so large outputs cannot deadlock).
    fn run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.cmd();
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run gpg {args:?}: {e}"));
        let mut stdin = child.stdin.take().expect("gpg stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            // gpg may exit early (error) and close stdin; that is reported via its status.
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("gpg {args:?}: {e}"));
        let _ = writer.join();
        out
    }

    fn run_ok(&self, args: &[&str], input: &[u8]) -> Output {
        let out = self.run(args, input);
        assert!(
            out.status.success(),
            "gpg {:?} failed ({}):\n{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Generates a key in the given shape, user id "<name> <email>", with the preference list
    /// given in gpg `setpref` syntax (e.g. "S3 S7 S2"); returns the ASCII-armoured PUBLIC key.
    /// An empty `prefs` keeps GnuPG's defaults. No passphrase, no expiry. Key generation uses
    /// `--debug-quick-random` (weak RNG, test-only) so it never waits for entropy.
    pub fn generate(&self, shape: KeyShape, name: &str, email: &str, prefs: &str) -> String {
        let key = match shape {
            KeyShape::OldDsaElg1024 => {
                "Key-Type: DSA\nKey-Length: 1024\nSubkey-Type: ELG-E\nSubkey-Length: 1024\n"
            }
            KeyShape::DsaElg2048 => {
                "Key-Type: DSA\nKey-Length: 2048\nSubkey-Type: ELG-E\nSubkey-Length: 2048\n"
            }
            KeyShape::Rsa1024 => "Key-Type: RSA\nKey-Length: 1024\nKey-Usage: sign,encrypt\n",
            KeyShape::Rsa2048 => {
                "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\n\
                 Subkey-Type: RSA\nSubkey-Length: 2048\nSubkey-Usage: encrypt\n"
            }
        };
        let mut params = format!("%no-protection\n{key}Name-Real: {name}\nName-Email: {email}\n");
        if !prefs.trim().is_empty() {
            params.push_str(&format!("Preferences: {}\n", prefs.trim()));
        }
        params.push_str("Expire-Date: 0\n%commit\n");
        let param_file = self.dir.path().join(format!("genkey-{}.txt", unique()));
        std::fs::write(&param_file, &params).expect("write gpg key parameters");
        let mut args = vec!["--status-fd", "1", "--debug-quick-random"];
        if shape == KeyShape::OldDsaElg1024 {
            args.extend(["--cert-digest-algo", "SHA1"]);
        }
        args.extend(["--gen-key", param_file.to_str().expect("utf-8 temp path")]);
        let out = self.run_ok(&args, b"");
        let _ = std::fs::remove_file(&param_file);
        let status = String::from_utf8_lossy(&out.stdout);
        let fpr = status
            .lines()
            .find_map(|l| l.strip_prefix("[GNUPG:] KEY_CREATED "))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or_else(|| {
                panic!(
                    "gpg --gen-key gave no KEY_CREATED:\n{status}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_string();
        let out = self.run_ok(&["--armor", "--export", &fpr], b"");
        let armored = String::from_utf8(out.stdout).expect("armoured key is ASCII");
        assert!(armored.contains("BEGIN PGP PUBLIC KEY BLOCK"), "export of {fpr} empty");
        armored
    }

    /// `gpg --clearsign` of `text` with the key of `email` (SHA-256, as an operator would
    /// sign an announcement); returns the signed text.
    pub fn clearsign(&self, email: &str, text: &str) -> String {
        let out = self.run_ok(
            &["--local-user", email, "--digest-algo", "SHA256", "--clearsign"],
            text.as_bytes(),
        );
        String::from_utf8(out.stdout).expect("clearsigned text is UTF-8")
    }

    /// Imports (public or secret) keys.
    pub fn import(&self, armored: &str) {
        self.run_ok(&["--import"], armored.as_bytes());
    }

    /// `gpg --decrypt` with `--status-fd`; `Err(stderr + status)` when gpg fails.
    pub fn decrypt(&self, message: &[u8]) -> Result<Decrypted, String> {
        self.decrypt_args(&[], message)
    }

    /// `gpg --decrypt --passphrase P` (symmetric).
    pub fn decrypt_with_passphrase(
        &self,
        message: &[u8],
        passphrase: &str,
    ) -> Result<Decrypted, String> {
        self.decrypt_args(&["--passphrase", passphrase], message)
    }

    fn decrypt_args(&self, extra: &[&str], message: &[u8]) -> Result<Decrypted, String> {
        // Status lines go to stderr, interleaved with the human-readable messages, so an error
        // report shows both in order. The plaintext alone is on stdout.
        let mut args = vec!["--status-fd", "2"];
        args.extend_from_slice(extra);
        args.push("--decrypt");
        let out = self.run(&args, message);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let status: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("[GNUPG:] ")).collect();
        let has = |kw: &str| status.iter().any(|s| s.split_whitespace().next() == Some(kw));
        if !out.status.success() || !has("DECRYPTION_OKAY") || has("DECRYPTION_FAILED") {
            return Err(format!("gpg --decrypt failed ({}):\n{log}", out.status));
        }
        let mut cipher = None;
        let mut mdc = has("GOODMDC");
        let mut enc_to: Vec<(String, u8)> = Vec::new();
        let mut used_key: Option<String> = None;
        for s in &status {
            let f: Vec<&str> = s.split_whitespace().collect();
            match f.as_slice() {
                ["DECRYPTION_INFO", mdc_method, algo, ..] => {
                    cipher = algo.parse::<u8>().ok().map(cipher_name);
                    mdc |= *mdc_method != "0";
                }
                ["ENC_TO", keyid, algo, ..] => {
                    if let Ok(a) = algo.parse() {
                        enc_to.push((keyid.to_ascii_uppercase(), a));
                    }
                }
                ["DECRYPTION_KEY", fpr, ..] => used_key = Some(fpr.to_ascii_uppercase()),
                _ => {}
            }
        }
        let pkesk_algo = match &used_key {
            Some(fpr) => enc_to
                .iter()
                .find(|(id, _)| fpr.ends_with(id.as_str()))
                .or(enc_to.first())
                .map(|(_, a)| *a),
            None => enc_to.first().map(|(_, a)| *a),
        };
        let cipher = cipher.ok_or_else(|| format!("gpg gave no DECRYPTION_INFO status:\n{log}"))?;
        Ok(Decrypted { plaintext: out.stdout, cipher, pkesk_algo, mdc })
    }

    /// `gpg --encrypt --armor --always-trust -r email [--cipher-algo X]`, for building test
    /// messages. The recipient's public key must be in this home.
    pub fn encrypt_to(&self, email: &str, plaintext: &[u8], cipher: Option<&str>) -> String {
        let mut args = vec!["--armor", "--trust-model", "always", "--recipient", email];
        if let Some(c) = cipher {
            args.extend(["--cipher-algo", c]);
        }
        args.push("--encrypt");
        let out = self.run_ok(&args, plaintext);
        String::from_utf8(out.stdout).expect("armoured message is ASCII")
    }

    /// `gpg --list-packets` output (stdout; a following `gpg:` diagnostics section from stderr,
    /// e.g. "decryption failed: No secret key", is appended after a blank line).
    pub fn list_packets(&self, message: &[u8]) -> String {
        let out = self.run(&["--list-packets"], message);
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.trim().is_empty() {
            s.push('\n');
            s.push_str(&err);
        }
        s
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        // Stop the agent that gpg started for this home before the directory disappears.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// OpenPGP symmetric algorithm number (RFC 4880 §9.2) to the names gpg uses.
pub fn cipher_name(algo: u8) -> String {
    match algo {
        0 => "PLAINTEXT",
        1 => "IDEA",
        2 => "3DES",
        3 => "CAST5",
        4 => "BLOWFISH",
        7 => "AES128",
        8 => "AES192",
        9 => "AES256",
        10 => "TWOFISH",
        11 => "CAMELLIA128",
        12 => "CAMELLIA192",
        13 => "CAMELLIA256",
        n => return format!("ALGO{n}"),
    }
    .to_string()
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

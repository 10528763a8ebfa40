//! Tests of the test support: the GnuPG helper and the type I remailer double, against the real
//! local Postfix/Dovecot (see ../shared/mail-services.sh). Uses only the mail users ping8,
//! remailer7 and remailer8.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::gpg::{GpgHome, KeyShape};
use crate::support::remailer::{
    Behaviour, TestRemailer, maildir_messages_containing, remove_messages_containing, smtp_send,
    wait_for_messages,
};

/// The remailer doubles poll shared Maildirs, so tests that run them must not overlap.
static MAIL_LOCK: Mutex<()> = Mutex::new(());

fn mail_lock() -> std::sync::MutexGuard<'static, ()> {
    MAIL_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn smtp() -> SocketAddr {
    let bind = std::env::var("MAIL_BIND").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("MAIL_SMTP_PORT").unwrap_or_else(|_| "2525".into());
    format!("{bind}:{port}").parse().expect("MAIL_BIND:MAIL_SMTP_PORT")
}

fn maildir(user: &str) -> PathBuf {
    let state =
        std::env::var("MAIL_STATE_DIR").unwrap_or_else(|_| "/var/lib/fathometer-mail".into());
    PathBuf::from(state).join("maildirs").join(user)
}

fn marker(test: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("remailer-double-{test}-{}-{nanos:x}", std::process::id())
}

/// Removes the ping8 mail carrying the marker, even when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_messages_containing(&maildir("ping8"), &self.0);
    }
}

/// A remailer double for `user@localhost` with a fresh key; returns it and its public key.
fn remailer(user: &str, shape: KeyShape, behaviour: Behaviour) -> (TestRemailer, String) {
    let gpg = GpgHome::new();
    let address = format!("{user}@localhost");
    let key = gpg.generate(shape, user, &address, "S3 S7 S2");
    (TestRemailer::start(&address, maildir(user), gpg, smtp(), behaviour), key)
}

fn send(to: &str, body: &str) {
    let text = format!("From: ping8@localhost\nTo: {to}\nSubject: (no subject)\n\n{body}", to = to);
    smtp_send(smtp(), "ping8@localhost", &[to.to_string()], &text).expect("SMTP send");
}

/// `::\nEncrypted: PGP\n\n<armour>` for `plaintext` encrypted (3DES, as Echolot does) to `to`.
fn encrypted_layer(sender: &GpgHome, to: &str, plaintext: &str) -> String {
    let armour = sender.encrypt_to(to, plaintext.as_bytes(), Some("3DES"));
    format!("::\nEncrypted: PGP\n\n{armour}")
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let head = mail.split("\n\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---- GnuPG helper ------------------------------------------------------------------------------

fn roundtrip(shape: KeyShape, cipher: &str, algo: u8) {
    let home = GpgHome::new();
    let email = "shape@localhost";
    let key = home.generate(shape, "shape test", email, "S3 S7 S2");
    assert!(key.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let sender = GpgHome::new();
    sender.import(&key);
    let msg = sender.encrypt_to(email, b"payload\n", Some(cipher));
    let d = home.decrypt(msg.as_bytes()).expect("decrypts with the secret key");
    assert_eq!(d.plaintext, b"payload\n");
    assert_eq!(d.cipher, cipher);
    assert_eq!(d.pkesk_algo, Some(algo));
    assert!(d.mdc, "GnuPG 2.2 always uses MDC");
    let err = sender.decrypt(msg.as_bytes()).expect_err("sender has no secret key");
    assert!(err.contains("No secret key") || err.contains("NO_SECKEY"), "{err}");
    let packets = home.list_packets(msg.as_bytes());
    assert!(packets.contains(&format!("pubkey enc packet: version 3, algo {algo}")), "{packets}");
}

#[test]
fn gpg_old_dsa_elg_1024_decrypts_3des() {
    if !crate::support::mail::available() {
        return;
    }
    roundtrip(KeyShape::OldDsaElg1024, "3DES", 16);
}

#[test]
fn gpg_dsa_elg_2048_decrypts_cast5() {
    if !crate::support::mail::available() {
        return;
    }
    roundtrip(KeyShape::DsaElg2048, "CAST5", 16);
}

#[test]
fn gpg_rsa_1024_decrypts_aes128() {
    if !crate::support::mail::available() {
        return;
    }
    roundtrip(KeyShape::Rsa1024, "AES128", 1);
}

#[test]
fn gpg_rsa_2048_decrypts_aes256() {
    if !crate::support::mail::available() {
        return;
    }
    roundtrip(KeyShape::Rsa2048, "AES256", 1);
}

#[test]
fn gpg_old_shape_is_what_mixmaster_makes() {
    if !crate::support::mail::available() {
        return;
    }
    let home = GpgHome::new();
    let key = home.generate(KeyShape::OldDsaElg1024, "r", "r@localhost", "S3 S7 S2");
    let p = home.list_packets(key.as_bytes());
    assert!(p.contains("public key packet:\n\tversion 4, algo 17"), "DSA primary:\n{p}");
    assert!(p.contains("public sub key packet:\n\tversion 4, algo 16"), "ElGamal subkey:\n{p}");
    assert!(p.contains("pkey[0]: [1024 bits]"), "{p}");
    assert!(p.contains("pref-sym-algos: 3 7 2"), "{p}");
    // Every self-signature uses SHA-1 (digest algo 2).
    let digests: Vec<&str> = p.lines().filter(|l| l.contains("digest algo")).collect();
    assert_eq!(digests.len(), 2, "{p}");
    assert!(digests.iter().all(|l| l.contains("digest algo 2,")), "{p}");
}

#[test]
fn gpg_symmetric_decrypt() {
    if !crate::support::mail::available() {
        return;
    }
    let home = GpgHome::new();
    let out = std::process::Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", "pw"])
        .args(["--symmetric", "--armor", "--cipher-algo", "CAST5", "--output", "-"])
        .arg("/dev/null")
        .output()
        .expect("gpg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = home.decrypt_with_passphrase(&out.stdout, "pw").expect("decrypts");
    assert_eq!(d.cipher, "CAST5");
    assert_eq!(d.pkesk_algo, None);
    assert!(home.decrypt_with_passphrase(&out.stdout, "wrong").is_err());
}

// ---- remailer double ---------------------------------------------------------------------------

#[test]
fn single_hop_encrypted_with_pasted_headers() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t1");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Forward);
    let pinger = GpgHome::new();
    pinger.import(&key7);
    let plain = format!(
        "::\nAnon-To: ping8+t1@localhost\n\n##\nFrom: Test <ping8@localhost>\nSubject: hi\n\n\
         hello body\n{m}\n"
    );
    let t0 = Instant::now();
    send("remailer7@localhost", &encrypted_layer(&pinger, "remailer7@localhost", &plain));
    let got = wait_for_messages(&maildir("ping8"), &m, 1, Duration::from_secs(30));
    eprintln!("single hop delivered in {:?}", t0.elapsed());
    assert_eq!(got.len(), 1, "no delivery; errors: {:?}", r7.errors());
    let (path, mail) = &got[0];
    assert!(path.parent().unwrap().ends_with("new"), "{}", path.display());
    assert!(mail.contains("hello body\n"), "{mail}");
    assert_eq!(header(mail, "Delivered-To"), Some("ping8+t1@localhost"), "{mail}");
    assert_eq!(header(mail, "From"), Some("Test <ping8@localhost>"), "{mail}");
    assert_eq!(header(mail, "Subject"), Some("hi"), "{mail}");
    assert_eq!(header(mail, "To"), Some("ping8+t1@localhost"), "{mail}");
    assert!(header(mail, "Message-ID").is_some() && header(mail, "Date").is_some(), "{mail}");
    // Nothing of the type I request leaks into the delivered mail.
    assert!(!mail.contains("Anon-To") && !mail.contains("\n##\n"), "{mail}");
    assert!(r7.wait_handled(1, Duration::from_secs(2)));
    assert_eq!(r7.errors(), Vec::<String>::new());
    assert_eq!(r7.forwarded().len(), 1);
}

#[test]
fn two_hop_chain_remailer8_then_remailer7() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t2");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Forward);
    let (r8, key8) = remailer("remailer8", KeyShape::Rsa1024, Behaviour::Forward);
    let pinger = GpgHome::new();
    pinger.import(&key7);
    pinger.import(&key8);
    // Built from the innermost hop outwards, as Echolot's chain pings (with_from = 0).
    let inner = encrypted_layer(
        &pinger,
        "remailer7@localhost",
        &format!("::\nAnon-To: ping8+t2@localhost\n\nchain body {m}\n"),
    );
    let outer = encrypted_layer(
        &pinger,
        "remailer8@localhost",
        &format!("::\nAnon-To: remailer7@localhost\n\n{inner}"),
    );
    let t0 = Instant::now();
    send("remailer8@localhost", &outer);
    let got = wait_for_messages(&maildir("ping8"), &m, 1, Duration::from_secs(15));
    eprintln!("two hops delivered in {:?}", t0.elapsed());
    assert_eq!(got.len(), 1, "errors: r8 {:?} r7 {:?}", r8.errors(), r7.errors());
    let mail = &got[0].1;
    assert_eq!(header(mail, "Delivered-To"), Some("ping8+t2@localhost"), "{mail}");
    assert_eq!(header(mail, "From"), Some("Anonymous <nobody@localhost>"), "{mail}");
    assert!(mail.contains(&format!("\n\nchain body {m}\n")), "{mail}");
    // A double records a forward once its SMTP session has ended, which may be just after
    // Postfix delivered the mail: wait for both before reading what they recorded.
    assert!(
        r8.wait_handled(1, Duration::from_secs(5)) && r7.wait_handled(1, Duration::from_secs(5))
    );
    // remailer8 forwarded the still-encrypted inner layer unchanged.
    let hop = r8.forwarded();
    assert_eq!(hop.len(), 1);
    assert_eq!(header(&hop[0], "To"), Some("remailer7@localhost"));
    assert!(hop[0].ends_with(&format!("\n\n{inner}")), "{}", hop[0]);
    assert!(!hop[0].contains(&m), "hop 1 must not see the plaintext");
    assert_eq!(r7.forwarded().len(), 1);
    assert!(r7.wait_handled(1, Duration::from_secs(2)) && r8.handled() == 1);
    assert!(r7.errors().is_empty() && r8.errors().is_empty());
}

#[test]
fn cpunk_clear_plaintext_is_forwarded() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t3");
    let _c = Cleanup(m.clone());
    let (r7, _) = remailer("remailer7", KeyShape::Rsa1024, Behaviour::Forward);
    // Header names are case-insensitive.
    send(
        "remailer7@localhost",
        &format!("::\nanon-to: ping8+t3@localhost\n\n##\nSubject: clear {m}\n\nclear body\n"),
    );
    let got = wait_for_messages(&maildir("ping8"), &m, 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "errors: {:?}", r7.errors());
    let mail = &got[0].1;
    assert_eq!(header(mail, "Delivered-To"), Some("ping8+t3@localhost"));
    assert_eq!(header(mail, "Subject"), Some(format!("clear {m}").as_str()));
    assert_eq!(header(mail, "From"), Some("Anonymous <nobody@localhost>"));
    assert!(mail.ends_with("\n\nclear body\n"), "{mail}");
}

#[test]
fn duplicate_delivers_two_copies() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t4");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Duplicate);
    let pinger = GpgHome::new();
    pinger.import(&key7);
    let plain = format!("::\nAnon-To: ping8+t4@localhost\n\ndup {m}\n");
    send("remailer7@localhost", &encrypted_layer(&pinger, "remailer7@localhost", &plain));
    let got = wait_for_messages(&maildir("ping8"), &m, 2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "errors: {:?}", r7.errors());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(maildir_messages_containing(&maildir("ping8"), &m).len(), 2);
    let f = r7.forwarded();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0], f[1], "a replay is byte-identical");
    assert_eq!(r7.handled(), 1);
}

#[test]
fn corrupt_alters_the_final_armour() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t5");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Corrupt);
    // The pinger's own key: the ping body is armour the pinger will decrypt on return.
    let pinger = GpgHome::new();
    pinger.generate(KeyShape::Rsa1024, "pinger", "ping8@localhost", "");
    pinger.import(&key7);
    let body = pinger.encrypt_to("ping8@localhost", format!("secret {m}\n").as_bytes(), None);
    let plain = format!("::\nAnon-To: ping8+t5@localhost\n\n##\nSubject: {m}\n\n{body}");
    send("remailer7@localhost", &encrypted_layer(&pinger, "remailer7@localhost", &plain));
    let got = wait_for_messages(&maildir("ping8"), &m, 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "errors: {:?}", r7.errors());
    let mail = &got[0].1;
    let start = mail.find("-----BEGIN PGP MESSAGE-----").expect("armour delivered");
    let delivered = &mail[start..];
    assert_ne!(delivered, body, "armour must be altered");
    assert_eq!(delivered.len(), body.len(), "one character changed, nothing else");
    let diff = delivered.bytes().zip(body.bytes()).filter(|(a, b)| a != b).count();
    assert_eq!(diff, 1);
    assert!(pinger.decrypt(body.as_bytes()).is_ok());
    let err = pinger.decrypt(delivered.as_bytes()).expect_err("corrupt armour must not decrypt");
    eprintln!("gpg on the corrupted armour: {}", err.lines().last().unwrap_or(""));
    assert!(r7.errors().is_empty());
}

#[test]
fn drop_swallows_everything() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t6");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Drop);
    let pinger = GpgHome::new();
    pinger.import(&key7);
    let plain = format!("::\nAnon-To: ping8+t6@localhost\n\ndropped {m}\n");
    send("remailer7@localhost", &encrypted_layer(&pinger, "remailer7@localhost", &plain));
    assert!(r7.wait_handled(1, Duration::from_secs(30)), "never handled");
    std::thread::sleep(Duration::from_secs(1));
    assert!(maildir_messages_containing(&maildir("ping8"), &m).is_empty());
    assert!(r7.forwarded().is_empty() && r7.errors().is_empty());
}

#[test]
fn garbage_is_reported_and_the_thread_survives() {
    if !crate::support::mail::available() {
        return;
    }
    let _l = mail_lock();
    let m = marker("t7");
    let _c = Cleanup(m.clone());
    let (r7, key7) = remailer("remailer7", KeyShape::OldDsaElg1024, Behaviour::Forward);
    // 1: not type I at all.
    send("remailer7@localhost", "just some text\n");
    // 2: encrypted to some other key.
    let other = GpgHome::new();
    let other_key = other.generate(KeyShape::Rsa1024, "other", "other@localhost", "");
    other.import(&other_key);
    send(
        "remailer7@localhost",
        &encrypted_layer(&other, "other@localhost", "::\nAnon-To: ping8@localhost\n\nx\n"),
    );
    // 3: Encrypted without armour; 4: no destination after decryption.
    send("remailer7@localhost", "::\nEncrypted: PGP\n\nno armour here\n");
    let pinger = GpgHome::new();
    pinger.import(&key7);
    send(
        "remailer7@localhost",
        &encrypted_layer(&pinger, "remailer7@localhost", "::\nSubject: nowhere\n\nbody\n"),
    );
    assert!(r7.wait_handled(4, Duration::from_secs(30)), "handled {}", r7.handled());
    let errors = r7.errors();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    // Maildir order is not arrival order, so look for each reason.
    for reason in [
        "not a type I message",
        "cannot decrypt",
        "no -----BEGIN PGP MESSAGE-----",
        "without a destination",
    ] {
        assert_eq!(errors.iter().filter(|e| e.contains(reason)).count(), 1, "{errors:#?}");
    }
    // Still working afterwards.
    let plain = format!("::\nAnon-To: ping8+t7@localhost\n\nstill alive {m}\n");
    send("remailer7@localhost", &encrypted_layer(&pinger, "remailer7@localhost", &plain));
    let got = wait_for_messages(&maildir("ping8"), &m, 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "{:#?}", r7.errors());
    assert!(r7.wait_handled(5, Duration::from_secs(5)), "handled {}", r7.handled());
    assert_eq!(r7.handled(), 5);
}

//! The pure half of matching: who a mail is for, and the verdict when the tag is unknown or
//! belongs to nobody. The verdicts on genuine, altered and replayed returns, which need a
//! store holding the ping, are in `crate::app::ingest`'s tests.

use mail_parser::MessageParser;

use super::*;

fn identity() -> Identity {
    Identity {
        address: "pinger@p.example".to_owned().try_into().unwrap(),
        delimiter: "+".to_owned().try_into().unwrap(),
        name: "fathometer".into(),
    }
}

fn addressed(raw: &str) -> Result<String, MailKind> {
    let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
    addressee(&message, &identity()).map_err(|v| v.kind)
}

#[test]
fn the_tag_comes_from_the_address_the_mta_delivered_to() {
    assert_eq!(
        addressed("Delivered-To: pinger+abcdefghijklmnop@p.example\nTo: x@y\n\nhi\n"),
        Ok("abcdefghijklmnop".to_owned())
    );
    // Case-insensitive, as MTAs are about local parts here.
    assert_eq!(
        addressed("To: Pinger+ABCDEFGHIJKLMNOP@P.Example\n\nhi\n"),
        Ok("abcdefghijklmnop".to_owned())
    );
    assert_eq!(addressed("To: pinger@p.example\n\nhi\n"), Err(MailKind::Unknown));
    assert_eq!(addressed("To: pinger+tag@elsewhere.example\n\nhi\n"), Err(MailKind::Unknown));
    assert_eq!(addressed("To: pinger+not-a-tag!@p.example\n\nhi\n"), Err(MailKind::Forged));
}

#[test]
fn an_answer_to_no_request_of_ours_is_not_believed() {
    let reply = "To: pinger@p.example\nSubject: Capabilities of the x remailer\n\n$remailer{}\n";
    assert_eq!(addressed(reply), Err(MailKind::Unknown));
    assert_eq!(reply_type("Remailer key for testmix1"), Some("key"));
    assert_eq!(reply_type("hello"), None);
}

#[test]
fn a_tag_that_belongs_to_nothing_is_forged() {
    let raw = "To: pinger+abcdefghijklmnop@p.example\n\nhi\n";
    let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let identity = identity();
    let ctx = MatchContext { secret: &[1u8; 32], identity: &identity };
    let v = verdict(&ctx, &message, "abcdefghijklmnop", None, 100, 100);
    assert_eq!(v.kind, MailKind::Forged);
    assert!(v.effects.is_empty());
}

#[test]
fn bounces_are_recognised_by_their_report_or_their_sender() {
    let dsn = "From: MAILER-DAEMON@p.example\nSubject: Undelivered Mail Returned to Sender\n\n\
               Diagnostic-Code: smtp; 550 no such user\n";
    let message = MessageParser::default().parse(dsn.as_bytes()).unwrap();
    assert!(is_bounce(&message));
    assert_eq!(bounce_reason(&message), "smtp; 550 no such user");
    let plain =
        MessageParser::default().parse(b"From: a@b\nSubject: hi\n\nx\n".as_slice()).unwrap();
    assert!(!is_bounce(&plain));
}

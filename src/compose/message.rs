//! The RFC 5322 message around what we send, and the message as it goes to the MTA.

use std::time::SystemTime;

use lettre::Address;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};

/// A message ready for the MTA.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Envelope sender: our tagged return address, so a bounce names its ping.
    pub envelope_from: String,
    pub to: String,
    /// The RFC 5322 message, CRLF line ends.
    pub message: Vec<u8>,
}

/// Formats a message with `Date`, `Message-ID`, `From`, `To` and, for requests to remailers,
/// a `Subject` (pings have none). The body is plain text.
pub fn format_message(
    from_name: &str,
    from: &str,
    to: &str,
    subject: Option<&str>,
    body: String,
    message_id: &str,
    date: SystemTime,
) -> anyhow::Result<Vec<u8>> {
    let from: Address = from.parse()?;
    let to: Address = to.parse()?;
    // An empty name gives a bare address (what YAMN needs in a request's From:).
    let name = (!from_name.is_empty()).then(|| from_name.to_owned());
    let mut builder = Message::builder().from(Mailbox::new(name, from)).to(Mailbox::new(None, to));
    if let Some(subject) = subject {
        builder = builder.subject(subject);
    }
    let message = builder
        .date(date)
        .message_id(Some(message_id.to_owned()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)?;
    Ok(message.formatted())
}

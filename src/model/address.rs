//! Who the pinger is in mail: its return address, the recipient delimiter that separates
//! the tag, and the identity built from them.

use std::fmt;

use serde::Deserialize;

/// An RFC 5321 mailbox in its simple `local@domain` form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MailAddress(String);

impl MailAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl TryFrom<String> for MailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let valid = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && s.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        });
        if valid {
            Ok(MailAddress(s))
        } else {
            Err(format!("`{s}` is not a mail address of the form local@domain"))
        }
    }
}

impl fmt::Display for MailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The character(s) Postfix's `recipient_delimiter` puts between the local part and the tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Delimiter(String);

/// Postfix's default, `+`.
impl Default for Delimiter {
    fn default() -> Self {
        Delimiter("+".to_owned())
    }
}

impl Delimiter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Delimiter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.chars().count() == 1 && s.chars().all(|c| "+-_=.".contains(c)) {
            Ok(Delimiter(s))
        } else {
            Err(format!("`{s}` is not a recipient delimiter (one of + - _ = .)"))
        }
    }
}

/// Who we are in mail: the return address and the name on our From: lines.
#[derive(Debug, Clone)]
pub struct Identity {
    pub address: MailAddress,
    pub delimiter: Delimiter,
    pub name: String,
}

impl Identity {
    /// `<localpart><delimiter><tag>@<domain>`
    pub fn return_address(&self, tag: &str) -> String {
        format!(
            "{}{}{}@{}",
            self.address.local_part(),
            self.delimiter.as_str(),
            tag,
            self.address.domain()
        )
    }

    pub fn signature(&self) -> String {
        format!("{} <{}>", self.name, self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_address_puts_the_tag_after_the_delimiter() {
        let identity = Identity {
            address: "pinger@p.example".to_owned().try_into().unwrap(),
            delimiter: "+".to_owned().try_into().unwrap(),
            name: "fathometer".into(),
        };
        assert_eq!(identity.return_address("abc"), "pinger+abc@p.example");
    }
}

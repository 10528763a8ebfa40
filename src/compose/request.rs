//! What we send to a remailer to ask for its capabilities, keys, help, statistics or admin
//! key (Echolot's `remailerxxxtext`).

/// The body of a request. Remailers ignore it; a person who is not a remailer reads it, so it
/// says what this is and how to make it stop (Echolot's `remailerxxxtext`).
pub fn request_body(remailer: &str, pinger_name: &str, operator: Option<&str>) -> String {
    let contact = operator
        .map(|o| format!("The operator of this pinger can be reached at <{o}>.\n"))
        .unwrap_or_default();
    format!(
        "Hello,\n\n\
         this is an automated request of the remailer statistics service \"{pinger_name}\".\n\
         It asks the remailer at <{remailer}> for its capabilities, keys or statistics,\n\
         which are published so that remailer users can choose reliable remailers.\n\n\
         If {remailer} is not a remailer, please reply to this message with the words\n\
         \"not a remailer\" as the first line, and you will not be asked again.\n\
         {contact}"
    )
}

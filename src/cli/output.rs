//! What the commands print: through [`out!`](crate::cli) so that a reader who goes away
//! (`| head`) ends the command quietly, and with strangers' strings made safe for a terminal.

use std::borrow::Cow;

/// Writes to standard output. An error goes back to the command, and a reader that went away
/// (`fathometer quarantine | head -1`) ends the command quietly in [`super::main`]. Declared
/// here, first among the command line's modules, so that every one of them prints alike.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))?
    };
}

/// [`out!`] with a line end.
macro_rules! outln {
    () => { $crate::cli::output::write_out(format_args!("\n"))? };
    ($($arg:tt)*) => {{
        $crate::cli::output::write_out(format_args!($($arg)*))?;
        $crate::cli::output::write_out(format_args!("\n"))?;
    }};
}

pub fn write_out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(args)
}

/// A string from a remailer, a mail or a peer, made safe for a terminal: control characters
/// (escape sequences could retitle the window, clear the screen or worse) are shown as
/// `\u{1b}` escapes instead of being interpreted.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
}

/// Whether an error is a closed standard output: the reader went away, not an error of ours.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(terminal_safe("plain text"), "plain text");
        assert_eq!(terminal_safe("a\x1b]0;x\x07b\u{9b}c"), "a\\u{1b}]0;x\\u{7}b\\u{9b}c");
    }
}

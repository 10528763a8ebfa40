//! The subset of Perl that Echolot's files are written in: `Data::Dumper` output (its
//! metadata) and `pingd.conf` (`$CONFIG = { ... };`). Hashes, arrays, single- and
//! double-quoted strings, numbers and `undef`, with comments; never evaluated as code, and
//! anything else is an error naming its line. Bounded in depth, so a hostile file cannot
//! exhaust the stack.

use std::collections::BTreeMap;

/// A Perl value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// A bare number, as written.
    Num(String),
    Undef,
    List(Vec<Value>),
    Hash(BTreeMap<String, Value>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Hash(h) => h.get(key),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    /// A string or a number as text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Num(s) => Some(s),
            _ => None,
        }
    }

    /// An integer, written as a number or a string of digits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    /// Perl's truth, for the flags Echolot writes (`1`, `0`, `''`, undef).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Str(s) | Value::Num(s) => !(s.is_empty() || s == "0"),
            Value::Undef => false,
            Value::List(l) => !l.is_empty(),
            Value::Hash(h) => !h.is_empty(),
        }
    }
}

/// Why a file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PerlError {
    pub line: usize,
    pub message: String,
}

const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn line(&self) -> usize {
        1 + self.text[..self.pos.min(self.text.len())].iter().filter(|&&b| b == b'\n').count()
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, PerlError> {
        Err(PerlError { line: self.line(), message: message.into() })
    }

    /// Skips white space and `#` comments.
    fn skip(&mut self) {
        while let Some(&b) = self.text.get(self.pos) {
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else if b == b'#' {
                while self.text.get(self.pos).is_some_and(|&b| b != b'\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip();
        if self.text[self.pos..].starts_with(token.as_bytes()) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), PerlError> {
        if self.eat(token) { Ok(()) } else { self.error(format!("`{token}` expected")) }
    }

    fn value(&mut self, depth: usize) -> Result<Value, PerlError> {
        if depth > MAX_DEPTH {
            return self.error("nested too deeply");
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut hash = BTreeMap::new();
                loop {
                    if self.eat("}") {
                        return Ok(Value::Hash(hash));
                    }
                    let key = match self.value(depth + 1)? {
                        Value::Str(s) | Value::Num(s) => s,
                        _ => return self.error("a hash key must be a string or a number"),
                    };
                    self.expect("=>")?;
                    let value = self.value(depth + 1)?;
                    hash.insert(key, value);
                    if !self.eat(",") {
                        self.expect("}")?;
                        return Ok(Value::Hash(hash));
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut list = Vec::new();
                loop {
                    if self.eat("]") {
                        return Ok(Value::List(list));
                    }
                    list.push(self.value(depth + 1)?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        return Ok(Value::List(list));
                    }
                }
            }
            Some(b'\'') => self.single_quoted().map(Value::Str),
            Some(b'"') => self.double_quoted().map(Value::Str),
            Some(b) if b == b'-' || b == b'+' || b.is_ascii_digit() || b == b'.' => {
                let start = self.pos;
                self.pos += 1;
                while self.text.get(self.pos).is_some_and(|b| {
                    b.is_ascii_alphanumeric()
                        || *b == b'.'
                        || *b == b'_'
                        || *b == b'+'
                        || *b == b'-'
                }) {
                    self.pos += 1;
                }
                let text = String::from_utf8_lossy(&self.text[start..self.pos]).replace('_', "");
                if text.parse::<f64>().is_err() {
                    return self.error(format!("`{text}` is not a number"));
                }
                Ok(Value::Num(text))
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                // `undef`, or a bareword hash key (`{ foo => 1 }`).
                let start = self.pos;
                while self
                    .text
                    .get(self.pos)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    self.pos += 1;
                }
                let word = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
                if self.peek_is("=>") {
                    Ok(Value::Str(word))
                } else if word == "undef" {
                    Ok(Value::Undef)
                } else {
                    self.error(format!("unexpected `{word}`"))
                }
            }
            Some(b) => self.error(format!("unexpected `{}`", char::from(b))),
            None => self.error("the file ends in the middle of a value"),
        }
    }

    fn peek_is(&mut self, token: &str) -> bool {
        self.skip();
        self.text[self.pos..].starts_with(token.as_bytes())
    }

    /// `'...'`: `\\` and `\'` are escapes, anything else is literal.
    fn single_quoted(&mut self) -> Result<String, PerlError> {
        let start_line = self.line();
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.text.get(self.pos) {
                None => {
                    return Err(PerlError {
                        line: start_line,
                        message: "a string is not closed".into(),
                    });
                }
                Some(b'\'') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') if matches!(self.text.get(self.pos + 1), Some(b'\\' | b'\'')) => {
                    out.push(self.text[self.pos + 1]);
                    self.pos += 2;
                }
                Some(&b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// `"..."` with the escapes Data::Dumper's `Useqq` writes; `$` and `@` are literal here
    /// (nothing is interpolated).
    fn double_quoted(&mut self) -> Result<String, PerlError> {
        let start_line = self.line();
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.text.get(self.pos) {
                None => {
                    return Err(PerlError {
                        line: start_line,
                        message: "a string is not closed".into(),
                    });
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let escaped = self.text.get(self.pos + 1).copied();
                    self.pos += 2;
                    match escaped {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b'0') => out.push(0),
                        Some(b'e') => out.push(0x1b),
                        Some(b'x') => {
                            let hex: Vec<u8> = self.text[self.pos..]
                                .iter()
                                .take(2)
                                .take_while(|b| b.is_ascii_hexdigit())
                                .copied()
                                .collect();
                            self.pos += hex.len();
                            let n =
                                u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or("0"), 16)
                                    .unwrap_or(0);
                            out.push(n);
                        }
                        Some(b) => out.push(b),
                        None => return self.error("a string ends in an escape"),
                    }
                }
                Some(&b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }
}

/// Reads `$NAME = <value>;` (optionally followed by `1;`), as Echolot writes its metadata
/// and its configuration; returns the value. `name` is the variable Echolot uses
/// (`METADATA`, `CONFIG`).
pub fn parse_assignment(text: &str, name: &str) -> Result<Value, PerlError> {
    let mut p = Parser { text: text.as_bytes(), pos: 0 };
    p.expect(&format!("${name}"))?;
    p.expect("=")?;
    let value = p.value(0)?;
    p.expect(";")?;
    // `1;` (a file `do`ne by Perl must end true), and nothing else.
    if p.eat("1") {
        p.expect(";")?;
    }
    if p.peek().is_some() {
        return p.error("more than one assignment");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dumper_output_reads() {
        let text = "# vim:set syntax=perl:\n$METADATA = {\n  'a' => {\n    'n' => 5,\n    \
                    's' => 'it\\'s \\\\ here',\n    'l' => [ 1, '2', undef, ],\n    \
                    'multi' => 'line one\nline two',\n    \"q\" => \"tab\\there\\x41\",\n  },\n  \
                    bare => -1.5e3,\n};\n1;\n";
        let v = parse_assignment(text, "METADATA").unwrap();
        let a = v.get("a").unwrap();
        assert_eq!(a.get("n").unwrap().as_i64(), Some(5));
        assert_eq!(a.get("s").unwrap().as_text(), Some("it's \\ here"));
        assert_eq!(a.get("multi").unwrap().as_text(), Some("line one\nline two"));
        assert_eq!(a.get("q").unwrap().as_text(), Some("tab\thereA"));
        assert_eq!(
            a.get("l").unwrap(),
            &Value::List(vec![Value::Num("1".into()), Value::Str("2".into()), Value::Undef])
        );
        assert_eq!(v.get("bare").unwrap().as_text(), Some("-1.5e3"));
        assert!(!Value::Str("0".into()).truthy() && Value::Num("1".into()).truthy());
    }

    #[test]
    fn what_is_not_data_is_refused_with_its_line() {
        for (text, line) in [
            ("$M = {\n 'a' => system('rm -rf /'),\n};", 2),
            ("$M = {\n 'a' => 'open", 2),
            ("$M = { 'a' => 1 }", 1),
            ("$M = { 'a' => 1 };\n$X = 2;", 2),
            ("$OTHER = {};", 1),
        ] {
            let err = parse_assignment(text, "M").unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
        }
        let deep = format!("$M = {}{};", "[".repeat(100), "]".repeat(100));
        assert!(parse_assignment(&deep, "M").unwrap_err().message.contains("deeply"));
    }
}

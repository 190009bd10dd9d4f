//! A minimal JSON writer for `--json` output: enough for flat objects and arrays of them,
//! without a serialisation framework in the binary.

use std::fmt::Write;

/// Builds one JSON object, field by field.
#[derive(Debug, Default)]
pub struct Object {
    buf: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &str) {
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        string_into(&mut self.buf, key);
        self.buf.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        string_into(&mut self.buf, value);
        self
    }

    /// Adds a string field, or `null`.
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// Adds a number field.
    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Self {
        let text = value.to_string();
        self.raw(key, &text)
    }

    /// Adds a boolean field.
    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// Adds a field whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    /// The finished object's text.
    pub fn finish(mut self) -> String {
        if self.buf.is_empty() {
            self.buf.push('{');
        }
        self.buf.push('}');
        self.buf
    }
}

/// A JSON array of already-encoded values.
pub fn array<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut s = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&item);
    }
    s.push(']');
    s
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    string_into(&mut out, s);
    out
}

fn string_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_with_every_kind_of_field() {
        let o = Object::new()
            .str("s", "a\"b\\c\n\u{1}é")
            .num("n", 42u64)
            .bool("b", true)
            .opt_str("none", None)
            .raw("list", &array(vec![string("x"), "1".into()]))
            .finish();
        assert_eq!(
            o,
            r#"{"s":"a\"b\\c\n\u0001é","n":42,"b":true,"none":null,"list":["x",1]}"#
        );
        assert_eq!(Object::new().finish(), "{}");
    }
}

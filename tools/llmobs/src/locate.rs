//! Where a configuration field is in the JSON text it came from: the line and column of its
//! value, for error messages (`ConfigError` names fields by path; editors want positions).

/// One step of a field path: `custom_rules[1].entity` is `custom_rules`, `[1]`, `entity`.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => (part.get(..at)?, part.get(at..)?),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key.to_string()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            out.push(Step::Index(inner.get(..close)?.parse().ok()?));
            rest = inner.get(close + 1..)?;
        }
    }
    Some(out)
}

/// The 1-based line and column (in characters) of the value at `path` in `text`, if it is
/// there; `.` is the document itself.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let steps = if path == "." { Vec::new() } else { steps(path)? };
    let mut scanner = Scanner { bytes: text.as_bytes(), at: 0 };
    let offset = scanner.find(&steps)?;
    let before = text.get(..offset)?;
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn blank(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.blank();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// A string at the cursor, decoded.
    fn string(&mut self) -> Option<String> {
        self.blank();
        let start = self.at;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    let raw = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
                    return serde_json::from_str(raw).ok();
                }
                _ => self.at += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        self.blank();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.blank();
                    if self.peek()? == close {
                        self.at += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.eat(b':')?;
                    }
                    self.skip_value()?;
                    self.blank();
                    if self.peek()? == b',' {
                        self.at += 1;
                    }
                }
            }
            _ => {
                while self.peek().is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace()) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    fn find(&mut self, steps: &[Step]) -> Option<usize> {
        self.blank();
        let Some((step, rest)) = steps.split_first() else { return Some(self.at) };
        match step {
            Step::Key(want) => {
                self.eat(b'{')?;
                let mut found = None;
                loop {
                    self.blank();
                    if self.peek()? == b'}' {
                        // Duplicate keys: serde keeps the last, so the position does too.
                        return found;
                    }
                    let key = self.string()?;
                    self.eat(b':')?;
                    if &key == want {
                        let mut inner = Scanner { bytes: self.bytes, at: self.at };
                        found = inner.find(rest).or(found);
                    }
                    self.skip_value()?;
                    self.blank();
                    if self.peek()? == b',' {
                        self.at += 1;
                    }
                }
            }
            Step::Index(want) => {
                self.eat(b'[')?;
                let mut index = 0;
                loop {
                    self.blank();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if index == *want {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.eat(b',')?;
                    index += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_field_is_found_at_its_line_and_column() {
        let text = "{\n  \"mode\": \"traffic\",\n  \"custom_rules\": [\n    {\"entity\": \"a\"},\n    {\"entity\": \"b\", \"pattern\": \"x\"}\n  ]\n}";
        assert_eq!(locate(text, "mode"), Some((2, 11)));
        assert_eq!(locate(text, "custom_rules[1]"), Some((5, 5)));
        assert_eq!(locate(text, "custom_rules[1].pattern"), Some((5, 32)));
        assert_eq!(locate(text, "custom_rules[2]"), None);
        assert_eq!(locate(text, "."), Some((1, 1)));
    }

    #[test]
    fn broken_text_and_odd_paths_give_no_position_instead_of_failing() {
        assert_eq!(locate("{\"a\": [1, 2", "a[5]"), None);
        assert_eq!(locate("{\"a\": \"\\", "b"), None);
        assert_eq!(locate("{}", "a[x]"), None);
    }
}

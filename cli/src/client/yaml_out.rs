//! YAML output as kubectl writes it (go-yaml v2 through sigs.k8s.io/yaml): sequences inside
//! mappings not indented, strings that would read back as another type double-quoted,
//! strings with YAML indicators single-quoted, multi-line strings as literal blocks, and
//! long plain strings folded at spaces past column 80.

use serde_json::{Map, Value};

const BEST_WIDTH: usize = 80;

/// Emits `v` (keys in the order given) as a YAML document.
pub fn emit(v: &Value) -> String {
    let mut e = Emitter::default();
    match v {
        Value::Object(m) if !m.is_empty() => e.map(m, 0, false),
        Value::Array(a) if !a.is_empty() => e.seq(a, 0, false),
        other => {
            e.scalar(other, 0);
            e.newline();
        }
    }
    e.out
}

#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn put(&mut self, s: &str) {
        self.out.push_str(s);
        match s.rfind('\n') {
            Some(i) => self.column = s[i + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
    }

    fn newline(&mut self) {
        self.put("\n");
    }

    fn indent(&mut self, n: usize) {
        self.put(&" ".repeat(n));
    }

    fn map(&mut self, m: &Map<String, Value>, ind: usize, inline_first: bool) {
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent(ind);
            }
            self.key(k);
            self.put(":");
            self.value(v, ind, true);
        }
    }

    fn seq(&mut self, a: &[Value], ind: usize, inline_first: bool) {
        for (i, v) in a.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent(ind);
            }
            self.put("-");
            self.value(v, ind, false);
        }
    }

    /// Writes what follows `key:` or `-`; `ind` is the indent of that key or dash.
    fn value(&mut self, v: &Value, ind: usize, in_map: bool) {
        match v {
            Value::Object(m) if m.is_empty() => self.put(" {}\n"),
            Value::Array(a) if a.is_empty() => self.put(" []\n"),
            Value::Object(m) if in_map => {
                self.newline();
                self.map(m, ind + 2, false);
            }
            Value::Object(m) => {
                self.put(" ");
                self.map(m, ind + 2, true);
            }
            Value::Array(a) if in_map => {
                self.newline();
                self.seq(a, ind, false);
            }
            Value::Array(a) => {
                self.put(" ");
                self.seq(a, ind + 2, true);
            }
            scalar => {
                self.put(" ");
                self.scalar(scalar, ind + 2);
                if !self.out.ends_with('\n') {
                    self.newline();
                }
            }
        }
    }

    fn key(&mut self, k: &str) {
        let a = analyze(k);
        if k.contains('\n') || resolves_to_other_type(k) || !a.single_quoted_allowed {
            self.put(&double_quoted(k));
        } else if a.block_plain_allowed {
            self.put(k);
        } else {
            self.put(&format!("'{}'", k.replace('\'', "''")));
        }
    }

    /// A scalar value; `ind` is the indent of continuation and literal lines.
    fn scalar(&mut self, v: &Value, ind: usize) {
        let s = match v {
            Value::Null => return self.put("null"),
            Value::Bool(b) => return self.put(if *b { "true" } else { "false" }),
            Value::Number(n) => return self.put(&n.to_string()),
            Value::String(s) => s,
            _ => unreachable!("collections are handled by the caller"),
        };
        let a = analyze(s);
        if s.contains('\n') {
            if a.block_allowed {
                self.literal(s, ind);
            } else {
                self.put(&double_quoted(s));
            }
        } else if resolves_to_other_type(s) {
            self.put(&double_quoted(s));
        } else if a.block_plain_allowed {
            self.folded(s, ind, false);
        } else if a.single_quoted_allowed {
            self.put("'");
            self.folded(&s.replace('\'', "''"), ind, true);
            self.put("'");
        } else {
            self.put(&double_quoted(s));
        }
    }

    /// Writes `s`, replacing a single space by a line break and indent once past column 80.
    fn folded(&mut self, s: &str, ind: usize, quoted: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                let edge = quoted && (i == 0 || i + 1 == chars.len());
                if !spaces && self.column > BEST_WIDTH && !next_space && !edge {
                    self.newline();
                    self.indent(ind);
                } else {
                    self.put(" ");
                }
                spaces = true;
            } else {
                let mut buf = [0u8; 4];
                self.put(c.encode_utf8(&mut buf));
                spaces = false;
            }
        }
    }

    fn literal(&mut self, s: &str, ind: usize) {
        self.put("|");
        if s.starts_with(' ') || s.starts_with('\n') {
            self.put("2");
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        match trailing {
            0 => self.put("-"),
            1 if s.len() > 1 => {}
            _ => self.put("+"),
        }
        self.newline();
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            if !line.is_empty() {
                self.indent(ind);
                self.put(line);
            }
            self.newline();
        }
    }
}

/// What go-yaml's scalar analysis allows for a string.
struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn analyze(s: &str) -> Analysis {
    let mut a = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if s.is_empty() {
        return a;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut special, mut line_breaks, mut space_break, mut break_space) =
        (false, false, false, false);
    let (mut prev_space, mut prev_break, mut preceded_by_ws) = (false, false, true);
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = chars
            .get(i + 1)
            .is_none_or(|n| matches!(n, ' ' | '\t' | '\n' | '\r'));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !printable(c) {
            special = true;
        }
        match c {
            ' ' => {
                if prev_break {
                    break_space = true;
                }
                (prev_space, prev_break) = (true, false);
            }
            '\n' => {
                line_breaks = true;
                if prev_space {
                    space_break = true;
                }
                (prev_space, prev_break) = (false, true);
            }
            _ => (prev_space, prev_break) = (false, false),
        }
        preceded_by_ws = matches!(c, ' ' | '\t' | '\n' | '\r');
    }
    let (first, last) = (chars[0], chars[chars.len() - 1]);
    if first == ' '
        || first == '\n'
        || last == ' '
        || last == '\n'
        || line_breaks
        || block_indicators
    {
        a.block_plain_allowed = false;
    }
    if last == ' ' {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    a
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if !printable(c) || c == '\u{85}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a plain scalar with this text would read back as something other than a string
/// (YAML 1.1 booleans and nulls, numbers, timestamps), so it must be quoted.
pub fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    is_int(&s.replace('_', "")) || is_float(s) || is_timestamp(s) || is_base60(s)
}

fn is_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (o, 8)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

fn is_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()),
        Some((int, frac)) => {
            !int.is_empty()
                && int.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let d = e.strip_prefix(['+', '-']).unwrap_or(e);
        !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

fn is_timestamp(s: &str) -> bool {
    let date_len = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let (date, rest) = s.split_at(date_len);
    let parts: Vec<&str> = date.split('-').collect();
    let date_ok = parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit()))
        && parts[1].len() <= 2
        && parts[2].len() <= 2;
    if !date_ok {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    // A time part: H:M:S with optional fraction and zone; accept what looks like one.
    let time = &rest[1..];
    let clock_end = time
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(time.len());
    let clock: Vec<&str> = time[..clock_end]
        .split('.')
        .next()
        .unwrap_or_default()
        .split(':')
        .collect();
    let zone = &time[clock_end..];
    clock.len() == 3
        && clock
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
        && (zone.is_empty() || zone == "Z" || zone.starts_with(['+', '-']))
}

fn is_base60(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let mut parts = body.split(':');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && first.starts_with(|c: char| c.is_ascii_digit())
        && first.chars().all(|c| c.is_ascii_digit() || c == '_')
        && rest.iter().enumerate().all(|(i, p)| {
            let p = if i + 1 == rest.len() {
                p.split('.').next().unwrap_or_default()
            } else {
                p
            };
            (1..=2).contains(&p.len())
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n < 60)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configmap_as_kubectl_prints_it() {
        let v = json!({"apiVersion": "v1",
            "data": {"GREETING": "hello from skiff", "index.html": "<h1>hello from skiff</h1>\n", "n": "5", "e": ""},
            "kind": "ConfigMap",
            "metadata": {"creationTimestamp": "2026-11-22T17:06:24Z", "labels": {"app": "web"}, "resourceVersion": "5"}});
        assert_eq!(
            emit(&v),
            "apiVersion: v1\ndata:\n  GREETING: hello from skiff\n  index.html: |\n    <h1>hello from skiff</h1>\n  \"n\": \"5\"\n  e: \"\"\nkind: ConfigMap\nmetadata:\n  creationTimestamp: \"2026-11-22T17:06:24Z\"\n  labels:\n    app: web\n  resourceVersion: \"5\"\n"
        );
    }

    #[test]
    fn sequences_and_nested_maps() {
        let v = json!({"spec": {"containers": [{"name": "c", "command": ["sh", "-c", "a && b"], "ports": [{"containerPort": 80}]}],
            "empty": [], "none": {}, "nested": [["a"]]}});
        assert_eq!(
            emit(&v),
            "spec:\n  containers:\n  - name: c\n    command:\n    - sh\n    - -c\n    - a && b\n    ports:\n    - containerPort: 80\n  empty: []\n  none: {}\n  nested:\n  - - a\n"
        );
    }

    #[test]
    fn quoting_follows_go_yaml() {
        for s in [
            "true",
            "y",
            "No",
            "null",
            "~",
            "12",
            "0x1F",
            "1.5",
            ".5",
            "1e3",
            "2024-01-02",
            "1:20",
            "010",
        ] {
            assert!(resolves_to_other_type(s), "{s}");
        }
        for s in [
            "web",
            "1.2.3",
            "v1",
            "-c",
            "10.0.0.1",
            "app=web",
            "1Gi",
            "50m",
            "2024-01-02x",
        ] {
            assert!(!resolves_to_other_type(s), "{s}");
        }
        let v = json!({"a": "*", "b": "key: value", "c": " lead", "d": "x #y", "e": "it's", "f": "tab\there", "g": "x\n"});
        assert_eq!(
            emit(&v),
            "a: '*'\nb: 'key: value'\nc: ' lead'\nd: 'x #y'\ne: it's\nf: \"tab\\there\"\ng: |\n  x\n"
        );
    }

    #[test]
    fn literal_chomping_and_folding() {
        let v = json!({"a": "x\ny", "b": "x\n\n", "c": "word ".repeat(20).trim_end().to_string()});
        let out = emit(&v);
        assert!(
            out.starts_with("a: |-\n  x\n  y\nb: |+\n  x\n\nc: word word"),
            "{out}"
        );
        let c_lines: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("c:")).collect();
        assert_eq!(c_lines.len(), 2, "{out}");
        assert!(
            c_lines[0].chars().count() > BEST_WIDTH && c_lines[0].chars().count() < BEST_WIDTH + 6,
            "{out}"
        );
        assert!(c_lines[1].starts_with("  word"), "{out}");
    }
}

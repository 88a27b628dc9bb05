//! The lexer and recursive-descent parser for label selector strings, following Kubernetes'
//! `labels.Parse` token by token so error messages match.

use super::{Operator, Requirement, SelectorError, validate_key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Identifier,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    EndOfString,
    Error,
}

/// In the values context the keywords `in`/`notin` are plain identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn special_token(s: &str) -> Option<Token> {
    Some(match s {
        "!" => Token::DoesNotExist,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "=" => Token::Equals,
        "==" => Token::DoubleEquals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        _ => return None,
    })
}

fn lex(input: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            out.push((Token::EndOfString, String::new()));
            return out;
        }
        let start = i;
        if is_special(chars[i]) {
            // Longest run of special characters that is still a known token.
            let mut lit = String::new();
            while i < chars.len() && is_special(chars[i]) {
                let mut next = lit.clone();
                next.push(chars[i]);
                if special_token(&next).is_none() {
                    break;
                }
                lit = next;
                i += 1;
            }
            match special_token(&lit) {
                Some(t) => out.push((t, lit)),
                None => {
                    out.push((Token::Error, chars[start..=start].iter().collect()));
                    i = start + 1;
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let lit: String = chars[start..i].iter().collect();
            let tok = match lit.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            out.push((tok, lit));
        }
    }
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, ctx: Context) -> (Token, String) {
        let (t, l) = self.items[self.pos.min(self.items.len() - 1)].clone();
        (adjust(t, ctx), l)
    }

    fn next(&mut self, ctx: Context) -> (Token, String) {
        let item = self.peek(ctx);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn requirements(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.peek(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    out.push(
                        self.requirement()
                            .map_err(|e| format!("unable to parse requirement: {e}"))?,
                    );
                    let (t, l) = self.next(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(out),
                        Token::Comma => {
                            let (t2, l2) = self.peek(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(out),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut does_not_exist = false;
        let (mut tok, mut key) = self.next(Context::Values);
        if tok == Token::DoesNotExist {
            does_not_exist = true;
            (tok, key) = self.next(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        validate_key(&key, "<nil>")?;
        let (after, _) = self.peek(Context::Values);
        if does_not_exist || after == Token::EndOfString || after == Token::Comma {
            let op = if does_not_exist {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, Vec::new(), "").map_err(|e| e.0);
        }
        let (tok, lit) = self.next(Context::KeyAndOperator);
        let op = match tok {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values, "").map_err(|e| e.0)
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.identifier_list()?;
                let (t, _) = self.next(Context::Values);
                if t != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    let (t2, l2) = self.peek(Context::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                // An empty element between commas (`(,a)`, `(a,)`, `(a,,b)`) is the value "".
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (t2, _) = self.peek(Context::Values);
                    if t2 == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if t2 == Token::Comma {
                        self.next(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(Context::Values);
        if tok == Token::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

fn adjust(t: Token, ctx: Context) -> Token {
    match (ctx, t) {
        (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
        _ => t,
    }
}

/// Parses a selector string into its requirements, in source order.
pub(super) fn parse(input: &str) -> Result<Vec<Requirement>, SelectorError> {
    let mut parser = Parser {
        items: lex(input),
        pos: 0,
    };
    parser.requirements().map_err(SelectorError)
}

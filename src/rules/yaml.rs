//! YAML with positions: a rule file parsed into a tree whose every node
//! knows its line and column, turned into a `serde_json::Value` for typed
//! deserialization, with `${ENV}` expanded in string scalars on the way.
//!
//! Why not serde_yaml alone: it reports positions for syntax and type errors
//! but forgets them once a value is deserialized, and a bad regex, an
//! unknown key name or a duplicate rule must still point at its node. The
//! tree keeps every position, so type errors (through
//! `serde_path_to_error`) and semantic errors are located the same way.

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(marker: Marker) -> Self {
        Self {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar; `is_plain` when unquoted (so `true` or `10` are typed).
    Scalar {
        text: String,
        is_plain: bool,
    },
    Seq(Vec<Node>),
    /// Key nodes (scalars) and their values, in file order.
    Map(Vec<(Node, Node)>),
}

/// A syntax error, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        pos: Pos::from(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            pos: builder.error_pos,
            message,
        });
    }
    Ok(builder.root.unwrap_or(Node {
        pos: Pos { line: 1, column: 1 },
        kind: Kind::Map(Vec::new()),
    }))
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    error: Option<String>,
    error_pos: Pos,
}

enum Open {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }

    fn fail(&mut self, pos: Pos, message: &str) {
        if self.error.is_none() {
            self.error = Some(message.to_string());
            self.error_pos = pos;
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let pos = Pos::from(marker);
        match event {
            Event::Scalar(text, style, _, _) => self.push(Node {
                pos,
                kind: Kind::Scalar {
                    text,
                    is_plain: style == TScalarStyle::Plain,
                },
            }),
            Event::SequenceStart(..) => self.stack.push(Open::Seq(pos, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Open::Map(pos, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq(pos, items)) => Node {
                        pos,
                        kind: Kind::Seq(items),
                    },
                    Some(Open::Map(pos, entries, _)) => Node {
                        pos,
                        kind: Kind::Map(entries),
                    },
                    None => return,
                };
                self.push(node);
            }
            Event::Alias(_) => self.fail(
                pos,
                "YAML aliases (*name) are not supported in rule files; repeat the value",
            ),
            _ => {}
        }
    }
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl Node {
    /// The value at `path`, if there is one.
    pub fn get(&self, path: &[Step<'_>]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match (first, &self.kind) {
            (Step::Key(key), Kind::Map(entries)) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))?
                .1
                .get(rest),
            (Step::Index(i), Kind::Seq(items)) => items.get(*i)?.get(rest),
            _ => None,
        }
    }

    /// The key node of `key` in the map at `path`: where an unknown field
    /// is reported.
    pub fn key_at(&self, path: &[Step<'_>], key: &str) -> Option<&Node> {
        match &self.get(path)?.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Converts to JSON, resolving plain scalars to YAML 1.2 core types and
    /// expanding `${VAR}` in strings with `env`. The first variable `env`
    /// does not know is an error at its scalar.
    pub fn to_json(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Value, (Pos, String)> {
        Ok(match &self.kind {
            Kind::Scalar { text, is_plain } => {
                if *is_plain && let Some(typed) = resolve_plain(text) {
                    typed
                } else {
                    Value::String(expand(text, env).map_err(|m| (self.pos, m))?)
                }
            }
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|n| n.to_json(env))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let Some(name) = key.as_str() else {
                        return Err((key.pos, "map keys must be plain strings".to_string()));
                    };
                    if map.contains_key(name) {
                        return Err((key.pos, format!("`{name}` appears twice in this map")));
                    }
                    map.insert(name.to_string(), value.to_json(env)?);
                }
                Value::Object(map)
            }
        })
    }
}

/// YAML 1.2 core schema for plain scalars: null, booleans, integers, floats;
/// `None` for strings.
fn resolve_plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    if text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Some(Value::Number(n));
    }
    None
}

/// Expands `${VAR}`; `$$` is a literal `$`.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err("`${` without a closing `}`".to_string());
            };
            let name = &body[..end];
            let value = env(name).ok_or_else(|| {
                format!(
                    "environment variable `{name}` is not set (write `$${{{name}}}` for a literal)"
                )
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let root = parse("rules:\n  - name: a\n    action: { strip: {} }\n").expect("parses");
        let name = root
            .get(&[Step::Key("rules"), Step::Index(0), Step::Key("name")])
            .expect("found");
        assert_eq!(
            name.pos,
            Pos {
                line: 2,
                column: 11
            }
        );
        let key = root
            .key_at(&[Step::Key("rules"), Step::Index(0)], "action")
            .expect("key");
        assert_eq!(key.pos, Pos { line: 3, column: 5 });
    }

    #[test]
    fn plain_scalars_are_typed_and_quoted_ones_stay_strings() {
        let root = parse("a: 10\nb: '10'\nc: true\nd: 0.25\ne: 30s\nf:\n").expect("parses");
        let json = root.to_json(&no_env).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"a": 10, "b": "10", "c": true, "d": 0.25, "e": "30s", "f": null})
        );
    }

    #[test]
    fn env_variables_expand_and_a_missing_one_is_located() {
        let env = |name: &str| (name == "TENANT").then(|| "acme".to_string());
        let root = parse("a: \"^${TENANT}$$\"\nb: ${MISSING}\n").expect("parses");
        let err = root.to_json(&env).expect_err("missing variable");
        assert_eq!(err.0, Pos { line: 2, column: 4 });
        assert!(err.1.contains("MISSING"), "{}", err.1);
        let root = parse("a: \"^${TENANT}$$\"\n").expect("parses");
        assert_eq!(root.to_json(&env).expect("json")["a"], "^acme$");
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let err = parse("rules:\n  - name: [unclosed\n").expect_err("bad yaml");
        assert!(err.pos.line >= 2, "{err:?}");
    }

    #[test]
    fn a_duplicate_key_is_an_error_at_the_second_key() {
        let root = parse("a: 1\na: 2\n").expect("parses");
        let err = root.to_json(&no_env).expect_err("duplicate");
        assert_eq!(err.0, Pos { line: 2, column: 1 });
    }
}

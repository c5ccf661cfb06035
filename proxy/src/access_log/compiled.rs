//! A format as the loader parsed it, made ready to write once, when the log is built: header names parsed into
//! `http::HeaderName`s so no line parses a name again.

use outrigger_config::model::access_log::{Command, Format, JsonValue, Operator, Piece};

/// A format ready to write.
#[derive(Debug)]
pub enum Compiled {
    Text(Vec<Part>),
    Json(Vec<(String, Field)>),
}

#[derive(Debug)]
pub enum Part {
    Text(String),
    Operator(Op),
}

/// A value of a `json_format` object (see the loader's `JsonValue`).
#[derive(Debug)]
pub enum Field {
    Template(Vec<Part>),
    Literal(serde_json::Value),
    Object(Vec<(String, Field)>),
}

/// An operator, with the headers it reads (`%REQ(X?Y)%`: X, else Y) parsed.
#[derive(Debug)]
pub struct Op {
    pub command: Command,
    pub max_length: Option<usize>,
    pub headers: [Key; 2],
}

/// A header of the request or response an operator reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Method,
    Path,
    Authority,
    Scheme,
    Header(http::HeaderName),
    /// No header (none asked for, or a name no header can have: its value is always unset).
    Nothing,
}

impl Key {
    /// `name` as the request's operators read it: pseudo-headers too (`host` is `:authority`, as in Envoy).
    pub fn request(name: &str) -> Key {
        match name {
            ":method" => Key::Method,
            ":path" => Key::Path,
            ":authority" | "host" => Key::Authority,
            ":scheme" => Key::Scheme,
            _ => Key::response(name),
        }
    }

    /// `name` as a response header or trailer.
    pub fn response(name: &str) -> Key {
        http::HeaderName::from_bytes(name.as_bytes()).map_or(Key::Nothing, Key::Header)
    }
}

impl Compiled {
    pub fn new(format: &Format) -> Self {
        match format {
            Format::Text(pieces) => Compiled::Text(parts(pieces)),
            Format::Json(fields) => Compiled::Json(object(fields)),
        }
    }
}

impl Compiled {
    /// Adds the response headers this format reads (`%RESP(X?Y)%`) to `names`.
    pub fn response_headers(&self, names: &mut Vec<http::HeaderName>) {
        self.headers_read(&|c| matches!(c, Command::Resp { .. }), names);
    }

    /// Adds the request headers this format reads (`%REQ(X?Y)%`; `host` for `:authority`) to `names`.
    pub fn request_headers(&self, names: &mut Vec<http::HeaderName>) {
        self.headers_read(&|c| matches!(c, Command::Req { .. }), names);
    }

    fn headers_read(&self, reads: &dyn Fn(&Command) -> bool, names: &mut Vec<http::HeaderName>) {
        match self {
            Compiled::Text(parts) => parts_headers(parts, reads, names),
            Compiled::Json(fields) => fields_headers(fields, reads, names),
        }
    }
}

fn parts_headers(
    parts: &[Part],
    reads: &dyn Fn(&Command) -> bool,
    names: &mut Vec<http::HeaderName>,
) {
    for part in parts {
        if let Part::Operator(op) = part
            && reads(&op.command)
        {
            for key in &op.headers {
                let name = match key {
                    Key::Header(name) => name,
                    // Without an authority in the request's URI, `:authority` is its `host` header.
                    Key::Authority => &http::header::HOST,
                    _ => continue,
                };
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
}

fn fields_headers(
    fields: &[(String, Field)],
    reads: &dyn Fn(&Command) -> bool,
    names: &mut Vec<http::HeaderName>,
) {
    for (_, field) in fields {
        match field {
            Field::Template(parts) => parts_headers(parts, reads, names),
            Field::Object(inner) => fields_headers(inner, reads, names),
            Field::Literal(_) => {}
        }
    }
}

fn parts(pieces: &[Piece]) -> Vec<Part> {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(t) => Part::Text(t.clone()),
            Piece::Operator(op) => Part::Operator(operator(op)),
        })
        .collect()
}

fn object(fields: &[(String, JsonValue)]) -> Vec<(String, Field)> {
    fields
        .iter()
        .map(|(key, value)| {
            let field = match value {
                JsonValue::Template(pieces) => Field::Template(parts(pieces)),
                JsonValue::Literal(literal) => Field::Literal(literal.clone()),
                JsonValue::Object(inner) => Field::Object(object(inner)),
            };
            (key.clone(), field)
        })
        .collect()
}

fn operator(op: &Operator) -> Op {
    let pair = |parse: fn(&str) -> Key, name: &str, alternative: &Option<String>| {
        [
            parse(name),
            alternative.as_deref().map_or(Key::Nothing, parse),
        ]
    };
    let headers = match &op.command {
        Command::Req { name, alternative } => pair(Key::request, name, alternative),
        Command::Resp { name, alternative } | Command::Trailer { name, alternative } => {
            pair(Key::response, name, alternative)
        }
        _ => [Key::Nothing, Key::Nothing],
    };
    Op {
        command: op.command.clone(),
        max_length: op.max_length,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_parsed_once_pseudo_headers_named() {
        let op = operator(&Operator {
            command: Command::Req {
                name: "x-envoy-original-path".into(),
                alternative: Some(":path".into()),
            },
            max_length: None,
        });
        assert_eq!(
            op.headers,
            [
                Key::Header(http::HeaderName::from_static("x-envoy-original-path")),
                Key::Path
            ]
        );
        assert_eq!(Key::request("host"), Key::Authority);
        assert_eq!(Key::response(":status"), Key::Nothing);
        assert_eq!(Key::response("bad name"), Key::Nothing);
    }

    #[test]
    fn the_response_headers_a_format_reads_are_listed_once() {
        let text = outrigger_config::fuzzing::access_log_format(
            "%RESP(X-A?Server)% %REQ(X-B)% %RESP(x-a)% %TRAILER(grpc-message)%",
        )
        .unwrap();
        let mut names = vec![];
        Compiled::new(&Format::Text(text.clone())).response_headers(&mut names);
        assert_eq!(names, ["x-a", "server"]);
        let json = Format::Json(vec![(
            "o".into(),
            JsonValue::Object(vec![("r".into(), JsonValue::Template(text))]),
        )]);
        names.clear();
        Compiled::new(&json).response_headers(&mut names);
        assert_eq!(names, ["x-a", "server"]);
    }
}

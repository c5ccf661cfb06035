//! Envoy's format strings (`%COMMAND(args):max_length%` between literal text) parsed once, at load time.

use crate::model::access_log::{Command, Operator, Piece};

/// Envoy 1.40's default access log format (`%REQ` is the older spelling of `%REQUEST_HEADER`; both work).
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
     %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
     %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
     \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// The pieces of `text`, or what is wrong with it (to be reported at the field's path).
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some((operator, len)) = operator(after)? else {
            return Err(format!(
                "no valid command operator at position {} of the format ({:?}): write %COMMAND%, \
                 %COMMAND(arguments)% or %COMMAND(arguments):LENGTH%",
                text.len() - rest.len() + at,
                truncate(after)
            ));
        };
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Operator(operator));
        rest = &after[len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn truncate(s: &str) -> &str {
    s.char_indices().nth(24).map_or(s, |(i, _)| &s[..i])
}

/// The operator at the start of `s` (just after its opening `%`) and the bytes it takes, closing `%` included.
/// `Ok(None)`: not an operator's shape (Envoy's "couldn't find valid command").
fn operator(s: &str) -> Result<Option<(Operator, usize)>, String> {
    let name_len = s
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || *b == b'_' || b.is_ascii_digit())
        .count();
    if name_len == 0 {
        return Ok(None);
    }
    let name = &s[..name_len];
    let mut at = name_len;
    let mut argument = None;
    if s[at..].starts_with('(') {
        let Some(close) = s[at..].find(')') else {
            return Ok(None);
        };
        argument = Some(&s[at + 1..at + close]);
        at += close + 1;
    }
    let mut max_length = None;
    if s[at..].starts_with(':') {
        let digits = s[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Ok(None);
        }
        max_length = s[at + 1..at + 1 + digits].parse::<usize>().ok();
        at += 1 + digits;
    }
    if !s[at..].starts_with('%') {
        return Ok(None);
    }
    let command = command(name, argument)?;
    let takes_length = matches!(
        command,
        Command::Req { .. } | Command::Resp { .. } | Command::Trailer { .. }
    );
    if max_length.is_some() && !takes_length {
        return Err(format!(
            "%{name}% takes no maximum length; only %REQ%, %RESP% and %TRAILER% do here"
        ));
    }
    Ok(Some((
        Operator {
            command,
            max_length,
        },
        at + 1,
    )))
}

fn command(name: &str, argument: Option<&str>) -> Result<Command, String> {
    let headers = |argument: Option<&str>| -> Result<(String, Option<String>), String> {
        let Some(argument) = argument.filter(|a| !a.is_empty()) else {
            return Err(format!("%{name}(...)% needs a header name: %{name}(X?Y)%"));
        };
        let mut parts = argument.split('?');
        let first = parts.next().unwrap_or_default().to_ascii_lowercase();
        let alternative = parts.next().map(str::to_ascii_lowercase);
        if parts.next().is_some() {
            return Err(format!(
                "%{name}({argument})%: more than one alternative header; write %{name}(X?Y)%"
            ));
        }
        Ok((first, alternative))
    };
    let plain = |command: Command| {
        if argument.is_some() {
            Err(format!("%{name}% takes no arguments"))
        } else {
            Ok(command)
        }
    };
    Ok(match name {
        "REQ" | "REQUEST_HEADER" => {
            let (name, alternative) = headers(argument)?;
            Command::Req { name, alternative }
        }
        "RESP" | "RESPONSE_HEADER" => {
            let (name, alternative) = headers(argument)?;
            Command::Resp { name, alternative }
        }
        "TRAILER" | "RESPONSE_TRAILER" => {
            let (name, alternative) = headers(argument)?;
            Command::Trailer { name, alternative }
        }
        "START_TIME" => Command::StartTime(argument.filter(|a| !a.is_empty()).map(String::from)),
        "PROTOCOL" => plain(Command::Protocol)?,
        "UPSTREAM_PROTOCOL" => plain(Command::UpstreamProtocol)?,
        "RESPONSE_CODE" => plain(Command::ResponseCode)?,
        "RESPONSE_CODE_DETAILS" => plain(Command::ResponseCodeDetails)?,
        "RESPONSE_FLAGS" => plain(Command::ResponseFlags)?,
        "RESPONSE_FLAGS_LONG" => plain(Command::ResponseFlagsLong)?,
        "BYTES_RECEIVED" => plain(Command::BytesReceived)?,
        "BYTES_SENT" => plain(Command::BytesSent)?,
        "DURATION" => plain(Command::Duration)?,
        "REQUEST_DURATION" => plain(Command::RequestDuration)?,
        "RESPONSE_DURATION" => plain(Command::ResponseDuration)?,
        "RESPONSE_TX_DURATION" => plain(Command::ResponseTxDuration)?,
        "UPSTREAM_HOST" => plain(Command::UpstreamHost)?,
        "UPSTREAM_CLUSTER" => plain(Command::UpstreamCluster)?,
        "UPSTREAM_CLUSTER_RAW" => plain(Command::UpstreamClusterRaw)?,
        "UPSTREAM_LOCAL_ADDRESS" => plain(Command::UpstreamLocalAddress)?,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => plain(Command::UpstreamTransportFailureReason)?,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => plain(Command::UpstreamRequestAttemptCount)?,
        "DOWNSTREAM_REMOTE_ADDRESS" => plain(Command::DownstreamRemoteAddress)?,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamRemoteAddressWithoutPort)?
        }
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => plain(Command::DownstreamDirectRemoteAddress)?,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamDirectRemoteAddressWithoutPort)?
        }
        "DOWNSTREAM_LOCAL_ADDRESS" => plain(Command::DownstreamLocalAddress)?,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamLocalAddressWithoutPort)?
        }
        "DOWNSTREAM_PEER_URI_SAN" => plain(Command::DownstreamPeerUriSan)?,
        "REQUESTED_SERVER_NAME" => plain(Command::RequestedServerName)?,
        "ROUTE_NAME" => plain(Command::RouteName)?,
        "CONNECTION_TERMINATION_DETAILS" => plain(Command::ConnectionTerminationDetails)?,
        "HOSTNAME" => plain(Command::Hostname)?,
        other => {
            return Err(format!(
                "the command operator %{other}% is not implemented by Outrigger; remove it (the README lists \
                 the operators access logs support)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(command: Command, max_length: Option<usize>) -> Piece {
        Piece::Operator(Operator {
            command,
            max_length,
        })
    }

    #[test]
    fn operators_and_text_are_split_like_envoy() {
        let pieces = parse("[%START_TIME(%s.%3f)%] %REQ(X-A?:Path):5% x%RESPONSE_CODE%\n").unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece::Text("[".into()),
                op(Command::StartTime(Some("%s.%3f".into())), None),
                Piece::Text("] ".into()),
                op(
                    Command::Req {
                        name: "x-a".into(),
                        alternative: Some(":path".into())
                    },
                    Some(5)
                ),
                Piece::Text(" x".into()),
                op(Command::ResponseCode, None),
                Piece::Text("\n".into()),
            ]
        );
        assert_eq!(parse(DEFAULT_FORMAT).unwrap().len(), 31);
    }

    #[test]
    fn unknown_or_malformed_operators_are_refused_by_name() {
        let e = parse("%DYNAMIC_METADATA(a:b)%").unwrap_err();
        assert!(e.contains("%DYNAMIC_METADATA%"), "{e}");
        let e = parse("100% sure").unwrap_err();
        assert!(e.contains("position 3"), "{e}");
        assert!(parse("%PROTOCOL:3%").is_err());
        assert!(parse("%REQ(a?b?c)%").is_err());
        assert!(parse("%REQ()%").is_err());
        assert!(parse("%PROTOCOL(x)%").is_err());
    }
}

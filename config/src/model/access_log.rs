//! Access logs (`access_log` on a connection manager, a `tcp_proxy` or a listener): where a line goes, when one
//! is written (filters) and what it says (a format parsed once, at load time, into literal text and operators).

use serde::Serialize;

/// One `access_log` entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccessLog {
    /// Envoy writes the line only when this passes (no filter: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    pub sink: Sink,
    pub format: Format,
}

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sink {
    /// `envoy.access_loggers.file`: appended to this path (`/dev/stdout` works too).
    File(String),
    /// `envoy.access_loggers.stdout`.
    Stdout,
    /// `envoy.access_loggers.stderr`.
    Stderr,
}

/// What a line says.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Text: the pieces one after the other (Envoy's default format is one of these, ending in a newline).
    Text(Vec<Piece>),
    /// `json_format`: one JSON object per line.
    Json(Vec<(String, JsonValue)>),
}

/// A value of a `json_format` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonValue {
    /// A string with operators. A string that is exactly one operator keeps that operator's type (a number
    /// stays a number, an unset value is `null`), as Envoy's typed JSON formatter does.
    Template(Vec<Piece>),
    /// A number, a bool or null written in the format: written as it is.
    Literal(serde_json::Value),
    Object(Vec<(String, JsonValue)>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    Text(String),
    Operator(Operator),
}

/// `%COMMAND(args):max_length%`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operator {
    pub command: Command,
    /// `:Z`: the value is cut to this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

/// The command operators Outrigger writes. Any other is refused at load time, naming it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    /// `%REQ(X?Y)%` / `%REQUEST_HEADER(X?Y)%`: header X, else Y (names lower-cased; `:path` and friends too).
    Req {
        name: String,
        alternative: Option<String>,
    },
    /// `%RESP(X?Y)%` / `%RESPONSE_HEADER(X?Y)%`.
    Resp {
        name: String,
        alternative: Option<String>,
    },
    /// `%TRAILER(X?Y)%` / `%RESPONSE_TRAILER(X?Y)%`.
    Trailer {
        name: String,
        alternative: Option<String>,
    },
    /// `%START_TIME%` or `%START_TIME(strftime format)%`; none: Envoy's `%Y-%m-%dT%H:%M:%E3SZ`.
    StartTime(Option<String>),
    Protocol,
    UpstreamProtocol,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    ResponseFlagsLong,
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    ResponseTxDuration,
    UpstreamHost,
    UpstreamCluster,
    UpstreamClusterRaw,
    UpstreamLocalAddress,
    UpstreamTransportFailureReason,
    UpstreamRequestAttemptCount,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamDirectRemoteAddress,
    DownstreamDirectRemoteAddressWithoutPort,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    DownstreamPeerUriSan,
    RequestedServerName,
    RouteName,
    ConnectionTerminationDetails,
    Hostname,
}

/// `AccessLogFilter`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// `status_code_filter`: the response code (0 when none was sent) against the value.
    StatusCode(Comparison),
    /// `duration_filter`: the request's duration in milliseconds against the value.
    Duration(Comparison),
    /// `not_health_check_filter`: true unless a health check filter marked the request; Outrigger has no
    /// health check filter, so it always passes (as in Envoy without one).
    NotHealthCheck,
    /// `response_flag_filter`: any of these flags is set (empty: any flag at all).
    ResponseFlag(Vec<String>),
    /// `runtime_filter`: a share of requests, chosen by the request id unless `independent`.
    Runtime {
        numerator: u64,
        denominator: u64,
        independent: bool,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// `ComparisonFilter`: the runtime value's `default_value` (no runtime layers are read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub op: ComparisonOp,
    pub value: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComparisonOp {
    Eq,
    Ge,
    Le,
    Ne,
}

impl Comparison {
    pub fn passes(&self, actual: u64) -> bool {
        let value = u64::from(self.value);
        match self.op {
            ComparisonOp::Eq => actual == value,
            ComparisonOp::Ge => actual >= value,
            ComparisonOp::Le => actual <= value,
            ComparisonOp::Ne => actual != value,
        }
    }
}

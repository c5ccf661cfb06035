//! `envoy.filters.http.fault` (`HTTPFault`): fixed or header-driven delays and aborts. Fields the filter does
//! not act on (gRPC status aborts, response rate limits, `upstream_cluster`, `downstream_nodes`, the runtime key
//! names, a custom abort body) are refused by the support table, naming them.

use super::super::{Out, duration, route};
use crate::diagnostic::Path;
use crate::model::http::{Fault, FaultAbort, FaultDelay, Percentage};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as pb;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;

pub fn fault(f: &pb::HttpFault, at: &Path, out: &mut Out) -> Option<Fault> {
    let delay = f.delay.as_ref().and_then(|d| {
        let at = at.field("delay");
        let fixed = match &d.fault_delay_secifier {
            Some(FaultDelaySecifier::FixedDelay(fixed)) => Some(duration(fixed)),
            Some(FaultDelaySecifier::HeaderDelay(_)) => None,
            None => {
                out.error(&at, "a delay needs `fixed_delay` or `header_delay: {}`");
                return None;
            }
        };
        Some(FaultDelay {
            fixed,
            percentage: percentage(&d.percentage),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        use pb::fault_abort::ErrorType;
        let at = at.field("abort");
        let http_status = match &a.error_type {
            Some(ErrorType::HttpStatus(status)) => match u16::try_from(*status) {
                Ok(status) => Some(status),
                Err(_) => {
                    out.error(&at.field("http_status"), "not an HTTP status code");
                    return None;
                }
            },
            Some(ErrorType::HeaderAbort(_)) => None,
            Some(ErrorType::GrpcStatus(_)) => {
                out.error(
                    &at.field("grpc_status"),
                    "gRPC status aborts are not supported; use `http_status` or `header_abort`",
                );
                return None;
            }
            None => {
                out.error(&at, "an abort needs `http_status` or `header_abort: {}`");
                return None;
            }
        };
        Some(FaultAbort {
            http_status,
            percentage: percentage(&a.percentage),
        })
    });
    let headers = f
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| route::header_matcher(h, &at.field("headers").index(i), out))
        .collect();
    Some(Fault {
        delay,
        abort,
        max_active_faults: f.max_active_faults.as_ref().map(|m| m.value),
        headers,
    })
}

/// Envoy's `FractionalPercent`, absent meaning 0 %.
fn percentage(p: &Option<FractionalPercent>) -> Percentage {
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
    let Some(p) = p else {
        return Percentage {
            numerator: 0,
            denominator: 100,
        };
    };
    let denominator = match D::try_from(p.denominator) {
        Ok(D::TenThousand) => 10_000,
        Ok(D::Million) => 1_000_000,
        _ => 100,
    };
    Percentage {
        numerator: p.numerator,
        denominator,
    }
}

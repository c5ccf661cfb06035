//! `AccessLogFilter`: whether a record is written, decided as Envoy's filters decide.

use super::record::Record;
use outrigger_config::model::access_log::Filter;

/// `request_id` is the request's `x-request-id` (the runtime filter's stable choice).
pub fn passes(filter: &Filter, record: &Record, request_id: Option<&str>) -> bool {
    match filter {
        Filter::StatusCode(c) => c.passes(u64::from(record.response_code)),
        Filter::Duration(c) => record
            .duration
            .is_some_and(|d| c.passes(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        // Only a health check filter marks a request as a health check; Outrigger has none.
        Filter::NotHealthCheck => true,
        Filter::ResponseFlag(flags) if flags.is_empty() => !record.flags.is_empty(),
        Filter::ResponseFlag(flags) => flags.iter().any(|f| record.flags.contains(f)),
        Filter::Runtime {
            numerator,
            denominator,
            independent,
        } => {
            // Envoy reads the first 8 hex digits of a UUID request id as the number; without one (or with
            // independent randomness) it draws one.
            let stable = request_id
                .filter(|_| !independent)
                .and_then(|id| id.get(..8))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            let draw = stable.unwrap_or_else(|| fastrand::u64(..));
            draw % (*denominator).max(1) < *numerator
        }
        Filter::And(all) => all.iter().all(|f| passes(f, record, request_id)),
        Filter::Or(any) => any.iter().any(|f| passes(f, record, request_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::record::Flags;
    use outrigger_config::model::access_log::{Comparison, ComparisonOp};

    fn with(code: u16, flags: &[&str], millis: u64) -> Record {
        let mut f = Flags::default();
        for flag in flags {
            f.add(flag);
        }
        Record {
            response_code: code,
            flags: f,
            duration: Some(std::time::Duration::from_millis(millis)),
            ..Record::default()
        }
    }

    fn cmp(op: ComparisonOp, value: u32) -> Comparison {
        Comparison { op, value }
    }

    #[test]
    fn filters_decide_like_envoy() {
        let ok = with(200, &[], 5);
        let nr = with(404, &["NR"], 1);
        let slow_uf = with(503, &["UF", "URX"], 250);
        let status = Filter::StatusCode(cmp(ComparisonOp::Ge, 400));
        assert!(!passes(&status, &ok, None) && passes(&status, &nr, None));
        let ne = Filter::StatusCode(cmp(ComparisonOp::Ne, 200));
        assert!(!passes(&ne, &ok, None) && passes(&ne, &slow_uf, None));
        let eq = Filter::StatusCode(cmp(ComparisonOp::Eq, 404));
        assert!(passes(&eq, &nr, None) && !passes(&eq, &ok, None));
        let le = Filter::Duration(cmp(ComparisonOp::Le, 5));
        assert!(passes(&le, &ok, None) && !passes(&le, &slow_uf, None));
        assert!(passes(&Filter::NotHealthCheck, &ok, None));
        let any_flag = Filter::ResponseFlag(vec![]);
        assert!(!passes(&any_flag, &ok, None) && passes(&any_flag, &nr, None));
        let urx = Filter::ResponseFlag(vec!["URX".into()]);
        assert!(passes(&urx, &slow_uf, None) && !passes(&urx, &nr, None));
        let and = Filter::And(vec![status.clone(), urx.clone()]);
        assert!(passes(&and, &slow_uf, None) && !passes(&and, &nr, None));
        let or = Filter::Or(vec![urx, eq]);
        assert!(passes(&or, &slow_uf, None) && passes(&or, &nr, None) && !passes(&or, &ok, None));
        // The runtime filter: stable on the request id (first 8 hex digits modulo the denominator).
        let half = Filter::Runtime {
            numerator: 50,
            denominator: 100,
            independent: false,
        };
        // 0x00000031 = 49 < 50; 0x00000032 = 50.
        assert!(passes(
            &half,
            &ok,
            Some("00000031-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
        ));
        assert!(!passes(
            &half,
            &ok,
            Some("00000032-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
        ));
        let never = Filter::Runtime {
            numerator: 0,
            denominator: 100,
            independent: true,
        };
        let always = Filter::Runtime {
            numerator: 10_000,
            denominator: 10_000,
            independent: true,
        };
        for _ in 0..100 {
            assert!(!passes(&never, &ok, Some("00000000-0000")));
            assert!(passes(&always, &ok, None));
        }
        // Independent: about half of many draws, whatever the id.
        let independent = Filter::Runtime {
            numerator: 50,
            denominator: 100,
            independent: true,
        };
        let taken = (0..2000)
            .filter(|_| passes(&independent, &ok, Some("00000000-0000")))
            .count();
        assert!((800..1200).contains(&taken), "{taken}");
    }
}

//! xDS resource conversion on arbitrary protobuf bytes: what the ADS client's sink does with each `Any.value`
//! of a response (`resource::Decoder::convert`: decode, field rules, support table, conversion), for each of
//! Listener, RouteConfiguration, Cluster, ClusterLoadAssignment and Secret. The first byte picks the type.
//! Any input may be refused; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrigger_config::Diagnostics;
use outrigger_config::model::cluster::ClusterEndpoints;
use outrigger_config::model::tls::Secret;
use outrigger_config::model::{Cluster, Listener, RouteConfig};
use outrigger_config::resource::{Converted, Decoder, Resource};
use std::sync::OnceLock;

static DECODER: OnceLock<Decoder> = OnceLock::new();

fn check<R: Resource>(result: Result<Converted<R>, Diagnostics>) {
    match result {
        Ok(converted) => assert!(!converted.warnings.has_errors(), "converted with errors"),
        Err(problems) => assert!(problems.has_errors(), "refused without an error"),
    }
}

fuzz_target!(
    init: {
        match Decoder::new() {
            Ok(decoder) => {
                let _ = DECODER.set(decoder);
            }
            Err(e) => panic!("{e}"),
        }
    },
    |data: &[u8]| {
        let (Some((&kind, bytes)), Some(decoder)) = (data.split_first(), DECODER.get()) else {
            return;
        };
        match kind % 5 {
            0 => check(decoder.convert::<Listener>(bytes)),
            1 => check(decoder.convert::<RouteConfig>(bytes)),
            2 => check(decoder.convert::<Cluster>(bytes)),
            3 => check(decoder.convert::<ClusterEndpoints>(bytes)),
            _ => check(decoder.convert::<Secret>(bytes)),
        }
    }
);

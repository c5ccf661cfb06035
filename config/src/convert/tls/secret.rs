//! Secrets (`static_resources.secrets`, SDS) and the references TLS contexts make to them (`SdsSecretConfig`).

use super::super::bootstrap::api_config_source;
use super::super::{Out, config_source, timeout_or};
use super::{certificate, validation};
use crate::diagnostic::Path;
use crate::model::core::ConfigSource;
use crate::model::tls::{Secret, SecretKind, SecretRef, SecretSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as pb;

/// `{name, sds_config}`: without `sds_config` the secret is a static one (Envoy's rule); with it, `{ads: {}}`
/// or a gRPC `api_config_source` (GRPC or DELTA_GRPC to an `envoy_grpc` cluster).
pub fn reference(config: &pb::SdsSecretConfig, at: &Path, out: &mut Out) -> Option<SecretRef> {
    if config.name.is_empty() {
        out.error(&at.field("name"), "name the secret");
        return None;
    }
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier as S;
    let source = match &config.sds_config {
        None => SecretSource::Static,
        Some(sds) => match &sds.config_source_specifier {
            // Istio's `sds-grpc`: a SecretDiscoveryService stream to a static cluster.
            Some(S::ApiConfigSource(api)) => {
                let at = at.field("sds_config");
                let source = api_config_source(api, "SDS", &at.field("api_config_source"), out)?;
                SecretSource::Grpc {
                    source,
                    initial_fetch_timeout: timeout_or(
                        &sds.initial_fetch_timeout,
                        Some(std::time::Duration::from_secs(15)),
                    ),
                }
            }
            _ => match config_source(&config.sds_config, &at.field("sds_config"), out)? {
                ConfigSource::Ads {
                    initial_fetch_timeout,
                } => SecretSource::Ads {
                    initial_fetch_timeout,
                },
            },
        },
    };
    Some(SecretRef {
        name: config.name.clone(),
        source,
    })
}

/// A secret holding a certificate and its key, or a validation context.
pub fn secret(s: &pb::Secret, at: &Path, out: &mut Out) -> Option<Secret> {
    use pb::secret::Type;
    if s.name.is_empty() {
        out.error(
            &at.field("name"),
            "a secret needs a name; TLS contexts find secrets by name",
        );
        return None;
    }
    let kind = match &s.r#type {
        Some(Type::TlsCertificate(cert)) => {
            SecretKind::TlsCertificate(certificate(cert, &at.field("tls_certificate"), out)?)
        }
        Some(Type::ValidationContext(v)) => {
            SecretKind::ValidationContext(validation(v, &at.field("validation_context"), out)?)
        }
        Some(Type::SessionTicketKeys(_) | Type::GenericSecret(_)) => {
            out.error(
                at,
                "only tls_certificate and validation_context secrets are supported",
            );
            return None;
        }
        None => {
            out.error(
                at,
                "the secret holds nothing: set tls_certificate or validation_context",
            );
            return None;
        }
    };
    Some(Secret {
        name: s.name.clone(),
        kind,
    })
}

/// Every TLS context of a snapshot with its path: listeners' filter chains, clusters and their
/// `transport_socket_matches`.
fn contexts(snapshot: &crate::Snapshot) -> Vec<(Path, &crate::model::tls::CommonTls)> {
    let at = Path::root().field("static_resources");
    let mut found = Vec::new();
    for (i, listener) in snapshot.listeners.iter().enumerate() {
        let at = at.field("listeners").index(i);
        let chains = listener
            .filter_chains
            .iter()
            .enumerate()
            .map(|(j, c)| (at.field("filter_chains").index(j), c))
            .chain(
                listener
                    .default_filter_chain
                    .iter()
                    .map(|c| (at.field("default_filter_chain"), c)),
            );
        for (at, chain) in chains {
            if let Some(tls) = &chain.tls {
                found.push((transport(&at), &tls.common));
            }
        }
    }
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        let at = at.field("clusters").index(i);
        if let Some(tls) = &cluster.tls {
            found.push((transport(&at), &tls.common));
        }
        for (j, m) in cluster.transport_socket_matches.iter().enumerate() {
            if let Some(tls) = &m.tls {
                found.push((
                    transport(&at.field("transport_socket_matches").index(j)),
                    &tls.common,
                ));
            }
        }
    }
    found
}

fn transport(at: &Path) -> Path {
    at.field("transport_socket")
        .field("typed_config")
        .field("common_tls_context")
}

/// Secrets named without `sds_config` must be static secrets of the right kind (Envoy: "Unknown static
/// secret"); secrets taken from ADS need `dynamic_resources.ads_config` (Envoy stops at startup: "ADS must be
/// configured to support an ADS config source"); static secret names are unique.
pub fn check_references(snapshot: &crate::Snapshot, out: &mut Out) {
    let at_secrets = Path::root().field("static_resources").field("secrets");
    for (i, secret) in snapshot.secrets.iter().enumerate() {
        if snapshot.secrets[..i].iter().any(|s| s.name == secret.name) {
            out.error(
                &at_secrets.index(i).field("name"),
                format!(
                    "duplicate static secret {:?}; secret names must be unique",
                    secret.name
                ),
            );
        }
    }
    let ads = snapshot
        .dynamic_resources
        .as_ref()
        .is_some_and(|d| d.ads.is_some());
    for (at, common) in contexts(snapshot) {
        let refs = [
            (
                common.certificate_secret.as_ref(),
                at.field("tls_certificate_sds_secret_configs").index(0),
                true,
            ),
            (
                common.validation_secret.as_ref(),
                // With a validation context of its own too, the context is a combined one.
                match common.validation {
                    Some(_) => at.field("combined_validation_context"),
                    None => at.clone(),
                }
                .field("validation_context_sds_secret_config"),
                false,
            ),
        ];
        for (reference, at, certificate) in refs {
            let Some(reference) = reference else { continue };
            match &reference.source {
                SecretSource::Static => {
                    let found = snapshot.secret(&reference.name).is_some_and(|s| {
                        matches!(s.kind, SecretKind::TlsCertificate(_)) == certificate
                    });
                    if !found {
                        out.error(
                            &at.field("name"),
                            format!(
                                "unknown static secret {:?}: static_resources.secrets has no {} of that \
                                 name; add it there, or set `sds_config: {{ads: {{}}}}` to take it from the \
                                 control plane",
                                reference.name,
                                if certificate {
                                    "tls_certificate"
                                } else {
                                    "validation_context"
                                }
                            ),
                        );
                    }
                }
                SecretSource::Ads { .. } if !ads => out.error(
                    &at.field("sds_config"),
                    format!(
                        "secret {:?} is to come over ADS, but dynamic_resources has no ads_config (Envoy stops \
                         at startup); add an ads_config, or drop sds_config and define the secret in \
                         static_resources.secrets",
                        reference.name
                    ),
                ),
                SecretSource::Ads { .. } => {}
                SecretSource::Grpc { source, .. } => {
                    let at = at
                        .field("sds_config")
                        .field("api_config_source")
                        .field("grpc_services")
                        .index(0)
                        .field("envoy_grpc")
                        .field("cluster_name");
                    if let Some(problem) = grpc_source_problem(snapshot, &source.cluster) {
                        out.error(
                            &at,
                            format!("secret {:?}: {problem}", reference.name),
                        );
                    }
                }
            }
        }
    }
    check_keepalive(snapshot, out);
    // The cluster that reaches the ADS server cannot take its own certificates over that stream (Envoy 1.40
    // crashes on it), nor can an SDS cluster take them from itself.
    let ads_cluster = snapshot
        .dynamic_resources
        .as_ref()
        .and_then(|d| d.ads.as_ref())
        .map(|a| a.cluster.as_str());
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        let at = Path::root()
            .field("static_resources")
            .field("clusters")
            .index(i);
        let own = cluster
            .tls
            .iter()
            .flat_map(|t| t.common.secrets())
            .find(|r| match &r.source {
                SecretSource::Ads { .. } => ads_cluster == Some(cluster.name.as_str()),
                SecretSource::Grpc { source, .. } => source.cluster == cluster.name,
                SecretSource::Static => false,
            });
        if let Some(reference) = own {
            out.error(
                &transport(&at),
                format!(
                    "cluster {:?} reaches the control plane but takes its secret {:?} from that same control \
                     plane, which it could never reach; give it certificates from files or from \
                     static_resources.secrets",
                    cluster.name, reference.name
                ),
            );
        }
    }
}

/// The static clusters that reach a control plane: the ADS cluster and every SDS gRPC source.
pub fn xds_clusters(snapshot: &crate::Snapshot) -> std::collections::BTreeSet<&str> {
    let ads = snapshot
        .dynamic_resources
        .as_ref()
        .and_then(|d| d.ads.as_ref())
        .map(|a| a.cluster.as_str());
    let sds = contexts(snapshot)
        .into_iter()
        .flat_map(|(_, common)| common.secrets())
        .filter_map(|r| match &r.source {
            SecretSource::Grpc { source, .. } => Some(source.cluster.as_str()),
            _ => None,
        });
    ads.into_iter().chain(sds).collect()
}

/// `connection_keepalive` is acted on where Outrigger speaks gRPC to a control plane; on a data-path
/// cluster it would be silently ignored, so it is refused there.
fn check_keepalive(snapshot: &crate::Snapshot, out: &mut Out) {
    let xds = xds_clusters(snapshot);
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        if cluster.http2.keepalive.is_some() && !xds.contains(cluster.name.as_str()) {
            out.error(
                &Path::root()
                    .field("static_resources")
                    .field("clusters")
                    .index(i),
                format!(
                    "cluster {:?}: http2_protocol_options.connection_keepalive is supported only on the \
                     cluster that reaches the control plane (ads_config, or an SDS api_config_source); \
                     remove it here",
                    cluster.name
                ),
            );
        }
    }
}

/// Why `cluster` cannot carry an SDS stream: it must be a static cluster of the bootstrap with endpoints of
/// its own.
pub fn grpc_source_problem(snapshot: &crate::Snapshot, cluster: &str) -> Option<String> {
    use crate::model::cluster::Discovery;
    match snapshot.cluster(cluster) {
        None => Some(format!(
            "the SDS source names the cluster {cluster:?}, which static_resources does not have; an SDS \
             gRPC source must be a static cluster"
        )),
        Some(c) if matches!(c.discovery, Discovery::Eds { .. } | Discovery::OriginalDst) => {
            Some(format!(
                "the SDS source names the cluster {cluster:?}, which has no endpoints of its own; use a \
                 STATIC, STRICT_DNS or LOGICAL_DNS cluster"
            ))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    fn problems(yaml: &str) -> Vec<String> {
        match crate::load_bytes(yaml.as_bytes(), crate::Format::Yaml) {
            Ok(_) => Vec::new(),
            Err(d) => d.errors().map(ToString::to_string).collect(),
        }
    }

    const LISTENER: &str = r#"
node: {id: n, cluster: c}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters: [{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}}]
      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [REF]
  clusters:
  - name: c
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
"#;

    #[test]
    fn secret_references_are_checked_like_envoy() {
        // No sds_config: a static secret, which must exist (Envoy: "Unknown static secret").
        let found = problems(&LISTENER.replace("REF", "{name: cert}"));
        assert!(
            found
                .iter()
                .any(|p| p.contains("unknown static secret \"cert\"")),
            "{found:?}"
        );
        // Given as a static secret: accepted.
        let with_secret = LISTENER.replace("REF", "{name: cert}").replace(
            "  clusters:",
            "  secrets: [{name: cert, tls_certificate: {certificate_chain: {filename: a.pem}, private_key: {filename: k.pem}}}]\n  clusters:",
        );
        assert_eq!(problems(&with_secret), Vec::<String>::new());
        // Over ADS without an ads_config: Envoy stops at startup.
        let found = problems(&LISTENER.replace("REF", "{name: cert, sds_config: {ads: {}}}"));
        assert!(
            found
                .iter()
                .any(|p| p.contains("sds_config") && p.contains("no ads_config")),
            "{found:?}"
        );
        // Another config source: refused, naming the field.
        let found = problems(&LISTENER.replace(
            "REF",
            "{name: cert, sds_config: {path_config_source: {path: /x.yaml}}}",
        ));
        assert!(
            found
                .iter()
                .any(|p| p.contains("tls_certificate_sds_secret_configs[0].sds_config")),
            "{found:?}"
        );
    }

    #[test]
    fn sds_grpc_sources_and_keepalive_are_checked() {
        let grpc = |cluster: &str, api_type: &str| {
            format!(
                "{{name: cert, sds_config: {{api_config_source: {{api_type: {api_type}, transport_api_version: V3, grpc_services: [{{envoy_grpc: {{cluster_name: {cluster}}}}}]}}}}}}"
            )
        };
        let sds_cluster = "  - {name: sds-grpc, type: STATIC, load_assignment: {cluster_name: sds-grpc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}}\n";
        let with = |reference: &str, clusters: &str| {
            LISTENER
                .replace("REF", reference)
                .replace("  clusters:\n", &format!("  clusters:\n{clusters}"))
        };
        // A static cluster, state of the world or delta: accepted, with no ADS at all.
        for api_type in ["GRPC", "DELTA_GRPC"] {
            assert_eq!(
                problems(&with(&grpc("sds-grpc", api_type), sds_cluster)),
                Vec::<String>::new()
            );
        }
        // A cluster the bootstrap does not have: named at its place.
        let found = problems(&with(&grpc("nowhere", "GRPC"), sds_cluster));
        assert!(
            found.iter().any(|p| p.contains(
                "tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name"
            ) && p.contains("\"nowhere\"")),
            "{found:?}"
        );
        // REST polling: refused, naming api_type.
        let found = problems(&with(&grpc("sds-grpc", "REST"), sds_cluster));
        assert!(
            found
                .iter()
                .any(|p| p.contains("sds_config.api_config_source.api_type")),
            "{found:?}"
        );
        // Every other use of an api_config_source stays refused, naming the field.
        let lds = with(&grpc("sds-grpc", "GRPC"), sds_cluster).replace(
            "static_resources:",
            "dynamic_resources: {lds_config: {api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}}\nstatic_resources:",
        );
        let found = problems(&lds);
        assert!(
            found
                .iter()
                .any(|p| p.contains("dynamic_resources.lds_config.api_config_source")),
            "{found:?}"
        );
        let eds = with(
            &grpc("sds-grpc", "GRPC"),
            &format!(
                "{sds_cluster}  - {{name: e, type: EDS, eds_cluster_config: {{eds_config: {{api_config_source: {{api_type: GRPC, grpc_services: [{{envoy_grpc: {{cluster_name: sds-grpc}}}}]}}}}}}}}\n"
            ),
        );
        let found = problems(&eds);
        assert!(
            found
                .iter()
                .any(|p| p.contains("eds_config.api_config_source")),
            "{found:?}"
        );
        // A cluster cannot take its own certificate from itself.
        let own = with(
            &grpc("sds-grpc", "GRPC"),
            "  - name: sds-grpc\n    load_assignment: {cluster_name: sds-grpc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}\n    transport_socket: {name: tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: {tls_certificate_sds_secret_configs: [{name: own, sds_config: {api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}}]}}}\n",
        );
        let found = problems(&own);
        assert!(
            found
                .iter()
                .any(|p| p.contains("\"sds-grpc\"") && p.contains("\"own\"")),
            "{found:?}"
        );
        // connection_keepalive: on the SDS cluster, acted on; on a data-path cluster, refused.
        let keepalive = "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {connection_keepalive: {interval: 1s, timeout: 1s}}}}}\n";
        let on_sds = with(
            &grpc("sds-grpc", "GRPC"),
            &format!(
                "  - name: sds-grpc\n    load_assignment: {{cluster_name: sds-grpc, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 2}}}}}}}}]}}]}}\n{keepalive}"
            ),
        );
        assert_eq!(problems(&on_sds), Vec::<String>::new());
        let on_data_path =
            on_sds.replace("cluster_name: sds-grpc}}]}}}]", "cluster_name: c}}]}}}]");
        let found = problems(&on_data_path);
        assert!(
            found
                .iter()
                .any(|p| p.contains("connection_keepalive") && p.contains("\"sds-grpc\"")),
            "{found:?}"
        );
    }

    #[test]
    fn a_combined_context_matches_sans_with_the_trust_bundle_of_its_secret() {
        let with_ads = |context: &str| {
            LISTENER
                .replace("REF", "{name: cert, sds_config: {ads: {}}}")
                .replace(
                    "  clusters:",
                    "  clusters:\n  - {name: xds, type: STATIC, load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}}",
                )
                .replace(
                    "static_resources:",
                    "dynamic_resources: {ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}}\nstatic_resources:",
                )
                .replace(
                    "            tls_certificate_sds_secret_configs",
                    &format!("            {context}\n            tls_certificate_sds_secret_configs"),
                )
        };
        let sans = "{match_typed_subject_alt_names: [{san_type: URI, matcher: {prefix: \"spiffe://cluster.local/\"}}]}";
        let combined = format!(
            "combined_validation_context: {{default_validation_context: {sans}, validation_context_sds_secret_config: {{name: ROOTCA, sds_config: {{ads: {{}}}}}}}}"
        );
        assert_eq!(problems(&with_ads(&combined)), Vec::<String>::new());
        // Alone, SAN rules without a trust bundle are refused.
        let found = problems(&with_ads(&format!("validation_context: {sans}")));
        assert!(
            found.iter().any(|p| p.contains("needs a trusted_ca")),
            "{found:?}"
        );
        // A static trust bundle that does not exist is named at its place in the combined context.
        let found = problems(&with_ads(
            &combined.replace(", sds_config: {ads: {}}}}", "}}"),
        ));
        assert!(
            found.iter().any(|p| p
                .contains("combined_validation_context.validation_context_sds_secret_config.name")
                && p.contains("unknown static secret \"ROOTCA\"")),
            "{found:?}"
        );
        // The secret must be named.
        let found = problems(&with_ads(&format!(
            "combined_validation_context: {{default_validation_context: {sans}}}"
        )));
        assert!(
            found
                .iter()
                .any(|p| p.contains("combined_validation_context")),
            "{found:?}"
        );
    }
}

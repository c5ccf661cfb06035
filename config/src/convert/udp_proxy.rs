//! UDP listeners (`socket_address.protocol: UDP`) and their `udp_proxy` listener filter.
//!
//! What Envoy 1.40 does with the edges (each checked with `envoy --mode validate` or by running it): a UDP
//! listener with filter chains is refused ("filter chain(s) specified for connection-less UDP listener"); TCP
//! listener filters on it are refused (no implementation registered for UDP); `udp_proxy` needs `cluster` or
//! `matcher`. Where Envoy accepts something we do not run its way, it is refused here by name: a UDP listener with
//! no `udp_proxy` or with two, a `matcher_list`/`matcher_tree`, `idle_timeout: 0s`.

use super::{Out, decode_any, type_name};
use crate::diagnostic::Path;
use crate::model::udp_proxy::{GRO_READ_SIZE, UdpListener, UdpProxy};
use envoy_types::pb::envoy::config::core::v3::UdpSocketConfig;
use envoy_types::pb::envoy::config::listener::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3 as udp;
use envoy_types::pb::xds::r#type::matcher::v3 as xds;
use std::time::Duration;

pub const UDP_PROXY: &str = "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig";
const ROUTE: &str = "envoy.extensions.filters.udp.udp_proxy.v3.Route";
/// Envoy's `max_rx_datagram_size` when unset.
const DEFAULT_DATAGRAM_SIZE: usize = 1500;

/// The UDP part of a listener whose address says `protocol: UDP`.
pub fn listener(l: &pb::Listener, at: &Path, out: &mut Out) -> Option<UdpListener> {
    if !l.filter_chains.is_empty() || l.default_filter_chain.is_some() {
        let field = if l.filter_chains.is_empty() {
            "default_filter_chain"
        } else {
            "filter_chains"
        };
        out.error(
            &at.field(field),
            "a UDP listener takes no filter chains (Envoy: \"filter chain(s) specified for connection-less UDP \
             listener\"); its datagrams go to the udp_proxy listener filter",
        );
    }
    // Connection-level settings that do not apply to datagrams as we run them: refused rather than ignored.
    if !l.access_log.is_empty() {
        out.error(
            &at.field("access_log"),
            "access logs on a UDP listener are not implemented yet; remove them",
        );
    }
    if super::bool_or(&l.use_original_dst, false) || !super::bool_or(&l.bind_to_port, true) {
        let field = if super::bool_or(&l.use_original_dst, false) {
            "use_original_dst"
        } else {
            "bind_to_port"
        };
        out.error(
            &at.field(field),
            "original-destination hand-off is for TCP listeners; a UDP listener binds its own port",
        );
    }
    let downstream = l
        .udp_listener_config
        .as_ref()
        .and_then(|c| c.downstream_socket_config.as_ref());
    // Envoy reads client datagrams without GRO unless told otherwise.
    let max_rx_datagram_size = datagram_size(downstream, false);
    let at_filters = at.field("listener_filters");
    let mut proxy = None;
    for (i, f) in l.listener_filters.iter().enumerate() {
        let at = at_filters.index(i);
        let Some(pb::listener_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            out.error(
                &at,
                "a UDP listener filter needs a typed_config: envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
            );
            continue;
        };
        if type_name(any) != UDP_PROXY {
            out.error(
                &at.field("typed_config"),
                format!(
                    "{} is not a UDP listener filter; a UDP listener takes envoy.filters.udp_listener.udp_proxy",
                    type_name(any)
                ),
            );
            continue;
        }
        if proxy.is_some() {
            out.error(
                &at,
                "a second udp_proxy on one listener is not supported (Envoy would send every datagram through both); \
                 use one",
            );
            continue;
        }
        let at_config = at.field("typed_config");
        let config: udp::UdpProxyConfig = decode_any(any, &at_config, out)?;
        proxy = Some(udp_proxy(&config, &at_config, out)?);
    }
    let Some(proxy) = proxy else {
        out.error(
            &at_filters,
            "a UDP listener needs the listener filter envoy.filters.udp_listener.udp_proxy (Envoy would drop every \
             datagram)",
        );
        return None;
    };
    Some(UdpListener {
        max_rx_datagram_size,
        proxy,
    })
}

/// How much Envoy reads per datagram: `max_rx_datagram_size`, or 64 KiB with GRO.
fn datagram_size(config: Option<&UdpSocketConfig>, gro_by_default: bool) -> usize {
    let gro = config
        .and_then(|c| c.prefer_gro.as_ref())
        .map_or(gro_by_default, |v| v.value);
    if gro {
        return GRO_READ_SIZE;
    }
    config
        .and_then(|c| c.max_rx_datagram_size.as_ref())
        .and_then(|v| usize::try_from(v.value).ok())
        .unwrap_or(DEFAULT_DATAGRAM_SIZE)
}

pub fn udp_proxy(c: &udp::UdpProxyConfig, at: &Path, out: &mut Out) -> Option<UdpProxy> {
    use udp::udp_proxy_config::RouteSpecifier;
    let cluster = match &c.route_specifier {
        Some(RouteSpecifier::Cluster(name)) => Some(name.clone()),
        Some(RouteSpecifier::Matcher(m)) => route(m, &at.field("matcher"), out)?,
        None => {
            out.error(
                at,
                "udp_proxy needs `matcher` (an on_no_match route to a cluster) or `cluster`",
            );
            return None;
        }
    };
    let idle_timeout = c
        .idle_timeout
        .as_ref()
        .map_or(Duration::from_secs(60), super::duration);
    if idle_timeout.is_zero() {
        out.error(
            &at.field("idle_timeout"),
            "0s would end every session as soon as it starts; give a duration (Envoy's default: 60s)",
        );
        return None;
    }
    Some(UdpProxy {
        stat_prefix: c.stat_prefix.clone(),
        cluster,
        idle_timeout,
        per_packet_load_balancing: c.use_per_packet_load_balancing,
        // Envoy reads upstream replies with GRO unless told otherwise.
        upstream_max_rx_datagram_size: datagram_size(c.upstream_socket_config.as_ref(), true),
    })
}

/// The cluster of the matcher's `on_no_match` route; `None` when it gives no action (no route).
fn route(m: &xds::Matcher, at: &Path, out: &mut Out) -> Option<Option<String>> {
    use xds::matcher::MatcherType;
    use xds::matcher::on_match::OnMatch;
    if let Some(kind) = &m.matcher_type {
        let field = match kind {
            MatcherType::MatcherList(_) => "matcher_list",
            MatcherType::MatcherTree(_) => "matcher_tree",
        };
        out.error(
            &at.field(field),
            "udp_proxy routes by on_no_match only in Outrigger; matching on inputs is not implemented yet",
        );
        return None;
    }
    let at = at.field("on_no_match");
    match m.on_no_match.as_ref().and_then(|o| o.on_match.as_ref()) {
        None => Some(None),
        Some(OnMatch::Matcher(_)) => {
            out.error(
                &at.field("matcher"),
                "a nested matcher in udp_proxy is not implemented yet; give an action",
            );
            None
        }
        Some(OnMatch::Action(action)) => {
            let at = at.field("action").field("typed_config");
            let Some(any) = &action.typed_config else {
                out.error(
                    &at,
                    "an action needs envoy.extensions.filters.udp.udp_proxy.v3.Route",
                );
                return None;
            };
            if type_name(any) != ROUTE {
                out.error(
                    &at,
                    format!(
                        "{} is not a udp_proxy action; use envoy.extensions.filters.udp.udp_proxy.v3.Route",
                        type_name(any)
                    ),
                );
                return None;
            }
            let route: udp::Route = decode_any(any, &at, out)?;
            Some(Some(route.cluster))
        }
    }
}

#[cfg(test)]
mod tests;

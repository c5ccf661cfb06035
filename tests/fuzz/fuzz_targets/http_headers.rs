//! The HTTP header logic Outrigger owns, on request heads built from the input: `normalize_path` and
//! `merge_slashes`, route matching then `prefix_rewrite` / `regex_rewrite` (routes and redirects),
//! `x-forwarded-for` / `x-forwarded-proto` / `x-envoy-external-address` and the removal of internal-only
//! `x-envoy-*` headers, `x-forwarded-client-cert` in every `forward_client_cert_details` mode, and the fault
//! filter's `x-envoy-fault-*` headers. The configuration is fixed (loaded once from YAML as users write it);
//! the input decides the path, the header values, the peer and the client certificate's names.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use outrigger_config::model::http::{
    ClientCertDetails, ForwardClientCertDetails, HttpConnectionManager, HttpFilter, RouteSource,
};
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::route::{RedirectPath, RouteAction, RouteConfig};
use outrigger_config::{Format, fuzzing, load_bytes};
use outrigger_proxy::fuzzing::{
    FaultHeaders, client_cert, forwarded, forwarded_path, normalize_path, rewrite_path,
};
use outrigger_proxy::http::route;
use outrigger_proxy::tls::{Identity, Session};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

const CONFIG: &str = r#"
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /api/, case_sensitive: false}, route: {cluster: backend, prefix_rewrite: /v2/}}
              - {match: {path_separated_prefix: /svc}, route: {cluster: backend, prefix_rewrite: /}}
              - match: {safe_regex: {regex: "^/re/([^/]+)/(.*)$"}}
                route: {cluster: backend, regex_rewrite: {pattern: {regex: "^/re/([^/]+)/(.*)$"}, substitution: "/\\2/\\1"}}
              - {match: {path: /exact, case_sensitive: false}, route: {cluster: backend, prefix_rewrite: /other}}
              - {match: {prefix: /redir/}, redirect: {prefix_rewrite: /moved/}}
              - match: {prefix: /rx/}
                redirect: {regex_rewrite: {pattern: {regex: "[aeiou]+"}, substitution: "_"}}
              - {match: {prefix: /}, route: {cluster: backend, regex_rewrite: {pattern: {regex: "/+"}, substitution: /}}}
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay: {header_delay: {}, percentage: {numerator: 100}}
              abort: {header_abort: {}, percentage: {numerator: 100}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
"#;

struct Fixed {
    hcm: Arc<HttpConnectionManager>,
    routes: RouteConfig,
    fault: FaultHeaders,
}

static FIXED: OnceLock<Fixed> = OnceLock::new();

fn fixed() -> Fixed {
    if let Err(e) = fuzzing::keep_descriptors() {
        panic!("{e}");
    }
    let loaded = load_bytes(CONFIG.as_bytes(), Format::Yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let Some(NetworkFilter::HttpConnectionManager(hcm)) = loaded.snapshot.listeners[0]
        .filter_chains[0]
        .filters
        .first()
    else {
        panic!("no connection manager");
    };
    let RouteSource::Static(routes) = &hcm.routes else {
        panic!("no inline routes")
    };
    let Some(HttpFilter::Fault(fault)) = hcm.http_filters.first() else {
        panic!("no fault filter")
    };
    Fixed {
        hcm: hcm.clone(),
        routes: routes.clone(),
        fault: FaultHeaders::new(fault),
    }
}

/// The headers of the input; a name or value the http crate refuses (as hyper would) is left out.
fn headers(u: &mut Unstructured<'_>) -> HeaderMap {
    const NAMES: &[&str] = &[
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-client-cert",
        "x-envoy-internal",
        "x-envoy-retry-on",
        "x-envoy-max-retries",
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-original-path",
        "x-envoy-external-address",
        "x-envoy-fault-delay-request",
        "x-envoy-fault-delay-request-percentage",
        "x-envoy-fault-abort-request",
        "x-envoy-fault-abort-request-percentage",
        "host",
    ];
    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=8u8).unwrap_or(0) {
        let Ok(pick) = u.choose(NAMES) else { break };
        let Ok(value) = <&[u8]>::arbitrary(u) else {
            break;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(pick.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn path_rules(fixed: &Fixed, path: &str, normalize: bool, merge: bool) {
    let Ok(normalized) = normalize_path(path, normalize, merge) else {
        return;
    };
    if let Some(new) = &normalized {
        // A path of slashes only merges into `//`, as in Envoy 1.40 (`////` is forwarded as `//`).
        let merged = new.split('?').next().unwrap_or("");
        assert!(
            !merge || merged == "//" || !merged.contains("//"),
            "slashes left: {new:?}"
        );
        // Not checked: that normalizing again changes nothing. Envoy 1.40 decodes once, so `/%%33x` becomes
        // `/%3x` and then `/%3x` again (path_normalization/tests.rs).
    }
    let path = normalized.as_deref().unwrap_or(path);
    let Ok(request) = Request::get(path).body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let Some(vhost) = route::virtual_host(&fixed.routes, "example.com") else {
        return;
    };
    let Some(route) = route::route(vhost, &parts) else {
        return;
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let rewritten = match &route.action {
        RouteAction::Route(forward) => forwarded_path(path_and_query, route, forward)
            .unwrap_or_else(|| path_and_query.to_string()),
        RouteAction::Redirect(redirect) => match &redirect.path {
            RedirectPath::PrefixRewrite(p) => rewrite_path(path_and_query, route, Some(p), None),
            RedirectPath::RegexRewrite(r) => rewrite_path(
                path_and_query,
                route,
                None,
                Some((&r.pattern, &r.substitution)),
            ),
            _ => return,
        },
        _ => return,
    };
    if let Some((_, query)) = path_and_query.split_once('?') {
        assert!(
            rewritten.ends_with(query),
            "query lost: {path_and_query:?} -> {rewritten:?}"
        );
    }
}

fn session(u: &mut Unstructured<'_>) -> Option<Session> {
    if !bool::arbitrary(u).ok()? {
        return None;
    }
    let peer = Identity {
        uris: Vec::<String>::arbitrary(u).ok()?,
        dns: Vec::<String>::arbitrary(u).ok()?,
        emails: Vec::new(),
        ips: Vec::new(),
        subject: String::arbitrary(u).ok()?,
        hash: "ab".repeat(32),
        chain: vec![Vec::<u8>::arbitrary(u).ok()?.into()],
    };
    Some(Session {
        peer: Some(Arc::new(peer)),
        local_uri: Option::<String>::arbitrary(u).ok()?,
    })
}

fuzz_target!(init: { let _ = FIXED.set(fixed()); }, |data: &[u8]| {
    let Some(fixed) = FIXED.get() else { return };
    let mut u = Unstructured::new(data);
    let Ok(flags) = u8::arbitrary(&mut u) else { return };
    let Ok(path) = String::arbitrary(&mut u) else { return };
    path_rules(fixed, &path, flags & 1 != 0, flags & 2 != 0);

    let mut hcm = (*fixed.hcm).clone();
    hcm.use_remote_address = flags & 4 != 0;
    hcm.skip_xff_append = flags & 8 != 0;
    hcm.xff_num_trusted_hops = u32::from(flags >> 6);
    let peer = match <[u8; 16]>::arbitrary(&mut u) {
        Ok(b) if flags & 16 != 0 => IpAddr::from(b),
        Ok(b) => IpAddr::from([b[0], b[1], b[2], b[3]]),
        Err(_) => return,
    };
    let mut sent = headers(&mut u);
    let fault = fixed.fault.decide(&sent);
    if let (_, _, Some(status)) = fault {
        assert!((200..600).contains(&status.as_u16()), "abort with {status}");
    }
    forwarded(&mut sent, &hcm, peer, flags & 32 != 0);
    for internal in ["x-envoy-internal", "x-envoy-retry-on", "x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms"] {
        assert!(!sent.contains_key(internal), "{internal} passed");
    }
    assert!(sent.contains_key("x-forwarded-proto"));
    if hcm.use_remote_address {
        assert!(sent.contains_key("x-envoy-external-address"));
    }

    let modes = [
        ForwardClientCertDetails::Sanitize,
        ForwardClientCertDetails::ForwardOnly,
        ForwardClientCertDetails::AppendForward,
        ForwardClientCertDetails::SanitizeSet,
        ForwardClientCertDetails::AlwaysForwardOnly,
    ];
    let Ok(mode) = u.choose(&modes) else { return };
    let Ok(bits) = u8::arbitrary(&mut u) else { return };
    let details = ClientCertDetails {
        subject: bits & 1 != 0,
        cert: bits & 2 != 0,
        chain: bits & 4 != 0,
        dns: bits & 8 != 0,
        uri: bits & 16 != 0,
    };
    let tls = session(&mut u);
    let before = sent.get("x-forwarded-client-cert").cloned();
    client_cert(&mut sent, *mode, details, tls.as_ref());
    if *mode == ForwardClientCertDetails::Sanitize {
        assert!(!sent.contains_key("x-forwarded-client-cert"), "SANITIZE kept XFCC");
    }
    if *mode == ForwardClientCertDetails::AlwaysForwardOnly {
        assert_eq!(sent.get("x-forwarded-client-cert"), before.as_ref(), "ALWAYS_FORWARD_ONLY changed XFCC");
    }
});

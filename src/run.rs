//! `outrigger run`: load the configuration, bind everything, serve until SIGTERM/SIGINT or
//! `POST /drain_listeners`, then drain and exit.

use outrigger_proxy::{Proxy, StartError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub struct Args {
    pub config: Option<PathBuf>,
    pub print_default_config: bool,
    pub drain_time: Duration,
    pub concurrency: Option<usize>,
    pub log_level: String,
    /// `--log-format`: text, or one JSON object per line.
    pub log_format: crate::log_format::LogFormat,
    /// `--service-node` and `--service-cluster`, as Envoy's flags: they replace the bootstrap's node id and cluster.
    pub service_node: Option<String>,
    pub service_cluster: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    if args.print_default_config {
        print!("{}", outrigger_config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let log_control = init_logging_as(&args.log_level, args.log_format);
    let (source, loaded) = match &args.config {
        Some(path) => (
            path.display().to_string(),
            outrigger_config::load_file(path),
        ),
        None => (
            "the embedded default".to_string(),
            outrigger_config::load_default(),
        ),
    };
    let mut loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            for problem in problems.iter() {
                eprintln!("{source}: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    for warning in loaded.warnings.iter() {
        tracing::warn!("{source}: {warning}");
    }
    if let Some(id) = args.service_node {
        loaded.snapshot.node.id = id;
    }
    if let Some(cluster) = args.service_cluster {
        loaded.snapshot.node.cluster = cluster;
    }
    let workers = args
        .concurrency
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(2)
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outrigger: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(
        loaded.snapshot,
        &source,
        args.drain_time,
        workers,
        log_control,
    ))
}

async fn serve(
    snapshot: outrigger_config::Snapshot,
    source: &str,
    drain_time: Duration,
    workers: usize,
    log_control: Option<outrigger_proxy::LogControl>,
) -> ExitCode {
    let bootstrap = snapshot;
    // Static listeners waiting for routes or secrets from the control plane start warming (not bound).
    // Listeners accept once the control plane's first configuration is in place (at once without one).
    let proxy = match Proxy::start_initializing(crate::xds::initial(&bootstrap), true).await {
        Ok(proxy) => std::sync::Arc::new(proxy),
        Err(e) => {
            eprintln!("outrigger: {e}");
            return match e {
                StartError::Bind(_) | StartError::Admin { .. } | StartError::Tls(_) => {
                    ExitCode::FAILURE
                }
            };
        }
    };
    if let Some(control) = log_control {
        let _ = proxy.inputs.log_control.set(control);
    }
    // `cluster_manager.load_stats_config`: load reports go to the service over its cluster until exit.
    let _load_reports = bootstrap.load_stats.as_ref().map(|config| {
        outrigger_proxy::load_report::spawn(
            proxy.inputs.clone(),
            config,
            outrigger_control_api::ads_client::node_proto(&bootstrap.node),
        )
    });
    // With `dynamic_resources`, the control plane's configuration follows (the ready probes wait for it).
    let _ads = match crate::xds::start(proxy.clone(), bootstrap) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("{source}: dynamic_resources: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Loading the configuration (the decoded descriptors above all) peaked well above what serving keeps.
    crate::memory::release_free_memory();
    if let Some(admin) = proxy.admin_address {
        tracing::info!(%admin, "admin API listening");
    }
    tracing::info!(config = %source, workers, "outrigger is ready");
    let drain = proxy.inputs.drain.clone();
    tokio::select! {
        () = signal() => tracing::info!("signal received; draining"),
        () = drain.started() => tracing::info!("drain requested through the admin API"),
    }
    proxy.drain(drain_time).await;
    // Access log lines still queued are written before the process goes.
    outrigger_proxy::access_log::flush();
    // Spans of the requests served while draining reach their collector before the process exits.
    if !outrigger_proxy::trace::export::flush(std::time::Duration::from_secs(5)) {
        tracing::warn!("tracing: spans still unsent after 5s at exit are lost");
    }
    tracing::info!("drained; exiting");
    ExitCode::SUCCESS
}

pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; stop the proxy through POST /quitquitquit");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Logs to stderr at `level`; the returned control changes the level at run time (`POST /logging?level=`).
pub fn init_logging(level: &str) -> Option<outrigger_proxy::LogControl> {
    init_logging_as(level, crate::log_format::LogFormat::Text)
}

/// The h2 crate warns once per connection a client floods (`remotely-reset pending-accept streams reached
/// limit`): a client could fill the log. The connection manager logs those floods itself, at most once a second
/// (`http/connection_error.rs`), so h2's own lines are kept to errors unless the filter names `h2` itself.
fn quiet_codecs(level: &str) -> String {
    if level.split(',').any(|d| d.trim().starts_with("h2")) {
        level.to_string()
    } else {
        format!("{level},h2=error")
    }
}

/// The same, as text or as JSON lines.
pub fn init_logging_as(
    level: &str,
    format: crate::log_format::LogFormat,
) -> Option<outrigger_proxy::LogControl> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(quiet_codecs(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(quiet_codecs("info")));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    use std::io::IsTerminal;
    // Colours only on a terminal: a log file or a collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let (text, json) = match format {
        crate::log_format::LogFormat::Text => (Some(fmt), None),
        crate::log_format::LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .event_format(crate::log_format::JsonLines)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .ok()?;
    Some(Box::new(move |level: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(quiet_codecs(level))
            .map_err(|e| format!("{level:?} is not a log level or filter: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

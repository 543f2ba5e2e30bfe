//! `helora serve`: the model owner's server over the network, and the remote client.
//!
//! The network is a transport around the roles of [`crate::secure`], not a second
//! implementation: the server wraps each adapter's [`crate::secure::SecureServer`]
//! ([`adapters`]), the remote client implements [`crate::secure::Serve`] ([`remote`]) so
//! that `generate` runs the same [`crate::secure::SecureHook`] against either.
//!
//! A request's path on the server: [`service`] (token, adapter, shapes, key set, budget
//! charged in [`state`] by the [`ledger`]'s group commits) → [`scheduler`] (the queue of its adapter, layer and projections;
//! a batch across clients) → [`adapters`] (the adapter's server under a read lock) →
//! `SecureServer::evaluate_jobs` (the path of docs/architecture.md).

pub mod adapters;
pub mod clients;
pub mod ledger;
pub mod metrics;
pub mod proto;
pub mod remote;
pub mod residency;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod tokens;
pub mod usage;
pub mod wire;

use crate::device::DeviceChoice;
use adapters::{Adapters, HeldAdapter};
use anyhow::{Context, Result};
use helora::pll::PllSettings;
use metrics::Metrics;
use scheduler::{Scheduler, SchedulerConfig};
use service::{Limits, Service};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What `helora serve` was asked for.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `NAME=DIR` or `DIR`; empty: the demo adapter, named `demo`.
    pub adapters: Vec<String>,
    pub listen: SocketAddr,
    /// Where the HE work runs (cuda: the `cuda` feature).
    pub device: DeviceChoice,
    pub state: Option<String>,
    pub pll: bool,
    /// The PLL's query budget per client and projection (its flooding is sized for it).
    pub budget: u64,
    /// The PLL's relative noise σ; None: the default (0.1), or what `target_error` needs.
    pub noise: Option<f64>,
    /// Size each adapter's σ to hold extraction to this relative error over the budget,
    /// with the adapter's own shape factor κ.
    pub target_error: Option<f64>,
    /// Queries each projection of an adapter may answer over all clients together (None:
    /// unbounded; counted either way).
    pub adapter_budget: Option<u64>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub metrics: Option<SocketAddr>,
    /// A plaintext address answering only gRPC health checks (for probes).
    pub health: Option<SocketAddr>,
    pub scheduler: SchedulerConfig,
    pub limits: Limits,
    /// Longest a stop waits for open connections.
    pub drain: std::time::Duration,
    /// Key sets each adapter holds in memory (least recently used evicted).
    pub resident_key_sets: usize,
}

/// Runs the server until SIGTERM or Ctrl-C, then drains it.
pub fn run(options: &ServeOptions) -> Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("helora-net")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(options))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HELORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn pll_settings(options: &ServeOptions) -> Result<PllSettings> {
    let mut settings = if options.pll {
        PllSettings::default()
    } else {
        PllSettings::off()
    };
    if options.pll {
        settings.budget = options.budget;
        if let Some(noise) = options.noise {
            settings.noise = noise;
        }
        settings.noise_target = options.target_error;
    } else if options.noise.is_some() || options.target_error.is_some() {
        anyhow::bail!("--noise and --target-error are the PLL's: with --pll off there is none");
    }
    settings.max_key_bytes = options.limits.max_key_upload;
    // How many key sets are held is the residency's to bound (`--resident-key-sets`).
    settings.max_clients = usize::MAX;
    settings.validate()?;
    Ok(settings)
}

fn load_adapters(options: &ServeOptions, settings: &PllSettings) -> Result<Adapters> {
    let load = |name: &str, dir: &std::path::Path| {
        let held = match options.device {
            DeviceChoice::Cpu => HeldAdapter::load_cpu(name, dir, settings.clone()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => HeldAdapter::load_cuda(name, dir, settings.clone()),
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Cuda => anyhow::bail!(NO_CUDA),
        };
        anyhow::Ok(held?.with_resident_key_sets(options.resident_key_sets))
    };
    let specs: Vec<(String, PathBuf)> = if options.adapters.is_empty() {
        vec![("demo".to_string(), crate::demo::adapter_dir()?)]
    } else {
        options
            .adapters
            .iter()
            .map(|s| adapters::parse_spec(s))
            .collect::<Result<_>>()?
    };
    let held = specs
        .iter()
        .map(|(name, dir)| {
            load(name, dir).with_context(|| format!("adapter {name} ({})", dir.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    Adapters::new(held)
}

/// A server started on a tokio runtime: its address, metrics and state, until
/// [`stop`](Started::stop).
pub struct Started {
    pub address: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn state::Store>,
    stop: tokio::sync::watch::Sender<bool>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    force: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Started {
    /// Stops taking calls, lets the calls in progress finish (for at most `drain`, or until
    /// `cut_short` resolves), then stops the batch worker.
    pub async fn stop(
        self,
        drain: std::time::Duration,
        cut_short: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let _ = self.stop.send(true);
        let active = self.active.clone();
        let idle = async move {
            while active.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            _ = idle => {}
            _ = tokio::time::sleep(drain) => {
                tracing::warn!("calls still in progress after {drain:?}: stopping anyway");
            }
            _ = cut_short => tracing::warn!("stopping now"),
        }
        let _ = self.force.send(());
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("the server task failed: {e}"))?
    }
}

/// Binds `options.listen` and serves `adapters` over `store` on the current runtime.
pub async fn start(
    options: &ServeOptions,
    adapters: Adapters,
    store: Arc<dyn state::Store>,
) -> Result<Started> {
    let adapters = Arc::new(adapters);
    let secret = store.server_secret().await?;
    // Each projection's d_in, so that usage reads in units of it (`clients usage`).
    for adapter in adapters.iter() {
        let projections: Vec<state::Projection> = adapter
            .manifest
            .projections
            .iter()
            .map(|p| state::Projection {
                layer: p.layer,
                module: p.module.clone(),
                d_in: p.d_in,
            })
            .collect();
        store
            .record_projections(&adapter.name, &projections)
            .await
            .with_context(|| format!("recording adapter {:?}'s projections", adapter.name))?;
    }
    let metrics = Metrics::new();
    let (scheduler, worker) =
        Scheduler::start(options.scheduler, adapters.clone(), metrics.clone())?;
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = Arc::new(Service {
        adapters: adapters.clone(),
        store: store.clone(),
        ledger: ledger::Ledger::start(store.clone(), metrics.clone()),
        scheduler: scheduler.clone(),
        metrics: metrics.clone(),
        params: crate::secure::parameters()?,
        secret,
        limits: options.limits,
        adapter_budget: options.adapter_budget.unwrap_or(u64::MAX),
        shutdown: stop.clone(),
        active: active.clone(),
    });
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let address = listener.local_addr()?;
    let mut builder = tonic::transport::Server::builder()
        .http2_adaptive_window(Some(true))
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW);
    if let Some((cert, key)) = &options.tls {
        let cert = std::fs::read(cert)
            .with_context(|| format!("reading --tls-cert {}", cert.display()))?;
        let key =
            std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?;
        builder = builder
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert, key)),
            )
            .context("the TLS certificate or key")?;
    }
    let grpc = proto::private_lora_server::PrivateLoraServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (health, health_service) = tonic_health::server::health_reporter();
    // Ready from the first call on: the state answered (the secret was read from it).
    health
        .set_serving::<proto::private_lora_server::PrivateLoraServer<Arc<Service>>>()
        .await;
    tokio::spawn(report_health(health, store.clone(), stop.clone()));
    if let Some(at) = options.health {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("listening for health checks on {at}"))?;
        tracing::info!("health checks at {}", listener.local_addr()?);
        let mut stopped = stop.clone();
        let probes = tonic::transport::Server::builder()
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            );
        tokio::spawn(async move {
            if let Err(e) = probes.await {
                tracing::error!("the health listener failed: {e}");
            }
        });
    }
    // No Nagle: a reply's last segment must not wait for the client's delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut stopped = stop.clone();
    let server = builder
        .add_service(health_service)
        .add_service(grpc)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
    let (force, forced) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Idle connections would hold a graceful stop forever: `force` ends it once the
        // calls in progress have ended.
        let served = tokio::select! {
            served = server => served.context("serving gRPC"),
            _ = forced => Ok(()),
        };
        scheduler.stop();
        tokio::task::spawn_blocking(move || worker.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the batch worker panicked"))?;
        served
    });
    Ok(Started {
        address,
        metrics,
        store,
        stop: stop_sender,
        active,
        force,
        task,
    })
}

async fn serve(options: &ServeOptions) -> Result<()> {
    let settings = pll_settings(options)?;
    let store: Arc<dyn state::Store> = Arc::from(state::open(options.state.as_deref()).await?);
    let adapters = tokio::task::block_in_place(|| load_adapters(options, &settings))?;
    for adapter in adapters.iter() {
        tracing::info!(
            adapter = %adapter.name,
            source = %adapter.source.display(),
            projections = adapter.manifest.projections.len(),
            backend = adapter.backend,
            pll = !adapter.settings.is_off(),
            "serving"
        );
    }
    tracing::info!(state = %store.location(), "state");
    let started = start(options, adapters, store.clone()).await?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The first line on stdout: scripts and tests read the bound address from it.
    announce(&format!("listening on {scheme}://{}", started.address))?;
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = match options.metrics {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("listening for /metrics on {at}"))?;
            let bound = listener.local_addr()?;
            tracing::info!("metrics at http://{bound}/metrics");
            announce(&format!("metrics on http://{bound}/metrics"))?;
            Some(tokio::spawn(metrics::serve(
                listener,
                started.metrics.clone(),
                store,
                async move {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    // A signal drains: no new calls, every session ends after its request in flight, and
    // the server stops once no call is in progress (idle connections do not hold it).
    // --drain-seconds, or a second signal, cut the wait short.
    wait_for_signal().await;
    tracing::info!("stopping: draining the requests in flight");
    started.stop(options.drain, wait_for_signal()).await?;
    let _ = metrics_stop.send(());
    if let Some(task) = metrics_task {
        task.await??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often the health service asks the state whether it answers.
const HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps grpc.health.v1's status of `helora.v1.PrivateLora` true: SERVING while the state
/// answers, NOT_SERVING while it does not (a readiness probe then takes the replica out of
/// its Service) and from the moment a stop begins. The server-wide status ("") stays
/// SERVING while the process runs: that is liveness.
async fn report_health(
    health: tonic_health::server::HealthReporter,
    store: Arc<dyn state::Store>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    type Grpc = proto::private_lora_server::PrivateLoraServer<Arc<Service>>;
    // `start` made it SERVING.
    let mut serving = true;
    loop {
        let up = !*stop.borrow() && store.ping().await.is_ok();
        if serving != up {
            if up {
                health.set_serving::<Grpc>().await;
            } else {
                tracing::warn!("not ready: the state does not answer, or the server is stopping");
                health.set_not_serving::<Grpc>().await;
            }
            serving = up;
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// Largest gRPC message either side accepts: a prompt's site request (up to
/// `max_request_tokens` tokens of a few seeded ciphertexts) fits; keys come in chunks.
pub const MAX_MESSAGE: usize = 256 << 20;

/// HTTP/2 flow-control windows of both sides, in bytes: a prompt's request is megabytes.
pub const WINDOW: u32 = 16 << 20;

/// Key uploads travel in chunks of this size, under gRPC's default message limit.
pub const KEY_CHUNK: usize = 1 << 20;

/// A line on stdout, flushed at once (scripts wait for it); a closed stdout is an error,
/// not a panic.
fn announce(line: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("writing to stdout")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(not(feature = "cuda"))]
const NO_CUDA: &str =
    "--device cuda: this helora was built without CUDA (build with --features helora-engine/cuda)";

/// Refuses `--device` values this build cannot serve, before anything loads.
pub fn check_device(device: DeviceChoice) -> Result<()> {
    match device {
        DeviceChoice::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => Ok(()),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda => anyhow::bail!(NO_CUDA),
    }
}

//! The `run` process: admin server, cloud client, leader election, then the controllers until
//! SIGTERM/SIGINT or the loss of leadership.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::admin::{self, Readiness};
use crate::controller::accounts::Accounts;
use crate::controller::budget::Budget;
use crate::controller::leader::{ElectionConfig, ElectionState, LeaderElection, default_identity};
use crate::controller::metrics::Metrics;
use crate::controller::receiver::{self, Hooks};
use crate::controller::{RunArgs, Runtime, Settings, run_controllers};
use crate::crd::ChangeOrderWatch;
use changeorder_cloud::client::CloudClient;
use changeorder_cloud::http::{CallOutcome, ClientConfig};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load the Kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr} (--admin-listen): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (--receiver-listen): {source}")]
    ListenReceiver {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the cloud HTTP client: {0}")]
    Cloud(String),
    #[error(transparent)]
    Leader(#[from] crate::controller::leader::LeaderError),
    #[error("lost leadership; exiting so a fresh process can stand for election")]
    LostLeadership,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

pub fn main(args: RunArgs) -> ExitCode {
    crate::telemetry::init(&args.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(RunError::Runtime(e)),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: RunError) -> ExitCode {
    tracing::error!(error = %e, "exiting");
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Resolves on SIGTERM or SIGINT; clones share the one signal.
fn shutdown_signal() -> Shutdown {
    async {
        let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await,
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        ctrl_c.await;
        tracing::info!("shutting down");
    }
    .boxed()
    .shared()
}

async fn kube_client(args: &RunArgs) -> Result<Client, RunError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| RunError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::Config(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| RunError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(RunError::Client)
}

pub fn cloud_client(args: &RunArgs, metrics: &Metrics) -> Result<CloudClient, RunError> {
    let observed = metrics.clone();
    let cfg = ClientConfig {
        request_timeout: args.cloud_timeout,
        observer: Some(Arc::new(move |o: &CallOutcome<'_>| {
            observed.cloud_call(o.provider, o.operation, o.result)
        })),
        // One budget per cloud account: STS (the administrator's endpoint, never a watch's)
        // says which account each AccessKey belongs to.
        budget: Some(Arc::new(Budget::with_accounts(
            args.calls_per_minute,
            Accounts::new(
                &crate::controller::identity::KeylessSettings::from_args(args).sts_endpoint,
                args.cloud_timeout,
            ),
        ))),
        ..ClientConfig::default()
    };
    CloudClient::try_new(cfg).map_err(|e| RunError::Cloud(e.to_string()))
}

/// Ask the API server for its version every few seconds; `/ready` follows the answer, so an
/// outage shows there (the controllers' watches and writes retry on their own).
async fn watch_api_server(client: kube::Client, readiness: Readiness) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3);
    loop {
        let reachable = matches!(
            tokio::time::timeout(EVERY, client.apiserver_version()).await,
            Ok(Ok(_))
        );
        if !reachable {
            tracing::warn!("the API server does not answer");
        }
        readiness.set_api_reachable(reachable);
        tokio::time::sleep(EVERY).await;
    }
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let shutdown = shutdown_signal();
    let client = kube_client(&args).await?;
    let metrics = Metrics::new();
    let readiness = Readiness::new();

    let listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.admin_listen,
            source,
        })?;
    let admin = tokio::spawn(admin::serve(
        listener,
        metrics.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));

    let receiver = match args.receiver_listen.0 {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::ListenReceiver { addr, source })?;
            let hooks = Hooks::start(client.clone(), &args.served_namespaces());
            Some(tokio::spawn(receiver::serve(
                listener,
                hooks,
                metrics.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let runtime = Runtime {
        settings: Settings::from_args(&args),
        cloud: cloud_client(&args, &metrics)?,
        metrics: metrics.clone(),
        concurrency: args.concurrency,
        namespaces: args.served_namespaces(),
        identity: identity.clone(),
    };

    if !crds_present(&client, &runtime.namespaces, shutdown.clone()).await {
        return Ok(());
    }
    let api_check = tokio::spawn(watch_api_server(client.clone(), readiness.clone()));

    let result = if args.leader_election {
        let mut config = ElectionConfig::from_args(&args);
        config.identity = identity;
        run_as_candidate(
            client,
            runtime,
            config,
            readiness.clone(),
            metrics,
            shutdown.clone(),
        )
        .await
    } else {
        let ready = readiness.clone();
        // Without an election this process is the one doing the work.
        metrics.set_leader(true);
        run_controllers(client, runtime, shutdown.clone(), move || ready.set_ready(true)).await;
        metrics.set_leader(false);
        Ok(())
    };
    readiness.set_ready(false);
    api_check.abort();
    if result.is_ok() {
        // Shutting down on a signal: the admin server stops on the same signal.
        let _ = admin.await;
        if let Some(receiver) = receiver {
            let _ = receiver.await;
        }
    } else {
        // Leadership lost (or another failure): exit now so the pod restarts as a fresh
        // candidate, rather than waiting for a signal that will not come.
        admin.abort();
        if let Some(receiver) = receiver {
            receiver.abort();
        }
    }
    result
}

/// Wait until the CRDs are served, so a missing install is reported clearly instead of as watch
/// errors. Returns false when asked to shut down first.
async fn crds_present(client: &Client, namespaces: &[String], shutdown: Shutdown) -> bool {
    let api: Api<ChangeOrderWatch> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return true,
            Err(kube::Error::Api(s)) if s.code == 404 => tracing::error!(
                "the ChangeOrderWatch CRD is not installed: run `changeorder-operator crds | kubectl apply -f -`"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot list ChangeOrderWatches yet"),
        }
        tokio::select! {
            _ = &mut shutdown => return false,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn run_as_candidate(
    client: Client,
    runtime: Runtime,
    config: ElectionConfig,
    readiness: Readiness,
    metrics: Metrics,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let election = LeaderElection::new(client.clone(), config);
    // A healthy standby is ready: it can take over at any time, and rolling updates need it.
    let mut state = election.subscribe();
    let standby_readiness = readiness.clone();
    let standby = tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let healthy = state.borrow().is_healthy();
            standby_readiness.set_ready(healthy);
        }
    });
    let leadership = tokio::select! {
        l = election.acquire() => l?,
        _ = shutdown.clone() => {
            standby.abort();
            return Ok(());
        }
    };
    standby.abort();
    metrics.set_leader(true);
    readiness.set_ready(false);
    let ready = readiness.clone();
    // On a shutdown signal the controllers finish in-flight reconciles within their grace period
    // while we still renew the Lease. On losing the Lease they are dropped at once instead: every
    // write in flight is cancelled, a third of the lease duration before a standby may take over
    // (see `leader`), and none can start after.
    let stopping = shutdown.clone();
    let lost = tokio::select! {
        _ = run_controllers(client, runtime, shutdown, move || ready.set_ready(true)) => false,
        _ = leadership_lost_future(&leadership) => true,
    };
    tracing::info!("controllers stopped");
    metrics.set_leader(false);
    if lost {
        return lost_leadership(stopping.now_or_never().is_some());
    }
    leadership.release().await;
    Ok(())
}

/// A Lease lost while the process was already stopping (a slow API server can fail the last
/// renewals during the shutdown grace period) ends a requested stop, not a failure: exit 0.
/// Lost otherwise, the process exits with an error so a fresh one stands for election.
fn lost_leadership(shutting_down: bool) -> Result<(), RunError> {
    if shutting_down {
        tracing::info!("the Lease was lost while shutting down");
        Ok(())
    } else {
        Err(RunError::LostLeadership)
    }
}

fn leadership_lost_future(
    leadership: &crate::controller::leader::Leadership,
) -> impl Future<Output = ()> + Send + 'static {
    let mut state = leadership.subscribe();
    async move {
        let _ = state.wait_for(|s| *s != ElectionState::Leading).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lost_during_a_requested_stop_is_a_clean_exit() {
        assert!(lost_leadership(true).is_ok());
        assert!(matches!(lost_leadership(false), Err(RunError::LostLeadership)));
    }
}

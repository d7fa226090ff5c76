#![forbid(unsafe_code)]
//! `kubectl changeorder`: the kubectl plugin (binary `kubectl-changeorder`). `status` shows the
//! watches and their latest orders, `sets` the ChangeOrderWatchSets, `wait` blocks until an order (or a watch's newest order)
//! finishes, `refresh` asks the operator to poll now, `confirm`/`abort`/`rollback` create a
//! ChangeOrderAction (see `act`). The verdicts and the table are pure functions; the commands
//! only read, create and patch objects through the API server.

mod act;
mod sets;

pub use sets::sets_table;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};

use changeorder_operator::conditions::find;
use changeorder_operator::controller::args::parse_duration;
use changeorder_operator::controller::watch_status::condition_type;
use changeorder_operator::crd::{
    ActionKind, ChangeOrder, ChangeOrderWatch, ChangeOrderWatchSet, Phase, RECONCILE_REQUEST_ANNOTATION,
};

/// Exit code when the order succeeded (and for the other commands' success).
pub const EXIT_SUCCEEDED: u8 = 0;
/// Exit code when the order failed or was cancelled, or the watch cannot poll (Stalled).
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the timeout passed first.
pub const EXIT_TIMEOUT: u8 = 2;
/// Exit code for usage, connection and API errors (distinct from the three outcomes).
pub const EXIT_ERROR: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-changeorder",
    bin_name = "kubectl changeorder",
    version,
    about = "Follow Alibaba Cloud change orders mirrored by changeorder-operator",
    long_about = "Follow Alibaba Cloud EDAS, SAE and AppStack change orders mirrored by \
                  changeorder-operator.\n\nInstall: put the kubectl-changeorder binary on PATH \
                  (cargo install --path . --bin kubectl-changeorder), then run \
                  `kubectl changeorder ...`. The cluster comes from KUBECONFIG or \
                  ~/.kube/config, as for kubectl."
)]
pub struct Cli {
    /// Namespace (default: the current context's namespace).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Watches and their latest orders, one table.
    Status {
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// ChangeOrderWatchSets: apps found, watches Ready and not, conflicts.
    Sets {
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Wait until a change order finishes. Exit 0 succeeded, 1 failed or cancelled (or the
    /// watch cannot poll: Stalled), 2 timeout, 3 error.
    #[command(
        after_help = "Examples:\n  kubectl changeorder wait orders-api-1074f3e2 --timeout 30m\n  \
                      kubectl changeorder wait --latest orders-api --refresh --timeout 30m"
    )]
    Wait {
        /// The ChangeOrder's name.
        #[arg(required_unless_present = "latest", conflicts_with = "latest")]
        name: Option<String>,
        /// Wait for the newest order of this ChangeOrderWatch instead (its
        /// LatestOrderSucceeded condition).
        #[arg(long, value_name = "WATCH")]
        latest: Option<String>,
        /// With --latest: first ask the watch to poll and wait for that poll, so the result of
        /// an earlier release is not taken for the one just started.
        #[arg(long)]
        refresh: bool,
        /// Give up after this long (e.g. 90s, 30m, 1h).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Confirm the next batch of an order waiting for manual confirmation (creates a
    /// ChangeOrderAction). Needs `--enable-actions` on the operator and Confirm in the watch's
    /// spec.actions.allowed.
    #[command(after_help = "Example:\n  kubectl changeorder confirm orders-api-1074f3e2 --wait")]
    Confirm {
        /// The ChangeOrder's name.
        order: String,
        /// Act only if the order waits at this batch (default: the batch the ChangeOrder shows
        /// now, so a stale confirmation cannot confirm a later batch).
        #[arg(long)]
        batch: Option<u32>,
        #[command(flatten)]
        wait: ActionWait,
    },
    /// Abort an order in flight (creates a ChangeOrderAction).
    Abort {
        /// The ChangeOrder's name.
        order: String,
        #[command(flatten)]
        wait: ActionWait,
    },
    /// Abort an order in flight and roll the application back (EDAS and SAE; creates a
    /// ChangeOrderAction with action AbortAndRollback).
    Rollback {
        /// The ChangeOrder's name.
        order: String,
        #[command(flatten)]
        wait: ActionWait,
    },
    /// Ask the operator to poll a watch now (sets the reconcile-request annotation).
    Refresh {
        /// The ChangeOrderWatch's name.
        watch: String,
        /// Wait until the operator has handled the request.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this long.
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// Waiting for a ChangeOrderAction's outcome.
#[derive(clap::Args, Debug)]
pub struct ActionWait {
    /// Wait for the outcome: exit 0 succeeded, 1 failed or refused, 2 timeout, 3 error.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Flags that parse but do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--refresh applies only with --latest WATCH")]
    RefreshWithoutLatest,
}

impl Cli {
    /// Rules clap's derive does not express for a boolean flag.
    pub fn check(&self) -> Result<(), UsageError> {
        match &self.command {
            Command::Wait {
                refresh: true,
                latest: None,
                ..
            } => Err(UsageError::RefreshWithoutLatest),
            _ => Ok(()),
        }
    }
}

/// How a wait ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Succeeded(String),
    Failed(String),
    /// Not decided yet: keep waiting.
    Pending,
}

impl Verdict {
    fn is_decided(&self) -> bool {
        !matches!(self, Verdict::Pending)
    }
}

/// The verdict on one ChangeOrder: its phase decides. A missing object is pending (the operator
/// may not have written it yet).
pub fn order_verdict(order: Option<&ChangeOrder>) -> Verdict {
    let Some(status) = order.and_then(|o| o.status.as_ref()) else {
        return Verdict::Pending;
    };
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| status.reason.clone())
        .unwrap_or_default();
    let name = order.map(ResourceExt::name_any).unwrap_or_default();
    match status.phase {
        Some(Phase::Succeeded) => Verdict::Succeeded(format!("changeorder/{name} Succeeded: {message}")),
        Some(p @ (Phase::Failed | Phase::Cancelled)) => {
            Verdict::Failed(format!("changeorder/{name} {p}: {message}"))
        }
        _ => Verdict::Pending,
    }
}

/// The verdict on a watch's newest order. `handled` is a reconcile-request value that must have
/// been handled first (`--refresh`); a spec not yet observed is pending too, since the status
/// may describe the previous application.
pub fn watch_verdict(watch: Option<&ChangeOrderWatch>, handled: Option<&str>) -> Verdict {
    let Some(w) = watch else {
        return Verdict::Pending;
    };
    let Some(status) = w.status.as_ref() else {
        return Verdict::Pending;
    };
    if handled.is_some() && status.last_handled_reconcile_at.as_deref() != handled {
        return Verdict::Pending;
    }
    if let (Some(g), Some(o)) = (w.metadata.generation, status.observed_generation)
        && o < g
    {
        return Verdict::Pending;
    }
    let name = w.name_any();
    if let Some(c) = find(&status.conditions, condition_type::STALLED)
        && c.status == "True"
    {
        return Verdict::Failed(format!(
            "changeorderwatch/{name} cannot poll ({}): {}",
            c.reason, c.message
        ));
    }
    match find(&status.conditions, condition_type::LATEST_ORDER_SUCCEEDED) {
        Some(c) if c.status == "True" => Verdict::Succeeded(c.message.clone()),
        Some(c) if c.status == "False" => Verdict::Failed(c.message.clone()),
        _ => Verdict::Pending,
    }
}

/// "45s", "12m", "5h", "3d": the age column of kubectl.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The `status` table: one row per watch, with its poll state and latest order.
pub fn status_table(watches: &[ChangeOrderWatch], with_namespace: bool, now: Timestamp) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec![
        "WATCH",
        "PROVIDER",
        "READY",
        "REASON",
        "LATEST ORDER",
        "PHASE",
        "ORDER REASON",
        "CREATED",
    ];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    rows.push(header.into_iter().map(String::from).collect());
    let mut sorted: Vec<&ChangeOrderWatch> = watches.iter().collect();
    sorted.sort_by_key(|w| (w.namespace(), w.name_any()));
    for w in sorted {
        let status = w.status.as_ref();
        let ready = status.and_then(|s| find(&s.conditions, condition_type::READY));
        let latest = status.and_then(|s| s.latest_order.as_ref());
        let dash = || "-".to_string();
        let mut row = vec![
            w.name_any(),
            w.spec.provider.as_str().to_string(),
            ready.map_or_else(|| "Unknown".into(), |c| c.status.clone()),
            ready.map_or_else(dash, |c| c.reason.clone()),
            latest.map_or_else(dash, |l| l.change_order_id.clone()),
            latest.and_then(|l| l.phase).map_or_else(dash, |p| p.to_string()),
            latest.and_then(|l| l.reason.clone()).unwrap_or_else(dash),
            latest
                .and_then(|l| l.create_time.as_ref())
                .map_or_else(dash, |t| age(t.0, now)),
        ];
        if with_namespace {
            row.insert(0, w.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    align(&rows)
}

/// Columns padded to their widest cell, three spaces apart, as kubectl prints tables.
fn align(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Entry point of the `kubectl-changeorder` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<u8, BoxError> {
    let config = kube::Config::infer().await?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    match cli.command {
        Command::Status { all_namespaces } => {
            let api: Api<ChangeOrderWatch> = if all_namespaces {
                Api::all(client)
            } else {
                Api::namespaced(client, &namespace)
            };
            let watches = api.list(&ListParams::default()).await?.items;
            if watches.is_empty() {
                eprintln!("No ChangeOrderWatch found.");
            } else {
                print!("{}", status_table(&watches, all_namespaces, Timestamp::now()));
            }
            Ok(EXIT_SUCCEEDED)
        }
        Command::Sets { all_namespaces } => {
            let api: Api<ChangeOrderWatchSet> = if all_namespaces {
                Api::all(client)
            } else {
                Api::namespaced(client, &namespace)
            };
            let sets = api.list(&ListParams::default()).await?.items;
            if sets.is_empty() {
                eprintln!("No ChangeOrderWatchSet found.");
            } else {
                print!("{}", sets_table(&sets, all_namespaces));
            }
            Ok(EXIT_SUCCEEDED)
        }
        Command::Confirm { order, batch, wait } => {
            act::run(
                client,
                &namespace,
                &order,
                ActionKind::Confirm,
                batch,
                wait.wait,
                wait.timeout,
            )
            .await
        }
        Command::Abort { order, wait } => {
            act::run(
                client,
                &namespace,
                &order,
                ActionKind::Abort,
                None,
                wait.wait,
                wait.timeout,
            )
            .await
        }
        Command::Rollback { order, wait } => {
            act::run(
                client,
                &namespace,
                &order,
                ActionKind::AbortAndRollback,
                None,
                wait.wait,
                wait.timeout,
            )
            .await
        }
        Command::Refresh { watch, wait, timeout } => {
            let api: Api<ChangeOrderWatch> = Api::namespaced(client, &namespace);
            let value = request_poll(&api, &watch).await?;
            println!("changeorderwatch/{watch}: poll requested ({RECONCILE_REQUEST_ANNOTATION}={value})");
            if wait {
                let handled = |w: Option<&ChangeOrderWatch>| {
                    w.and_then(|w| w.status.as_ref())
                        .and_then(|s| s.last_handled_reconcile_at.as_deref())
                        == Some(value.as_str())
                };
                if tokio::time::timeout(timeout, await_condition(api, &watch, handled))
                    .await
                    .is_err()
                {
                    eprintln!(
                        "timed out after {timeout:?} waiting for the operator to poll changeorderwatch/{watch}"
                    );
                    return Ok(EXIT_TIMEOUT);
                }
                println!("changeorderwatch/{watch}: polled");
            }
            Ok(EXIT_SUCCEEDED)
        }
        Command::Wait {
            name,
            latest,
            refresh,
            timeout,
        } => {
            let verdict = match (name, latest) {
                (_, Some(watch)) => {
                    let api: Api<ChangeOrderWatch> = Api::namespaced(client, &namespace);
                    if api.get_opt(&watch).await?.is_none() {
                        return Err(
                            format!("changeorderwatch/{watch} not found in namespace {namespace}").into(),
                        );
                    }
                    let handled = if refresh {
                        Some(request_poll(&api, &watch).await?)
                    } else {
                        None
                    };
                    let required = handled.clone();
                    let decided = move |w: Option<&ChangeOrderWatch>| {
                        watch_verdict(w, required.as_deref()).is_decided()
                    };
                    match tokio::time::timeout(timeout, await_condition(api, &watch, decided)).await {
                        Ok(found) => watch_verdict(found?.as_ref(), handled.as_deref()),
                        Err(_) => Verdict::Pending,
                    }
                }
                (Some(name), None) => {
                    let api: Api<ChangeOrder> = Api::namespaced(client, &namespace);
                    let decided = |o: Option<&ChangeOrder>| order_verdict(o).is_decided();
                    match tokio::time::timeout(timeout, await_condition(api, &name, decided)).await {
                        Ok(found) => order_verdict(found?.as_ref()),
                        Err(_) => Verdict::Pending,
                    }
                }
                (None, None) => return Err("name a ChangeOrder or pass --latest WATCH".into()),
            };
            Ok(match verdict {
                Verdict::Succeeded(m) => {
                    println!("{m}");
                    EXIT_SUCCEEDED
                }
                Verdict::Failed(m) => {
                    println!("{m}");
                    EXIT_FAILED
                }
                Verdict::Pending => {
                    eprintln!("timed out after {timeout:?}");
                    EXIT_TIMEOUT
                }
            })
        }
    }
}

/// Sets the reconcile-request annotation to the current time; returns the value set.
async fn request_poll(api: &Api<ChangeOrderWatch>, watch: &str) -> Result<String, BoxError> {
    // Nanoseconds, so two requests within one second still differ and each causes a poll.
    let value = Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: value}}});
    api.patch(watch, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(value)
}

#[cfg(test)]
mod tests;

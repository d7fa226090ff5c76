//! Leader election through a `coordination.k8s.io/v1` Lease, so only one replica polls.
//!
//! The protocol is the one client-go and controller-runtime speak, so mixed tooling reads the
//! Lease the same way: whoever holds an unexpired Lease leads; a candidate takes it over when the
//! holder is empty or the Lease has expired. Every write is a replace carrying the
//! `resourceVersion` that was read, so two candidates racing for the same Lease cannot both win:
//! the loser gets 409 Conflict and reads again.
//!
//! Expiry follows client-go's rule, not the timestamps in the Lease: a candidate notes, on its
//! own monotonic clock, when it saw the Lease record change, and considers the Lease expired
//! `leaseDurationSeconds` after that. `renewTime` is written for people and tools but never
//! compared with the local wall clock, so clock skew between nodes (minutes, even) can neither
//! make a standby take over from a healthy leader nor keep it waiting after the leader died.
//!
//! The leader measures its own validity from the moment it *sent* its last successful renewal
//! (which is before any standby can have seen it), renews every third of the lease duration, and
//! gives up once it has not renewed for two thirds of it. On losing the Lease the process stops
//! its controllers at once (no grace period), so every write stops a third of the lease duration
//! before a standby may take over.

use std::time::Duration;

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Error as KubeError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::args::RunArgs;

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Where the Lease lives, who we are, and the timings derived from the lease duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// Time between renewals while all goes well.
    pub renew_interval: Duration,
    /// The leader gives up when it has not renewed for this long; below `lease_duration`.
    pub renew_deadline: Duration,
    /// Time between attempts of a standby, and between retries of a failed renewal.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// Timings from the lease duration (at least one second, the Lease's resolution):
    /// renew every third of it, give up after two thirds, retry every sixth.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
        lease_duration: Duration,
    ) -> Self {
        let lease_duration = lease_duration.max(Duration::from_secs(1));
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            renew_interval: lease_duration / 3,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 6,
        }
    }

    /// From the `run` flags, filling in the pod's namespace and a unique identity when unset.
    pub fn from_args(args: &RunArgs) -> Self {
        Self::new(
            args.leader_election_namespace
                .clone()
                .unwrap_or_else(default_namespace),
            args.leader_election_name.clone(),
            args.identity.clone().unwrap_or_else(default_identity),
            args.lease_duration,
        )
    }

    fn lease_seconds(&self) -> i32 {
        // Round up: a Lease shorter than asked could expire between renewals.
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX).max(1)
    }
}

/// `$POD_NAME` (else the hostname) plus a random suffix: a restarted container, or two
/// processes started by hand on one machine, never share an identity.
pub fn default_identity() -> String {
    let hostname = std::env::var("HOSTNAME").ok().or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
    });
    identity_from(std::env::var("POD_NAME").ok(), hostname, rand::random::<u32>())
}

fn identity_from(pod_name: Option<String>, hostname: Option<String>, suffix: u32) -> String {
    let base = [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "changeorder-operator".to_owned());
    format!("{base}_{suffix:08x}")
}

/// `$POD_NAMESPACE`, else the service account's namespace, else `default`.
pub fn default_namespace() -> String {
    namespace_from(
        std::env::var("POD_NAMESPACE").ok(),
        std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok(),
    )
}

fn namespace_from(env: Option<String>, service_account: Option<String>) -> String {
    [env, service_account]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// The wall clock used for the timestamps written into the Lease (injectable so tests can run a
/// replica whose clock is off by minutes). Expiry never depends on it.
pub type WallClock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

fn system_clock() -> WallClock {
    Arc::new(Timestamp::now)
}

/// What a candidate should do about the Lease it just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    TakeOver,
    /// Someone else holds a valid Lease for `remaining` more (on our monotonic clock).
    Wait { holder: String, remaining: Duration },
}

/// The last Lease record a candidate saw and when it first saw it, on its monotonic clock.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    last: Option<(LeaseSpec, Instant)>,
}

impl Observation {
    /// Records `spec` as read at `now`; returns when this record was first seen. Only a change
    /// of the record (a renewal, a new holder) restarts the count.
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Instant {
        match &self.last {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                self.last = Some((spec.clone(), now));
                now
            }
        }
    }
}

/// The decision for a Lease with `spec` (`None`: no Lease exists), first seen in this form at
/// `observed` and read again at `now` (both on this replica's monotonic clock), by `identity`.
/// As in client-go, the Lease is valid for `leaseDurationSeconds` after it was observed; the
/// timestamps inside it are not used.
pub fn decide(spec: Option<&LeaseSpec>, observed: Instant, now: Instant, identity: &str) -> Action {
    let Some(spec) = spec else {
        return Action::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Action::TakeOver;
    }
    if holder == identity {
        return Action::Renew;
    }
    let secs = spec.lease_duration_seconds.unwrap_or(0).max(0);
    let expires = observed + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    if now < expires {
        Action::Wait {
            holder: holder.to_owned(),
            remaining: expires - now,
        }
    } else {
        // Expired, or without a duration, so that nobody can be said to hold it.
        Action::TakeOver
    }
}

/// The Lease spec to write for `action` (not `Wait`), starting from what was read.
fn next_spec(old: Option<&LeaseSpec>, action: &Action, config: &ElectionConfig, now: Timestamp) -> LeaseSpec {
    let mut spec = old.cloned().unwrap_or_default();
    let now = MicroTime(now);
    match action {
        Action::Create => {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(0);
        }
        Action::TakeOver => {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        Action::Renew | Action::Wait { .. } => {}
    }
    spec.holder_identity = Some(config.identity.clone());
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(config.lease_seconds());
    spec
}

/// The spec that hands the Lease back: no holder, and a one-second duration for candidates that
/// only look at expiry, so a standby takes over at its next attempt.
fn released_spec(old: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let mut spec = old.cloned().unwrap_or_default();
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(1);
    spec
}

/// Where this replica stands, for readiness and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionState {
    /// No attempt finished yet.
    Starting,
    /// Another replica leads and we can reach the API server to take over when it stops.
    Standby {
        leader: String,
    },
    Leading,
    /// The last attempt to read or write the Lease failed.
    Unreachable,
    /// We led and no longer do (lost, or released on shutdown).
    Stopped,
}

impl ElectionState {
    /// Leading, or standing by in working order: what `/ready` should reflect.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Standby { .. } | Self::Leading)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// An error that retrying will not fix: RBAC forbids the Lease, or its namespace is missing.
    #[error("cannot use Lease {namespace}/{name} for leader election: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: KubeError,
    },
}

/// A candidate for leadership of one Lease.
pub struct LeaderElection {
    api: Api<Lease>,
    config: ElectionConfig,
    state: watch::Sender<ElectionState>,
    clock: WallClock,
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Kube(KubeError),
    #[error("no answer from the API server in time")]
    TimedOut,
}

/// What one attempt to take or keep the Lease came to.
enum Attempt {
    /// We hold it; this is the Lease as written.
    Leading(Box<Lease>),
    /// Someone else holds it.
    Held { holder: String },
    /// Someone wrote between our read and write; read again.
    Conflict,
}

impl LeaderElection {
    pub fn new(client: Client, config: ElectionConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        let (state, _) = watch::channel(ElectionState::Starting);
        Self {
            api,
            config,
            state,
            clock: system_clock(),
        }
    }

    /// With another wall clock for the timestamps written into the Lease (tests of clock skew).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// Follows this replica's election state (e.g. to drive `/ready`).
    pub fn subscribe(&self) -> watch::Receiver<ElectionState> {
        self.state.subscribe()
    }

    /// Waits until we lead, retrying every retry period. Transient API errors are logged and
    /// retried; only errors that no retry can fix (forbidden, namespace missing) are returned.
    pub async fn acquire(&self) -> Result<Leadership, LeaderError> {
        let mut last_holder: Option<String> = None;
        let mut conflicted = false;
        let mut observation = Observation::default();
        loop {
            // Before the read: the renewTime we may write is later, so deadlines measured from
            // here err on the safe side.
            let started = Instant::now();
            // Bounded, so that a hung connection shows up as Unreachable instead of silence.
            let attempt = match tokio::time::timeout(
                self.config.lease_duration,
                self.attempt(&mut observation),
            )
            .await
            {
                Ok(attempt) => attempt.map_err(AttemptError::Kube),
                Err(_) => Err(AttemptError::TimedOut),
            };
            let after_conflict = std::mem::replace(&mut conflicted, matches!(attempt, Ok(Attempt::Conflict)));
            match attempt {
                Ok(Attempt::Leading(lease)) => {
                    let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
                    tracing::info!(
                        lease = %self.lease_ref(),
                        identity = %self.config.identity,
                        transitions,
                        "acquired leadership"
                    );
                    self.state.send_replace(ElectionState::Leading);
                    return Ok(self.start_renewing(*lease, started));
                }
                Ok(Attempt::Conflict) if !after_conflict => {
                    // Another candidate just wrote; the next read shows who won. Read at once,
                    // but only once, in case something keeps answering 409.
                    continue;
                }
                Ok(Attempt::Conflict) => {}
                Ok(Attempt::Held { holder }) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.lease_ref(), leader = %holder, "standing by");
                        last_holder = Some(holder.clone());
                    }
                    self.state.send_replace(ElectionState::Standby { leader: holder });
                }
                Err(AttemptError::Kube(e)) if is_permanent(&e) => {
                    self.state.send_replace(ElectionState::Unreachable);
                    return Err(LeaderError::Lease {
                        namespace: self.config.namespace.clone(),
                        name: self.config.name.clone(),
                        source: e,
                    });
                }
                Err(e) => {
                    tracing::warn!(lease = %self.lease_ref(), error = %e, "leader election attempt failed");
                    self.state.send_replace(ElectionState::Unreachable);
                }
            }
            tokio::time::sleep(jittered(self.config.retry_period)).await;
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    async fn attempt(&self, observation: &mut Observation) -> Result<Attempt, KubeError> {
        let current = self.api.get_opt(&self.config.name).await?;
        // After the read: the record was written before this instant, so expiry measured from
        // here is never early.
        let now = Instant::now();
        let empty = LeaseSpec::default();
        let spec = current.as_ref().map(|l| l.spec.as_ref().unwrap_or(&empty));
        let observed = spec.map_or(now, |s| observation.observe(s, now));
        let action = decide(spec, observed, now, &self.config.identity);
        let next = next_spec(spec, &action, &self.config, (self.clock)());
        let replacing = current.is_some();
        let result = match (action, current) {
            (Action::Wait { holder, .. }, _) => return Ok(Attempt::Held { holder }),
            (Action::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(next),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Action::Renew | Action::TakeOver, Some(mut lease)) => {
                // The read's resourceVersion stays in the metadata: a write since then fails.
                lease.spec = Some(next);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(lease) => Ok(Attempt::Leading(Box::new(lease))),
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            // Deleted between our read and write: read again (and create it).
            Err(e) if replacing && is_not_found(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    fn start_renewing(&self, lease: Lease, renewed: Instant) -> Leadership {
        let (stop, stopped) = oneshot::channel();
        let renewer = Renewer {
            api: self.api.clone(),
            config: self.config.clone(),
            state: self.state.clone(),
            clock: self.clock.clone(),
        };
        Leadership {
            state: self.state.subscribe(),
            stop: Some(stop),
            task: Some(tokio::spawn(renewer.clone().run(lease, renewed, stopped))),
            renewer,
        }
    }
}

/// Proof that we lead. Dropping it stops renewing without releasing the Lease; call
/// [`Leadership::release`] on a graceful shutdown instead.
pub struct Leadership {
    state: watch::Receiver<ElectionState>,
    stop: Option<oneshot::Sender<()>>,
    /// Renews until stopped; returns the last Lease written while still ours, `None` once lost.
    task: Option<JoinHandle<Option<Lease>>>,
    renewer: Renewer,
}

impl Leadership {
    /// The election state, for callers that need a `'static` view of `lost`.
    pub fn subscribe(&self) -> watch::Receiver<ElectionState> {
        self.state.clone()
    }

    /// Resolves when we stop leading: a renewal found another holder or could not get through
    /// before the renew deadline. The caller should stop work and exit, so that the pod restarts
    /// as a fresh candidate (controller-runtime does the same).
    pub async fn lost(&self) {
        let mut state = self.state.clone();
        // An error means the renewer is gone; that is a loss too.
        let _ = state.wait_for(|s| *s != ElectionState::Leading).await;
    }

    pub fn is_leading(&self) -> bool {
        *self.state.borrow() == ElectionState::Leading
    }

    /// Stops renewing and hands the Lease back, so a standby takes over at its next attempt
    /// instead of waiting for the Lease to expire. Does nothing if leadership was already lost.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let last = match self.task.take() {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        if let Some(lease) = last {
            self.renewer.release(lease).await;
        }
        self.renewer.state.send_replace(ElectionState::Stopped);
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The leader's side: keeps the Lease renewed, and hands it back on release.
#[derive(Clone)]
struct Renewer {
    api: Api<Lease>,
    config: ElectionConfig,
    state: watch::Sender<ElectionState>,
    clock: WallClock,
}

/// Reports a loss if the renewal task ends any other way than by release (a panic, an abort).
struct LossGuard {
    state: watch::Sender<ElectionState>,
    armed: bool,
}

impl Drop for LossGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state.send_if_modified(|s| {
            let leading = *s == ElectionState::Leading;
            if leading {
                *s = ElectionState::Stopped;
            }
            leading
        });
    }
}

enum Renewal {
    Renewed,
    /// Someone else holds the Lease now, or it is gone.
    Lost(String),
}

impl Renewer {
    /// `renewed`: when the attempt that wrote `lease` started.
    async fn run(self, mut lease: Lease, renewed: Instant, mut stop: oneshot::Receiver<()>) -> Option<Lease> {
        let mut guard = LossGuard {
            state: self.state.clone(),
            armed: true,
        };
        let mut last_renewed = renewed;
        let mut wait = self.config.renew_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                asked = &mut stop => {
                    if asked.is_err() {
                        // The Leadership was dropped without release: just stop.
                        return None;
                    }
                    // Still leading until `release` has handed the Lease back.
                    guard.armed = false;
                    return Some(lease);
                }
            }
            let started = Instant::now();
            let deadline = last_renewed + self.config.renew_deadline;
            let outcome = tokio::time::timeout_at(deadline, self.renew(&mut lease)).await;
            let reason = match outcome {
                Ok(Ok(Renewal::Renewed)) => {
                    last_renewed = started;
                    wait = self.config.renew_interval;
                    continue;
                }
                Ok(Ok(Renewal::Lost(reason))) => reason,
                Ok(Err(e)) if Instant::now() + self.config.retry_period < deadline => {
                    tracing::warn!(lease = %self.lease_ref(), error = %e, "renewing the Lease failed; retrying");
                    wait = self.config.retry_period;
                    continue;
                }
                Ok(Err(e)) => format!("renewing failed until the renew deadline: {e}"),
                Err(_) => "renewing did not finish before the renew deadline".to_owned(),
            };
            tracing::info!(lease = %self.lease_ref(), identity = %self.config.identity, %reason, "lost leadership");
            drop(guard);
            return None;
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    /// One renewal: replace with the resourceVersion of our last write; on a conflict read
    /// again, and retry while the Lease is still ours (the caller bounds this by the deadline).
    async fn renew(&self, lease: &mut Lease) -> Result<Renewal, KubeError> {
        loop {
            let mut next = lease.clone();
            next.spec = Some(next_spec(
                lease.spec.as_ref(),
                &Action::Renew,
                &self.config,
                (self.clock)(),
            ));
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &next)
                .await
            {
                Ok(written) => {
                    *lease = written;
                    return Ok(Renewal::Renewed);
                }
                Err(e) if is_not_found(&e) => {
                    return Ok(Renewal::Lost("the Lease was deleted".into()));
                }
                Err(e) if !is_conflict(&e) => return Err(e),
                Err(_) => {}
            }
            let Some(current) = self.api.get_opt(&self.config.name).await? else {
                return Ok(Renewal::Lost("the Lease was deleted".into()));
            };
            let holder = current
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            if holder != self.config.identity {
                return Ok(Renewal::Lost(format!("the Lease is now held by {holder:?}")));
            }
            // Still ours (someone touched another field): renew on top of what is there now.
            *lease = current;
        }
    }

    /// Clears the holder, retrying once on a conflict if the Lease is still ours. Bounded by the
    /// renew deadline: a shutdown must not hang on an unreachable API server.
    async fn release(&self, lease: Lease) {
        let work = async {
            let mut lease = lease;
            for _ in 0..2 {
                let mut next = lease.clone();
                next.spec = Some(released_spec(lease.spec.as_ref(), (self.clock)()));
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &next)
                    .await
                {
                    Ok(_) => return Ok(true),
                    Err(e) if !is_conflict(&e) => return Err(e),
                    Err(_) => {}
                }
                match self.api.get_opt(&self.config.name).await? {
                    Some(current)
                        if current.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                            == Some(self.config.identity.as_str()) =>
                    {
                        lease = current;
                    }
                    // Gone or someone else's: nothing of ours to release.
                    _ => return Ok(false),
                }
            }
            Ok(false)
        };
        match tokio::time::timeout(self.config.renew_deadline, work).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %self.lease_ref(), identity = %self.config.identity, "released leadership");
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.lease_ref(), error = %e, "could not release the Lease; it expires on its own");
            }
            Err(_) => {
                tracing::warn!(lease = %self.lease_ref(), "releasing the Lease timed out; it expires on its own");
            }
        }
    }
}

fn api_code(e: &KubeError) -> Option<u16> {
    match e {
        KubeError::Api(status) => Some(status.code),
        _ => None,
    }
}

fn is_conflict(e: &KubeError) -> bool {
    // 409 is both "resourceVersion is stale" on replace and "already exists" on create.
    api_code(e) == Some(409)
}

fn is_not_found(e: &KubeError) -> bool {
    api_code(e) == Some(404)
}

/// Errors retrying cannot fix: no permission for Leases, or no such namespace.
fn is_permanent(e: &KubeError) -> bool {
    matches!(api_code(e), Some(401 | 403 | 404))
}

/// Up to 20% more, so replicas started together do not keep hitting the API server in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::random_range(0.0..0.2))
}

#[cfg(test)]
mod tests;

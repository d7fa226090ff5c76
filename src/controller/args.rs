//! Flags of `run`. Every flag also reads an environment variable (the Helm chart sets those).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use changeorder_cloud::policy::EndpointPolicy;
pub use changeorder_cloud::time::{DurationError, parse_duration};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Kubeconfig to use; in a pod the in-cluster configuration is used when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Namespaces to watch (comma-separated); empty watches all namespaces.
    #[arg(long, env = "CHANGEORDER_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Default poll interval when a watch sets none and no order is in flight.
    #[arg(long, env = "CHANGEORDER_DEFAULT_INTERVAL", default_value = "1m", value_parser = parse_interval)]
    pub default_interval: Duration,

    /// Default poll interval while any order of a watch is in flight.
    #[arg(long, env = "CHANGEORDER_DEFAULT_IN_FLIGHT_INTERVAL", default_value = "15s", value_parser = parse_interval)]
    pub default_in_flight_interval: Duration,

    /// Default number of finished orders kept per watch.
    #[arg(long, env = "CHANGEORDER_DEFAULT_MAX_FINISHED", default_value_t = 50)]
    pub default_max_finished: u32,

    /// Cloud calls allowed per minute per credential, shared by every watch using it
    /// (SAE allows 60 per minute per account for all its APIs).
    #[arg(long, env = "CHANGEORDER_CALLS_PER_MINUTE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub calls_per_minute: u32,

    /// Longest wait between retries of a failing watch.
    #[arg(long, env = "CHANGEORDER_MAX_ERROR_BACKOFF", default_value = "5m", value_parser = parse_interval)]
    pub max_error_backoff: Duration,

    /// How often the last-poll timestamps in a watch's status are refreshed when nothing else
    /// changed; polls in between write nothing.
    #[arg(long, env = "CHANGEORDER_STATUS_HEARTBEAT", default_value = "10m", value_parser = parse_interval)]
    pub status_heartbeat: Duration,

    /// Watches reconciled at the same time.
    #[arg(long, env = "CHANGEORDER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Timeout of one cloud HTTP request.
    #[arg(long, env = "CHANGEORDER_CLOUD_TIMEOUT", default_value = "20s", value_parser = parse_interval)]
    pub cloud_timeout: Duration,

    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "CHANGEORDER_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,

    /// Address of the push receiver (`POST /hook/<id>` of ChangeOrderReceivers); empty (the
    /// default) serves none. A port of its own, so the admin port never faces callers outside.
    #[arg(long, env = "CHANGEORDER_RECEIVER_LISTEN", default_value = "", value_parser = parse_optional_addr)]
    pub receiver_listen: OptionalAddr,

    /// Elect a leader through a Lease so only one replica polls.
    #[arg(long, env = "CHANGEORDER_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease (defaults to the pod's namespace, else `default`).
    #[arg(long, env = "CHANGEORDER_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "CHANGEORDER_LEADER_ELECTION_NAME",
        default_value = "changeorder-operator"
    )]
    pub leader_election_name: String,

    /// Lease duration: a standby takes over this long after it last saw the Lease renewed
    /// (measured on its own clock). The leader renews every third of it and stops all work once
    /// it has not renewed for two thirds of it, a third before anyone may take over. At least 3s.
    #[arg(long, env = "CHANGEORDER_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,

    /// Identity in the Lease (defaults to the pod name / hostname plus a random suffix).
    #[arg(long, env = "CHANGEORDER_IDENTITY")]
    pub identity: Option<String>,

    /// Cloud endpoints watches may use (comma-separated URL patterns `scheme://host[:port][/path]`:
    /// `*` stands for one or more host labels, `<region>` for one region id, `:*` for any port;
    /// without a path only the root path matches; e.g. `http://127.0.0.1:*` for the simulator).
    /// The default is the cloud's API hosts only (EDAS, SAE, their -vpc forms, STS, Yunxiao's
    /// openapi-rdc). A watch whose endpoint is outside gets Ready=False, reason
    /// EndpointNotAllowed, and no call is made.
    #[arg(
        long,
        env = "CHANGEORDER_ALLOWED_ENDPOINTS",
        default_value = changeorder_cloud::policy::DEFAULT_ALLOWED_ENDPOINTS,
        value_parser = EndpointPolicy::parse
    )]
    pub allowed_endpoints: EndpointPolicy,

    /// STS endpoint for keyless credentials (ServiceAccount RRSA and the operator's own RRSA).
    /// Unset: the official `ALIBABA_CLOUD_STS_ENDPOINT`, else `ALIBABA_CLOUD_STS_REGION`
    /// (`ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true` for the VPC host), else https://sts.aliyuncs.com.
    /// The administrator's setting: not checked against --allowed-endpoints (which only bounds
    /// watches' endpoints), and no watch can change it.
    #[arg(long, env = "CHANGEORDER_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,

    /// ECS instance metadata service, for the node's RAM role as the operator's own identity.
    /// The administrator's setting, like --sts-endpoint: not checked against --allowed-endpoints.
    #[arg(long, env = "CHANGEORDER_ECS_METADATA_ENDPOINT", default_value = changeorder_cloud::imds::DEFAULT_METADATA_ENDPOINT)]
    pub ecs_metadata_endpoint: String,

    /// Namespaces whose watches may use the operator's own identity (`spec.credentials.source:
    /// OperatorIdentity`), comma-separated. Empty (the default): no namespace may.
    #[arg(long, env = "CHANGEORDER_OPERATOR_IDENTITY_NAMESPACES", value_delimiter = ',')]
    pub operator_identity_namespaces: Vec<String>,
    /// Carry out ChangeOrderActions (confirm, abort, roll back orders in the cloud). Off by
    /// default; each watch must also allow the action in spec.actions.allowed.
    #[arg(long, env = "CHANGEORDER_ENABLE_ACTIONS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_actions: bool,

    /// Run the ChangeOrderWatchSet controller: it creates, updates and deletes the
    /// ChangeOrderWatches of each set (the operator's RBAC must allow that; chart:
    /// watchSets.enabled). Off by default.
    #[arg(long, env = "CHANGEORDER_ENABLE_WATCH_SETS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_watch_sets: bool,

    /// How long finished ChangeOrderActions are kept before the operator deletes them.
    #[arg(long, env = "CHANGEORDER_ACTION_TTL", default_value = "24h", value_parser = parse_interval)]
    pub action_ttl: Duration,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "CHANGEORDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,changeorder_operator=debug`).
    #[arg(long, env = "CHANGEORDER_LOG", default_value = "info")]
    pub log_level: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Shortest poll interval, backoff, heartbeat and timeout the flags accept: zero would spin.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest lease duration: a third of it is the margin between the leader stopping and a
/// standby taking over, and the Lease itself counts whole seconds.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(3);

/// A flag's value that is not a duration the operator accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error(transparent)]
    NotADuration(#[from] DurationError),
    #[error("must be at least {min}, got {text:?}")]
    TooShort { min: &'static str, text: String },
}

fn at_least(s: &str, min: Duration, min_text: &'static str) -> Result<Duration, FlagError> {
    let d = parse_duration(s)?;
    if d < min {
        return Err(FlagError::TooShort {
            min: min_text,
            text: s.to_string(),
        });
    }
    Ok(d)
}

/// A duration of at least [`MIN_INTERVAL`].
pub fn parse_interval(s: &str) -> Result<Duration, FlagError> {
    at_least(s, MIN_INTERVAL, "1s")
}

/// A lease duration of at least [`MIN_LEASE_DURATION`].
pub fn parse_lease_duration(s: &str) -> Result<Duration, FlagError> {
    at_least(
        s,
        MIN_LEASE_DURATION,
        "3s (a third of it is the leader's safety margin)",
    )
}

impl RunArgs {
    /// The namespaces to serve, each once: `--namespaces a,a`, ` a , a`, or the flag given twice
    /// would otherwise start two controllers polling the same watches (twice the cloud calls,
    /// two writers of one status). Empty: all namespaces.
    pub fn served_namespaces(&self) -> Vec<String> {
        distinct_namespaces(&self.namespaces)
    }
}

/// A listen address that may be absent: a newtype, because clap reads a plain `Option` as "flag
/// not given" and would not let an empty value (the chart's off switch) mean none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

/// An address, or nothing for an empty string.
fn parse_optional_addr(s: &str) -> Result<OptionalAddr, std::net::AddrParseError> {
    let s = s.trim();
    if s.is_empty() {
        Ok(OptionalAddr(None))
    } else {
        s.parse().map(|a| OptionalAddr(Some(a)))
    }
}

/// Trimmed, without empty entries, each once, in the order first given.
pub fn distinct_namespaces(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty() && seen.insert(*n))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_named_twice_is_served_once() {
        for argv in [
            &["--namespaces", "a,a"][..],
            &["--namespaces", " a , a ,"],
            &["--namespaces", "a", "--namespaces", "a"],
            &["--namespaces", "a,b,a", "--namespaces", " b"],
        ] {
            let a = parse(argv).expect("valid");
            let served = a.served_namespaces();
            let want: &[&str] = if argv.iter().any(|s| s.contains('b')) {
                &["a", "b"]
            } else {
                &["a"]
            };
            assert_eq!(served, want, "{argv:?}");
        }
        assert!(parse(&[]).expect("valid").served_namespaces().is_empty());
        assert!(
            parse(&["--namespaces", " , "])
                .expect("valid")
                .served_namespaces()
                .is_empty()
        );
    }

    #[test]
    fn durations() {
        for (s, secs) in [
            ("30s", 30.0),
            ("1m30s", 90.0),
            ("250ms", 0.25),
            ("2h", 7200.0),
            ("1.5m", 90.0),
            ("0", 0.0),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs_f64(secs)), "{s}");
        }
        for bad in ["", "5", "m", "5x", "-1s", "1s2", "s5"] {
            let e = parse_duration(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid duration"), "{e}");
        }
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let argv = std::iter::once("run").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.run)
    }

    #[test]
    fn bounds_are_refused_naming_the_flag() {
        for (flag, value) in [
            ("--default-interval", "0"),
            ("--default-interval", "500ms"),
            ("--default-in-flight-interval", "0s"),
            ("--max-error-backoff", "0"),
            ("--status-heartbeat", "0"),
            ("--cloud-timeout", "0"),
            ("--lease-duration", "1s"),
            ("--lease-duration", "2500ms"),
            ("--concurrency", "0"),
            ("--calls-per-minute", "0"),
            ("--allowed-endpoints", "*.aliyuncs.com"),
            ("--allowed-endpoints", ""),
        ] {
            let e = parse(&[flag, value]).expect_err(&format!("{flag} {value} must be refused"));
            let text = e.to_string();
            assert!(text.contains(flag), "{flag} {value}: {text}");
        }
    }

    #[test]
    fn defaults_and_valid_values_parse() {
        let a = parse(&[]).expect("defaults are valid");
        assert_eq!(a.default_interval, Duration::from_secs(60));
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert_eq!(a.allowed_endpoints, EndpointPolicy::default());
        assert_eq!(a.receiver_listen, OptionalAddr(None), "no receiver unless asked");
        let a = parse(&["--receiver-listen", ""]).expect("empty is off");
        assert_eq!(a.receiver_listen, OptionalAddr(None));
        let a = parse(&["--receiver-listen", "0.0.0.0:8082"]).expect("an address");
        assert_eq!(a.receiver_listen.0.map(|a| a.port()), Some(8082));
        assert!(
            parse(&["--receiver-listen", "8082"]).is_err(),
            "a port alone is no address"
        );
        let a = parse(&[
            "--default-interval",
            "1s",
            "--lease-duration",
            "3s",
            "--allowed-endpoints",
            "http://127.0.0.1:*",
        ])
        .expect("valid");
        assert_eq!(a.lease_duration, Duration::from_secs(3));
        assert_eq!(a.allowed_endpoints.check("http://127.0.0.1:8080"), Ok(()));
        assert!(
            a.allowed_endpoints
                .check("https://sae.cn-hangzhou.aliyuncs.com")
                .is_err()
        );
    }
}

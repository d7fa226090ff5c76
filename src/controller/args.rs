//! Flags of `run`. Every flag also reads an environment variable (the Helm chart sets those).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Kubeconfig to use; in a pod the in-cluster configuration is used when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Namespaces to watch (comma-separated); empty watches all namespaces.
    #[arg(long, env = "CHANGEORDER_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Default poll interval when a watch sets none and no order is in flight.
    #[arg(long, env = "CHANGEORDER_DEFAULT_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub default_interval: Duration,

    /// Default poll interval while any order of a watch is in flight.
    #[arg(long, env = "CHANGEORDER_DEFAULT_IN_FLIGHT_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub default_in_flight_interval: Duration,

    /// Default number of finished orders kept per watch.
    #[arg(long, env = "CHANGEORDER_DEFAULT_MAX_FINISHED", default_value_t = 50)]
    pub default_max_finished: u32,

    /// Cloud calls allowed per minute per credential, shared by every watch using it
    /// (SAE allows 60 per minute per account for all its APIs).
    #[arg(long, env = "CHANGEORDER_CALLS_PER_MINUTE", default_value_t = 50)]
    pub calls_per_minute: u32,

    /// Longest wait between retries of a failing watch.
    #[arg(long, env = "CHANGEORDER_MAX_ERROR_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_error_backoff: Duration,

    /// How often the last-poll timestamps in a watch's status are refreshed when nothing else
    /// changed; polls in between write nothing.
    #[arg(long, env = "CHANGEORDER_STATUS_HEARTBEAT", default_value = "10m", value_parser = parse_duration)]
    pub status_heartbeat: Duration,

    /// Watches reconciled at the same time.
    #[arg(long, env = "CHANGEORDER_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,

    /// Timeout of one cloud HTTP request.
    #[arg(long, env = "CHANGEORDER_CLOUD_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub cloud_timeout: Duration,

    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "CHANGEORDER_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,

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

    /// Lease duration: a standby takes over this long after the leader stops renewing.
    #[arg(long, env = "CHANGEORDER_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// Identity in the Lease (defaults to the pod name / hostname plus a random suffix).
    #[arg(long, env = "CHANGEORDER_IDENTITY")]
    pub identity: Option<String>,

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

/// Go-style durations (`90s`, `1m30s`, `250ms`, `2h`), the format the CRD uses too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}: use a number with a unit, e.g. 30s, 5m, 1h30m, 250ms");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains("invalid duration"), "{e}");
        }
    }
}

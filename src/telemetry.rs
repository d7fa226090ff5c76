//! Logging: `tracing` events to stderr, plain or JSON, filtered by an `EnvFilter`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::controller::args::{LogArgs, LogFormat};

/// Filter used when the configured one does not parse.
const FALLBACK_FILTER: &str = "info";

/// Installs the global subscriber. A second call (tests, or a subcommand that already set one
/// up) keeps the first subscriber and returns quietly.
///
/// An invalid `--log` value does not stop the operator: it logs at `info` and says why, since a
/// typo in a Helm value should not turn into a crash loop.
pub fn init(log: &LogArgs) {
    let (filter, invalid) = filter(&log.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match log.log_format {
        LogFormat::Plain => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(error) = invalid
    {
        tracing::warn!(
            filter = %log.log_level,
            %error,
            "invalid log filter; logging at {FALLBACK_FILTER}"
        );
    }
}

/// The filter for `spec`, or the fallback and the reason `spec` was rejected.
fn filter(spec: &str) -> (EnvFilter, Option<String>) {
    match EnvFilter::try_new(with_cloud_targets(spec)) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(FALLBACK_FILTER), Some(e.to_string())),
    }
}

/// The cloud layer logs under its own crate's targets (`changeorder_cloud::...`), which were
/// `changeorder_operator::cloud::...` before it became a crate. Filters written for the old
/// targets keep working: a directive for `changeorder_operator` also covers the cloud crate, one
/// for `changeorder_operator::cloud[::x]` means `changeorder_cloud[::x]`.
fn with_cloud_targets(spec: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for directive in spec.split(',') {
        out.push(directive.to_string());
        let trimmed = directive.trim();
        if let Some(rest) = trimmed.strip_prefix("changeorder_operator::cloud") {
            if rest.is_empty() || rest.starts_with("::") || rest.starts_with('=') || rest.starts_with('[') {
                out.push(format!("changeorder_cloud{rest}"));
            }
        } else if let Some(rest) = trimmed.strip_prefix("changeorder_operator")
            && (rest.is_empty() || rest.starts_with('=') || rest.starts_with('['))
        {
            out.push(format!("changeorder_cloud{rest}"));
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_filters_parse() {
        for spec in ["info", "warn,changeorder_operator=debug", "kube=trace"] {
            let (f, err) = filter(spec);
            assert!(err.is_none(), "{spec}: {err:?}");
            // EnvFilter prints its directives in its own order, so compare as sets.
            let mut got: Vec<String> = f.to_string().split(',').map(String::from).collect();
            let expanded = with_cloud_targets(spec);
            let mut want: Vec<&str> = expanded.split(',').collect();
            got.sort();
            want.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn invalid_filter_falls_back_to_info() {
        let (f, err) = filter("changeorder_operator=loud");
        assert!(err.is_some());
        assert_eq!(f.to_string(), FALLBACK_FILTER);
    }

    #[test]
    fn init_twice_is_harmless() {
        for log_format in [LogFormat::Json, LogFormat::Plain] {
            init(&LogArgs {
                log_format,
                log_level: "debug".into(),
            });
        }
        tracing::info!("still logging after a second init");
    }

    #[test]
    fn filters_for_the_old_cloud_targets_cover_the_cloud_crate() {
        assert_eq!(
            with_cloud_targets("info,changeorder_operator=debug"),
            "info,changeorder_operator=debug,changeorder_cloud=debug"
        );
        assert_eq!(
            with_cloud_targets("info,changeorder_operator::cloud=debug"),
            "info,changeorder_operator::cloud=debug,changeorder_cloud=debug"
        );
        assert_eq!(
            with_cloud_targets("changeorder_operator::cloud::http=trace"),
            "changeorder_operator::cloud::http=trace,changeorder_cloud::http=trace"
        );
        assert_eq!(
            with_cloud_targets("warn,changeorder_operator::controller=debug,kube=trace"),
            "warn,changeorder_operator::controller=debug,kube=trace"
        );
        assert_eq!(
            with_cloud_targets("changeorder_operatorx=debug"),
            "changeorder_operatorx=debug"
        );
        let (_, invalid) = filter("info,changeorder_operator::cloud=debug");
        assert_eq!(invalid, None);
    }
}

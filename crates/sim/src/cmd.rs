//! The `changeorder-sim` command line: flags, startup line, shutdown on Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Credential, DEFAULT_LISTEN, Scenario, SimConfig, start};

/// A credential lifetime: a Go-style duration of at least a second (zero would expire at once).
fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let d = changeorder_cloud::time::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("must be at least 1s, got {s:?}"));
    }
    Ok(d)
}

/// Serve the bundled EDAS/SAE/AppStack simulator.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Address to listen on; port 0 picks a free port (the first line printed names it).
    #[arg(long, env = "CHANGEORDER_SIM_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// AccessKey id the EDAS/SAE endpoints accept.
    #[arg(long, env = "CHANGEORDER_SIM_ACCESS_KEY_ID", default_value = super::DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,

    /// AccessKey secret the EDAS/SAE endpoints verify signatures with.
    #[arg(
        long,
        env = "CHANGEORDER_SIM_ACCESS_KEY_SECRET",
        default_value = super::DEFAULT_ACCESS_KEY_SECRET,
        hide_env_values = true
    )]
    pub access_key_secret: String,

    /// Treat the AccessKey as STS credentials: requests must carry this `x-acs-security-token`.
    #[arg(long, env = "CHANGEORDER_SIM_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<String>,

    /// Personal access token the AppStack endpoints accept (`x-yunxiao-token`).
    #[arg(
        long,
        env = "CHANGEORDER_SIM_YUNXIAO_TOKEN",
        default_value = super::DEFAULT_YUNXIAO_TOKEN,
        hide_env_values = true
    )]
    pub yunxiao_token: String,

    /// Scenario file (YAML); without it the built-in demo is served.
    #[arg(long, env = "CHANGEORDER_SIM_SCENARIO")]
    pub scenario: Option<PathBuf>,

    /// Print the scenario in use as YAML and exit.
    #[arg(long, env = "CHANGEORDER_SIM_PRINT_SCENARIO")]
    pub print_scenario: bool,

    /// Run timelines this many times faster (overrides the scenario's `timeScale`).
    #[arg(long, env = "CHANGEORDER_SIM_TIME_SCALE")]
    pub time_scale: Option<f64>,

    /// Serve STS AssumeRoleWithOIDC, verifying tokens with this JWKS (a file, or an http(s) URL
    /// fetched once; e.g. the output of `kubectl get --raw /openid/v1/jwks`).
    #[arg(long, env = "CHANGEORDER_SIM_OIDC_JWKS")]
    pub oidc_jwks: Option<String>,

    /// The `iss` OIDC tokens must carry (the API server's --service-account-issuer).
    #[arg(
        long,
        env = "CHANGEORDER_SIM_OIDC_ISSUER",
        default_value = "https://kubernetes.default.svc.cluster.local"
    )]
    pub oidc_issuer: String,

    /// A role tokens may assume: `ROLE_ARN=OIDC_PROVIDER_ARN[=SUBJECT,...]` (repeatable); the
    /// subjects (`system:serviceaccount:NS:NAME`) play the trust policy's `oidc:sub` condition.
    #[arg(long = "oidc-role", env = "CHANGEORDER_SIM_OIDC_ROLES", value_delimiter = ';')]
    pub oidc_roles: Vec<String>,

    /// Cap on the lifetime of issued STS and ECS credentials (e.g. 2m, to watch refreshes).
    #[arg(long, env = "CHANGEORDER_SIM_CREDENTIALS_TTL", value_parser = parse_ttl)]
    pub credentials_ttl: Option<std::time::Duration>,

    /// Serve the ECS metadata service (hardened mode) with this instance RAM role.
    #[arg(long, env = "CHANGEORDER_SIM_ECS_ROLE")]
    pub ecs_role: Option<String>,
}

/// `ROLE_ARN=OIDC_PROVIDER_ARN[=SUBJECT,...]`.
pub fn parse_oidc_role(s: &str) -> Result<super::sts::OidcRole, String> {
    let mut parts = s.splitn(3, '=');
    let (Some(role), Some(provider)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "--oidc-role {s:?}: use ROLE_ARN=OIDC_PROVIDER_ARN[=SUBJECT,...]"
        ));
    };
    Ok(super::sts::OidcRole {
        role_arn: role.trim().to_string(),
        oidc_provider_arn: provider.trim().to_string(),
        subjects: parts
            .next()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn load(args: &SimulateArgs) -> Result<Scenario, String> {
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path),
        None => Scenario::demo(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(scale) = args.time_scale {
        scenario.time_scale = scale;
        scenario.validate().map_err(|e| format!("--time-scale: {e}"))?;
    }
    Ok(scenario)
}

pub fn run(args: SimulateArgs) -> ExitCode {
    let scenario = match load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.print_scenario {
        return match scenario.to_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render scenario: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cred = Credential::new(&args.access_key_id, &args.access_key_secret);
    cred.security_token = args.security_token.clone();
    let config = SimConfig {
        listen: args.listen,
        credentials: vec![cred],
        yunxiao_token: args.yunxiao_token.clone(),
        scenario,
        sts: None,
        ecs_role: args.ecs_role.clone().map(|role_name| super::imds::EcsRoleConfig {
            role_name,
            duration: args
                .credentials_ttl
                .unwrap_or(std::time::Duration::from_secs(6 * 3600)),
        }),
    };
    let roles = match args
        .oidc_roles
        .iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| parse_oidc_role(r))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = config;
    runtime.block_on(async move {
        if let Some(source) = &args.oidc_jwks {
            match super::sts::Jwks::load(source).await {
                Ok(jwks) => {
                    config.sts = Some(super::sts::StsConfig {
                        jwks,
                        issuer: args.oidc_issuer.clone(),
                        audience: super::sts::RRSA_AUDIENCE.to_string(),
                        roles,
                        max_duration: args.credentials_ttl,
                        refuse_all: false,
                    })
                }
                Err(e) => {
                    eprintln!("error: --oidc-jwks: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let apps = config.scenario.apps.len();
        let orders: usize = config.scenario.apps.iter().map(|a| a.change_orders.len()).sum();
        let sim = match start(config).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Tests and scripts read the real address from this first line.
        println!("listening on {}", sim.url());
        let _ = std::io::stdout().flush();
        eprintln!(
            "serving {apps} apps with {orders} change orders; stats at {}/__sim/stats",
            sim.url()
        );
        match sim.serve_until(stop_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix (how scripts and Kubernetes stop processes).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
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

#[cfg(test)]
mod tests {
    #[test]
    fn oidc_roles() {
        let r = super::parse_oidc_role("acs:ram::1:role/r=acs:ram::1:oidc-provider/p=system:serviceaccount:a:b, system:serviceaccount:c:d").unwrap();
        assert_eq!(r.role_arn, "acs:ram::1:role/r");
        assert_eq!(r.oidc_provider_arn, "acs:ram::1:oidc-provider/p");
        assert_eq!(
            r.subjects,
            ["system:serviceaccount:a:b", "system:serviceaccount:c:d"]
        );
        assert!(
            super::parse_oidc_role("acs:ram::1:role/r=acs:ram::1:oidc-provider/p")
                .unwrap()
                .subjects
                .is_empty()
        );
        assert!(super::parse_oidc_role("just-a-role").is_err());
    }
}

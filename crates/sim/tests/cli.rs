//! `changeorder-sim` as users run it: startup line, port 0, --print-scenario round trip,
//! scenario errors, SIGTERM; and the flags `changeorder-operator simulate` took, unchanged.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use changeorder_sim::Scenario;

const BIN: &str = env!("CARGO_BIN_EXE_changeorder-sim");

fn simulate(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    // The test's own environment must not steer the simulator.
    for var in [
        "CHANGEORDER_SIM_LISTEN",
        "CHANGEORDER_SIM_SCENARIO",
        "CHANGEORDER_SIM_TIME_SCALE",
        "CHANGEORDER_SIM_PRINT_SCENARIO",
        "CHANGEORDER_SIM_SECURITY_TOKEN",
    ] {
        c.env_remove(var);
    }
    c
}

/// Every flag `changeorder-operator simulate --help` listed before the simulator became a
/// program of its own, so a script changes only the program name.
#[test]
fn help_lists_every_flag_simulate_took() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("Serve the bundled"), "{help}");
    assert!(help.contains("Usage: changeorder-sim [OPTIONS]"), "{help}");
    for flag in [
        "--listen",
        "--access-key-id",
        "--access-key-secret",
        "--security-token",
        "--yunxiao-token",
        "--scenario",
        "--time-scale",
        "--print-scenario",
        "--credentials-ttl",
        "--ecs-role",
        "--oidc-issuer",
        "--oidc-jwks",
        "--oidc-role",
        "--raw",
        "--service-account-issuer",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn print_scenario_round_trips() {
    let out = simulate(&["--print-scenario"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let printed = Scenario::from_yaml(&text).expect("printed scenario parses");
    assert_eq!(printed, Scenario::demo().expect("demo"));

    // A file passes through unchanged (after defaults), and --time-scale shows in it.
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    let out = simulate(&["--print-scenario", "--time-scale", "20", "--scenario"])
        .arg(f.path())
        .output()
        .expect("runs");
    assert!(out.status.success());
    let again = Scenario::from_yaml(&String::from_utf8_lossy(&out.stdout)).expect("parses");
    assert_eq!(again.time_scale, 20.0);
    assert_eq!(again.apps, printed.apps);
}

#[test]
fn invalid_scenario_names_the_field() {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(b"apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: x\n    timeline:\n    - after: later\n")
        .expect("write");
    let out = simulate(&["--scenario"]).arg(f.path()).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps[0].changeOrders[0].timeline[0].after"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = simulate(&["--scenario", "/nonexistent/scenario.yaml"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/scenario.yaml"));

    let out = simulate(&["--print-scenario", "--time-scale", "0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeScale"));
}

#[test]
fn serves_on_a_free_port_and_stops_on_sigterm() {
    let mut child = simulate(&["--listen", "127.0.0.1:0", "--yunxiao-token", "cli-token"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("first line");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .expect("startup line")
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!(
                "{url}/oapi/v1/appstack/organizations/demo-org/apps/demo-app/changeOrders/versions"
            ))
            .header("x-yunxiao-token", "cli-token")
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);

    // SIGTERM, as scripts and Kubernetes stop it: a clean, successful exit.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut code = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().expect("wait") {
            code = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match code {
        Some(s) => assert!(s.success(), "exit {s}"),
        None => {
            let _ = child.kill();
            panic!("did not stop on SIGTERM");
        }
    }
}

//! `changeorder-operator probe` as users run it: the real binary against a stub cloud on
//! 127.0.0.1, checking stdout (a YAML stream of ChangeOrders), stderr (one line) and exit codes.

use crate::support;

use std::io::Write as _;
use std::process::Output;

use serde_json::json;
use support::stub::{Req, Resp, Stub, start, verify};

const AK: &str = "LTAI5tProbeKeyId";
const SECRET: &str = "ProbeSecretValue7";

fn sae_cloud(req: &Req) -> Resp {
    if let Err(sts) = verify(req, AK, SECRET) {
        return Resp::pop_error(
            400,
            "SignatureDoesNotMatch",
            &format!("server string to sign is:{sts}"),
        );
    }
    match req.path.as_str() {
        "/pop/v1/sam/changeorder/ListChangeOrders" => Resp::json(
            200,
            json!({"Success": true, "Code": "200", "RequestId": "R", "Data": {"CurrentPage": 1, "PageSize": 50, "TotalSize": 2,
                "ChangeOrderList": [
                    {"ChangeOrderId": "co-run", "Status": 8, "CoType": "Deploy", "CoTypeCode": "CoDeploy", "BatchCount": 2,
                     "BatchType": "manual", "CreateTime": "2024-05-01 10:00:00", "CreateUserId": "alice", "Description": "v2"},
                    {"ChangeOrderId": "co-done", "Status": 2, "CoType": "Deploy", "CoTypeCode": "CoDeploy", "BatchCount": 1,
                     "CreateTime": "2024-04-01 10:00:00", "FinishTime": "2024-04-01 10:03:00"}]}}),
        ),
        "/pop/v1/sam/changeorder/DescribeChangeOrder" => {
            let id = req.param("ChangeOrderId").unwrap_or_default();
            let (status, pipelines) = if id == "co-run" {
                (
                    8,
                    json!([{"PipelineId": "a", "PipelineName": "Batch 1 Change", "Status": 2, "StartTime": 1714528800000_i64, "UpdateTime": 1714528860000_i64},
                           {"PipelineId": "b", "PipelineName": "Batch 2 Change", "Status": 0}]),
                )
            } else {
                (
                    2,
                    json!([{"PipelineId": "c", "PipelineName": "Batch 1 Change", "Status": 2}]),
                )
            };
            Resp::json(
                200,
                json!({"Success": true, "Code": "200", "Data": {"ChangeOrderId": id, "Status": status, "SubStatus": 0,
                       "CurrentPipelineId": "b", "ErrorMessage": "success", "Pipelines": pipelines}}),
            )
        }
        _ => Resp::pop_error(404, "InvalidAction.NotFound", "no such action"),
    }
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn watch(stub: &Stub) -> tempfile::NamedTempFile {
    file(&format!(
        "apiVersion: changeorder.io/v1alpha1\nkind: ChangeOrderWatch\nmetadata:\n  name: shop\n  namespace: team-a\nspec:\n  provider: sae\n  endpoint: {}\n  appId: app-1\n  credentialsSecretRef:\n    name: sae-creds\n",
        stub.url()
    ))
}

async fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_changeorder-operator"));
    cmd.arg("probe").args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn prints_a_yaml_stream_of_change_orders() {
    let stub = start(sae_cloud).await;
    let w = watch(&stub);
    let creds = file(&format!("accessKeyId: {AK}\naccessKeySecret: \"{SECRET}\\n\"\n"));
    let out = probe(
        &[
            "-f",
            w.path().to_str().unwrap(),
            "--credentials",
            creds.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("---\n"));
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let run = &docs[0];
    assert_eq!(run["kind"].as_str(), Some("ChangeOrder"));
    assert_eq!(run["metadata"]["name"].as_str(), Some("shop-co-run"));
    assert_eq!(run["metadata"]["namespace"].as_str(), Some("team-a"));
    assert_eq!(
        run["metadata"]["labels"]["changeorder.io/provider"].as_str(),
        Some("sae")
    );
    assert_eq!(run["spec"]["changeOrderId"].as_str(), Some("co-run"));
    assert_eq!(run["spec"]["creator"].as_str(), Some("alice"));
    assert_eq!(run["status"]["phase"].as_str(), Some("AwaitingConfirmation"));
    assert_eq!(run["status"]["currentBatch"].as_u64(), Some(2));
    assert_eq!(run["status"]["batches"].as_sequence().map(Vec::len), Some(2));
    let done = &docs[1];
    assert_eq!(done["status"]["phase"].as_str(), Some("Succeeded"));
    assert!(
        done["status"]["finishTime"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-04-01T02:03:00"))
    );
    // Every order described once, including the finished one.
    let describes = stub
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("DescribeChangeOrder"))
        .count();
    assert_eq!(describes, 2);
}

#[tokio::test]
async fn credentials_from_env_and_from_a_secret_manifest() {
    let stub = start(sae_cloud).await;
    let w = watch(&stub);
    let out = probe(
        &["-f", w.path().to_str().unwrap(), "--list-only"],
        &[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", AK),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("kind: ChangeOrder\n")
            .count(),
        2
    );
    assert_eq!(stub.count(), 1, "--list-only makes one call");

    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = file(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sae-creds\ntype: Opaque\ndata:\n  accessKeyId: {}\n  accessKeySecret: {}\n",
        b64(AK),
        b64(&format!("{SECRET}\n"))
    ));
    let out = probe(
        &[
            "-f",
            w.path().to_str().unwrap(),
            "--credentials",
            secret.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    // Flags read environment variables too.
    let out = probe(
        &[],
        &[
            ("CHANGEORDER_PROBE_FILE", w.path().to_str().unwrap()),
            ("CHANGEORDER_PROBE_CREDENTIALS", secret.path().to_str().unwrap()),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn errors_are_one_line_and_never_show_a_secret() {
    let stub = start(sae_cloud).await;
    let w = watch(&stub);
    let wrong = file("accessKeyId: LTAI5tProbeKeyId\naccessKeySecret: NotTheSecret123\n");
    let out = probe(
        &[
            "-f",
            w.path().to_str().unwrap(),
            "--credentials",
            wrong.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: SignatureDoesNotMatch: server string to sign is:"),
        "{err}"
    );
    assert!(!err.contains("NotTheSecret123"));

    let bad_spec = file(
        "apiVersion: changeorder.io/v1alpha1\nkind: ChangeOrderWatch\nmetadata: {name: x}\nspec:\n  provider: edas\n  region: cn-hangzhou\n  credentialsSecretRef: {name: s}\n",
    );
    let out = probe(&["-f", bad_spec.path().to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: spec.appId is required when spec.provider is edas or sae\n",
            bad_spec.path().display()
        )
    );

    let out = probe(&["-f", w.path().to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: environment variable ALIBABA_CLOUD_ACCESS_KEY_ID is not set"),
        "{}",
        stderr(&out)
    );

    let missing = file(&format!("accessKeyId: {AK}\n"));
    let out = probe(
        &[
            "-f",
            w.path().to_str().unwrap(),
            "--credentials",
            missing.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(
        stderr(&out).contains("missing credentials key accessKeySecret"),
        "{}",
        stderr(&out)
    );

    let out = probe(&["-f", "/nonexistent/watch.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: /nonexistent/watch.yaml: "),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn unknown_app_names_the_cloud_code() {
    let stub = start(|req: &Req| {
        if verify(req, AK, SECRET).is_err() {
            return Resp::pop_error(400, "SignatureDoesNotMatch", "x");
        }
        Resp::json(
            200,
            json!({"RequestId": "RQ", "Success": false, "Code": "404", "ErrorCode": "InvalidAppId.NotFound", "Message": "The specified AppId does not exist."}),
        )
    })
    .await;
    let w = watch(&stub);
    let out = probe(
        &["-f", w.path().to_str().unwrap()],
        &[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", AK),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: InvalidAppId.NotFound: The specified AppId does not exist. (RequestId RQ, HTTP 200)\n"
    );
    assert_eq!(
        stub.requests()[0].raw_query,
        "AppId=app-1&CurrentPage=1&PageSize=50"
    );
}

#[tokio::test]
async fn keyless_rrsa_credentials_from_the_pod_environment() {
    let stub = start(|req: &Req| {
        if req.param("Action") == Some("AssumeRoleWithOIDC") {
            return Resp::json(
                200,
                json!({"RequestId": "R", "Credentials": {"AccessKeyId": AK, "AccessKeySecret": SECRET,
                       "SecurityToken": "sts-tok", "Expiration": "2099-01-01T00:00:00Z"}}),
            );
        }
        if req.header("x-acs-security-token") != Some("sts-tok") {
            return Resp::pop_error(400, "InvalidSecurityToken.Missing", "no token");
        }
        sae_cloud(req)
    })
    .await;
    let w = watch(&stub);
    let token = file("eyJ.oidc");
    let url = stub.url();
    let out = probe(
        &["-f", w.path().to_str().unwrap(), "--list-only"],
        &[
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p"),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token.path().to_str().unwrap()),
            ("ALIBABA_CLOUD_STS_ENDPOINT", &url),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("kind: ChangeOrder\n")
            .count(),
        2
    );
}

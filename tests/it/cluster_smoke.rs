//! Proves the local control plane from tests/tools/cluster.sh is usable by the
//! other integration tests: the API through kube and the real kubectl,
//! ServiceAccount tokens, and the controller-manager's garbage collector and
//! namespace controller.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use support::cluster::{TestCluster, eventually};

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        data: Some([("key".to_string(), "value".to_string())].into()),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn kubectl_sees_what_the_client_created() {
    let ns = TestCluster::get().namespace("smoke-kubectl").await;
    let cms: Api<ConfigMap> = ns.api();
    cms.create(&PostParams::default(), &config_map("hello"))
        .await
        .unwrap();

    let out = ns
        .kubectl()
        .args(["get", "configmap", "-o", "name"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().any(|l| l == "configmap/hello"),
        "kubectl printed:\n{stdout}"
    );
}

#[tokio::test]
async fn garbage_collector_deletes_dependents() {
    let ns = TestCluster::get().namespace("smoke-gc").await;
    let cms: Api<ConfigMap> = ns.api();
    let owner = cms
        .create(&PostParams::default(), &config_map("owner"))
        .await
        .unwrap();
    let mut dependent = config_map("dependent");
    dependent.metadata.owner_references = Some(vec![OwnerReference {
        api_version: ConfigMap::api_version(&()).into_owned(),
        kind: ConfigMap::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        ..OwnerReference::default()
    }]);
    cms.create(&PostParams::default(), &dependent).await.unwrap();

    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    eventually(
        "the dependent to be garbage-collected",
        Duration::from_secs(60),
        || async { cms.get_opt("dependent").await.unwrap().is_none().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn service_account_tokens_authenticate() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("smoke-token").await;
    let sas: Api<ServiceAccount> = ns.api();
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("operator".to_string()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        status: None,
    };
    let token = sas
        .create_subresource::<_, TokenRequest>("token", "operator", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;

    // Same server and CA, but the token instead of the admin certificate.
    let mut config = cluster.config().await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = Client::try_from(config).unwrap();
    let review: SelfSubjectReview = Api::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let username = review.status.and_then(|s| s.user_info).and_then(|u| u.username);
    assert_eq!(
        username.as_deref(),
        Some(format!("system:serviceaccount:{}:operator", ns.name()).as_str())
    );
}

#[tokio::test]
async fn deleted_namespaces_are_emptied_and_removed() {
    let cluster = TestCluster::get();
    let client = cluster.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = cluster.namespace("smoke-nsdelete").await;
    let cms: Api<ConfigMap> = ns.api();
    cms.create(&PostParams::default(), &config_map("content"))
        .await
        .unwrap();

    namespaces
        .delete(ns.name(), &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to be removed", Duration::from_secs(60), || async {
        namespaces
            .get_opt(ns.name())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

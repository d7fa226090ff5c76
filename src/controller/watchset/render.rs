//! The watch a set wants for one app (pure), and whether the one that is there differs.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::Digest;

use super::names::AppKey;
use crate::crd::{
    ChangeOrderWatch, ChangeOrderWatchSet, ChangeOrderWatchSetSpec, ChangeOrderWatchSpec, WATCH_SET_LABEL,
};
use changeorder_cloud::model::Provider;

/// Annotation holding a hash of what the set last rendered, so an unchanged watch is recognised
/// without comparing labels the set may have stopped setting.
pub const RENDERED_HASH: &str = "changeorder.io/watch-set-hash";

/// The watch spec for one app: the set's provider, endpoint and credentials, the app, and the
/// template's fields.
pub fn watch_spec(set: &ChangeOrderWatchSetSpec, app: &AppKey) -> ChangeOrderWatchSpec {
    let t = set.template.clone().unwrap_or_default();
    let (app_id, organization_id, app_name) = match (set.provider, &set.generator.appstack) {
        (Provider::Appstack, Some(g)) => (None, Some(g.organization_id.clone()), Some(app.id.clone())),
        _ => (Some(app.id.clone()), None, None),
    };
    // Generated SAE watches name their namespace, so they share one namespace-wide list.
    let namespace_id = match (set.provider, &set.generator.sae) {
        (Provider::Sae, Some(g)) => Some(g.namespace_id.clone()),
        _ => None,
    };
    ChangeOrderWatchSpec {
        provider: set.provider,
        region: set.region.clone(),
        endpoint: set.endpoint.clone(),
        app_id,
        namespace_id,
        organization_id,
        app_name,
        env_names: t.env_names,
        states: t.states,
        credentials_secret_ref: set.credentials_secret_ref.clone(),
        service_account_ref: set.service_account_ref.clone(),
        credentials: set.credentials.clone(),
        interval: t.interval,
        in_flight_interval: t.in_flight_interval,
        retention: t.retention,
        suspend: t.suspend,
        signature_version: set.signature_version,
        time_zone: t.time_zone,
        actions: t.actions,
    }
}

/// The set as its watches' controller owner.
pub fn owner_ref(set: &ChangeOrderWatchSet) -> Option<OwnerReference> {
    set.controller_owner_ref(&())
}

/// The whole generated watch, `None` when the set has no uid yet.
pub fn desired(set: &ChangeOrderWatchSet, name: &str, app: &AppKey) -> Option<ChangeOrderWatch> {
    let owner = owner_ref(set)?;
    let meta = set
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels;
    labels.insert(WATCH_SET_LABEL.into(), set.name_any());
    let spec = watch_spec(&set.spec, app);
    let mut annotations = meta.annotations;
    annotations.insert(RENDERED_HASH.into(), hash(&labels, &annotations, &spec));
    Some(ChangeOrderWatch {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

fn hash(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &ChangeOrderWatchSpec,
) -> String {
    let text = serde_json::json!({"labels": labels, "annotations": annotations, "spec": spec}).to_string();
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
}

/// Whether `set` owns `watch` (a controller owner reference with its uid).
pub fn owned_by(watch: &ChangeOrderWatch, set: &ChangeOrderWatchSet) -> bool {
    let Some(uid) = set.uid() else { return false };
    watch
        .owner_references()
        .iter()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

/// Whether writing `desired` would change `existing`: its spec, the rendered hash, the set's
/// label or the owner reference differ.
pub fn needs_write(existing: &ChangeOrderWatch, desired: &ChangeOrderWatch) -> bool {
    let hash_of = |w: &ChangeOrderWatch| w.annotations().get(RENDERED_HASH).cloned();
    let label_of = |w: &ChangeOrderWatch| w.labels().get(WATCH_SET_LABEL).cloned();
    let owners = |w: &ChangeOrderWatch| {
        w.owner_references()
            .iter()
            .filter(|r| r.controller == Some(true))
            .map(|r| r.uid.clone())
            .collect::<Vec<_>>()
    };
    existing.spec != desired.spec
        || hash_of(existing) != hash_of(desired)
        || label_of(existing) != label_of(desired)
        || owners(existing) != owners(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(extra: serde_json::Value) -> ChangeOrderWatchSet {
        let mut v = serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatchSet",
            "metadata": {"name": "fleet", "namespace": "team", "uid": "u-1"},
            "spec": {"provider": "sae", "region": "cn-hangzhou", "credentialsSecretRef": {"name": "creds"},
                     "generator": {"sae": {"namespaceId": "cn-hangzhou:prod"}},
                     "template": {"interval": "2m", "metadata": {"labels": {"team": "shop"}}}}
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(v).expect("set")
    }

    fn app() -> AppKey {
        AppKey {
            id: "app-1".into(),
            name: Some("web".into()),
        }
    }

    #[test]
    fn renders_the_set_and_template_fields() {
        let s = set(serde_json::json!({}));
        let w = desired(&s, "fleet-web", &app()).expect("rendered");
        assert_eq!(w.spec.app_id.as_deref(), Some("app-1"));
        assert_eq!(w.spec.interval.as_deref(), Some("2m"));
        assert_eq!(
            w.spec.credentials_secret_ref.as_ref().map(|r| r.name.as_str()),
            Some("creds")
        );
        assert_eq!(w.labels().get(WATCH_SET_LABEL).map(String::as_str), Some("fleet"));
        assert_eq!(w.labels().get("team").map(String::as_str), Some("shop"));
        assert!(owned_by(&w, &s));
        assert!(!needs_write(&w, &w.clone()), "the same object needs no write");
    }

    #[test]
    fn a_template_change_or_a_hand_edit_needs_a_write() {
        let s = set(serde_json::json!({}));
        let w = desired(&s, "fleet-web", &app()).expect("rendered");
        let edited = set(serde_json::json!({"template": {"interval": "5m"}}));
        assert!(needs_write(
            &w,
            &desired(&edited, "fleet-web", &app()).expect("rendered")
        ));
        let unlabelled = set(serde_json::json!({"template": {"interval": "2m"}}));
        assert!(
            needs_write(&w, &desired(&unlabelled, "fleet-web", &app()).expect("rendered")),
            "a label dropped from the template changes the hash"
        );
        let mut hand = w.clone();
        hand.spec.interval = Some("1h".into());
        assert!(needs_write(&hand, &w));
    }

    #[test]
    fn appstack_apps_are_named() {
        let s = set(serde_json::json!({"provider": "appstack", "region": null,
            "generator": {"appstack": {"organizationId": "org", "apps": ["shop"]}}}));
        let spec = watch_spec(
            &s.spec,
            &AppKey {
                id: "shop".into(),
                name: Some("shop".into()),
            },
        );
        assert_eq!(
            (
                spec.organization_id.as_deref(),
                spec.app_name.as_deref(),
                spec.app_id.as_deref()
            ),
            (Some("org"), Some("shop"), None)
        );
    }
}

//! Watch specs → desired objects: a `ChangeOrderWatchSpec` from JSON through `Target::from_spec`,
//! then cloud order ids through `mapping::desired_object`. Whatever a user writes in a spec and
//! whatever ids the cloud sends, the object must be one the API server accepts, and two ids must
//! never share an object.
//!
//! Input: the watch name, two order ids, one per line, then the spec as JSON.
#![no_main]

mod common;

use changeorder_cloud::model::{CloudOrder, Provider, RawStatus};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch, ChangeOrderWatchSpec, labels};
use changeorder_operator::mapping::desired_object;
use libfuzzer_sys::fuzz_target;

fn check_object(obj: &ChangeOrder, watch: &ChangeOrderWatch, id: &str) {
    let name = obj.metadata.name.as_deref().expect("a name");
    assert!(
        common::dns_subdomain(name),
        "name {name:?} for id {id:?} is not a DNS-1123 subdomain"
    );
    assert_eq!(obj.metadata.namespace, watch.metadata.namespace);
    assert_eq!(obj.spec.change_order_id, id);
    let labels_ = obj.metadata.labels.as_ref().expect("labels");
    for key in [labels::WATCH, labels::PROVIDER, labels::APP, labels::MANAGED_BY] {
        let value = labels_.get(key).unwrap_or_else(|| panic!("label {key} missing"));
        assert!(
            common::label_value(value),
            "label {key}={value:?} is not a valid label value"
        );
    }
    let owners = obj.metadata.owner_references.as_deref().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| Some(&o.name) == watch.metadata.name.as_ref()),
        "not owned by its watch"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let (Some(watch_name), Some(id_a), Some(id_b), Some(spec)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    // The API server only stores watches with valid names; the parsers only produce trimmed,
    // non-empty ids. Anything else cannot reach the mapping.
    if !common::dns_subdomain(watch_name) {
        return;
    }
    let ids = [id_a, id_b];
    if ids.iter().any(|id| id.is_empty() || id.trim() != *id) {
        return;
    }
    let Ok(spec) = serde_json::from_str::<ChangeOrderWatchSpec>(spec) else {
        return;
    };
    let target = match spec.target() {
        Ok(t) => t,
        Err(message) => {
            // Rejections name the field, so a user can fix the spec.
            assert!(message.to_string().contains("spec."), "{message:?}");
            return;
        }
    };
    assert_eq!(target.provider, spec.provider);
    // A spec that is accepted can be polled.
    target
        .base_url()
        .unwrap_or_else(|e| panic!("accepted spec without a base URL: {e}"));

    let mut watch = ChangeOrderWatch::new(watch_name, spec);
    watch.metadata.namespace = Some("fuzz".into());
    watch.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());

    let status = match target.provider {
        Provider::Edas | Provider::Sae => RawStatus::Code(1),
        Provider::Appstack => RawStatus::Text("RUNNING".into()),
    };
    let mut names = Vec::new();
    for id in ids {
        let order = CloudOrder::new(target.provider, id, status.clone());
        let obj = desired_object(&watch, &target.app, &order, None, common::now());
        check_object(&obj, &watch, id);
        // Again with the stored object: the same object.
        let again = desired_object(&watch, &target.app, &order, Some(&obj), common::now());
        assert_eq!(again.metadata.name, obj.metadata.name);
        names.push(obj.metadata.name.unwrap_or_default());
    }
    if id_a != id_b {
        assert_ne!(names[0], names[1], "ids {id_a:?} and {id_b:?} share an object");
    }
});

//! EDAS `ListRecentChangeOrder` and `GetChangeOrderInfo` replies: any JSON body is read as both
//! (and wrapped into the other's envelope, so the fuzzer reaches the items directly).
#![no_main]

mod common;

use changeorder_cloud::edas::{parse_detail, parse_list};
use changeorder_cloud::model::Provider;
use changeorder_cloud::time::default_offset;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let zone = default_offset();
    for body in [
        v.clone(),
        json!({"ChangeOrderList": {"ChangeOrder": v.clone()}}),
        json!({"changeOrderInfo": v}),
    ] {
        let orders = parse_list(&body, zone);
        common::check_listed(&orders, Provider::Edas, true);
        if let Ok(o) = parse_detail(&body, "requested-id", zone) {
            common::check_detail(&o, Provider::Edas, "requested-id");
        }
    }
});

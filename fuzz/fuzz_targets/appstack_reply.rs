//! AppStack `ListChangeOrderVersions` pages and `GetChangeOrder` replies: any JSON body is read
//! as both (and wrapped, so the fuzzer reaches records and orders directly); paging must stop.
#![no_main]

mod common;

use changeorder_cloud::appstack::{is_last_page, parse_detail, parse_list_page};
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
        json!({"records": [{"changeOrderSummarys": v.clone()}]}),
        json!({"data": v}),
    ] {
        if let Ok(page) = parse_list_page(&body, zone) {
            // Orders are deduplicated by `sn` within a page.
            common::check_listed(&page.orders, Provider::Appstack, true);
            assert!(is_last_page(&page, 1, 50, 0));
            if page.records == 0 {
                assert!(is_last_page(&page, 1, 50, page.orders.len()));
            }
            for requested in [1, i64::from(u32::MAX)] {
                let _ = is_last_page(&page, requested, 100, page.orders.len());
            }
        }
        if let Ok(o) = parse_detail(&body, "requested-sn", zone) {
            common::check_detail(&o, Provider::Appstack, "requested-sn");
        }
    }
});

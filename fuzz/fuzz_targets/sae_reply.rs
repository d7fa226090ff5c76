//! SAE `ListChangeOrders` pages and `DescribeChangeOrder` replies: any JSON body is read as both
//! (and wrapped in `Data`, so the fuzzer reaches the order directly), and paging must stop.
#![no_main]

mod common;

use changeorder_cloud::model::Provider;
use changeorder_cloud::sae::{is_last_page, parse_detail, parse_list_page};
use changeorder_cloud::time::default_offset;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let zone = default_offset();
    for body in [v.clone(), json!({"Data": v})] {
        if let Ok(page) = parse_list_page(&body, zone) {
            // One page may repeat an id; the client dedupes across pages.
            common::check_listed(&page.orders, Provider::Sae, false);
            assert!(page.orders.len() <= page.items);
            // Paging ends on an empty page or one that brought nothing new, whatever the
            // server says about totals; the client relies on it to terminate.
            assert!(is_last_page(&page, 1, 50, 0));
            if page.items == 0 {
                assert!(is_last_page(&page, 1, 50, page.orders.len()));
            }
            for requested in [1, i64::from(u32::MAX)] {
                let _ = is_last_page(&page, requested, 100, page.orders.len());
            }
        }
        if let Ok(o) = parse_detail(&body, "requested-id", zone) {
            common::check_detail(&o, Provider::Sae, "requested-id");
        }
    }
});

//! Simulator scenario files: any text through `Scenario::from_yaml`. An accepted scenario must
//! round-trip through YAML, and the simulator's replies about each of its apps and orders must be
//! readable by the operator's clients, naming the orders the scenario has.
#![no_main]

mod common;

use changeorder_cloud::model::{CloudOrder, Provider};
use changeorder_cloud::sign::{encode_query, percent_encode};
use changeorder_cloud::{appstack, edas, sae};
use changeorder_sim::scenario::App;
use changeorder_sim::state::batch_count;
use changeorder_sim::{Scenario, World, answer};
use libfuzzer_sys::fuzz_target;

fn query(pairs: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    encode_query(&owned)
}

/// The list call of one app, read by the client; `None` when the simulator refused it.
fn list(w: &World, app: &App) -> Option<Vec<CloudOrder>> {
    let zone = w.offset;
    let (status, body) = match app.provider {
        Provider::Edas => answer(
            w,
            "POST",
            edas::PATH_LIST,
            Some(&query(&[("AppId", app.app_id.as_deref()?)])),
        )?,
        Provider::Sae => answer(
            w,
            "GET",
            sae::PATH_LIST,
            Some(&query(&[
                ("AppId", app.app_id.as_deref()?),
                ("CurrentPage", "1"),
                ("PageSize", "1000"),
            ])),
        )?,
        Provider::Appstack => answer(
            w,
            "GET",
            &format!(
                "/oapi/v1/appstack/organizations/{}/apps/{}/changeOrders/versions",
                percent_encode(app.organization_id.as_deref()?),
                percent_encode(app.app_name.as_deref()?)
            ),
            Some(&query(&[("current", "1"), ("pageSize", "1000")])),
        )?,
    };
    assert_eq!(status, 200, "list of {} refused: {body}", app.label());
    let orders = match app.provider {
        Provider::Edas => edas::parse_list(&body, zone),
        Provider::Sae => sae::parse_list_page(&body, zone).expect("SAE page").orders,
        Provider::Appstack => {
            appstack::parse_list_page(&body, zone)
                .expect("AppStack page")
                .orders
        }
    };
    Some(orders)
}

fn describe(w: &World, app: &App, id: &str) -> Option<CloudOrder> {
    let zone = w.offset;
    let (status, body) = match app.provider {
        Provider::Edas => answer(
            w,
            "POST",
            edas::PATH_DESCRIBE,
            Some(&query(&[("ChangeOrderId", id)])),
        )?,
        Provider::Sae => answer(
            w,
            "GET",
            sae::PATH_DESCRIBE,
            Some(&query(&[("ChangeOrderId", id)])),
        )?,
        Provider::Appstack => answer(
            w,
            "GET",
            &format!(
                "/oapi/v1/appstack/organizations/{}/apps/{}/changeOrders/{}",
                percent_encode(app.organization_id.as_deref()?),
                percent_encode(app.app_name.as_deref()?),
                percent_encode(id)
            ),
            None,
        )?,
    };
    if status != 200 {
        // Not created yet at this scenario time.
        return None;
    }
    let parsed = match app.provider {
        Provider::Edas => edas::parse_detail(&body, id, zone),
        Provider::Sae => sae::parse_detail(&body, id, zone),
        Provider::Appstack => appstack::parse_detail(&body, id, zone),
    };
    Some(parsed.unwrap_or_else(|e| panic!("describe {id:?}: {e}: {body}")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = Scenario::from_yaml(text) else {
        return;
    };
    // Bound the work per input; a big scenario teaches nothing a small one does not.
    let orders: usize = scenario.apps.iter().map(|a| a.change_orders.len()).sum();
    if orders > 64 {
        return;
    }

    let yaml = scenario.to_yaml().expect("an accepted scenario serialises");
    let back = Scenario::from_yaml(&yaml).unwrap_or_else(|e| panic!("re-reading {yaml:?}: {e}"));
    assert_eq!(back, scenario, "round trip through {yaml:?}");

    let world = World::new(scenario).expect("a validated scenario makes a world");
    for app in &world.scenario.apps {
        let Some(listed) = list(&world, app) else {
            continue;
        };
        common::check_listed(&listed, app.provider, app.provider != Provider::Sae);
        for o in &listed {
            assert!(
                app.change_orders.iter().any(|c| c.id == o.id),
                "{} lists {:?}, which the scenario does not have",
                app.label(),
                o.id
            );
        }
        for order in &app.change_orders {
            let Some(o) = describe(&world, app, &order.id) else {
                continue;
            };
            common::check_detail(&o, app.provider, &order.id);
            assert_eq!(o.id, order.id, "describe names another order");
            let batches = batch_count(app.provider, order) as usize;
            assert_eq!(o.batches.len(), batches, "batches of {:?}", order.id);
        }
    }
});

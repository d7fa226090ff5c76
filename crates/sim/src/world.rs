//! The simulated cloud's data: the scenario's apps and orders, looked up the way each API names
//! them, with every order evaluated at the current scenario time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp, tz::Offset};
use sha2::{Digest, Sha256};

use super::scenario::{App, Order, Scenario, ScenarioError, Step, TimeSpec};
use super::state::{self, Clock, Snapshot};
use changeorder_cloud::model::Provider;

/// SAE namespace of apps that name none (SAE's default namespace carries the region id).
pub const DEFAULT_SAE_NAMESPACE: &str = "cn-hangzhou";

pub struct World {
    pub scenario: Scenario,
    pub clock: Clock,
    /// Zone of zone-less EDAS/SAE times.
    pub offset: Offset,
    /// What write calls changed: the scenario itself stays as loaded.
    edits: Mutex<Edits>,
    /// Where each scenario order is, by (provider, id): (app index, order index). A describe
    /// looks its order up here rather than walking every app (linear in the whole scenario).
    orders_by_id: HashMap<(Provider, String), (usize, usize)>,
    /// EDAS/SAE apps by (provider, app id).
    apps_by_id: HashMap<(Provider, String), usize>,
}

/// Changes made by write calls (confirm, abort, rollback) on top of the scenario.
#[derive(Default)]
struct Edits {
    /// Replacement timelines by (provider, order id).
    timelines: HashMap<(Provider, String), Vec<Step>>,
    /// Orders the simulator started itself (rollbacks), with their app's index.
    added: Vec<(usize, Order)>,
}

/// One order as of now, with what the renderers need around it.
pub struct View<'a> {
    pub app_index: usize,
    pub app: &'a App,
    pub order_index: usize,
    /// The scenario's order, or a copy changed by a write call.
    pub order: Cow<'a, Order>,
    pub snap: Snapshot,
}

impl World {
    pub fn new(scenario: Scenario) -> Result<World, ScenarioError> {
        let offset = scenario.offset()?;
        let clock = Clock::new(scenario.time_scale);
        // The first occurrence wins, as the scans these maps replace found it.
        let mut orders_by_id = HashMap::new();
        let mut apps_by_id = HashMap::new();
        for (ai, app) in scenario.apps.iter().enumerate() {
            if let Some(id) = &app.app_id {
                apps_by_id.entry((app.provider, id.clone())).or_insert(ai);
            }
            for (oi, order) in app.change_orders.iter().enumerate() {
                orders_by_id
                    .entry((app.provider, order.id.clone()))
                    .or_insert((ai, oi));
            }
        }
        Ok(World {
            scenario,
            clock,
            offset,
            edits: Mutex::default(),
            orders_by_id,
            apps_by_id,
        })
    }

    fn edits(&self) -> std::sync::MutexGuard<'_, Edits> {
        // Plain data: a panic elsewhere leaves it usable.
        self.edits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change an order's course from now on: the steps already past stay, the rest of its
    /// timeline is replaced by `steps`. Returns false when no such order exists.
    pub fn intervene(&self, provider: Provider, id: &str, steps: Vec<Step>) -> bool {
        let now = self.now();
        let mut edits = self.edits();
        // `locate` gives the timeline with any earlier intervention applied.
        let Some((_, _, order)) = self.locate(&edits, provider, id) else {
            return false;
        };
        let mut timeline: Vec<Step> = order
            .timeline
            .iter()
            .filter(|s| s.after.0 <= now)
            .cloned()
            .collect();
        timeline.extend(steps);
        match self.added_position(&edits, provider, id) {
            Some(i) => edits.added[i].1.timeline = timeline,
            None => {
                edits.timelines.insert((provider, id.to_string()), timeline);
            }
        }
        true
    }

    /// Start a new order (a rollback) in an app; false when the id is taken.
    pub fn add_order(&self, app_index: usize, order: Order) -> bool {
        let Some(app) = self.scenario.apps.get(app_index) else {
            return false;
        };
        let mut edits = self.edits();
        if self.scenario_or_added(&edits, app.provider, &order.id).is_some() {
            return false;
        }
        edits.added.push((app_index, order));
        true
    }

    fn scenario_or_added(&self, edits: &Edits, provider: Provider, id: &str) -> Option<Order> {
        self.locate(edits, provider, id).map(|(_, _, o)| o.into_owned())
    }

    /// An order by (provider, id), scenario first, then those added by write calls: its app
    /// index, its index among the app's orders (see `orders_of`) and the order with its edited
    /// timeline. Whether it exists yet at the current time is not checked.
    fn locate(&self, edits: &Edits, provider: Provider, id: &str) -> Option<(usize, usize, Cow<'_, Order>)> {
        let key = (provider, id.to_string());
        if let Some(&(ai, oi)) = self.orders_by_id.get(&key) {
            let order = self.scenario.apps.get(ai)?.change_orders.get(oi)?;
            return Some(match edits.timelines.get(&key) {
                Some(t) => {
                    let mut o = order.clone();
                    o.timeline = t.clone();
                    (ai, oi, Cow::Owned(o))
                }
                None => (ai, oi, Cow::Borrowed(order)),
            });
        }
        let (ai, order) = edits.added.get(self.added_position(edits, provider, id)?)?;
        let app = self.scenario.apps.get(*ai)?;
        let k = edits
            .added
            .iter()
            .filter(|(other, _)| other == ai)
            .position(|(_, o)| o.id == id)?;
        Some((*ai, app.change_orders.len() + k, Cow::Owned(order.clone())))
    }

    /// Where an order started by a write call is in `edits.added`.
    fn added_position(&self, edits: &Edits, provider: Provider, id: &str) -> Option<usize> {
        edits.added.iter().position(|(ai, o)| {
            o.id == id
                && self
                    .scenario
                    .apps
                    .get(*ai)
                    .is_some_and(|a| a.provider == provider)
        })
    }

    /// An app's orders with the write calls' changes applied: (index, order).
    fn orders_of<'a>(&self, app_index: usize, app: &'a App, edits: &Edits) -> Vec<(usize, Cow<'a, Order>)> {
        let mut out: Vec<(usize, Cow<'a, Order>)> = app
            .change_orders
            .iter()
            .enumerate()
            .map(
                |(i, o)| match edits.timelines.get(&(app.provider, o.id.clone())) {
                    Some(t) => {
                        let mut o = o.clone();
                        o.timeline = t.clone();
                        (i, Cow::Owned(o))
                    }
                    None => (i, Cow::Borrowed(o)),
                },
            )
            .collect();
        let base = app.change_orders.len();
        out.extend(
            edits
                .added
                .iter()
                .filter(|(ai, _)| *ai == app_index)
                .enumerate()
                .map(|(k, (_, o))| (base + k, Cow::Owned(o.clone()))),
        );
        out
    }

    pub fn now(&self) -> SignedDuration {
        self.clock.elapsed()
    }

    /// Wall time of a scenario offset.
    pub fn wall(&self, offset: SignedDuration) -> Timestamp {
        self.clock.wall(offset)
    }

    pub fn zoneless(&self, offset: SignedDuration) -> String {
        state::zoneless(self.wall(offset), self.offset)
    }

    pub fn iso(&self, offset: SignedDuration) -> String {
        state::iso(self.wall(offset))
    }

    pub fn epoch_ms(&self, offset: SignedDuration) -> i64 {
        state::epoch_ms(self.wall(offset))
    }

    /// EDAS/SAE app by id, while it exists (see [`World::app_exists`]).
    pub fn app_by_id(&self, provider: Provider, app_id: &str) -> Option<(usize, &App)> {
        let ai = *self.apps_by_id.get(&(provider, app_id.to_string()))?;
        let app = self.scenario.apps.get(ai)?;
        self.app_exists(app).then_some((ai, app))
    }

    /// Whether the app exists now: after its `appearsAt` and before its `disappearsAt`.
    pub fn app_exists(&self, app: &App) -> bool {
        let now = self.now();
        let at = |t: &TimeSpec| match t {
            TimeSpec::Relative(d) => *d,
            TimeSpec::Absolute(ts) => self.clock.offset_of(*ts),
        };
        app.appears_at.as_ref().is_none_or(|t| now >= at(t))
            && app.disappears_at.as_ref().is_none_or(|t| now < at(t))
    }

    /// AppStack app by organization (absent on the region edition) and name.
    pub fn app_by_name(&self, org: Option<&str>, name: &str) -> Option<(usize, &App)> {
        self.scenario.apps.iter().enumerate().find(|(_, a)| {
            a.provider == Provider::Appstack
                && a.app_name.as_deref() == Some(name)
                && org.is_none_or(|o| a.organization_id.as_deref() == Some(o))
        })
    }

    /// Whether any AppStack app belongs to the organization.
    pub fn knows_org(&self, org: &str) -> bool {
        self.scenario
            .apps
            .iter()
            .any(|a| a.provider == Provider::Appstack && a.organization_id.as_deref() == Some(org))
    }

    /// The orders of one app that exist now, newest first.
    pub fn views_of(&self, app_index: usize) -> Vec<View<'_>> {
        let Some(app) = self.scenario.apps.get(app_index) else {
            return Vec::new();
        };
        let now = self.now();
        let orders = self.orders_of(app_index, app, &self.edits());
        let mut views: Vec<View<'_>> = orders
            .into_iter()
            .filter_map(|(i, order)| self.view_at(app_index, app, i, order, now))
            .collect();
        // Newest first, as tools in the wild expect; ties keep file order.
        views.sort_by_key(|v| std::cmp::Reverse(v.snap.created));
        views
    }

    /// One order by id (EDAS/SAE `ChangeOrderId`, AppStack `sn`), if it exists now.
    pub fn order(&self, provider: Provider, id: &str) -> Option<View<'_>> {
        let now = self.now();
        let edits = self.edits();
        let (ai, oi, order) = self.locate(&edits, provider, id)?;
        let app = self.scenario.apps.get(ai)?;
        self.view_at(ai, app, oi, order, now)
    }

    /// The app an order id belongs to, even if the order does not exist yet (for fault rules).
    pub fn app_of_order(&self, provider: Provider, id: &str) -> Option<usize> {
        self.locate(&self.edits(), provider, id).map(|(ai, _, _)| ai)
    }

    fn view_at<'a>(
        &self,
        app_index: usize,
        app: &'a App,
        order_index: usize,
        order: Cow<'a, Order>,
        now: SignedDuration,
    ) -> Option<View<'a>> {
        let created = state::created_offset(&order, order_index, &self.clock);
        let snap = state::snapshot(app.provider, &order, created, now)?;
        Some(View {
            app_index,
            app,
            order_index,
            order,
            snap,
        })
    }
}

impl View<'_> {
    /// EDAS/SAE `CoTypeCode`.
    pub fn type_code(&self) -> &str {
        self.order.order_type.as_deref().unwrap_or("CoDeploy")
    }

    /// EDAS/SAE `CoType`: the scenario's text or one derived from the code.
    pub fn type_text(&self) -> String {
        match &self.order.type_name {
            Some(t) => t.clone(),
            None => co_type_text(self.type_code()).to_string(),
        }
    }

    pub fn creator(&self) -> &str {
        self.order.creator.as_deref().unwrap_or("sim-user@example.com")
    }

    pub fn description(&self) -> String {
        self.order
            .description
            .clone()
            .unwrap_or_else(|| format!("{} of {}", self.type_text(), self.app.label()))
    }

    pub fn manual(&self) -> bool {
        self.order.batch_type == Some(super::scenario::BatchMode::Manual)
    }

    /// A stable id for a batch of this order (EDAS/SAE `PipelineId`, AppStack job sn).
    pub fn batch_id(&self, i: usize) -> String {
        fake_uuid(&format!("{}/{}/batch/{i}", self.app.provider, self.order.id))
    }
}

/// Human text for a `CoTypeCode`, as the consoles word them.
pub fn co_type_text(code: &str) -> &str {
    match code {
        "CoDeploy" => "Deploy Application",
        "CoCreateApp" => "Create Application",
        "CoDeleteApp" => "Delete Application",
        "CoRestartApplication" => "Restart Application",
        "CoRollback" => "Rollback Application",
        "CoScaleIn" => "Application Scale In",
        "CoScaleOut" => "Application Scale Out",
        "CoStart" | "CoStartApplication" => "Start Application",
        "CoStop" | "CoStopApplication" => "Stop Application",
        "CoRescaleApplicationVertically" => "Change Instance Specifications",
        "CoDeployHistroy" => "Roll Back to Historical Version",
        "CoBindSlb" => "Bind SLB",
        "CoUnbindSlb" => "Unbind SLB",
        "CoBindNas" => "Bind NAS",
        "CoUnbindNas" => "Unbind NAS",
        "CoBatchStartApplication" => "Start Applications in Batches",
        "CoBatchStopApplication" => "Stop Applications in Batches",
        "CoRestartInstances" => "Restart Instances",
        "CoDeleteInstances" => "Delete Instances",
        "CoScaleInAppWithInstances" => "Scale In Specified Instances",
        other => other,
    }
}

/// A UUID-shaped id derived from a seed, so ids are stable across runs and requests.
pub fn fake_uuid(seed: &str) -> String {
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A numeric account id derived from a seed (EDAS/SAE `UserId`).
pub fn fake_user_id(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    format!("1{:015}", n % 1_000_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable() {
        assert_eq!(fake_uuid("x"), fake_uuid("x"));
        assert_ne!(fake_uuid("x"), fake_uuid("y"));
        assert_eq!(fake_uuid("x").len(), 36);
        assert_eq!(fake_user_id("x").len(), 16);
    }

    #[test]
    fn lookups() {
        let s = Scenario::from_yaml(
            "apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: o1\n  - id: o2\n    createdAt: -1m\n  - id: later\n    createdAt: 1h\n- provider: appstack\n  organizationId: org\n  appName: web\n",
        )
        .expect("scenario");
        let w = World::new(s).expect("world");
        let (i, _) = w.app_by_id(Provider::Sae, "a").expect("app");
        let ids: Vec<String> = w.views_of(i).iter().map(|v| v.order.id.clone()).collect();
        assert_eq!(ids, ["o2", "o1"], "newest first; future orders hidden");
        assert!(w.order(Provider::Sae, "later").is_none());
        assert_eq!(w.app_of_order(Provider::Sae, "later"), Some(0));
        assert!(w.order(Provider::Edas, "o1").is_none());
        assert!(w.app_by_name(Some("org"), "web").is_some());
        assert!(w.app_by_name(None, "web").is_some());
        assert!(w.app_by_name(Some("other"), "web").is_none());
        assert!(w.knows_org("org"));
    }
}

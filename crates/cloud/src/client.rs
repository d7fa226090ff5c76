//! The one entry point the controller and `probe` use: [`CloudClient`].
//!
//! ```text
//! let client = CloudClient::new(ClientConfig::default());
//! let target = Target::from_spec(&spec)?;                   // validated, names the bad field
//! let orders = client.list(&target, &creds).await?;         // all pages, detailed = false
//! let order  = client.describe(&target, &creds, &id).await?; // batches + message, detailed = true
//! let merged = merge(&listed, order);                        // detail wins, list fills gaps
//! ```
//!
//! `list` carries everything the list operation has (status, times, type, creator, batch
//! count), so a poller needs `describe` only for orders that are not terminal. Every HTTP
//! attempt is reported to `ClientConfig::observer` (provider, operation, result) for metrics.

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ClientConfig, Transport};
use super::model::{AppRef, CloudOrder, Provider};
use super::{appstack, edas, sae};

pub use super::common::merge;
pub use super::target::Target;

/// Cheap to clone: one connection pool inside, shared by all clones.
#[derive(Clone)]
pub struct CloudClient {
    transport: Transport,
}

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("config", self.transport.config())
            .finish()
    }
}

impl CloudClient {
    /// Build a client. Fails only when the HTTP stack cannot be set up (no TLS backend).
    pub fn try_new(cfg: ClientConfig) -> Result<Self, CloudError> {
        Ok(CloudClient {
            transport: Transport::new(cfg)?,
        })
    }

    /// Build a client; if the configured HTTP stack cannot be built, fall back to the defaults.
    pub fn new(cfg: ClientConfig) -> Self {
        match Transport::new(cfg) {
            Ok(transport) => CloudClient { transport },
            Err(e) => {
                tracing::error!(error = %e, "cannot build the configured HTTP client, using defaults");
                match Transport::new(ClientConfig::default()) {
                    Ok(transport) => CloudClient { transport },
                    // No TLS backend at all: nothing can work; this is a broken build, not data.
                    Err(e) => panic!("cannot build any HTTP client: {e}"),
                }
            }
        }
    }

    pub fn config(&self) -> &ClientConfig {
        self.transport.config()
    }

    /// The shared transport, for the write calls in [`super::actions`].
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    fn prepare(t: &Target, c: &Credentials) -> Result<reqwest::Url, CloudError> {
        c.check_for(t.provider)
            .map_err(|e| CloudError::new(ErrorKind::InvalidCredentials, e.to_string()))?;
        t.base_url()
            .map_err(|m| CloudError::new(ErrorKind::BadRequest, format!("endpoint: {m}")))
    }

    /// How long before a poll of `calls` calls could start without waiting on the shared call
    /// budget or an announced rate limit (`None`: now). A poller that would wait can schedule
    /// itself for then instead of waiting.
    pub fn wait_before(
        &self,
        t: &Target,
        c: &Credentials,
        calls: u32,
        claim: &crate::http::Claim<'_>,
    ) -> Option<std::time::Duration> {
        let base = t.base_url().ok()?;
        self.transport.wait_before(&base, t.provider, c, calls, claim)
    }

    /// Calls that no other poll needs now (see [`crate::http::CallBudget::spare`]); `None`
    /// without a call budget.
    pub fn spare(&self, t: &Target, c: &Credentials, want: u32) -> Option<u32> {
        let base = t.base_url().ok()?;
        self.transport.spare(&base, t.provider, c, want)
    }

    /// Learn whose call budget `c` spend (see [`crate::http::CallBudget::identify`]) before
    /// asking [`wait_before`](Self::wait_before).
    pub async fn identify(&self, c: &Credentials) {
        self.transport.identify(c).await
    }

    /// `c` belong to `account` for `valid_for` (see [`crate::http::CallBudget::learn`]).
    pub fn learn_account(&self, c: &Credentials, account: &str, valid_for: Option<std::time::Duration>) {
        self.transport.learn_account(c, account, valid_for)
    }

    /// Record a poller's demand on its account's call budget; returns how often it can poll
    /// (see [`crate::http::CallBudget::pace`]).
    pub fn pace(&self, t: &Target, c: &Credentials, demand: &crate::http::Demand<'_>) -> crate::http::Pacing {
        match t.base_url() {
            Ok(base) => self.transport.pace(&base, t.provider, c, demand),
            Err(_) => crate::http::Pacing::unpaced(demand),
        }
    }

    /// Every change order the list operation returns for the target's app (all pages, up to
    /// `max_pages`). `detailed` is false; batches are empty.
    pub async fn list(&self, t: &Target, c: &Credentials) -> Result<Vec<CloudOrder>, CloudError> {
        let base = Self::prepare(t, c)?;
        let tr = &self.transport;
        match (&t.app, t.provider) {
            (AppRef::Id(app_id), Provider::Edas) => {
                edas::list(tr, &base, app_id, c, t.signature, t.zone).await
            }
            (AppRef::Id(app_id), Provider::Sae) => sae::list(tr, &base, app_id, c, t.signature, t.zone).await,
            (
                AppRef::Named {
                    organization_id,
                    app_name,
                },
                Provider::Appstack,
            ) => {
                let params = appstack::ListParams {
                    org: organization_id,
                    app: app_name,
                    env_names: &t.env_names,
                    states: &t.states,
                };
                appstack::list(tr, &base, &params, c, t.zone).await
            }
            _ => Err(mismatch(t)),
        }
    }

    /// SAE only: the orders of a whole namespace, read page by page while `more` (given each
    /// page's orders) asks for the next one. Entries carry no app id; a describe does.
    pub async fn list_namespace(
        &self,
        t: &Target,
        c: &Credentials,
        namespace_id: &str,
        more: &mut (dyn FnMut(&[CloudOrder]) -> bool + Send),
    ) -> Result<Vec<CloudOrder>, CloudError> {
        if t.provider != Provider::Sae {
            return Err(mismatch(t));
        }
        let base = Self::prepare(t, c)?;
        sae::list_namespace(&self.transport, &base, namespace_id, c, t.signature, t.zone, more).await
    }

    /// One change order in detail: batches, current batch, the cloud's message. `detailed` is
    /// true. Fields the detail lacks (EDAS has no finish time there) are `None`; use [`merge`]
    /// with the listed order to fill them.
    pub async fn describe(&self, t: &Target, c: &Credentials, id: &str) -> Result<CloudOrder, CloudError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(CloudError::new(ErrorKind::BadRequest, "empty change order id"));
        }
        let base = Self::prepare(t, c)?;
        let tr = &self.transport;
        match (&t.app, t.provider) {
            (AppRef::Id(_), Provider::Edas) => edas::describe(tr, &base, id, c, t.signature, t.zone).await,
            (AppRef::Id(_), Provider::Sae) => sae::describe(tr, &base, id, c, t.signature, t.zone).await,
            (
                AppRef::Named {
                    organization_id,
                    app_name,
                },
                Provider::Appstack,
            ) => appstack::describe(tr, &base, organization_id, app_name, id, c, t.zone).await,
            _ => Err(mismatch(t)),
        }
    }

    /// `describe` merged over the listed order, so the result has everything either call gave.
    pub async fn describe_listed(
        &self,
        t: &Target,
        c: &Credentials,
        listed: &CloudOrder,
    ) -> Result<CloudOrder, CloudError> {
        let detail = self.describe(t, c, &listed.id).await?;
        Ok(merge(listed, detail))
    }
}

impl CloudClient {
    /// The applications `query` selects, at the target's endpoint (its app is not used). Every
    /// page goes through the call budget; a failed page fails the whole listing.
    pub async fn list_apps(
        &self,
        t: &Target,
        c: &Credentials,
        query: &super::discover::AppQuery,
    ) -> Result<Vec<super::discover::FoundApp>, CloudError> {
        let base = Self::prepare(t, c)?;
        super::discover::list_apps(&self.transport, &base, query, c, t.signature).await
    }
}

fn mismatch(t: &Target) -> CloudError {
    CloudError::new(
        ErrorKind::BadRequest,
        format!("the application reference does not fit provider {}", t.provider),
    )
}

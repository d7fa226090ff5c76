//! Which cloud account a credential belongs to, for the call budget: clouds throttle per account
//! (SAE: 60 calls a minute across its APIs), so every key and role of one account shares one
//! budget.
//!
//! - An AccessKey's account is asked of STS `GetCallerIdentity`, signed with the key itself,
//!   once per credential (key, secret and token: the fingerprint), at the STS endpoint the
//!   administrator configured (`--sts-endpoint`; never a watch's endpoint).
//! - Keys from an assumed role are learned from the role's ARN when they are exchanged
//!   ([`Accounts::learn`]), until they expire.
//! - A credential STS refuses (wrong secret next to someone's key id, unknown or revoked key) is
//!   **unproven**: it shares nobody's budget and gets a small one of its own.
//! - When STS cannot be asked (not configured, unreachable, failing), the credential is keyed by
//!   itself (the budget per credential of earlier versions) and STS is asked again a minute
//!   later; polls go on meanwhile.
//! - Personal access tokens (AppStack) have no account: keyed by the token's fingerprint.
//!
//! What is remembered is bounded: an entry not used for [`IDLE`] is forgotten (a rotated key, an
//! STS key replaced at refresh), and never more than [`MAX_ENTRIES`] are kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use changeorder_cloud::account::refuses_key;
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::error::ErrorKind;
use changeorder_cloud::http::ClientConfig;
use changeorder_cloud::sts::StsClient;

/// An entry not used for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(300);
/// Most credentials remembered at once; past it the least recently used are forgotten.
pub const MAX_ENTRIES: usize = 10_000;
/// STS unreachable or failing: ask again after this long.
const RETRY_UNKNOWN: Duration = Duration::from_secs(60);
/// A credential STS refused: ask again after this long (a key just created may take a moment
/// to be known everywhere).
const RETRY_UNPROVEN: Duration = Duration::from_secs(300);

/// Whose budget a credential spends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Proven to belong to this account.
    Account(String),
    /// STS refused the credential: it shares no one's budget.
    Unproven,
    /// Not known (no STS, STS failing, a token): a budget of its own, as large as an account's.
    Unknown,
}

#[derive(Clone, Debug)]
struct Entry {
    owner: Owner,
    /// Ask again after this (`None`: never while in use).
    until: Option<Instant>,
    used: Instant,
}

/// The account of each credential in use, shared by every watch and action of the process.
pub struct Accounts {
    sts: Option<StsClient>,
    entries: Mutex<HashMap<String, Entry>>,
    /// One GetCallerIdentity at a time per credential: the watches sharing it wait for it.
    asking: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("sts", &self.sts.as_ref().map(|s| s.url().as_str()))
            .field("entries", &self.len())
            .finish()
    }
}

impl Accounts {
    /// Asks STS at `sts_endpoint` (the administrator's setting), each call bounded by `timeout`
    /// (`--cloud-timeout`). An endpoint that does not parse asks nobody (logged once).
    pub fn new(sts_endpoint: &str, timeout: Duration) -> Self {
        let cfg = ClientConfig {
            request_timeout: timeout,
            connect_timeout: ClientConfig::default().connect_timeout.min(timeout),
            ..ClientConfig::default()
        };
        let sts = match StsClient::new(sts_endpoint, &cfg) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "the call budget cannot ask STS which account a key belongs to; each credential gets its own budget");
                None
            }
        };
        Accounts {
            sts,
            ..Accounts::unasked()
        }
    }

    /// Asks nobody: AccessKeys are keyed by themselves unless [`learn`](Self::learn)ed.
    pub fn unasked() -> Self {
        Accounts {
            sts: None,
            entries: Mutex::default(),
            asking: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Credentials remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What is known of `creds` now, without asking anyone.
    pub fn owner(&self, creds: &Credentials) -> Owner {
        if matches!(creds, Credentials::Token(_)) {
            return Owner::Unknown;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get_mut(&creds.fingerprint()) {
            Some(e) => {
                e.used = now;
                e.owner.clone()
            }
            None => Owner::Unknown,
        }
    }

    /// `creds` (temporary keys of an assumed role) belong to `account` until `until`.
    pub fn learn(&self, creds: &Credentials, account: &str, until: Option<Instant>) {
        let now = Instant::now();
        self.insert(
            creds.fingerprint(),
            Entry {
                owner: Owner::Account(account.to_string()),
                until,
                used: now,
            },
            now,
        );
    }

    fn insert(&self, key: String, entry: Entry, now: Instant) {
        let mut entries = self.lock();
        entries
            .retain(|_, e| now.saturating_duration_since(e.used) < IDLE && e.until.is_none_or(|u| u > now));
        if entries.len() >= MAX_ENTRIES {
            let mut used: Vec<Instant> = entries.values().map(|e| e.used).collect();
            used.sort_unstable();
            let cut = used[used.len() / 2];
            entries.retain(|_, e| e.used > cut);
        }
        entries.insert(key, entry);
    }

    /// Set what is known of `creds` (tests).
    #[cfg(test)]
    pub(crate) fn set(&self, creds: &Credentials, owner: Owner) {
        let now = Instant::now();
        self.insert(
            creds.fingerprint(),
            Entry {
                owner,
                until: None,
                used: now,
            },
            now,
        );
    }

    /// Learn the account of `creds` unless known: STS `GetCallerIdentity`, signed with them.
    /// Never fails: what cannot be learned is [`Owner::Unknown`] for a while.
    pub async fn identify(&self, creds: &Credentials) {
        let Some(sts) = &self.sts else { return };
        if matches!(creds, Credentials::Token(_)) {
            return;
        }
        let key = creds.fingerprint();
        let fresh = |entries: &HashMap<String, Entry>| {
            entries
                .get(&key)
                .is_some_and(|e| e.until.is_none_or(|u| u > Instant::now()))
        };
        if fresh(&self.lock()) {
            return;
        }
        let gate = {
            let mut asking = self.asking.lock().unwrap_or_else(|p| p.into_inner());
            asking.entry(key.clone()).or_default().clone()
        };
        let _one = gate.lock().await;
        if !fresh(&self.lock()) {
            let owner = match sts.get_caller_identity(creds).await {
                Ok(id) => {
                    tracing::debug!(account = %id.account_id, "learned the account of a credential");
                    (Owner::Account(id.account_id), None)
                }
                Err(e) if refuses_key(&e) || e.kind() == ErrorKind::InvalidCredentials => {
                    tracing::debug!(error = %e, "STS refused a credential: it gets a budget of its own");
                    (Owner::Unproven, Some(RETRY_UNPROVEN))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot learn a credential's account; keyed by the credential for now");
                    (Owner::Unknown, Some(RETRY_UNKNOWN))
                }
            };
            let now = Instant::now();
            self.insert(
                key.clone(),
                Entry {
                    owner: owner.0,
                    until: owner.1.map(|d| now + d),
                    used: now,
                },
                now,
            );
        }
        drop(_one);
        let mut asking = self.asking.lock().unwrap_or_else(|p| p.into_inner());
        if asking.get(&key).is_some_and(|g| Arc::strong_count(g) == 1) {
            asking.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Credentials {
        Credentials::AccessKey {
            access_key_id: format!("STS.key-{i}"),
            access_key_secret: format!("secret-{i}"),
            security_token: Some(format!("token-{i}")),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn learned_accounts_are_forgotten_when_unused_and_stay_bounded() {
        let accounts = Accounts::unasked();
        let mut peak = 0;
        // 10,000 refreshes of one identity, one a second; each key lives an hour.
        for i in 0..10_000 {
            let until = Instant::now() + Duration::from_secs(3600);
            accounts.learn(&key(i), "42", Some(until));
            assert_eq!(accounts.owner(&key(i)), Owner::Account("42".into()));
            peak = peak.max(accounts.len());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(peak <= IDLE.as_secs() as usize + 1, "{peak} entries at most");
        // Not learned, or a token: no account.
        assert_eq!(accounts.owner(&key(20_000)), Owner::Unknown);
        assert_eq!(accounts.owner(&Credentials::Token("t".into())), Owner::Unknown);
        // Expired keys are forgotten even when used.
        accounts.learn(&key(1), "42", Some(Instant::now()));
        accounts.learn(&key(2), "42", None);
        assert_eq!(accounts.owner(&key(1)), Owner::Unknown);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_cap() {
        let accounts = Accounts::unasked();
        for i in 0..(MAX_ENTRIES + 10) {
            accounts.learn(&key(i), "1", None);
            if i % 1000 == 0 {
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        assert!(accounts.len() <= MAX_ENTRIES, "{}", accounts.len());
    }
}

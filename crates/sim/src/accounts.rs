//! Which simulated account each AccessKey belongs to, for STS `GetCallerIdentity`. A scenario
//! lists accounts and their long-term AccessKey ids; keys it does not list belong to
//! [`DEFAULT_ACCOUNT_ID`]. Keys the simulated STS issued belong to the account in their role's
//! ARN, as with the real STS.
//!
//! ```yaml
//! accounts:
//!   - id: "1111111111111111"
//!     accessKeys: [key-a, key-b]
//! ```

use serde::{Deserialize, Serialize};

/// The account of every AccessKey a scenario does not place elsewhere.
pub const DEFAULT_ACCOUNT_ID: &str = "1000000000000001";

/// One simulated account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Account {
    /// The account number (digits), as `GetCallerIdentity` replies it.
    pub id: String,
    /// Long-term AccessKey ids of this account (RAM users' keys and the root key alike).
    #[serde(default)]
    pub access_keys: Vec<String>,
}

/// Why a scenario's `accounts` are not usable.
pub fn validate(accounts: &[Account]) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashMap::new();
    for (i, a) in accounts.iter().enumerate() {
        if a.id.is_empty() || !a.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err((
                format!("accounts[{i}].id"),
                "must be an account number (digits)".into(),
            ));
        }
        for (k, key) in a.access_keys.iter().enumerate() {
            if let Some(other) = seen.insert(key.as_str(), a.id.as_str())
                && other != a.id
            {
                return Err((
                    format!("accounts[{i}].accessKeys[{k}]"),
                    format!("{key} already belongs to account {other}"),
                ));
            }
        }
    }
    Ok(())
}

/// The account of a long-term AccessKey id.
pub fn of_key<'a>(accounts: &'a [Account], access_key_id: &str) -> &'a str {
    accounts
        .iter()
        .find(|a| a.access_keys.iter().any(|k| k == access_key_id))
        .map_or(DEFAULT_ACCOUNT_ID, |a| a.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_their_account_and_others_the_default() {
        let accounts = vec![Account {
            id: "42".into(),
            access_keys: vec!["a".into(), "b".into()],
        }];
        assert_eq!(of_key(&accounts, "b"), "42");
        assert_eq!(of_key(&accounts, "c"), DEFAULT_ACCOUNT_ID);
        assert!(validate(&accounts).is_ok());
        let twice = vec![
            accounts[0].clone(),
            Account {
                id: "7".into(),
                access_keys: vec!["a".into()],
            },
        ];
        assert_eq!(validate(&twice).unwrap_err().0, "accounts[1].accessKeys[0]");
        let bad = vec![Account {
            id: "x".into(),
            access_keys: vec![],
        }];
        assert_eq!(validate(&bad).unwrap_err().0, "accounts[0].id");
    }
}

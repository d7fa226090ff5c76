//! Which cloud account a credential belongs to: STS `GetCallerIdentity` (an RPC call signed with
//! the credential itself, so only a caller holding the secret learns anything), or the account
//! number in an assumed role's ARN (`acs:ram::<account>:role/<name>`). Rate limits such as
//! SAE's are per account: the operator shares one call budget between every key and role of an
//! account.

use jiff::Timestamp;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::classify_reply;
use super::json;
use super::model::Provider;
use super::sign::{encode_query, rpc_signature, rpc_string_to_sign, v3_date};
use super::sts::StsClient;

/// `GetCallerIdentity`'s answer. None of it is secret (no key id is kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The account number (`AccountId`).
    pub account_id: String,
    /// `Arn`, e.g. `acs:ram::123:user/alice` or `acs:ram::123:assumed-role/r/session`.
    pub arn: String,
    /// `IdentityType`: `Account`, `RAMUser` or `AssumedRoleUser`.
    pub identity_type: String,
}

/// The account number of a RAM ARN (`acs:ram::<account>:...`), when it has one made of digits.
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.trim().splitn(5, ':');
    let (Some("acs"), Some(_service), Some(_region), Some(account), Some(_rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!account.is_empty() && account.len() <= 32 && account.bytes().all(|b| b.is_ascii_digit()))
        .then_some(account)
}

/// Whether a cloud error says the credential itself is bad (unknown or inactive key, wrong
/// secret, a security token the cloud does not accept), as opposed to a call it refused for
/// other reasons. `SignatureNonceUsed` is not: the key signed fine.
pub fn refuses_key(e: &CloudError) -> bool {
    let code = e.code.as_deref().unwrap_or_default().trim();
    let starts = |p: &str| code.len() >= p.len() && code[..p.len()].eq_ignore_ascii_case(p);
    starts("InvalidAccessKeyId")
        || starts("InvalidSecurityToken")
        || code.eq_ignore_ascii_case("SignatureDoesNotMatch")
        || code.eq_ignore_ascii_case("IncompleteSignature")
}

impl StsClient {
    /// Who `creds` are: STS `GetCallerIdentity`, signed with them (RPC, HMAC-SHA1). A wrong
    /// secret or an unknown key fails with `InvalidCredentials` / `SignatureMismatch`. Errors
    /// never carry the secret or the security token.
    pub async fn get_caller_identity(&self, creds: &Credentials) -> Result<CallerIdentity, CloudError> {
        let Credentials::AccessKey {
            access_key_id,
            access_key_secret,
            security_token,
        } = creds
        else {
            return Err(CloudError::new(
                ErrorKind::BadRequest,
                "GetCallerIdentity needs an AccessKey, not a token",
            ));
        };
        let mut params: Vec<(String, String)> = [
            ("Action", "GetCallerIdentity"),
            ("Version", super::sts::STS_VERSION),
            ("Format", "JSON"),
            ("AccessKeyId", access_key_id.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        params.push((
            "SignatureNonce".into(),
            format!("{:032x}", rand::random::<u128>()),
        ));
        params.push(("Timestamp".into(), v3_date(Timestamp::now())));
        if let Some(token) = security_token {
            params.push(("SecurityToken".into(), token.clone()));
        }
        let signature = rpc_signature(&rpc_string_to_sign("POST", &params), access_key_secret);
        params.push(("Signature".into(), signature));
        let resp = self
            .http()
            .post(self.url().clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(encode_query(&params))
            .send()
            .await
            .map_err(|e| CloudError::transport(format!("STS GetCallerIdentity: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let body = super::http::read_capped(resp, self.max_reply_bytes()).await?;
        let v = classify_reply(Provider::Edas, status, &body, ErrorKind::InvalidCredentials).map_err(
            |mut e| {
                for secret in std::iter::once(access_key_secret.as_str()).chain(security_token.as_deref()) {
                    if !secret.is_empty() {
                        e.message = e.message.replace(secret, "<redacted>");
                    }
                }
                e.message = format!("STS GetCallerIdentity: {}", e.message);
                e.raw = None;
                e
            },
        )?;
        parse_caller_identity(&v)
    }
}

/// `{AccountId, Arn, IdentityType, ...}` of a GetCallerIdentity reply. The account is taken
/// from `AccountId`, else from the ARN.
pub fn parse_caller_identity(v: &serde_json::Value) -> Result<CallerIdentity, CloudError> {
    let arn = json::string(v, &["Arn"]).unwrap_or_default();
    let account_id = json::string(v, &["AccountId"])
        .filter(|a| !a.trim().is_empty())
        .or_else(|| account_of_arn(&arn).map(str::to_string))
        .ok_or_else(|| CloudError::bad_reply("STS GetCallerIdentity reply has no AccountId"))?;
    Ok(CallerIdentity {
        account_id: account_id.trim().to_string(),
        identity_type: json::string(v, &["IdentityType"]).unwrap_or_default(),
        arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accounts_of_arns() {
        assert_eq!(
            account_of_arn("acs:ram::1234567890:role/deployer"),
            Some("1234567890")
        );
        assert_eq!(
            account_of_arn("acs:ram::42:assumed-role/deployer/changeorder.ns.sa"),
            Some("42")
        );
        assert_eq!(account_of_arn("acs:ram::not-a-number:role/r"), None);
        assert_eq!(account_of_arn("acs:ram:::role/r"), None);
        assert_eq!(account_of_arn("arn:aws:iam::1:role/r"), None);
        assert_eq!(account_of_arn("acs:ram::1"), None);
    }

    #[test]
    fn caller_identity_replies() {
        let v = json!({"AccountId": "1001", "UserId": "u", "Arn": "acs:ram::1001:user/alice",
            "IdentityType": "RAMUser", "PrincipalId": "p", "RequestId": "r"});
        let id = parse_caller_identity(&v).expect("identity");
        assert_eq!(id.account_id, "1001");
        assert_eq!(id.identity_type, "RAMUser");
        let from_arn = parse_caller_identity(&json!({"Arn": "acs:ram::7:assumed-role/r/s"})).expect("arn");
        assert_eq!(from_arn.account_id, "7");
        assert_eq!(
            parse_caller_identity(&json!({"RequestId": "r"}))
                .unwrap_err()
                .kind,
            ErrorKind::BadReply
        );
    }

    #[test]
    fn which_errors_refuse_the_key() {
        let e = |code: &str| CloudError::new(ErrorKind::InvalidCredentials, "m").with_code(code);
        assert!(refuses_key(&e("InvalidSecurityToken.Expired")));
        assert!(refuses_key(&e("InvalidSecurityToken.MismatchWithAccessKey")));
        assert!(refuses_key(&e("InvalidAccessKeyId.NotFound")));
        assert!(refuses_key(&e("InvalidAccessKeyId.Inactive")));
        assert!(refuses_key(&e("SignatureDoesNotMatch")));
        assert!(!refuses_key(&e("SignatureNonceUsed")));
        assert!(!refuses_key(&e("Forbidden.RAM")));
        assert!(!refuses_key(&e("Throttling.User")));
        assert!(!refuses_key(&CloudError::transport("down")));
    }
}

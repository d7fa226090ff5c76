//! Write calls on a change order (EDAS `ContinuePipeline`/`AbortChangeOrder`, SAE
//! `ConfirmPipelineBatch`/`AbortChangeOrder`/`AbortAndRollbackChangeOrder`). AppStack has no
//! public API for these.
//!
//! A write is sent at most once per call of [`CloudClient::act`]: it is retried only when the
//! cloud surely refused it before acting (throttling, a reused nonce). A timeout, a dropped
//! connection or a 5xx leaves the outcome unknown and is returned as is, for the caller to
//! settle by reading the order, never by sending again.

use reqwest::Method;
use serde_json::Value;

use super::client::CloudClient;
use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::ApiCall;
use super::json;
use super::model::Provider;
use super::target::Target;
use super::{edas, sae};

/// One write on one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Answer a batch waiting for manual confirmation: `confirm` true starts the next batch,
    /// false ends the order.
    Confirm { pipeline_id: String, confirm: bool },
    /// Terminate the order.
    Abort,
    /// Terminate the order and roll the application back (SAE only).
    AbortAndRollback,
}

/// What the cloud said when it accepted a write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub request_id: Option<String>,
    pub message: Option<String>,
    /// SAE `AbortAndRollbackChangeOrder`: the rollback order, when the reply names one.
    pub new_order_id: Option<String>,
}

/// The call a write becomes, or why the provider has none.
pub(crate) fn write_call(provider: Provider, order_id: &str, write: &Write) -> Result<ApiCall, CloudError> {
    let (operation, version, method, path, query): (
        &'static str,
        &'static str,
        Method,
        &str,
        Vec<(String, String)>,
    ) = match (provider, write) {
        (Provider::Sae, Write::Confirm { pipeline_id, confirm }) => (
            "ConfirmPipelineBatch",
            sae::VERSION,
            Method::GET,
            "/pop/v1/sam/changeorder/ConfirmPipelineBatch",
            vec![
                ("Confirm".into(), confirm.to_string()),
                ("PipelineId".into(), pipeline_id.clone()),
            ],
        ),
        (Provider::Sae, Write::Abort) => (
            "AbortChangeOrder",
            sae::VERSION,
            Method::PUT,
            "/pop/v1/sam/changeorder/AbortChangeOrder",
            vec![("ChangeOrderId".into(), order_id.into())],
        ),
        (Provider::Sae, Write::AbortAndRollback) => (
            "AbortAndRollbackChangeOrder",
            sae::VERSION,
            Method::PUT,
            "/pop/v1/sam/changeorder/AbortAndRollbackChangeOrder",
            vec![("ChangeOrderId".into(), order_id.into())],
        ),
        (Provider::Edas, Write::Confirm { pipeline_id, confirm }) => (
            "ContinuePipeline",
            edas::VERSION,
            Method::GET,
            "/pop/v5/changeorder/pipeline_batch_confirm",
            vec![
                ("Confirm".into(), confirm.to_string()),
                ("PipelineId".into(), pipeline_id.clone()),
            ],
        ),
        (Provider::Edas, Write::Abort) => (
            "AbortChangeOrder",
            edas::VERSION,
            Method::PUT,
            "/pop/v5/changeorder/change_order_abort",
            vec![("ChangeOrderId".into(), order_id.into())],
        ),
        (Provider::Edas, Write::AbortAndRollback) => {
            return Err(CloudError::new(
                ErrorKind::BadRequest,
                "EDAS has no abort-and-rollback API: abort, then roll back in the console",
            ));
        }
        (Provider::Appstack, _) => {
            return Err(CloudError::new(
                ErrorKind::BadRequest,
                "AppStack has no public API to confirm or abort a change order",
            ));
        }
    };
    Ok(ApiCall {
        provider,
        operation,
        version,
        method,
        path: path.into(),
        query,
        not_found: ErrorKind::OrderNotFound,
    })
}

/// Only what the cloud refused before acting may be sent again.
pub fn write_retryable(e: &CloudError) -> bool {
    e.kind == ErrorKind::Throttled || e.code.as_deref() == Some("SignatureNonceUsed")
}

/// Whether an error leaves it open if the write took effect (the request may have reached the
/// cloud and been executed although no verdict came back).
pub fn outcome_unknown(e: &CloudError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Transport | ErrorKind::ServerError | ErrorKind::BadReply | ErrorKind::TooLarge
    )
}

/// What an accepted write's reply carries.
pub fn parse_written(v: &Value) -> Written {
    Written {
        request_id: json::string(v, &["RequestId", "requestId"]),
        message: json::string(v, &["Message", "message"]).filter(|m| !m.eq_ignore_ascii_case("success")),
        new_order_id: json::field(v, &["Data"]).and_then(|d| json::string(d, &["ChangeOrderId"])),
    }
}

impl CloudClient {
    /// Send one write, through the same call budget and rate-limit gates as the reads.
    pub async fn act(
        &self,
        t: &Target,
        c: &Credentials,
        order_id: &str,
        write: &Write,
    ) -> Result<Written, CloudError> {
        c.check_for(t.provider)
            .map_err(|e| CloudError::new(ErrorKind::InvalidCredentials, e.to_string()))?;
        let base = t
            .base_url()
            .map_err(|m| CloudError::new(ErrorKind::BadRequest, format!("endpoint: {m}")))?;
        let call = write_call(t.provider, order_id, write)?;
        let v = self
            .transport()
            .call_retrying(&base, &call, c, t.signature, write_retryable)
            .await?;
        Ok(parse_written(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_follow_the_spec_table() {
        let confirm = Write::Confirm {
            pipeline_id: "p1".into(),
            confirm: true,
        };
        let c = write_call(Provider::Sae, "o", &confirm).expect("sae confirm");
        assert_eq!(
            (c.operation, c.method.as_str(), c.path.as_str()),
            (
                "ConfirmPipelineBatch",
                "GET",
                "/pop/v1/sam/changeorder/ConfirmPipelineBatch"
            )
        );
        assert!(c.query.contains(&("PipelineId".into(), "p1".into())));
        assert!(c.query.contains(&("Confirm".into(), "true".into())));
        let c = write_call(Provider::Edas, "o", &confirm).expect("edas confirm");
        assert_eq!(
            (c.operation, c.path.as_str()),
            ("ContinuePipeline", "/pop/v5/changeorder/pipeline_batch_confirm")
        );
        let c = write_call(Provider::Edas, "o", &Write::Abort).expect("edas abort");
        assert_eq!(
            (c.operation, c.method.as_str(), c.path.as_str()),
            (
                "AbortChangeOrder",
                "PUT",
                "/pop/v5/changeorder/change_order_abort"
            )
        );
        assert_eq!(c.query, vec![("ChangeOrderId".to_string(), "o".to_string())]);
        let c = write_call(Provider::Sae, "o", &Write::AbortAndRollback).expect("sae rollback");
        assert_eq!(c.operation, "AbortAndRollbackChangeOrder");
        assert!(write_call(Provider::Edas, "o", &Write::AbortAndRollback).is_err());
        assert!(write_call(Provider::Appstack, "o", &Write::Abort).is_err());
    }

    #[test]
    fn only_refusals_are_retried() {
        let e = |k| CloudError::new(k, "x");
        assert!(write_retryable(&e(ErrorKind::Throttled)));
        for k in [
            ErrorKind::ServerError,
            ErrorKind::Transport,
            ErrorKind::Forbidden,
            ErrorKind::BadRequest,
        ] {
            assert!(!write_retryable(&e(k)), "{k:?}");
        }
        assert!(outcome_unknown(&e(ErrorKind::Transport)));
        assert!(outcome_unknown(&e(ErrorKind::ServerError)));
        assert!(!outcome_unknown(&e(ErrorKind::Forbidden)));
    }

    #[test]
    fn written_reply() {
        let w =
            parse_written(&json!({"RequestId": "r", "Message": "success", "Data": {"ChangeOrderId": "n"}}));
        assert_eq!(w.request_id.as_deref(), Some("r"));
        assert_eq!(w.message, None);
        assert_eq!(w.new_order_id.as_deref(), Some("n"));
    }
}

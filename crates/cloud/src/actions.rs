//! Write calls on a change order (EDAS `ContinuePipeline`/`AbortChangeOrder`/
//! `AbortAndRollbackChangeOrder`, SAE `ConfirmPipelineBatch`/`AbortChangeOrder`/
//! `AbortAndRollbackChangeOrder`). AppStack has no public API for these.
//!
//! A write is sent at most once per call of [`CloudClient::act`], and its result is a
//! [`WriteOutcome`]: accepted, refused before acting (only answers that prove the cloud did
//! nothing), rejected by the API, or unknown. Only throttling at the gateway is sent again,
//! inside the call. Everything else, `SignatureNonceUsed` included (a gateway retry or a proxy
//! resend of a write the cloud carried out comes back with it), is returned as is, for the
//! caller to settle by reading the order, never by sending again.

use reqwest::Method;
use serde_json::Value;

use super::client::CloudClient;
use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ApiCall, build_url};
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
    /// Terminate the order and roll the application back.
    AbortAndRollback,
}

/// What the cloud said when it accepted a write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub request_id: Option<String>,
    pub message: Option<String>,
    /// `AbortAndRollbackChangeOrder`: the rollback order, when the reply names one.
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
        (Provider::Edas, Write::AbortAndRollback) => (
            "AbortAndRollbackChangeOrder",
            edas::VERSION,
            Method::PUT,
            "/pop/v5/changeorder/change_order_abort_and_rollback",
            vec![("ChangeOrderId".into(), order_id.into())],
        ),
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

/// What became of one write. Decided here, from the cloud's answer, so that no caller has to
/// test error codes to know whether a write may have been carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The cloud accepted the write.
    Accepted(Written),
    /// Refused before acting, or never sent: throttling at the gateway, a missing permission
    /// (`Forbidden*`, `NoPermission`), invalid parameters (`InvalidParameter*`,
    /// `MissingParameter*`), an unknown or disabled AccessKey id (`InvalidAccessKeyId.*`), or a
    /// check of this crate that failed before any request left. The cloud did nothing.
    RefusedBeforeActing(CloudError),
    /// The API answered with a refusal of its own (`Pipeline.Can.Not.Start.Next.Batch`,
    /// `ChangeOrder.Can.Not.Abort`, an unknown order). Taken at its word the cloud did nothing,
    /// but nothing proves the answer is to this sending rather than to a resend of a write it
    /// carried out: settle it by reading the order. Never send it again.
    Rejected(CloudError),
    /// No verdict: a timeout, a dropped connection, a 5xx, a reply that cannot be read, a
    /// signature or time check that may have been made on a resend (`SignatureNonceUsed`,
    /// `SignatureDoesNotMatch`, `InvalidTimeStamp.*`, `InvalidSecurityToken.*`), or any answer
    /// not listed above. The write may have been carried out: settle it by reading the order,
    /// never by sending it again.
    Unknown(CloudError),
}

impl WriteOutcome {
    /// The outcome an error from one write call means.
    pub fn from_error(e: CloudError) -> WriteOutcome {
        match Answer::of(&e) {
            Answer::Refused => WriteOutcome::RefusedBeforeActing(e),
            Answer::Rejected => WriteOutcome::Rejected(e),
            Answer::Unknown => WriteOutcome::Unknown(e),
        }
    }

    /// The error, unless the write was accepted.
    pub fn error(&self) -> Option<&CloudError> {
        match self {
            WriteOutcome::Accepted(_) => None,
            WriteOutcome::RefusedBeforeActing(e) | WriteOutcome::Rejected(e) | WriteOutcome::Unknown(e) => {
                Some(e)
            }
        }
    }

    /// Whether the cloud may have carried the write out (accepted, or no proof it did not).
    pub fn may_have_acted(&self) -> bool {
        !matches!(self, WriteOutcome::RefusedBeforeActing(_))
    }

    /// `Ok` when accepted, the error otherwise.
    pub fn into_result(self) -> Result<Written, CloudError> {
        match self {
            WriteOutcome::Accepted(w) => Ok(w),
            WriteOutcome::RefusedBeforeActing(e) | WriteOutcome::Rejected(e) | WriteOutcome::Unknown(e) => {
                Err(e)
            }
        }
    }
}

/// How an error answers a write (see [`WriteOutcome`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Refused,
    Rejected,
    Unknown,
}

impl Answer {
    fn of(e: &CloudError) -> Answer {
        let code = e.code.as_deref().map(str::trim).unwrap_or("");
        let starts =
            |p: &str| code.len() >= p.len() && code.get(..p.len()).is_some_and(|c| c.eq_ignore_ascii_case(p));
        // An answer from the cloud: an HTTP status came back. Without one the error is either
        // local (raised before sending) or a broken exchange; only the first proves nothing
        // was sent, and those are returned as `RefusedBeforeActing` where they arise.
        let Some(status) = e.http_status else {
            return Answer::Unknown;
        };
        match e.kind {
            ErrorKind::Throttled => Answer::Refused,
            ErrorKind::Forbidden => Answer::Refused,
            ErrorKind::InvalidCredentials if starts("InvalidAccessKeyId") => Answer::Refused,
            ErrorKind::BadRequest if starts("InvalidParameter") || starts("MissingParameter") => {
                Answer::Refused
            }
            ErrorKind::BadRequest | ErrorKind::OrderNotFound | ErrorKind::AppNotFound
                if !code.is_empty() && (200..500).contains(&status) =>
            {
                Answer::Rejected
            }
            _ => Answer::Unknown,
        }
    }
}

/// Whether the transport may send a write again within one call: only throttling, which the
/// gateway answers before the API sees the request. Never a reused nonce, a 5xx or a timeout.
pub fn write_retryable(e: &CloudError) -> bool {
    e.kind == ErrorKind::Throttled
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
    /// Send one write, through the same call budget and rate-limit gates as the reads. Sent at
    /// most once, apart from throttling refused at the gateway.
    pub async fn act(&self, t: &Target, c: &Credentials, order_id: &str, write: &Write) -> WriteOutcome {
        // Checks made before anything leaves: whatever fails here was never sent.
        let call = match c
            .check_for(t.provider)
            .map_err(|e| CloudError::new(ErrorKind::InvalidCredentials, e.to_string()))
            .and_then(|()| {
                t.base_url()
                    .map_err(|m| CloudError::new(ErrorKind::BadRequest, format!("endpoint: {m}")))
            })
            .and_then(|base| {
                let call = write_call(t.provider, order_id, write)?;
                build_url(&base, &call.path, &call.query)?;
                Ok((base, call))
            }) {
            Ok(c) => c,
            Err(e) => return WriteOutcome::RefusedBeforeActing(e),
        };
        let (base, call) = call;
        match self
            .transport()
            .call_retrying(&base, &call, c, t.signature, write_retryable)
            .await
        {
            Ok(v) => WriteOutcome::Accepted(parse_written(&v)),
            Err(e) => WriteOutcome::from_error(e),
        }
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
        let c = write_call(Provider::Edas, "o", &Write::AbortAndRollback).expect("edas rollback");
        assert_eq!(
            (c.operation, c.method.as_str(), c.path.as_str(), c.version),
            (
                "AbortAndRollbackChangeOrder",
                "PUT",
                "/pop/v5/changeorder/change_order_abort_and_rollback",
                edas::VERSION
            )
        );
        assert_eq!(c.query, vec![("ChangeOrderId".to_string(), "o".to_string())]);
        assert!(write_call(Provider::Appstack, "o", &Write::Abort).is_err());
    }

    fn answered(kind: ErrorKind, code: Option<&str>, status: u16) -> CloudError {
        let e = CloudError::new(kind, "x").with_status(status);
        match code {
            Some(c) => e.with_code(c),
            None => e,
        }
    }

    /// Only answers that prove the cloud did nothing are refusals; a reused nonce (a resend of a
    /// write it may have carried out) and everything unrecognised leave the outcome unknown.
    #[test]
    fn outcomes_of_a_write() {
        use ErrorKind::*;
        let refused = [
            (Throttled, Some("Throttling.User"), 400),
            (Throttled, None, 429),
            (Forbidden, Some("Forbidden.RAM"), 403),
            // A business failure inside a 2xx reply (EDAS `Code` in the body).
            (Forbidden, Some("Forbidden.NoPermission"), 200),
            (Forbidden, Some("Resouce.no.permission"), 400),
            (BadRequest, Some("InvalidParameter.NotEmpty"), 400),
            (BadRequest, Some("MissingParameter"), 400),
            (InvalidCredentials, Some("InvalidAccessKeyId.NotFound"), 404),
            (InvalidCredentials, Some("InvalidAccessKeyId.Inactive"), 400),
        ];
        for (k, c, s) in refused {
            let e = answered(k, c, s);
            assert_eq!(
                WriteOutcome::from_error(e.clone()),
                WriteOutcome::RefusedBeforeActing(e),
                "{c:?}"
            );
            assert_eq!(ErrorKind::classify(c, Some(s), OrderNotFound), k, "{c:?}");
        }
        let rejected = [
            (BadRequest, Some("Pipeline.Can.Not.Start.Next.Batch"), 400),
            (BadRequest, Some("ChangeOrder.Can.Not.Abort"), 400),
            (OrderNotFound, Some("InvalidChangeOrder.NotFound"), 400),
        ];
        for (k, c, s) in rejected {
            let e = answered(k, c, s);
            assert_eq!(
                WriteOutcome::from_error(e.clone()),
                WriteOutcome::Rejected(e),
                "{c:?}"
            );
        }
        let unknown = [
            (SignatureMismatch, Some("SignatureNonceUsed"), 400),
            (SignatureMismatch, Some("SignatureDoesNotMatch"), 400),
            (ClockSkew, Some("InvalidTimeStamp.Expired"), 400),
            (InvalidCredentials, Some("InvalidSecurityToken.Expired"), 400),
            (ServerError, Some("InternalError"), 500),
            (ServerError, None, 502),
            (BadRequest, None, 400),
            (BadReply, None, 200),
            (TooLarge, None, 200),
        ];
        for (k, c, s) in unknown {
            let e = answered(k, c, s);
            let o = WriteOutcome::from_error(e.clone());
            assert!(o.may_have_acted(), "{c:?}");
            assert_eq!(o, WriteOutcome::Unknown(e), "{c:?}");
        }
        // No HTTP status: a timeout or a dropped connection.
        let t = CloudError::transport("timed out");
        assert_eq!(WriteOutcome::from_error(t.clone()), WriteOutcome::Unknown(t));
    }

    #[test]
    fn only_throttling_is_sent_again() {
        let e = |k| CloudError::new(k, "x").with_status(400);
        assert!(write_retryable(&e(ErrorKind::Throttled)));
        for k in ErrorKind::ALL.into_iter().filter(|k| *k != ErrorKind::Throttled) {
            assert!(!write_retryable(&e(k)), "{k:?}");
        }
        let nonce = e(ErrorKind::SignatureMismatch).with_code("SignatureNonceUsed");
        assert!(
            !write_retryable(&nonce),
            "a reused nonce on a write is never sent again"
        );
        assert!(nonce.is_retryable(), "reads still retry it with a new nonce");
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

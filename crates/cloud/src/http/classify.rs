//! Classifying replies: one HTTP status and body in, the reply's JSON or a [`CloudError`] out,
//! for each provider's error envelope. No I/O, so the transport, STS and the fuzz targets share
//! it and every case is table-tested.

use serde_json::Value;

use crate::error::{CloudError, ErrorKind, excerpt};
use crate::json;
use crate::model::Provider;

/// Turn one reply into its JSON or a classified error. Pure, so every case is table-tested.
///
/// EDAS/SAE: non-2xx → `{RequestId, HostId, Code, Message, Recommend}`; inside a 2xx, SAE
/// `Success=false` (code in `ErrorCode`) and EDAS integer `Code != 200` are failures too.
/// AppStack: non-2xx → `errorCode`/`errorMessage`, else `errorDescription`, else `message`,
/// else the raw text; a 2xx with `success=false` is a failure.
pub fn classify_reply(
    provider: Provider,
    status: u16,
    body: &[u8],
    not_found: ErrorKind,
) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let value = match parsed {
        Ok(v) => v,
        Err(e) if ok_status => {
            return Err(CloudError::bad_reply(format!("reply is not valid JSON: {e}"))
                .with_status(status)
                .with_raw(body));
        }
        Err(_) => {
            let kind = ErrorKind::classify(None, Some(status), not_found);
            let text = excerpt(body);
            let message = if text.trim().is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                text.trim().to_string()
            };
            return Err(CloudError::new(kind, message).with_status(status).with_raw(body));
        }
    };
    if !value.is_object() {
        if ok_status {
            return Err(CloudError::bad_reply("reply is not a JSON object")
                .with_status(status)
                .with_raw(body));
        }
        let kind = ErrorKind::classify(None, Some(status), not_found);
        return Err(CloudError::new(kind, excerpt(body))
            .with_status(status)
            .with_raw(body));
    }
    match provider {
        Provider::Edas | Provider::Sae => pop_reply(status, value, body, not_found),
        Provider::Appstack => appstack_reply(status, value, body, not_found),
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn pop_reply(status: u16, v: Value, body: &[u8], not_found: ErrorKind) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let request_id = json::string(&v, &["RequestId", "requestId"]);
    let error_code = json::string(&v, &["ErrorCode", "errorCode"]);
    let code_field = json::string(&v, &["Code", "code"]);
    // An HTTP-like status inside the body (EDAS integer Code, SAE string Code).
    let body_status = code_field
        .as_deref()
        .filter(|c| is_numeric(c))
        .and_then(|c| c.parse::<u16>().ok());
    let text_code = error_code
        .clone()
        .or_else(|| code_field.clone().filter(|c| !is_numeric(c)));
    let success = json::boolean(&v, &["Success", "success"]);
    let failed = if ok_status {
        success == Some(false)
            || body_status.is_some_and(|s| !(200..300).contains(&s))
            // A non-numeric Code other than an explicit success marker is an error code.
            || (success.is_none() && code_field.as_deref().is_some_and(|c| !is_numeric(c) && !c.eq_ignore_ascii_case("success") && !c.eq_ignore_ascii_case("ok")))
    } else {
        true
    };
    if !failed {
        return Ok(v);
    }
    let effective_status = if ok_status {
        body_status.or(Some(400))
    } else {
        Some(status)
    };
    let kind = ErrorKind::classify(text_code.as_deref(), effective_status, not_found);
    let mut message =
        json::string(&v, &["Message", "message", "ErrorMessage"]).unwrap_or_else(|| format!("HTTP {status}"));
    if ok_status
        && text_code.is_none()
        && let Some(s) = body_status
    {
        message = format!("{message} (Code {s})");
    }
    let mut err = CloudError::new(kind, message)
        .with_status(status)
        .with_request_id(request_id)
        .with_raw(body);
    err.code = text_code;
    Err(err)
}

fn appstack_reply(status: u16, v: Value, body: &[u8], not_found: ErrorKind) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let failed = !ok_status || json::boolean(&v, &["success"]) == Some(false);
    if !failed {
        return Ok(v);
    }
    let code = json::string(&v, &["errorCode", "code", "error"]).filter(|c| !is_numeric(c));
    let body_status = json::int(&v, &["httpStatusCode", "statusCode", "status"])
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s));
    let effective_status = if ok_status {
        body_status.or(Some(400))
    } else {
        Some(status)
    };
    let kind = ErrorKind::classify(code.as_deref(), effective_status, not_found);
    let message = json::string(&v, &["errorMessage"])
        .or_else(|| json::string(&v, &["errorDescription"]))
        .or_else(|| json::string(&v, &["message", "errorMsg"]))
        .unwrap_or_else(|| excerpt(body));
    let mut err = CloudError::new(kind, message)
        .with_status(status)
        .with_request_id(json::string(&v, &["requestId", "RequestId", "traceId"]))
        .with_raw(body);
    err.code = code;
    Err(err)
}

#[cfg(test)]
mod tests;

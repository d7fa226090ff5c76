//! Response bodies shared by the products: the gateway's error body, SAE's envelope, AppStack's
//! error body, request ids.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};

use changeorder_cloud::model::Provider;

/// A reply before it becomes an HTTP response, so faults can rewrite it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    /// What the stats record as the outcome: `OK` or the error code.
    pub outcome: String,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body,
            outcome: "OK".into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// The HTTP response, with the body serialised as JSON.
    pub fn into_response(self) -> Response {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        self.into_response_with(bytes)
    }

    /// The HTTP response with a given body (used to send broken JSON on purpose).
    pub fn into_response_with(self, bytes: Vec<u8>) -> Response {
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

/// A product handler's answer and the app it concerned (for per-app faults).
pub struct Handled {
    pub app: Option<usize>,
    pub reply: Reply,
}

impl Handled {
    pub fn new(app: Option<usize>, reply: Reply) -> Handled {
        Handled { app, reply }
    }
}

/// A request id in the gateway's style (upper-case UUID).
pub fn request_id() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// SAE's `TraceId`: 30 lower-hex characters.
pub fn trace_id() -> String {
    let b: [u8; 15] = rand::rng().random();
    hex::encode(b)
}

fn product_name(p: Provider) -> &'static str {
    match p {
        Provider::Edas => "Edas",
        Provider::Sae => "sae",
        Provider::Appstack => "appstack",
    }
}

/// The API gateway's error body for EDAS and SAE: `{RequestId, HostId, Code, Message, Recommend}`.
pub fn gateway_error(provider: Provider, status: u16, code: &str, message: &str, host: &str) -> Reply {
    let rid = request_id();
    let recommend = format!(
        "https://api.aliyun.com/troubleshoot?q={code}&product={}&requestId={rid}",
        product_name(provider)
    );
    Reply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        headers: Vec::new(),
        body: json!({
            "RequestId": rid,
            "HostId": host,
            "Code": code,
            "Message": message,
            "Recommend": recommend,
        }),
        outcome: code.to_string(),
    }
}

/// SAE's business error: its usual envelope with `Success=false` and the code in `ErrorCode`.
pub fn sae_error(status: u16, error_code: &str, message: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        headers: Vec::new(),
        body: json!({
            "RequestId": request_id(),
            "Code": status.to_string(),
            "Message": message,
            "Success": false,
            "ErrorCode": error_code,
            "TraceId": trace_id(),
            "Data": null,
        }),
        outcome: error_code.to_string(),
    }
}

/// SAE's success envelope around `data`.
pub fn sae_ok(data: Value) -> Reply {
    Reply::ok(json!({
        "RequestId": request_id(),
        "Code": "200",
        "Message": "success",
        "Success": true,
        "ErrorCode": null,
        "TraceId": trace_id(),
        "Data": data,
    }))
}

/// AppStack's error body. Its real shape is unconfirmed; this carries the fields clients read
/// first (`errorCode`, `errorMessage`) plus a request id.
pub fn appstack_error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        headers: Vec::new(),
        body: json!({
            "requestId": request_id(),
            "errorCode": code,
            "errorMessage": message,
        }),
        outcome: code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_gateway_shape() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(trace_id().len(), 30);
    }
}

//! Helpers shared by the simulator's integration tests: start one in-process, send requests
//! signed with `cloud::sign` (the clients' own signer), read JSON replies.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::atomic::{AtomicU64, Ordering};

use changeorder_cloud::sign::{self, Scheme, SignInput};
use changeorder_sim::{Credential, RunningSim, Scenario, SimConfig, start};
use jiff::Timestamp;
use serde_json::Value;

pub const KEY_ID: &str = "test-key";
pub const SECRET: &str = "test-secret";
pub const TOKEN: &str = "test-token";

pub async fn from_yaml(yaml: &str) -> RunningSim {
    let scenario = match Scenario::from_yaml(yaml) {
        Ok(s) => s,
        Err(e) => panic!("scenario: {e}"),
    };
    sim_with(scenario, vec![Credential::new(KEY_ID, SECRET)]).await
}

pub async fn demo() -> RunningSim {
    let scenario = Scenario::demo().expect("demo scenario");
    sim_with(scenario, vec![Credential::new(KEY_ID, SECRET)]).await
}

pub async fn sim_with(scenario: Scenario, credentials: Vec<Credential>) -> RunningSim {
    let mut config = SimConfig::new(scenario);
    config.credentials = credentials;
    config.yunxiao_token = TOKEN.to_string();
    start(config).await.expect("simulator starts")
}

/// One EDAS/SAE request; tests tweak fields before sending.
#[derive(Clone, Debug)]
pub struct Call {
    pub scheme: Scheme,
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub action: String,
    pub version: String,
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    pub now: Timestamp,
    pub nonce: String,
    /// Headers added or replaced after signing (to tamper with a request).
    pub extra_headers: Vec<(String, String)>,
    /// Headers removed after signing.
    pub drop_headers: Vec<String>,
    /// Send this query instead of the signed one (to tamper with a request).
    pub send_query: Option<Vec<(String, String)>>,
}

static NONCE: AtomicU64 = AtomicU64::new(0);

pub fn nonce() -> String {
    format!(
        "nonce-{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::SeqCst)
    )
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Call {
    pub fn edas_list(app_id: &str) -> Call {
        Call::new(
            "POST",
            "/pop/v5/changeorder/change_order_list",
            "ListRecentChangeOrder",
            "2017-08-01",
            &[("AppId", app_id)],
        )
    }

    pub fn edas_info(id: &str) -> Call {
        Call::new(
            "POST",
            "/pop/v5/changeorder/change_order_info",
            "GetChangeOrderInfo",
            "2017-08-01",
            &[("ChangeOrderId", id)],
        )
    }

    pub fn sae(action: &str, query: &[(&str, &str)]) -> Call {
        let path = match action {
            "ListNamespaceChangeOrders" => "/pop/v1/sam/changeorder/listNamespaceChangeOrders".to_string(),
            other => format!("/pop/v1/sam/changeorder/{other}"),
        };
        Call::new("GET", &path, action, "2019-05-06", query)
    }

    pub fn new(
        method: &'static str,
        path: &str,
        action: &str,
        version: &str,
        query: &[(&str, &str)],
    ) -> Call {
        Call {
            scheme: Scheme::V3,
            method,
            path: path.to_string(),
            query: q(query),
            action: action.to_string(),
            version: version.to_string(),
            key_id: KEY_ID.to_string(),
            secret: SECRET.to_string(),
            token: None,
            now: Timestamp::now(),
            nonce: nonce(),
            extra_headers: Vec::new(),
            drop_headers: Vec::new(),
            send_query: None,
        }
    }

    pub fn roa(mut self) -> Call {
        self.scheme = Scheme::Roa;
        self
    }

    pub fn scheme(mut self, scheme: Scheme) -> Call {
        self.scheme = scheme;
        self
    }

    /// Send to the simulator; returns HTTP status, response headers and the body as JSON
    /// (`Value::String` with the raw text when it is not JSON).
    pub async fn send(&self, sim: &RunningSim) -> Reply {
        let host = sim.addr().to_string();
        let signed = sign::sign_request(&SignInput {
            scheme: self.scheme,
            method: self.method,
            host: &host,
            path: &self.path,
            query: &self.query,
            body: b"",
            content_type: None,
            action: &self.action,
            version: &self.version,
            access_key_id: &self.key_id,
            access_key_secret: &self.secret,
            security_token: self.token.as_deref(),
            now: self.now,
            nonce: &self.nonce,
        });
        let mut url = format!("{}{}", sim.url(), self.path);
        let query = self.send_query.as_ref().unwrap_or(&self.query);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&sign::encode_query(query));
        }
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).expect("method");
        let mut req = client().request(method, url);
        for (name, value) in signed.headers {
            // reqwest sends Host from the URL, which is what was signed.
            if name.eq_ignore_ascii_case("host")
                || self.drop_headers.iter().any(|d| d.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            if self
                .extra_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            req = req.header(name, value);
        }
        for (name, value) in &self.extra_headers {
            req = req.header(name.as_str(), value.as_str());
        }
        Reply::from(req.send().await.expect("request sent")).await
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// The gateway error code (`Code`), or SAE's `ErrorCode`, or AppStack's `errorCode`.
    pub fn code(&self) -> String {
        for key in ["ErrorCode", "errorCode", "Code"] {
            if let Some(Value::String(c)) = self.json.get(key)
                && !c.is_empty()
                && c != "200"
            {
                return c.clone();
            }
        }
        "OK".to_string()
    }
}

/// GET an AppStack path with a token (`None`: no token header).
pub async fn appstack(sim: &RunningSim, path_and_query: &str, token: Option<&str>) -> Reply {
    let mut req = client().get(format!("{}{}", sim.url(), path_and_query));
    if let Some(t) = token {
        req = req.header("x-yunxiao-token", t);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

/// The ids of a JSON array of objects, read at `key`.
pub fn ids(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get(key).and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

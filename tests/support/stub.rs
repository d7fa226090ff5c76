//! A tiny programmable HTTP server on 127.0.0.1 for the cloud client's integration tests:
//! each test supplies a function from request to reply; requests are recorded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use changeorder_cloud::sign;
use changeorder_sim::verify;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Decoded path.
    pub path: String,
    pub raw_query: String,
    /// Decoded pairs.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Send the body in chunks without Content-Length.
    pub chunked: bool,
}

impl Resp {
    pub fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&v).unwrap(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn text(status: u16, s: &str) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: s.as_bytes().to_vec(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn header(mut self, n: &str, v: &str) -> Resp {
        self.headers.push((n.into(), v.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Resp {
        self.delay = d;
        self
    }

    pub fn chunked(mut self) -> Resp {
        self.chunked = true;
        self
    }

    /// The gateway's error body.
    pub fn pop_error(status: u16, code: &str, message: &str) -> Resp {
        Resp::json(
            status,
            serde_json::json!({"RequestId": "REQ-1", "HostId": "h", "Code": code, "Message": message,
                               "Recommend": "https://api.aliyun.com/troubleshoot"}),
        )
    }
}

type Handler = dyn Fn(&Req) -> Resp + Send + Sync;

pub struct Stub {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Stub {
    let handler: Arc<Handler> = Arc::new(handler);
    let requests: Arc<Mutex<Vec<Req>>> = Arc::default();
    let recorded = requests.clone();
    let app =
        axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            let recorded = recorded.clone();
            async move {
                let raw_query = uri.query().unwrap_or("").to_string();
                let req = Req {
                    method: method.to_string(),
                    path: sign::percent_decode(uri.path()),
                    query: sign::parse_query(&raw_query),
                    raw_query,
                    headers: headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                        .collect(),
                    body: body.to_vec(),
                };
                recorded.lock().unwrap().push(req.clone());
                let resp = handler(&req);
                if !resp.delay.is_zero() {
                    tokio::time::sleep(resp.delay).await;
                }
                let mut builder = Response::builder().status(resp.status);
                for (n, v) in &resp.headers {
                    builder = builder.header(n, v);
                }
                let body = if resp.chunked {
                    let chunks: Vec<Result<Bytes, Infallible>> = resp
                        .body
                        .chunks(1024)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    Body::from_stream(futures::stream::iter(chunks))
                } else {
                    Body::from(resp.body)
                };
                builder.body(body).unwrap()
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub { addr, requests, task }
}

/// Verify a request's signature as the gateway does. `Err` carries the server's string to sign.
pub fn verify(req: &Req, access_key_id: &str, secret: &str) -> Result<(), String> {
    let auth = req.header("authorization").ok_or("no Authorization header")?;
    if let Some(v3) = verify::parse_v3_authorization(auth) {
        if v3.access_key_id != access_key_id {
            return Err(format!("unknown AccessKey {}", v3.access_key_id));
        }
        let hash = req
            .header("x-acs-content-sha256")
            .ok_or("no x-acs-content-sha256")?;
        if hash != sign::sha256_hex(&req.body) {
            return Err("payload hash mismatch".into());
        }
        let sig = sign::v3_sign(
            &sign::V3Request {
                method: &req.method,
                path: &req.path,
                query: &req.query,
                headers: &req.headers,
                signed_headers: Some(&v3.signed_headers),
                payload_hash: hash,
            },
            secret,
        );
        if verify::constant_time_eq(&sig.signature, &v3.signature) {
            Ok(())
        } else {
            Err(sig.string_to_sign)
        }
    } else if let Some((id, sig)) = verify::parse_roa_authorization(auth) {
        if id != access_key_id {
            return Err(format!("unknown AccessKey {id}"));
        }
        let sts = sign::roa_string_to_sign(&req.method, &req.path, &req.query, &req.headers);
        if verify::constant_time_eq(&sign::roa_signature(&sts, secret), &sig) {
            Ok(())
        } else {
            Err(sts)
        }
    } else {
        Err("IncompleteSignature".into())
    }
}

//! The ECS instance metadata service as a RAM-role client uses it, hardened mode only: `PUT
//! /latest/api/token` (TTL header) first, then `GET
//! /latest/meta-data/ram/security-credentials/` (the role name) and `.../<role>` (temporary
//! credentials), each with the session token. Requests without a valid token are refused, as
//! an instance with IMDSv1 disabled does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use serde_json::json;

use super::sts::{Issued, expiration_text, issue, random_text};

pub const TOKEN_TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
pub const TOKEN_PATH: &str = "/latest/api/token";
pub const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// The instance's RAM role.
#[derive(Clone, Debug)]
pub struct EcsRoleConfig {
    pub role_name: String,
    /// How long issued credentials live (the real service hands out hours; tests go shorter).
    pub duration: Duration,
}

/// Session tokens handed out by `PUT /latest/api/token`, with their expiry.
#[derive(Default)]
pub struct Imds {
    tokens: Mutex<HashMap<String, Timestamp>>,
}

/// What the metadata service answers: status, content type (JSON or text) and body, plus
/// credentials to register with the verifier.
pub struct Answer {
    pub status: StatusCode,
    pub json: bool,
    pub body: String,
    pub issued: Option<Issued>,
}

fn text(status: StatusCode, body: &str) -> Answer {
    Answer {
        status,
        json: false,
        body: body.to_string(),
        issued: None,
    }
}

impl Imds {
    pub fn put_token(&self, headers: &HeaderMap, now: Timestamp) -> Answer {
        let ttl = headers
            .get(TOKEN_TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|t| (1..=21600).contains(t));
        let Some(ttl) = ttl else {
            return text(
                StatusCode::BAD_REQUEST,
                "X-aliyun-ecs-metadata-token-ttl-seconds must be between 1 and 21600",
            );
        };
        let token = random_text(48);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, exp| *exp > now);
        tokens.insert(
            token.clone(),
            now.saturating_add(jiff::SignedDuration::from_secs(ttl))
                .unwrap_or(now),
        );
        text(StatusCode::OK, &token)
    }

    fn token_ok(&self, headers: &HeaderMap, now: Timestamp) -> bool {
        let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(t).is_some_and(|exp| *exp > now)
    }

    /// `GET .../security-credentials/[role]`.
    pub fn get(
        &self,
        role: Option<&EcsRoleConfig>,
        rest: &str,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> Answer {
        if !self.token_ok(headers, now) {
            // Hardened mode: no (valid) session token, no metadata.
            return text(
                StatusCode::UNAUTHORIZED,
                "a valid X-aliyun-ecs-metadata-token is required",
            );
        }
        let Some(role) = role else {
            return text(StatusCode::NOT_FOUND, "no RAM role is attached to this instance");
        };
        if rest.is_empty() {
            return text(StatusCode::OK, &role.role_name);
        }
        if rest.trim_end_matches('/') != role.role_name {
            return text(StatusCode::NOT_FOUND, "Not Found");
        }
        let issued = issue(now, role.duration);
        let body = json!({
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "SecurityToken": issued.security_token,
            "Expiration": expiration_text(issued.expires),
            "LastUpdated": expiration_text(now),
            "Code": "Success",
        });
        Answer {
            status: StatusCode::OK,
            json: true,
            body: body.to_string(),
            issued: Some(issued),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_first_then_role_and_credentials() {
        let imds = Imds::default();
        let now = Timestamp::now();
        let role = EcsRoleConfig {
            role_name: "node-role".into(),
            duration: Duration::from_secs(3600),
        };
        let none = HeaderMap::new();
        assert_eq!(
            imds.get(Some(&role), "", &none, now).status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(imds.put_token(&none, now).status, StatusCode::BAD_REQUEST);
        let mut h = HeaderMap::new();
        h.insert(TOKEN_TTL_HEADER, "60".parse().unwrap());
        let token = imds.put_token(&h, now).body;
        let mut with = HeaderMap::new();
        with.insert(TOKEN_HEADER, token.parse().unwrap());
        assert_eq!(imds.get(Some(&role), "", &with, now).body, "node-role");
        let c = imds.get(Some(&role), "node-role", &with, now);
        assert!(c.json && c.issued.is_some());
        assert_eq!(
            imds.get(Some(&role), "other", &with, now).status,
            StatusCode::NOT_FOUND
        );
        let later = now.saturating_add(jiff::SignedDuration::from_secs(61)).unwrap();
        assert_eq!(
            imds.get(Some(&role), "", &with, later).status,
            StatusCode::UNAUTHORIZED
        );
    }
}

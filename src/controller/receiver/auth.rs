//! How a push proves it knows the receiver's token.
//!
//! Two schemes, both with the token from the receiver's Secret:
//!
//! - `Authorization: Bearer <token>`, for CI steps that can keep a secret header.
//! - An HMAC, for senders whose requests may be logged or replayed on the way (EventBridge
//!   targets, proxies): `X-Changeorder-Timestamp: <unix seconds>` and
//!   `X-Changeorder-Signature: sha256=<hex of HMAC-SHA256(key = token, "<timestamp>.<body>")>`.
//!   The timestamp is part of what is signed, and one more than [`REPLAY_WINDOW_SECS`] away from
//!   the operator's clock is refused, so a captured request stops working after five minutes.
//!
//! When the signature header is present only the HMAC scheme is tried. Every refusal is the same
//! [`Refused`], so the caller cannot tell (and the answer cannot say) which part was wrong.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-changeorder-signature";
/// Header carrying the unix time in seconds that was signed.
pub const TIMESTAMP_HEADER: &str = "x-changeorder-timestamp";
/// Largest accepted distance between the signed timestamp and now.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// The push did not authenticate. Deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unauthorized")]
pub struct Refused;

/// The request headers this module reads, already taken out of the request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
    pub timestamp: Option<&'a [u8]>,
}

/// Checks `credentials` against `token` for `body`, at unix time `now`.
pub fn verify(token: &[u8], credentials: Credentials<'_>, body: &[u8], now: i64) -> Result<(), Refused> {
    if token.is_empty() {
        return Err(Refused);
    }
    match credentials.signature {
        Some(signature) => verify_hmac(token, signature, credentials.timestamp, body, now),
        None => verify_bearer(token, credentials.authorization.ok_or(Refused)?),
    }
}

fn verify_bearer(token: &[u8], authorization: &[u8]) -> Result<(), Refused> {
    let given = authorization.strip_prefix(b"Bearer ").ok_or(Refused)?;
    // Compared as digests, so the comparison's time depends on neither length nor content.
    let (a, b) = (Sha256::digest(given), Sha256::digest(token));
    if constant_time_eq(&a, &b) {
        Ok(())
    } else {
        Err(Refused)
    }
}

fn verify_hmac(
    token: &[u8],
    signature: &[u8],
    timestamp: Option<&[u8]>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let timestamp = timestamp.ok_or(Refused)?;
    let seconds: i64 = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(Refused)?;
    let hex_sig = signature.strip_prefix(b"sha256=").ok_or(Refused)?;
    let given = hex::decode(hex_sig).map_err(|_| Refused)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token).map_err(|_| Refused)?;
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time. Checked before the clock so that a stale but
    // correctly signed request costs the same as a forged one.
    let signed = mac.verify_slice(&given).is_ok();
    let fresh = now.abs_diff(seconds) <= REPLAY_WINDOW_SECS.unsigned_abs();
    if signed && fresh { Ok(()) } else { Err(Refused) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signature header value a sender computes (also used by tests and docs examples).
pub fn sign(token: &[u8], timestamp: i64, body: &[u8]) -> Result<String, Refused> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).map_err(|_| Refused)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"s3cr3t-token";
    const NOW: i64 = 1_760_000_000;

    fn bearer(v: &[u8]) -> Credentials<'_> {
        Credentials {
            authorization: Some(v),
            ..Credentials::default()
        }
    }

    fn signed<'a>(sig: &'a str, ts: &'a str) -> Credentials<'a> {
        Credentials {
            signature: Some(sig.as_bytes()),
            timestamp: Some(ts.as_bytes()),
            ..Credentials::default()
        }
    }

    #[test]
    fn the_right_bearer_token_passes_and_any_other_fails() {
        assert_eq!(verify(TOKEN, bearer(b"Bearer s3cr3t-token"), b"", NOW), Ok(()));
        for wrong in [
            &b"Bearer s3cr3t-toke"[..],
            b"Bearer s3cr3t-token2",
            b"bearer s3cr3t-token",
            b"s3cr3t-token",
            b"Bearer ",
            b"",
        ] {
            assert_eq!(verify(TOKEN, bearer(wrong), b"", NOW), Err(Refused), "{wrong:?}");
        }
        assert_eq!(verify(TOKEN, Credentials::default(), b"", NOW), Err(Refused));
    }

    #[test]
    fn an_empty_token_never_passes() {
        assert_eq!(verify(b"", bearer(b"Bearer "), b"", NOW), Err(Refused));
    }

    #[test]
    fn a_signature_of_timestamp_and_body_passes_within_the_window() {
        let body = br#"{"release":"started"}"#;
        for ts in [NOW, NOW - 299, NOW + 299] {
            let sig = sign(TOKEN, ts, body).expect("sign");
            assert_eq!(
                verify(TOKEN, signed(&sig, &ts.to_string()), body, NOW),
                Ok(()),
                "{ts}"
            );
        }
    }

    /// The documented shell recipe (`printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac
    /// "$TOKEN" -hex`, docs/receiver.md) gives this signature.
    #[test]
    fn the_signature_is_the_one_openssl_computes() {
        assert_eq!(
            sign(TOKEN, NOW, b"{}").expect("sign"),
            "sha256=4f2279987ebe4fdc71b9454cad749509445e585e5be2f717000315a16a161bc4"
        );
    }

    #[test]
    fn stale_or_altered_signed_requests_fail() {
        let body = b"{}";
        let old = NOW - 301;
        let sig = sign(TOKEN, old, body).expect("sign");
        assert_eq!(
            verify(TOKEN, signed(&sig, &old.to_string()), body, NOW),
            Err(Refused),
            "replay"
        );
        let sig = sign(TOKEN, NOW, body).expect("sign");
        let ts = NOW.to_string();
        assert_eq!(
            verify(TOKEN, signed(&sig, &ts), b"{ }", NOW),
            Err(Refused),
            "body changed"
        );
        assert_eq!(
            verify(TOKEN, signed(&sig, &(NOW + 1).to_string()), body, NOW),
            Err(Refused),
            "timestamp changed"
        );
        assert_eq!(
            verify(b"other", signed(&sig, &ts), body, NOW),
            Err(Refused),
            "other token"
        );
        assert_eq!(
            verify(TOKEN, signed(&sig[7..], &ts), body, NOW),
            Err(Refused),
            "no prefix"
        );
        assert_eq!(
            verify(TOKEN, signed("sha256=zz", &ts), body, NOW),
            Err(Refused),
            "not hex"
        );
        let no_ts = Credentials {
            signature: Some(sig.as_bytes()),
            ..Credentials::default()
        };
        assert_eq!(verify(TOKEN, no_ts, body, NOW), Err(Refused), "no timestamp");
        // A signature header present means the signature decides, even with a valid bearer.
        let both = Credentials {
            authorization: Some(b"Bearer s3cr3t-token"),
            signature: Some(b"sha256=00"),
            timestamp: Some(ts.as_bytes()),
        };
        assert_eq!(verify(TOKEN, both, body, NOW), Err(Refused));
    }
}

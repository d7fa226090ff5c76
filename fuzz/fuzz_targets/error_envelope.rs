//! Error envelopes (and the success check) of all three clouds: any status and body through
//! `classify_reply`, the function every call's reply goes through.
#![no_main]

use changeorder_cloud::ErrorKind;
use changeorder_cloud::error::RAW_EXCERPT_CHARS;
use changeorder_cloud::http::classify_reply;
use changeorder_cloud::model::Provider;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: provider and which kind a bare 404 means; next two: the HTTP status.
    let [selector, hi, lo, body @ ..] = data else {
        return;
    };
    let provider = Provider::ALL[usize::from(*selector % 3)];
    let not_found = if selector & 0x80 == 0 {
        ErrorKind::AppNotFound
    } else {
        ErrorKind::OrderNotFound
    };
    let status = 100 + u16::from_be_bytes([*hi, *lo]) % 500;
    let ok_status = (200..300).contains(&status);
    match classify_reply(provider, status, body, not_found) {
        Ok(v) => {
            assert!(ok_status, "HTTP {status} accepted");
            assert!(v.is_object(), "a non-object accepted");
            // STS's AssumeRoleWithOIDC reply goes through the same envelope.
            if let Ok((_, expires)) = changeorder_cloud::sts::parse_assumed(&v) {
                let _ = expires.saturating_add(jiff::SignedDuration::from_secs(300));
            }
        }
        Err(e) => {
            assert_eq!(e.http_status, Some(status));
            let line = e.to_string();
            assert!(!line.contains(['\n', '\r']), "multi-line error: {line:?}");
            if let Some(raw) = &e.raw {
                assert!(
                    raw.chars().count() <= RAW_EXCERPT_CHARS + 1,
                    "raw excerpt too long"
                );
            }
            if e.kind.is_retryable() {
                assert!(e.is_retryable());
            }
            if serde_json::from_slice::<serde_json::Value>(body).is_err() {
                // Not JSON: the status alone decides.
                let want = if ok_status {
                    ErrorKind::BadReply
                } else {
                    ErrorKind::classify(None, Some(status), not_found)
                };
                assert_eq!(e.kind, want);
            }
            if status == 429 && e.code.is_none() {
                assert_eq!(e.kind, ErrorKind::Throttled);
            }
        }
    }
});

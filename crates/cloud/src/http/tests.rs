use super::*;

#[test]
fn redaction_of_echoed_secrets() {
    let creds = Credentials::AccessKey {
        access_key_id: "id".into(),
        access_key_secret: "SuperSecret".into(),
        security_token: Some("StsTok3n".into()),
    };
    let e = CloudError::new(
        ErrorKind::SignatureMismatch,
        "string to sign: x-acs-security-token:StsTok3n",
    )
    .with_raw(b"StsTok3n SuperSecret");
    let r = redact(e, &creds);
    assert!(!r.message.contains("StsTok3n"));
    assert!(!r.raw.as_deref().unwrap_or("").contains("SuperSecret"));
}

/// A rate-limit wait from a reply header must not overflow `Instant` (that panicked with
/// "overflow when adding duration to instant"); it is capped like `parse_ratelimit`'s.
#[test]
fn huge_gate_wait_does_not_panic() {
    let tr = Transport::new(ClientConfig::default()).expect("transport");
    tr.set_gate("k", Duration::MAX);
    let until = tr.gates.lock().expect("gates")["k"];
    assert!(until <= Instant::now() + crate::error::MAX_RATELIMIT_WAIT);
}

#[test]
fn url_building() {
    let base = Url::parse("http://127.0.0.1:8080/proxy/").unwrap();
    let u = build_url(&base, "/pop/v5/x", &[("AppId".into(), "a b*".into())]).unwrap();
    assert_eq!(u.as_str(), "http://127.0.0.1:8080/proxy/pop/v5/x?AppId=a%20b%2A");
    assert_eq!(host_header(&u), "127.0.0.1:8080");
    let base = Url::parse("https://sae.cn-hangzhou.aliyuncs.com").unwrap();
    let u = build_url(&base, "/pop/v1/sam/changeorder/ListChangeOrders", &[]).unwrap();
    assert_eq!(
        u.as_str(),
        "https://sae.cn-hangzhou.aliyuncs.com/pop/v1/sam/changeorder/ListChangeOrders"
    );
    assert_eq!(host_header(&u), "sae.cn-hangzhou.aliyuncs.com");
    let base = Url::parse("https://example.com:443/").unwrap();
    assert_eq!(host_header(&build_url(&base, "/a", &[]).unwrap()), "example.com");
}

#[test]
fn backoff_is_capped_and_jittered() {
    let p = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(350),
        max_wait: Duration::from_secs(1),
    };
    for attempt in 1..40 {
        let d = p.backoff(attempt);
        assert!(d <= Duration::from_millis(350), "{attempt} {d:?}");
    }
    assert!(p.backoff(1) <= Duration::from_millis(100));
    let zero = RetryPolicy {
        base_delay: Duration::ZERO,
        ..p
    };
    assert_eq!(zero.backoff(3), Duration::ZERO);
}

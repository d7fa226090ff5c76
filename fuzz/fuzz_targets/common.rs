//! Invariants shared by the fuzz targets. Each target includes this file as a module; not every
//! target uses every check.
#![allow(dead_code)]

use changeorder_cloud::model::{CloudOrder, Provider};
use changeorder_operator::mapping;

/// A fixed "now", so a failing input reproduces exactly.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_750_000_000).expect("valid timestamp")
}

fn assert_text(what: &str, s: &Option<String>) {
    if let Some(s) = s {
        // The lenient readers drop empty values and trim what they keep.
        assert!(!s.trim().is_empty(), "{what} is blank: {s:?}");
    }
}

/// What holds for every order a parser returns, from a list or a detail reply.
pub fn check_order(o: &CloudOrder, provider: Provider) {
    assert_eq!(o.provider, provider);
    assert!(!o.id.is_empty(), "empty order id");
    assert_text("order_type", &o.order_type);
    assert_text("type_code", &o.type_code);
    assert_text("description", &o.description);
    assert_text("creator", &o.creator);
    assert_text("batch_type", &o.batch_type);
    assert_text("message", &o.message);
    for b in &o.batches {
        assert_text("batch message", &b.message);
        assert_text("batch id", &b.id);
    }
    if let Some(c) = o.current_batch {
        // 1-based and pointing at a batch the order has.
        assert!(c >= 1, "current batch 0");
        assert!(
            usize::try_from(c).is_ok_and(|c| c <= o.batches.len()),
            "current batch {c} of {} batches",
            o.batches.len()
        );
    }
    // The mapping to a status must accept whatever the parsers produce.
    let status = mapping::desired_status(o, Some(1), None, now());
    assert!(status.phase.is_some());
    assert_eq!(status.batches.len(), o.batches.len());
    serde_json::to_string(&status).expect("status serialises");
}

/// A list reply's orders: not detailed, no batches, ids unique.
pub fn check_listed(orders: &[CloudOrder], provider: Provider, unique: bool) {
    for (i, o) in orders.iter().enumerate() {
        check_order(o, provider);
        assert!(!o.detailed, "a list item claims to be detailed");
        assert!(o.batches.is_empty(), "a list item has batches");
        assert_eq!(o.current_batch, None);
        if unique {
            assert!(
                !orders[..i].iter().any(|p| p.id == o.id),
                "duplicate id {:?}",
                o.id
            );
        }
    }
}

/// A detail reply's order, and its merge with what a list said about it.
pub fn check_detail(o: &CloudOrder, provider: Provider, requested: &str) {
    check_order(o, provider);
    assert!(o.detailed, "a detail is not marked detailed");
    if requested.trim() == requested && !requested.is_empty() {
        // A reply that names no order is about the one asked for.
        assert!(!o.id.is_empty());
    }
    if !o.batches.is_empty() {
        assert!(o.batch_count.is_some(), "batches but no batch count");
    }
    let mut listed = CloudOrder::new(provider, o.id.clone(), o.status.clone());
    listed.creator = Some("from-the-list".into());
    let merged = changeorder_cloud::common::merge(&listed, o.clone());
    assert_eq!(merged.id, o.id);
    assert!(merged.detailed);
    assert_eq!(merged.batches, o.batches);
    assert!(merged.creator.is_some());
}

/// One dot-separated part of a DNS-1123 subdomain: `[a-z0-9-]`, alphanumeric at both ends.
/// (Kubernetes' `IsDNS1123Subdomain` checks only this pattern and the total length, not the
/// 63-character limit of a DNS label, so neither does this.)
fn dns_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain, as the API server checks object names.
pub fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_part)
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub fn label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

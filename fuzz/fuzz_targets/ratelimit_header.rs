//! The rate-limit headers (`x-ratelimit-user-api: Limit:1,Remain:0,TimeLeft:1500,...`).
#![no_main]

use changeorder_cloud::error::{MAX_RATELIMIT_WAIT, parse_ratelimit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Header values that are not text never reach the parser (`to_str` fails first).
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Some(wait) = parse_ratelimit(value) else {
        return;
    };
    assert!(!wait.is_zero(), "a zero wait for {value:?}");
    assert!(wait <= MAX_RATELIMIT_WAIT, "{wait:?} for {value:?}");
    // The client adds the wait to the clock to gate the next call.
    assert!(std::time::Instant::now().checked_add(wait).is_some());
    // Calls left means nothing to wait for: a header that says so in its last `Remain` never
    // asks for a wait.
    let last_remain = value
        .split([',', ';'])
        .filter_map(|p| p.split_once([':', '=']))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("remain"))
        .map(|(_, v)| v.trim().parse::<i64>().ok())
        .next_back()
        .flatten();
    assert!(
        last_remain.is_none_or(|r| r <= 0),
        "wait despite Remain {last_remain:?}"
    );
});

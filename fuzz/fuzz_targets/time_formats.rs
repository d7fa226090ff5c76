//! The clouds' time formats and UTC offsets (`cloud::time`), and the simulator's writers of those
//! formats read back by the client.
#![no_main]

use changeorder_cloud::time::{parse_offset, parse_time, parse_time_str};
use changeorder_sim::state::{epoch_ms, iso, zoneless};
use jiff::tz::Offset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Some(o) = parse_offset(s) {
        let secs = o.seconds();
        assert!(secs.abs() < 24 * 3600, "{s:?} gave {secs} s");
        assert_eq!(secs % 60, 0, "{s:?} gave seconds");
        // What the CRD's pattern documents (`+08:00`) reads back as the same offset.
        let sign = if secs < 0 { '-' } else { '+' };
        let text = format!("{sign}{:02}:{:02}", secs.abs() / 3600, secs.abs() % 3600 / 60);
        assert_eq!(parse_offset(&text), Some(o), "{text:?}");
    }

    let cst = Offset::constant(8);
    let utc = parse_time_str(s, Offset::UTC);
    let local = parse_time_str(s, cst);
    if let (Some(u), Some(l)) = (utc, local) {
        // The configured zone applies only to zone-less times, and then shifts by its offset.
        let shift = u.duration_since(l).as_secs();
        assert!(shift == 0 || shift == 8 * 3600, "{s:?}: {u} vs {l}");
    }

    if let Some(ts) = local {
        let year = ts.to_zoned(cst.to_time_zone()).year();
        if (1974..=9998).contains(&year) {
            // The simulator writes these three forms; the client must read each back.
            let whole = jiff::Timestamp::from_second(ts.as_second()).expect("in range");
            assert_eq!(
                parse_time_str(&zoneless(ts, cst), cst),
                Some(whole),
                "zoneless {ts}"
            );
            let ms = jiff::Timestamp::from_millisecond(ts.as_millisecond()).expect("in range");
            assert_eq!(parse_time_str(&iso(ts), cst), Some(ms), "iso {ts}");
            let epoch = serde_json::json!(epoch_ms(ts));
            assert_eq!(parse_time(&epoch, cst), Some(ms), "epoch {ts}");
        }
    }

    if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
        let _ = parse_time(&v, cst);
    }
});

use super::*;

#[tokio::test(start_paused = true)]
async fn shared_per_credential_and_refills_at_the_rate() {
    let budget = Budget::new(60); // 1 per second, burst 6
    for _ in 0..6 {
        assert!(budget.try_take("a").is_ok());
    }
    let wait = budget.try_take("a").expect_err("burst spent");
    assert!(
        wait <= Duration::from_secs(1) && wait > Duration::ZERO,
        "{wait:?}"
    );
    // Another credential has its own budget.
    assert!(budget.try_take("b").is_ok());
    // A clone shares the same buckets (all watches use one Budget).
    assert!(budget.clone().try_take("a").is_err());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(budget.try_take("a").is_ok());
    assert!(budget.try_take("a").is_ok());
    assert!(budget.try_take("a").is_err());

    // 30 calls at 60/min after the burst take about 24 more seconds.
    let start = Instant::now();
    for _ in 0..30 {
        budget.take("c").await;
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(23) && took <= Duration::from_secs(25),
        "{took:?}"
    );
}

fn claim(poller: &str) -> Claim<'_> {
    Claim {
        poller,
        in_flight: true,
    }
}

/// Spend `calls` calls at once, as a poll does after its wait.
fn spend(budget: &Budget, key: &str, calls: u32) {
    for _ in 0..calls {
        budget.try_take(key).expect("a call was available");
    }
}

#[tokio::test(start_paused = true)]
async fn a_poller_needing_more_calls_is_not_starved_by_smaller_ones() {
    let budget = Budget::new(60); // 1 per second, burst 6
    spend(&budget, "k", 6);
    // "big" needs 4 calls and is told to wait; "small" pollers needing 1 call keep coming.
    let wait_big = budget.wait_for_calls("k", 4, &claim("big")).expect("must wait");
    let mut big_polled_at = None;
    for second in 1..=20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        if big_polled_at.is_none() && budget.wait_for_calls("k", 4, &claim("big")).is_none() {
            spend(&budget, "k", 4);
            big_polled_at = Some(second);
        }
        let small = format!("small-{}", second % 3);
        if budget.wait_for_calls("k", 1, &claim(&small)).is_none() {
            spend(&budget, "k", 1);
        }
    }
    // Without the queue, each token was taken by a small poller as soon as it came.
    let at = big_polled_at.expect("the large poller polled");
    assert!(
        Duration::from_secs(at) <= wait_big + Duration::from_secs(1),
        "polled after {at} s, told {wait_big:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_polls_take_only_what_the_queue_leaves() {
    let budget = Budget::new(60);
    spend(&budget, "k", 6);
    let first = budget.wait_for_calls("k", 3, &claim("busy")).expect("wait");
    tokio::time::advance(first).await;
    let idle = Claim {
        poller: "idle",
        in_flight: false,
    };
    // The tokens that came are claimed by the queued poller, not by the idle one.
    assert!(budget.wait_for_calls("k", 1, &idle).is_some());
    assert!(budget.wait_for_calls("k", 3, &claim("busy")).is_none());
}

#[tokio::test(start_paused = true)]
async fn the_round_serves_every_order_in_flight_after_every_watchs_list() {
    let budget = Budget::new(60); // 1 call per second
    fn demand(poller: &str, describes: u32) -> Demand<'_> {
        Demand {
            poller,
            describes,
            interval: Duration::from_secs(120),
        }
    }
    // 10 idle watches listing every 2 minutes.
    for i in 0..10 {
        let _ = budget.round("k", &demand(&format!("idle-{i}"), 0));
    }
    // 20 watches with 1 order in flight each: 20 describes a round, and their lists.
    let mut round = Duration::ZERO;
    for i in 0..20 {
        round = budget.round("k", &demand(&format!("busy-{i}"), 1)).round;
    }
    // 30 lists every 2 minutes take a quarter call a second; the describes get the rest.
    let want = 20.0 / (PLANNED_USE - 30.0 / 120.0);
    assert!((round.as_secs_f64() - want).abs() < 0.01, "{round:?}");
    // A watch whose orders finished no longer counts in the round.
    let after = budget.round("k", &demand("busy-0", 0)).round;
    assert!(after < round, "{after:?}");
    // Lists never take more than half of the planned calls.
    for i in 0..100 {
        let _ = budget.round("k", &demand(&format!("more-idle-{i}"), 0));
    }
    let crowded = budget.round("k", &demand("busy-0", 1)).round;
    let want = 20.0 / (PLANNED_USE / 2.0);
    assert!((crowded.as_secs_f64() - want).abs() < 0.01, "{crowded:?}");
    // Forgotten after a while without news (a deleted watch).
    tokio::time::advance(DEMAND_TTL + Duration::from_secs(1)).await;
    let alone = budget.round("k", &demand("busy-1", 2)).round;
    let want = 2.0 / (PLANNED_USE - 1.0 / 120.0);
    assert!((alone.as_secs_f64() - want).abs() < 0.01, "{alone:?}");
    // Another account has its own round.
    assert_eq!(budget.round("other", &demand("x", 0)).round, Duration::ZERO);
}

fn access_key(id: &str, secret: &str) -> Credentials {
    Credentials::AccessKey {
        access_key_id: id.into(),
        access_key_secret: secret.into(),
        security_token: None,
    }
}

#[tokio::test(start_paused = true)]
async fn every_key_of_one_account_spends_one_budget() {
    let budget = Budget::new(60); // burst 6
    let (a, b) = (access_key("key-a", "s-a"), access_key("key-b", "s-b"));
    let elsewhere = access_key("key-c", "s-c");
    budget.owners().learn(&a, "42", None);
    budget.owners().learn(&b, "42", None);
    let host = "sae.cn-hangzhou.aliyuncs.com";
    assert_eq!(budget.key_for(&a, host), budget.key_for(&b, host));
    assert_eq!(budget.key_for(&a, host), format!("account:42@{host}"));
    for _ in 0..3 {
        budget.try_take(&budget.key_for(&a, host)).expect("a");
        budget.try_take(&budget.key_for(&b, host)).expect("b");
    }
    // Six calls between the two keys spent the account's burst.
    assert!(budget.try_take(&budget.key_for(&b, host)).is_err());
    // A key whose account is not known has its own budget; another host too.
    assert!(budget.try_take(&budget.key_for(&elsewhere, host)).is_ok());
    assert!(
        budget
            .try_take(&budget.key_for(&a, "edas.cn-hangzhou.aliyuncs.com"))
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn an_unproven_credential_gets_a_small_budget_of_its_own() {
    let budget = Budget::new(60);
    let owner = access_key("key-a", "the-secret");
    let borrowed = access_key("key-a", "a-guess");
    budget.owners().learn(&owner, "42", None);
    budget.owners().set(&borrowed, Owner::Unproven);
    let host = "h";
    let key = budget.key_for(&borrowed, host);
    assert_ne!(key, budget.key_for(&owner, host));
    assert!(!key.contains("the-secret") && !key.contains("a-guess"), "{key}");
    // One call, then a tenth of the rate: one call every ten seconds.
    budget.try_take(&key).expect("first call");
    let wait = budget.try_take(&key).expect_err("spent");
    assert!(wait > Duration::from_secs(9), "{wait:?}");
    // The owner's budget is whole.
    for _ in 0..6 {
        budget.try_take(&budget.key_for(&owner, host)).expect("owner");
    }
}

/// A watch whose credential rotates 10,000 times (an STS refresh or a Secret rotation each
/// second): the buckets of credentials no longer used are freed, so their number stays flat.
#[tokio::test(start_paused = true)]
async fn ten_thousand_rotations_keep_the_buckets_bounded() {
    let budget = Budget::new(60);
    let mut peak = 0;
    for i in 0..10_000 {
        let creds = access_key(&format!("STS.rotated-{i}"), &format!("secret-{i}"));
        let key = budget.key_for(&creds, "h");
        assert!(
            budget.wait_for_calls(&key, 1, &claim("w")).is_none(),
            "rotation {i}"
        );
        spend(&budget, &key, 1);
        let _ = budget.round(
            &key,
            &Demand {
                poller: "w",
                describes: 1,
                interval: Duration::from_secs(60),
            },
        );
        peak = peak.max(budget.buckets());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let per_bucket = std::mem::size_of::<Account>()
        + std::mem::size_of::<String>()
        + "unproven:ak:STS.rotated-10000:0123456789ab@h".len()
        + std::mem::size_of::<(String, Recorded)>()
        + "00000000-0000-0000-0000-000000000000".len();
    eprintln!(
        "10,000 rotations: at most {peak} buckets live (about {per_bucket} bytes each, {} bytes)",
        peak * per_bucket
    );
    assert!(peak <= 8, "{peak} buckets live at once");
}

/// The backfill gets only what no poll needs: half a burst from a full bucket, nothing while a
/// poller waits, and nothing again until what it was given has been refilled.
#[tokio::test(start_paused = true)]
async fn spare_calls_come_only_from_an_idle_bucket() {
    let budget = Budget::new(60); // burst 6, one call a second
    let key = "k";
    assert_eq!(budget.spare(key, 10), 3, "half of a full burst");
    assert_eq!(budget.spare(key, 10), 0, "not again before it is refilled");
    spend(&budget, key, 3);
    tokio::time::advance(Duration::from_secs(3)).await;
    // Refilled to 6 - 3 + 3 = 6 once the claim has passed.
    assert_eq!(budget.spare(key, 10), 3);
    spend(&budget, key, 3);
    tokio::time::advance(Duration::from_secs(3)).await;
    // A poller of orders in flight is queued for more calls than the bucket has: nothing spare.
    spend(&budget, key, 5);
    assert!(budget.wait_for_calls(key, 4, &claim("busy")).is_some());
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(budget.spare(key, 10), 0, "a poller waits");
    // Its poll goes first; then the bucket refills and the backfill gets calls again.
    assert!(budget.wait_for_calls(key, 4, &claim("busy")).is_none());
    spend(&budget, key, 4);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(budget.spare(key, 10), 3);
}

/// A small ask holds back only its own calls: the next watch's ask is served as soon as those
/// are refilled, not after half a burst's worth of time.
#[tokio::test(start_paused = true)]
async fn a_small_spare_ask_holds_back_only_what_it_took() {
    let budget = Budget::new(600); // burst 60, ten calls a second
    let key = "k";
    assert_eq!(budget.spare(key, 2), 2);
    assert_eq!(budget.spare(key, 2), 0, "not before those two are refilled");
    tokio::time::advance(Duration::from_millis(250)).await;
    assert_eq!(
        budget.spare(key, 2),
        2,
        "the next ask, a quarter of a second later"
    );
    assert_eq!(budget.spare(key, 0), 0);
}

/// A fleet whose lists at their intervals are more than the budget serves is slowed down evenly:
/// every watch lists at the same stretched interval, and less often still while orders are in
/// flight (their describes keep half the budget).
#[tokio::test(start_paused = true)]
async fn an_over_large_fleet_lists_evenly_slower() {
    let budget = Budget::new(60); // 1 call per second
    fn idle(poller: &str) -> Demand<'_> {
        Demand {
            poller,
            describes: 0,
            interval: Duration::from_secs(120),
        }
    }
    let mut last = None;
    for i in 0..100 {
        last = Some(budget.round("k", &idle(&format!("w{i}"))));
    }
    // 100 lists every 2 minutes: fewer than 0.95 calls a second, served at their interval.
    assert_eq!(last.map(|p| p.list_every), Some(Duration::from_secs(120)));
    for i in 100..300 {
        let _ = budget.round("k", &idle(&format!("w{i}")));
    }
    // 300 lists every 2 minutes are 2.5 calls a second: each watch lists every 2.5 / 0.95 × 2 min.
    let paced = budget.round("k", &idle("w0")).list_every;
    let want = 120.0 * (300.0 / 120.0) / PLANNED_USE;
    assert!((paced.as_secs_f64() - want).abs() < 0.01, "{paced:?}");
    let other = budget.round("k", &idle("w299")).list_every;
    assert_eq!(paced, other, "not every watch is slowed alike");
    // One order in flight anywhere: lists get half the budget.
    let busy = budget.round(
        "k",
        &Demand {
            poller: "w1",
            describes: 1,
            interval: Duration::from_secs(120),
        },
    );
    assert!(
        (busy.list_every.as_secs_f64() - 2.0 * want).abs() < 0.01,
        "{busy:?}"
    );
    // A watch whose lists cost nothing of its own (a shared namespace list) is not paced.
    let shared = budget.round(
        "k",
        &Demand {
            poller: "s",
            describes: 0,
            interval: Duration::ZERO,
        },
    );
    assert_eq!(shared.list_every, Duration::ZERO);
}

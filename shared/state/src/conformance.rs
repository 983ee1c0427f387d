//! The conformance suite every [`StateStore`] runs (memory, embedded, DynamoDB, Durable Objects):
//! same commands, same answers. Returns the first violation as an error message.

use crate::{Book, BreakerConfig, Command, Exhausted, Reply, Reserve, Settle, StateStore, Tally};
use futures_util::future::join_all;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 2,
        cooldown_ms: 1_000,
        max_cooldown_ms: 4_000,
        trial_lease_ms: 10_000,
        ..BreakerConfig::default()
    }
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

async fn run<S: StateStore>(s: &S, key: &str, cmd: Command, now: u64) -> Result<Reply, String> {
    s.apply(key, &cmd, now).await.map_err(|e| e.to_string())
}

/// Runs every case; `prefix` keeps keys apart when stores are shared between runs.
pub async fn run_all<S: StateStore>(s: &S, prefix: &str) -> Result<(), String> {
    let t0 = 1_800_000_000_000u64;
    // A breaker opens, rejects with the remaining cooldown, and recovers through one trial.
    let k = format!("{prefix}:breaker");
    check!(
        run(s, &k, Command::Admit(cfg()), t0).await? == Reply::Allow,
        "fresh key must allow"
    );
    for i in 0..2 {
        run(
            s,
            &k,
            Command::Record {
                config: cfg(),
                success: false,
            },
            t0 + i,
        )
        .await?;
    }
    let r = run(s, &k, Command::Admit(cfg()), t0 + 500).await?;
    check!(
        r == Reply::Reject {
            retry_after_ms: 501
        },
        "open breaker must reject with the remaining cooldown, got {r:?}"
    );
    check!(
        run(s, &k, Command::Admit(cfg()), t0 + 1_001).await? == Reply::Trial,
        "cooldown over: a trial"
    );
    let r = run(s, &k, Command::Admit(cfg()), t0 + 1_002).await?;
    check!(
        matches!(r, Reply::Reject { .. }),
        "a second concurrent trial must be rejected, got {r:?}"
    );
    run(
        s,
        &k,
        Command::Record {
            config: cfg(),
            success: true,
        },
        t0 + 1_003,
    )
    .await?;
    check!(
        run(s, &k, Command::Admit(cfg()), t0 + 1_004).await? == Reply::Allow,
        "a good trial closes the breaker"
    );

    // Expired records are treated as absent, whatever the store's TTL sweeper has done.
    let k = format!("{prefix}:counter");
    let add = |n, now| {
        run(
            s,
            &k,
            Command::Add {
                amount: n,
                window_ms: 1_000,
            },
            now,
        )
    };
    check!(
        add(2, t0).await? == Reply::Total { total: 2 },
        "counter starts at the amount"
    );
    check!(
        add(3, t0 + 999).await? == Reply::Total { total: 5 },
        "counter sums in its window"
    );
    check!(
        add(1, t0 + 5_000).await? == Reply::Total { total: 1 },
        "a new window starts over"
    );

    // 100 concurrent commands on one key: exact result, no lost update.
    let k = format!("{prefix}:concurrent");
    let replies = join_all((0..100).map(|_| {
        run(
            s,
            &k,
            Command::Add {
                amount: 1,
                window_ms: 60_000,
            },
            t0,
        )
    }))
    .await;
    let mut totals = Vec::new();
    for r in replies {
        match r? {
            Reply::Total { total } => totals.push(total),
            other => return Err(format!("unexpected reply {other:?}")),
        }
    }
    totals.sort_unstable();
    check!(
        totals == (1..=100).collect::<Vec<_>>(),
        "100 concurrent adds must see 1..=100 exactly once each, got {totals:?}"
    );

    // Concurrent admits on a breaker whose cooldown is over: exactly one trial.
    let k = format!("{prefix}:race");
    for i in 0..2 {
        run(
            s,
            &k,
            Command::Record {
                config: cfg(),
                success: false,
            },
            t0 + i,
        )
        .await?;
    }
    let replies = join_all((0..20).map(|_| run(s, &k, Command::Admit(cfg()), t0 + 2_000))).await;
    let trials = replies
        .into_iter()
        .filter(|r| matches!(r, Ok(Reply::Trial)))
        .count();
    check!(
        trials == 1,
        "exactly one half-open trial under a race, got {trials}"
    );
    // No lost update on a key that had a record before (now a tombstone): 10 concurrent
    // failures against a threshold of 10 must open the breaker.
    let k = format!("{prefix}:lost");
    let ten = BreakerConfig {
        consecutive_failures: 10,
        failure_rate_percent: 0,
        ..cfg()
    };
    let rec = |success, now| {
        run(
            s,
            &k,
            Command::Record {
                config: ten.clone(),
                success,
            },
            now,
        )
    };
    rec(false, t0).await?;
    rec(true, t0 + ten.window_ms).await?; // the window rolled: clean again, a tombstone
    let later = t0 + ten.window_ms + 1;
    for r in join_all((0..10).map(|_| rec(false, later))).await {
        r?;
    }
    let r = run(s, &k, Command::Admit(ten.clone()), later + 1).await?;
    check!(
        matches!(r, Reply::Reject { .. }),
        "10 concurrent failures must all count, got {r:?}"
    );
    // An upstream's `retry-after` cools a credential down for exactly that long, without a trip.
    let k = format!("{prefix}:cooldown");
    let cool = Command::Cooldown {
        config: cfg(),
        until_ms: t0 + 3_600_000,
    };
    run(s, &k, cool, t0).await?;
    let r = run(s, &k, Command::Admit(cfg()), t0 + 600_000).await?;
    check!(
        r == Reply::Reject {
            retry_after_ms: 3_000_000
        },
        "a cooldown of an hour rejects for what is left of it, got {r:?}"
    );
    let r = run(s, &k, Command::Inspect, t0 + 600_000).await?;
    check!(
        r == Reply::Breaker {
            open_until_ms: t0 + 3_600_000,
            half_open: false,
            consecutive: 0
        },
        "an inspection reads the cooldown, got {r:?}"
    );
    check!(
        run(s, &k, Command::Admit(cfg()), t0 + 3_600_000).await? == Reply::Trial,
        "then one trial"
    );
    // A mark is set once: of 20 concurrent callers exactly one is first; it lapses on time.
    let k = format!("{prefix}:once");
    let once = || {
        run(
            s,
            &k,
            Command::Once {
                until_ms: t0 + 1_000,
            },
            t0,
        )
    };
    let firsts = join_all((0..20).map(|_| once()))
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Reply::First)))
        .count();
    check!(firsts == 1, "exactly one first under a race, got {firsts}");
    check!(
        run(
            s,
            &k,
            Command::Once {
                until_ms: t0 + 2_000
            },
            t0 + 1_000
        )
        .await?
            == Reply::First,
        "a lapsed mark can be set again"
    );
    windows(s, prefix, t0).await?;
    ledger(s, prefix, t0).await
}

fn reserve(
    start_ms: u64,
    requests: u64,
    tokens: u64,
    max_requests: u64,
    max_tokens: u64,
) -> Command {
    Command::Reserve(Reserve {
        start_ms,
        end_ms: start_ms + 60_000,
        requests,
        tokens,
        max_requests,
        max_tokens,
    })
}

fn settle(start_ms: u64, requests: i64, tokens: i64) -> Command {
    Command::Settle(Settle {
        start_ms,
        end_ms: start_ms + 60_000,
        requests,
        tokens,
    })
}

/// Request and token windows: limits hold, corrections count, windows roll, and 200 concurrent
/// reservations against a limit of 50 let exactly 50 through.
async fn windows<S: StateStore>(s: &S, prefix: &str, t0: u64) -> Result<(), String> {
    let w0 = t0 - t0 % 60_000;
    let k = format!("{prefix}:window");
    for i in 1..=3 {
        let r = run(s, &k, reserve(w0, 1, 10, 3, 1_000), w0 + i).await?;
        check!(
            r == Reply::Reserved {
                requests: i,
                tokens: 10 * i
            },
            "reservation {i} within the limits, got {r:?}"
        );
    }
    let r = run(s, &k, reserve(w0, 1, 10, 3, 1_000), w0 + 20_000).await?;
    check!(
        r == Reply::Limited {
            which: Exhausted::Requests,
            retry_after_ms: 40_000
        },
        "the 4th request of 3 is refused until the window ends, got {r:?}"
    );
    let k = format!("{prefix}:tokens");
    check!(
        matches!(
            run(s, &k, reserve(w0, 1, 60, u64::MAX, 100), w0).await?,
            Reply::Reserved { .. }
        ),
        "60 of 100 tokens"
    );
    let r = run(s, &k, reserve(w0, 1, 50, u64::MAX, 100), w0 + 1).await?;
    check!(
        matches!(
            r,
            Reply::Limited {
                which: Exhausted::Tokens,
                ..
            }
        ),
        "60 + 50 > 100 is refused, got {r:?}"
    );
    let r = run(s, &k, settle(w0, 0, -30), w0 + 2).await?;
    check!(
        r == Reply::Reserved {
            requests: 1,
            tokens: 30
        },
        "a correction replies with the window's totals, got {r:?}"
    );
    let r = run(s, &k, reserve(w0, 1, 50, u64::MAX, 100), w0 + 3).await?;
    check!(
        r == Reply::Reserved {
            requests: 2,
            tokens: 80
        },
        "a settled estimate frees tokens (60 - 30 + 50), got {r:?}"
    );
    // The next window starts over; a late correction to the old one does not leak into it.
    let w1 = w0 + 60_000;
    check!(
        run(s, &k, reserve(w1, 1, 90, u64::MAX, 100), w1).await?
            == Reply::Reserved {
                requests: 1,
                tokens: 90
            },
        "a new window starts over"
    );
    let r = run(s, &k, Command::Peek { start_ms: w1 }, w1 + 1).await?;
    check!(
        r == Reply::Reserved {
            requests: 1,
            tokens: 90
        },
        "a peek reads the window, got {r:?}"
    );
    run(s, &k, settle(w0, 0, -80), w1 + 1).await?;
    let r = run(s, &k, reserve(w1, 1, 20, u64::MAX, 100), w1 + 2).await?;
    check!(
        matches!(
            r,
            Reply::Limited {
                which: Exhausted::Tokens,
                ..
            }
        ),
        "a correction to an old window leaves the new one alone, got {r:?}"
    );

    let k = format!("{prefix}:rpm-race");
    let replies =
        join_all((0..200).map(|_| run(s, &k, reserve(w0, 1, 0, 50, u64::MAX), w0 + 5))).await;
    let mut admitted = 0;
    for r in replies {
        match r? {
            Reply::Reserved { .. } => admitted += 1,
            Reply::Limited {
                which: Exhausted::Requests,
                ..
            } => {}
            other => return Err(format!("unexpected reply {other:?}")),
        }
    }
    check!(
        admitted == 50,
        "200 concurrent reservations against 50 requests per minute: {admitted} admitted"
    );
    Ok(())
}

/// The spend ledger: concurrent additions from many callers sum exactly, entries stay apart,
/// periods stay apart, and a record that never expires is kept.
async fn ledger<S: StateStore>(s: &S, prefix: &str, t0: u64) -> Result<(), String> {
    let k = format!("{prefix}:ledger:day");
    let day = t0 - t0 % 86_400_000;
    let one = |name: &str, tokens: u64, micros: u64| Book {
        start_ms: day,
        expires_at_ms: day + 86_400_000,
        entries: vec![(
            name.to_owned(),
            Tally {
                requests: 1,
                tokens,
                micros,
            },
        )],
    };
    let both = Book {
        entries: vec![
            (
                "k:ci".into(),
                Tally {
                    requests: 1,
                    tokens: 10,
                    micros: 7,
                },
            ),
            (
                "m:openai/gpt-4o|x y".into(),
                Tally {
                    requests: 1,
                    tokens: 10,
                    micros: 7,
                },
            ),
        ],
        ..one("", 0, 0)
    };
    let calls = (0..100).map(|i| {
        let cmd = if i % 2 == 0 {
            Command::Book(both.clone())
        } else {
            Command::Book(one("k:ci", 1, 3))
        };
        run(s, &k, cmd, t0 + i)
    });
    for r in join_all(calls).await {
        check!(r? == Reply::Done, "a booking answers done");
    }
    let Reply::Ledger { entries } = run(s, &k, Command::Ledger { start_ms: day }, t0 + 200).await?
    else {
        return Err("a ledger read answers a ledger".into());
    };
    let want = |requests, tokens, micros| {
        Some(Tally {
            requests,
            tokens,
            micros,
        })
    };
    check!(
        entries.get("k:ci").copied() == want(100, 550, 500),
        "100 concurrent bookings sum exactly: {entries:?}"
    );
    check!(
        entries.get("m:openai/gpt-4o|x y").copied() == want(50, 500, 350) && entries.len() == 2,
        "entries stay apart, names kept as given: {entries:?}"
    );
    let next = day + 86_400_000;
    let r = run(s, &k, Command::Ledger { start_ms: next }, t0 + 201).await?;
    check!(
        r == Reply::Ledger {
            entries: Default::default()
        },
        "another period is empty, got {r:?}"
    );
    let k = format!("{prefix}:ledger:total");
    let forever = Book {
        start_ms: 0,
        expires_at_ms: u64::MAX,
        entries: vec![(
            "p:openai".into(),
            Tally {
                requests: 2,
                tokens: 3,
                micros: 4,
            },
        )],
    };
    run(s, &k, Command::Book(forever), t0).await?;
    let r = run(
        s,
        &k,
        Command::Ledger { start_ms: 0 },
        t0 + 10 * 365 * 86_400_000,
    )
    .await?;
    check!(
        matches!(&r, Reply::Ledger { entries } if entries.get("p:openai").copied() == want(2, 3, 4)),
        "the all-time period is kept, got {r:?}"
    );
    Ok(())
}

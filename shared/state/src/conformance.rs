//! The conformance suite every [`StateStore`] runs (memory, embedded, DynamoDB, Durable Objects):
//! same commands, same answers. Returns the first violation as an error message.

use crate::{BreakerConfig, Command, Reply, StateStore};
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
    Ok(())
}

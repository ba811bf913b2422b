//! Table tests for [`decide`] and [`in_flight`].

use super::*;

const MIN: Duration = Duration::from_secs(600);
const PACING: Pacing = Pacing {
    min_interval: MIN,
    max_rolling: 2,
};
const ROLLING: Strategy = Strategy::RollingUpdate { partition: 0 };

fn rev(s: &str) -> Revision {
    Revision::stored(s)
}

#[test]
fn decisions() {
    // ((recorded, polled), strategy, in flight, secs since the last
    // rollout, rolling elsewhere, expected)
    type Row = (
        (
            Option<&'static str>,
            Option<Result<&'static str, &'static str>>,
        ),
        Strategy,
        bool,
        Option<u64>,
        usize,
        Decision,
    );
    let rows: &[Row] = &[
        // nothing known yet, or the source cannot be listed: never a write
        ((None, None), ROLLING, false, None, 0, Decision::NotPolled),
        (
            (Some("aaaa"), None),
            ROLLING,
            false,
            None,
            0,
            Decision::NotPolled,
        ),
        (
            (Some("aaaa"), Some(Err("no such secret"))),
            ROLLING,
            false,
            None,
            0,
            Decision::Unavailable,
        ),
        (
            (None, Some(Err("denied"))),
            ROLLING,
            false,
            None,
            0,
            Decision::Unavailable,
        ),
        // first sight: record only, whatever else holds
        (
            (None, Some(Ok("aaaa"))),
            ROLLING,
            false,
            None,
            0,
            Decision::Record,
        ),
        (
            (None, Some(Ok("aaaa"))),
            ROLLING,
            true,
            Some(1),
            9,
            Decision::Record,
        ),
        (
            (None, Some(Ok("aaaa"))),
            Strategy::OnDelete,
            false,
            None,
            0,
            Decision::Record,
        ),
        // the recorded revision (a restart, or many quiet polls): nothing
        (
            (Some("aaaa"), Some(Ok("aaaa"))),
            ROLLING,
            false,
            None,
            0,
            Decision::Unchanged,
        ),
        (
            (Some("aaaa"), Some(Ok("aaaa"))),
            ROLLING,
            true,
            Some(1),
            9,
            Decision::Unchanged,
        ),
        // a change
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            None,
            0,
            Decision::Rollout,
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            Some(600),
            1,
            Decision::Rollout,
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            Strategy::RollingUpdate { partition: 2 },
            false,
            None,
            0,
            Decision::Rollout,
        ),
        // OnDelete is never restarted, even when pacing would allow it
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            Strategy::OnDelete,
            false,
            None,
            0,
            Decision::RecordOnly,
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            Strategy::OnDelete,
            true,
            Some(1),
            9,
            Decision::RecordOnly,
        ),
        // pacing, in order: in flight, then the interval, then the cluster
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            true,
            None,
            0,
            Decision::Wait(Wait::InFlight),
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            true,
            Some(1),
            5,
            Decision::Wait(Wait::InFlight),
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            Some(200),
            5,
            Decision::Wait(Wait::TooSoon(Duration::from_secs(400))),
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            Some(599),
            0,
            Decision::Wait(Wait::TooSoon(Duration::from_secs(1))),
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            None,
            2,
            Decision::Wait(Wait::ClusterLimit),
        ),
        (
            (Some("aaaa"), Some(Ok("bbbb"))),
            ROLLING,
            false,
            Some(601),
            3,
            Decision::Wait(Wait::ClusterLimit),
        ),
    ];
    for (i, ((recorded, polled), strategy, in_flight, since, elsewhere, want)) in
        rows.iter().enumerate()
    {
        let recorded = recorded.map(rev);
        let polled_rev = polled.and_then(|p| p.ok()).map(rev);
        let polled = polled.map(|p| p.map(|_| polled_rev.as_ref().expect("set above")));
        let f = Facts {
            recorded: recorded.as_ref(),
            polled,
            strategy: *strategy,
            in_flight: *in_flight,
            since_last_rollout: since.map(Duration::from_secs),
            rolling_elsewhere: *elsewhere,
        };
        assert_eq!(decide(&f, &PACING), *want, "row {i}: {f:?}");
    }
}

#[test]
fn a_limit_of_zero_still_lets_one_roll() {
    let (a, b) = (rev("a"), rev("b"));
    let f = Facts {
        recorded: Some(&a),
        polled: Some(Ok(&b)),
        strategy: ROLLING,
        in_flight: false,
        since_last_rollout: None,
        rolling_elsewhere: 0,
    };
    let pacing = Pacing {
        min_interval: MIN,
        max_rolling: 0,
    };
    assert_eq!(decide(&f, &pacing), Decision::Rollout);
}

fn settled() -> Progress<'static> {
    Progress {
        generation: 4,
        observed_generation: 4,
        replicas: 3,
        ready: 3,
        updated: 3,
        current_revision: Some("web-1"),
        update_revision: Some("web-1"),
    }
}

#[test]
fn in_flight_follows_the_status() {
    type Edit = fn(&mut Progress<'static>);
    let rows: &[(&str, Strategy, Edit, bool)] = &[
        ("settled", ROLLING, |_| {}, false),
        (
            "spec not yet seen",
            ROLLING,
            |p| p.observed_generation = 3,
            true,
        ),
        (
            "new revision, none updated",
            ROLLING,
            |p| {
                p.update_revision = Some("web-2");
                p.updated = 0;
            },
            true,
        ),
        (
            "all updated, revision not yet current",
            ROLLING,
            |p| p.update_revision = Some("web-2"),
            true,
        ),
        ("one pod not ready", ROLLING, |p| p.ready = 2, true),
        (
            "scaled to zero",
            ROLLING,
            |p| {
                p.replicas = 0;
                p.ready = 0;
                p.updated = 0;
            },
            false,
        ),
        // partition 2 of 3: one pod updated is all there will be
        (
            "partition reached",
            Strategy::RollingUpdate { partition: 2 },
            |p| {
                p.update_revision = Some("web-2");
                p.updated = 1;
            },
            false,
        ),
        (
            "partition not reached",
            Strategy::RollingUpdate { partition: 2 },
            |p| {
                p.update_revision = Some("web-2");
                p.updated = 0;
            },
            true,
        ),
        (
            "partition above replicas",
            Strategy::RollingUpdate { partition: 9 },
            |p| {
                p.update_revision = Some("web-2");
                p.updated = 0;
            },
            false,
        ),
        (
            "negative partition is none",
            Strategy::RollingUpdate { partition: -1 },
            |p| {
                p.update_revision = Some("web-2");
            },
            true,
        ),
        (
            "OnDelete with pods left behind",
            Strategy::OnDelete,
            |p| {
                p.update_revision = Some("web-2");
                p.updated = 1;
            },
            true,
        ),
    ];
    for (name, strategy, edit, want) in rows {
        let mut p = settled();
        edit(&mut p);
        assert_eq!(in_flight(&p, *strategy), *want, "{name}");
    }
}

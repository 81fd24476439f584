//! Properties of the guard engine: the parser never panics, the OTLP
//! readers never panic, and verdicts do not depend on arrival order or
//! batching when no event is late.

use maestro_engine::cep::compile::compile_source;
use maestro_engine::cep::otlp;
use maestro_engine::cep::run::{Matcher, MatcherOptions, Violation};
use proptest::prelude::*;

const GUARDS: &str = r#"
guard seq { within 20ns match a -> !c -> b{1,2} }
guard abs { match a -> no b within 5ns }
guard cnt { match count(c) >= 2 within 4ns -> no a within 3ns }
guard anc { contiguity skip-till-any match !d -> b -> a }
guard strict { contiguity strict within 30ns match a -> b* -> c }
"#;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn run(
    events: &[(i64, i64, i64)],
    order: &[usize],
    cuts: &[usize],
    lateness: i64,
) -> Vec<(usize, i64, i64, bool)> {
    let guards = compile_source("props", GUARDS).expect("guards compile");
    let mut m = Matcher::new(
        guards,
        MatcherOptions {
            lateness_ns: Some(lateness),
            max_late_kept: 1000,
            ..MatcherOptions::default()
        },
    )
    .expect("matcher");
    let vocab: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (order.len() + 1)).collect();
    bounds.push(order.len());
    bounds.sort_unstable();
    for b in bounds {
        if b < start {
            continue;
        }
        let part = &order[start..b];
        let t: Vec<i64> = part.iter().map(|&i| events[i].0).collect();
        let k: Vec<i64> = part.iter().map(|&i| events[i].1).collect();
        let c: Vec<i64> = part.iter().map(|&i| events[i].2).collect();
        m.feed_columns(&t, &k, &c, &vocab, &[]).expect("feed");
        start = b;
    }
    m.finish().expect("finish");
    assert_eq!(m.stats().late, 0);
    let mut v: Vec<(usize, i64, i64, bool)> = m
        .drain()
        .into_iter()
        .map(|x: Violation| {
            let key = match x.key {
                maestro_engine::cep::run::KeyLabel::Int(i) => i,
                maestro_engine::cep::run::KeyLabel::Str(_) => -1,
            };
            // arrival indices differ between orders: compare event times
            (x.guard, key, x.time, x.seq.is_some())
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parser_never_panics(src in "[a-z{}()\\[\\]!|,*+?~<>=\" 0-9.\\-#\n]{0,80}") {
        let _ = compile_source("fuzz", &src);
        let _ = compile_source("fuzz", &format!("guard g {{ match {src} }}"));
    }

    #[test]
    fn parser_never_panics_on_unicode(src in "\\PC{0,60}") {
        let _ = compile_source("fuzz", &src);
        let _ = compile_source("fuzz", &format!("guard g {{ match a[k ~ \"{src}\"] -> {src} }}"));
    }

    #[test]
    fn protobuf_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = otlp::from_protobuf("fuzz", &bytes);
    }

    #[test]
    fn otlp_json_never_panics(src in ".{0,200}") {
        let _ = otlp::from_json("fuzz", &src);
        let _ = otlp::from_records("fuzz", &src);
        let _ = otlp::from_protobuf("fuzz", src.as_bytes());
    }

    #[test]
    fn verdicts_do_not_depend_on_order_or_batching(
        // distinct times per key keep (time, arrival) ties out of the picture
        evs in proptest::collection::vec((0i64..3, 0i64..4), 0..60),
        perm_seed in any::<u64>(),
        cuts in proptest::collection::vec(0usize..61, 0..4),
    ) {
        let events: Vec<(i64, i64, i64)> = evs.iter().enumerate().map(|(i, &(k, c))| (i as i64, k, c)).collect();
        let in_order: Vec<usize> = (0..events.len()).collect();
        // a shuffle (xorshift) of the arrival order
        let mut order = in_order.clone();
        let mut x = perm_seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let lateness = 1_000; // larger than any time: nothing is late
        let a = run(&events, &in_order, &[], 0);
        let b = run(&events, &order, &cuts, lateness);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn bounded_disorder_with_a_small_lateness_is_matched_as_in_order(
        // The watermark trails the input, so pumps between batches match
        // part of the reorder buffer and later arrivals are merged into
        // what is left of it (blocks shuffled within, lateness = block).
        evs in proptest::collection::vec((0i64..3, 0i64..4), 0..120),
        block in 1usize..9,
        perm_seed in any::<u64>(),
        cuts in proptest::collection::vec(0usize..121, 0..16),
    ) {
        let events: Vec<(i64, i64, i64)> = evs.iter().enumerate().map(|(i, &(k, c))| (i as i64, k, c)).collect();
        let in_order: Vec<usize> = (0..events.len()).collect();
        let mut order = in_order.clone();
        let mut x = perm_seed | 1;
        for chunk in order.chunks_mut(block) {
            for i in (1..chunk.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                chunk.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
        let a = run(&events, &in_order, &[], 0);
        let b = run(&events, &order, &cuts, block as i64);
        prop_assert_eq!(a, b);
    }
}

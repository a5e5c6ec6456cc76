//! Property tests: no detector panics, and scores stay in [0, 1], on arbitrary finite,
//! infinite and NaN input of any width.

use mw_analytics::{DetectorKind, build};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1e3f64..1e3,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => prop::num::f64::ANY,
        1 => Just(0.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scores_stay_in_unit_interval(
        kind in prop::sample::select(DetectorKind::ALL.to_vec()),
        n_vars in 1usize..4,
        width in 0usize..5,
        rows in prop::collection::vec(prop::collection::vec(value(), 0..5), 0..160),
    ) {
        let mut det = build(kind, n_vars, Some(32));
        for (i, r) in rows.iter().enumerate() {
            let r = &r[..r.len().min(width)];
            let o = det.update(i as i64, r);
            prop_assert!((0.0..=1.0).contains(&o.score), "{kind}: score {} at row {i}", o.score);
            if o.warming_up {
                prop_assert!(!o.anomalous);
            }
        }
    }

    #[test]
    fn constant_and_quantised_input_is_handled(
        kind in prop::sample::select(DetectorKind::ALL.to_vec()),
        level in -1e6f64..1e6,
        step in prop::sample::select(vec![0.0, 1e-9, 1.0]),
        n in 33usize..200,
    ) {
        let mut det = build(kind, 2, Some(32));
        for i in 0..n {
            let x = level + step * ((i % 7 == 0) as u8 as f64);
            let o = det.update(i as i64, &[x, -x]);
            prop_assert!((0.0..=1.0).contains(&o.score));
        }
    }
}

//! Ticks on every axis fall where people read them.

use super::*;

#[test]
fn count_ticks_are_whole() {
    // All zeros (no orphans in the window) or a peak of 1: ticks 0, 1, 2.
    for max in [0.0, 1.0, 3.0] {
        let y = y_axis(max, &[], false);
        assert!(
            y.ticks().iter().all(|t| t.fract() == 0.0),
            "{max}: {:?}",
            y.ticks()
        );
    }
}

#[test]
fn binary_ticks_are_exact_in_their_units() {
    for max in [1.0, 700.0, 5e3, 1.0e6, 1.1e6, 3.0e7, 1.49e8, 2.3e9, 5.9e11] {
        let y = y_axis(max, &[], true);
        assert!(y.max >= max, "{max}: {y:?}");
        assert_eq!(y.step.log2().fract(), 0.0, "{max}: {y:?}");
        let ticks = y.ticks();
        assert!((3..=9).contains(&ticks.len()), "{max}: {ticks:?}");
        for t in ticks {
            // The label reads back as the tick.
            let l = bytes_label(&t);
            let (num, unit) = l.split_at(l.find(|c: char| c.is_alphabetic()).unwrap_or(l.len()));
            let mult = match unit {
                "" => 1.0,
                "K" => 1024.0,
                "M" => 1024f64.powi(2),
                "G" => 1024f64.powi(3),
                _ => 1024f64.powi(4),
            };
            assert_eq!(num.parse::<f64>().unwrap() * mult, t, "{max}: {l}");
        }
    }
}

#[test]
fn time_ticks_fall_on_round_times() {
    let start = humantime::parse_rfc3339("2026-11-29T14:14:59.213Z").unwrap();
    let x = TimeAxis::new(Some(start), 31.0, WIDTH);
    assert_eq!(x.desc, "time (UTC) on 2026-11-29");
    let labels: Vec<String> = x.ticks.iter().map(|t| x.label(*t)).collect();
    assert_eq!(labels[..3], ["14:15:00", "14:15:05", "14:15:10"]);
    let x = TimeAxis::new(Some(start), 3600.0, 700);
    assert_eq!(x.label(x.ticks[0]), "14:20");
    // Times four thousand years apart (a recording from anyone): whole
    // days, no more ticks than fit, labelled by date.
    let x = TimeAxis::new(Some(start), 4000.0 * 365.25 * 86400.0, WIDTH);
    assert!(x.ticks.len() <= (WIDTH / 110) as usize, "{}", x.ticks.len());
    assert_eq!(x.label(0.0), "2026-11-29");
}

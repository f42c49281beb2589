//! A target's sample count over the last six hours, one point per minute: enough to see a
//! label's cardinality growing (doctor) and to compare the count with its 6-hour median (the
//! `LLMScrapeSamplesExploding` alert), at 6 KB per target whatever the scrape interval.

use std::collections::VecDeque;

/// Minutes kept.
const MINUTES: usize = 6 * 60;

/// `(minute start, highest count in that minute)`, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SampleCounts {
    points: VecDeque<(f64, usize)>,
}

impl SampleCounts {
    /// Records `samples` scraped at `at` (Unix seconds).
    pub fn push(&mut self, at: f64, samples: usize) {
        let minute = (at / 60.0).floor() * 60.0;
        match self.points.back_mut() {
            Some((m, n)) if *m == minute => *n = (*n).max(samples),
            _ => {
                self.points.push_back((minute, samples));
                if self.points.len() > MINUTES {
                    self.points.pop_front();
                }
            }
        }
    }

    /// The first point at or after `since`: `(minute start, count)`.
    pub fn first_since(&self, since: f64) -> Option<(f64, usize)> {
        let floor = (since / 60.0).floor() * 60.0;
        self.points.iter().find(|(m, _)| *m >= floor).copied()
    }

    /// The median count of the minutes since `since`, and the seconds they span (from the
    /// first minute's start to the last's end).
    pub fn median_since(&self, since: f64) -> Option<(f64, f64)> {
        let floor = (since / 60.0).floor() * 60.0;
        let mut counts: Vec<usize> = Vec::new();
        let mut first = None;
        let mut last = 0.0;
        for (m, n) in self.points.iter().filter(|(m, _)| *m >= floor) {
            first.get_or_insert(*m);
            last = *m;
            counts.push(*n);
        }
        let first = first?;
        counts.sort_unstable();
        let mid = counts.len() / 2;
        let median = if counts.len() % 2 == 1 {
            counts[mid] as f64
        } else {
            (counts[mid - 1] + counts[mid]) as f64 / 2.0
        };
        Some((median, last + 60.0 - first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_count_per_minute_for_six_hours_and_gives_the_median() {
        let mut counts = SampleCounts::default();
        for minute in 0..400 {
            let at = 1_000_020.0 + minute as f64 * 60.0;
            counts.push(at, 100 + minute);
            counts.push(at + 5.0, 90);
        }
        assert_eq!(counts.points.len(), MINUTES);
        let start = counts.points[0].0;
        assert_eq!(counts.first_since(0.0), Some((start, 140)));
        let (median, span) = counts.median_since(0.0).unwrap();
        assert_eq!(span, 6.0 * 3600.0);
        assert_eq!(median, (319 + 320) as f64 / 2.0);
        assert_eq!(counts.median_since(f64::MAX), None);
    }
}

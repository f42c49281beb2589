//! A target's sample count over the last six hours, one point per minute: enough to see a
//! label's cardinality growing (doctor) and to compare the count with its 6-hour median (the
//! `LLMScrapeSamplesExploding` alert), at 6 KB per target whatever the scrape interval.

use std::cell::Cell;
use std::collections::VecDeque;

/// Minutes kept.
const MINUTES: usize = 6 * 60;

/// `(minute start, highest count in that minute)`, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SampleCounts {
    points: VecDeque<(f64, usize)>,
    /// The last median computed and what it was computed from: past minutes never change, so
    /// the alert round sorts 360 counts once a minute (or when the newest minute's count
    /// rises), not for every target every round.
    median: Cell<Option<(MedianKey, f64)>>,
}

/// What a median depends on: the first minute read, how many points there were, and the
/// newest point.
type MedianKey = (f64, usize, (f64, usize));

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

    /// The median count of the minutes since `since` when they span at least `min_span`
    /// seconds (from the first minute's start to the last's end), else how long they span;
    /// `None` without counts.
    pub fn median_since(&self, since: f64, min_span: f64) -> Option<Result<f64, f64>> {
        let floor = (since / 60.0).floor() * 60.0;
        // While the counts reach back less far than asked (the first hours), no search.
        let start = match self.points.front() {
            Some((oldest, _)) if *oldest >= floor => 0,
            _ => self.points.partition_point(|(m, _)| *m < floor),
        };
        let (first, _) = *self.points.get(start)?;
        let newest = *self.points.back()?;
        let span = newest.0 + 60.0 - first;
        if span < min_span {
            return Some(Err(span));
        }
        let key = (first, self.points.len() - start, newest);
        if let Some((cached, median)) = self.median.get()
            && cached == key
        {
            return Some(Ok(median));
        }
        let mut counts: Vec<usize> = self.points.range(start..).map(|(_, n)| *n).collect();
        counts.sort_unstable();
        let mid = counts.len() / 2;
        let median = if counts.len() % 2 == 1 {
            counts[mid] as f64
        } else {
            (counts[mid - 1] + counts[mid]) as f64 / 2.0
        };
        self.median.set(Some((key, median)));
        Some(Ok(median))
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
        let median = (319 + 320) as f64 / 2.0;
        assert_eq!(counts.median_since(0.0, 6.0 * 3600.0), Some(Ok(median)));
        // Cached, and the cache follows a new count.
        assert_eq!(counts.median_since(0.0, 0.0), Some(Ok(median)));
        counts.push(1_000_020.0 + 400.0 * 60.0, 10_000);
        assert_eq!(counts.median_since(0.0, 0.0), Some(Ok(320.5)));
        // Too short a span says how long it is.
        assert_eq!(
            counts.median_since(0.0, 7.0 * 3600.0),
            Some(Err(6.0 * 3600.0))
        );
        assert_eq!(counts.median_since(f64::MAX, 0.0), None);
    }
}

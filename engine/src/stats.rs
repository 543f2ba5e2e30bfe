//! Summary statistics of measured times, shared by `generate`'s report and the benches.

use std::time::Duration;

/// The median (mean of the two middle values for an even count); zero for no samples.
///
/// ```
/// use helora_engine::stats::median;
/// use std::time::Duration;
///
/// let mut samples = [3, 1, 2].map(Duration::from_millis);
/// assert_eq!(median(&mut samples), Duration::from_millis(2));
/// ```
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    match samples.len() {
        0 => Duration::ZERO,
        len if len % 2 == 1 => samples[len / 2],
        len => (samples[len / 2 - 1] + samples[len / 2]) / 2,
    }
}

/// The value at fraction `q` (0 … 1) of the sorted `values` (nearest rank); NaN for none.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        len => v[((len - 1) as f64 * q).round() as usize],
    }
}

/// A duration in milliseconds, as the reports print them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_micros(x)).collect()
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut us(&[5, 1, 3])), Duration::from_micros(3));
        assert_eq!(
            median(&mut us(&[4, 1, 3, 2])),
            Duration::from_micros(2) + Duration::from_nanos(500)
        );
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}

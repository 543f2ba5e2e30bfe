//! Where a benchmark figure comes from: the build (version, commit, profile, features) and
//! when (the report's time, at the end of the run), on how many cores and threads it ran.
//! Every `bench` JSON object carries it as `run`, so that a figure can be traced back to the
//! code and the build that produced it.

use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Serialize)]
pub struct Provenance {
    pub helora_version: &'static str,
    /// The commit the binary was built from ("unknown" outside a git checkout).
    pub git_commit: &'static str,
    /// `release`, or `debug`, whose figures are not comparable.
    pub build_profile: &'static str,
    /// The cargo features the binary was built with (`cuda`, `gpu`), none for the default.
    pub features: Vec<&'static str>,
    /// When the report was made (the run's end), UTC, to the second (RFC 3339).
    pub reported_utc: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Worker threads the run's work was offered to (the pool it ran in).
    pub threads: usize,
}

impl Provenance {
    /// The build, and now.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut features = Vec::new();
        if cfg!(feature = "cuda") {
            features.push("cuda");
        }
        if cfg!(feature = "gpu") {
            features.push("gpu");
        }
        Self {
            helora_version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("HELORA_GIT_COMMIT"),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            features,
            reported_utc: rfc3339_utc(since_epoch),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: rayon::current_num_threads(),
        }
    }

    /// One line for a report's table:
    /// `helora 0.1.0, commit 1a2b3c4d5e6f, release build, 2 cores, 2 threads, reported …`.
    pub fn summary(&self) -> String {
        let features = if self.features.is_empty() {
            String::new()
        } else {
            format!(" (features {})", self.features.join(", "))
        };
        format!(
            "helora {}, commit {}, {} build{features}, {} cores, {} threads, reported {}",
            self.helora_version,
            self.git_commit,
            self.build_profile,
            self.cores,
            self.threads,
            self.reported_utc
        )
    }
}

/// `seconds` after the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn rfc3339_utc(seconds: u64) -> String {
    let (days, rem) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The calendar date `days` after 1970-01-01, counting in 400-year eras of 146 097 days
/// whose years start on 1 March (so the leap day is the era-year's last).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn the_build_is_described() {
        let p = Provenance::now();
        assert_eq!(p.helora_version, env!("CARGO_PKG_VERSION"));
        assert!(!p.git_commit.is_empty());
        assert!(p.cores >= 1);
        assert_eq!(p.reported_utc.len(), "1970-01-01T00:00:00Z".len());
        assert!(p.summary().contains(p.git_commit));
        assert!(p.summary().contains(&format!(", {} cores, ", p.cores)));
    }
}

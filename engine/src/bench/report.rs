//! The result of `helora bench ops`: one flat JSON object, or an aligned table. Both are
//! written from the same rows, so the two outputs always agree.

use super::provenance::Provenance;
use super::timing::Timing;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;

/// The parameter set that was measured.
#[derive(Clone, Debug)]
pub struct Setup {
    pub n: usize,
    pub slots: usize,
    /// The level every operation runs at (the top one).
    pub level: usize,
    /// Ciphertext primes at that level.
    pub limbs: usize,
    pub special_primes: usize,
    /// Key-switching digits (dnum).
    pub digits: usize,
    /// Bits of Q·P (nominal prime sizes, as the security check counts them).
    pub log_qp: u32,
    /// The largest log Q·P with 128-bit security at this N.
    pub log_qp_max_128: u32,
    pub log_scale: u32,
}

/// Where it ran.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    /// The NTT kernel the ring's tables use (several joined by `+` if primes differ).
    pub simd: String,
    /// The widest SIMD level the CPU supports.
    pub simd_cpu: &'static str,
    pub threads: usize,
}

/// One timed operation.
#[derive(Clone, Debug)]
pub struct OpTiming {
    /// JSON key, ending in `_us`.
    pub key: &'static str,
    /// What exactly one iteration does.
    pub what: &'static str,
    pub timing: Timing,
}

#[derive(Clone, Debug)]
pub struct OpsReport {
    pub setup: Setup,
    pub machine: Machine,
    /// "fixed" (`--iters`) or "adaptive".
    pub iters_mode: &'static str,
    pub keygen: Duration,
    pub switching_keys: usize,
    pub ops: Vec<OpTiming>,
    /// Set for a run on a GPU (`--device cuda`).
    pub device: Option<DeviceFigures>,
    pub run: Provenance,
}

/// What a GPU run adds: the device, its copy bandwidth and each device operation's
/// memory-traffic floor (see `floor.rs`).
#[derive(Clone, Debug)]
pub struct DeviceFigures {
    pub name: String,
    /// The backend's name ("cuda"; "cpu" where tests run the device code on the CPU).
    pub backend: &'static str,
    /// How the device operations were timed.
    pub clock: &'static str,
    /// Device-to-device copy bandwidth, bytes read + written per second, in GB/s.
    pub copy_bandwidth_gbs: f64,
    /// Limbs transformed by `ntt_batch_us`.
    pub ntt_batch_limbs: usize,
    /// Ciphertext primes of the key switch's input (`key_switch_us`).
    pub key_switch_limbs: usize,
    /// (timed key, bytes the operation must move at least).
    pub floor_bytes: Vec<(&'static str, f64)>,
    /// (timed key, kernel launches one call queues).
    pub launches: Vec<(&'static str, u64)>,
    /// Timed keys that ran on the host (the client's side), not on the device.
    pub host_ops: Vec<&'static str>,
}

impl DeviceFigures {
    /// (`<op>_floor_us`, floor µs, `<op>_floor_ratio`, measured / floor) per floored key.
    pub fn floors(&self, report: &OpsReport) -> Vec<(String, f64, String, f64)> {
        let bandwidth = self.copy_bandwidth_gbs * 1e9;
        self.floor_bytes
            .iter()
            .filter_map(|&(key, bytes)| {
                let measured = report.op_us(key)?;
                let stem = key.strip_suffix("_us").unwrap_or(key);
                let floor = super::floor::floor_us(bytes, bandwidth);
                Some((
                    format!("{stem}_floor_us"),
                    floor,
                    format!("{stem}_floor_ratio"),
                    super::floor::ratio(measured, floor),
                ))
            })
            .collect()
    }
}

pub const HOISTED_RATIO_KEY: &str = "hoisted_extra_step_ratio";
const HOISTED_RATIO_WHAT: &str = "(hoisted_rotate_8 − rotate) / (7 · rotate): cost of one extra hoisted step relative to a rotation";

/// Microseconds rounded to 0.1 µs: finer digits are noise.
fn round_us(us: f64) -> f64 {
    (us * 10.0).round() / 10.0
}

impl OpsReport {
    /// The median of `key` in microseconds.
    pub fn op_us(&self, key: &str) -> Option<f64> {
        self.ops
            .iter()
            .find(|op| op.key == key)
            .map(|op| op.timing.micros())
    }

    /// (hoisted_8 − rotate) / (7 · rotate): 1 means hoisting saves nothing, 0 means the
    /// extra steps are free.
    pub fn hoisted_extra_step_ratio(&self) -> Option<f64> {
        let rotate = self.op_us("rotate_us")?;
        let hoisted = self.op_us("hoisted_rotate_8_us")?;
        (rotate > 0.0).then(|| (hoisted - rotate) / (7.0 * rotate))
    }

    /// The fewest timed iterations of any operation.
    pub fn min_iters(&self) -> usize {
        self.ops.iter().map(|op| op.timing.iters).min().unwrap_or(0)
    }

    fn keygen_ms(&self) -> f64 {
        (self.keygen.as_secs_f64() * 1e4).round() / 10.0
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let (s, m) = (&self.setup, &self.machine);
        let mut out = String::new();
        let iters = match self.iters_mode {
            "fixed" => format!("median of {} iterations per operation after one warm-up", self.min_iters()),
            _ => format!("median of adaptive iterations (about 0.5 s and at least 10 per operation; fewest here: {})", self.min_iters()),
        };
        let lines = [
            ("ring", format!("N = {} ({} slots), top level {}: {} ciphertext primes + {} special prime(s), {} key-switching digits", s.n, s.slots, s.level, s.limbs, s.special_primes, s.digits)),
            ("modulus", format!("log QP = {} bits (128-bit security allows {}), scale 2^{}", s.log_qp, s.log_qp_max_128, s.log_scale)),
            ("cpu", format!("{}, NTT kernel {} (CPU supports {}), {} thread", m.cpu, m.simd, m.simd_cpu, m.threads)),
            ("keygen", format!("{:.1} ms (secret, public, relinearisation and rotation keys: {} switching keys)", self.keygen_ms(), self.switching_keys)),
            ("timing", iters),
            ("build", self.run.summary()),
        ];
        let _ = writeln!(
            out,
            "helora bench ops (helora {})",
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in lines {
            let _ = writeln!(out, "  {k:<8} {v}");
        }
        let width = self
            .ops
            .iter()
            .map(|op| op.key.len())
            .chain([HOISTED_RATIO_KEY.len(), "operation".len()])
            .max()
            .unwrap_or(0);
        if let Some(d) = &self.device {
            let _ = writeln!(
                out,
                "  {:<8} {} ({} backend, timed with {} after warm-up), copy bandwidth {:.0} GB/s; on the host: {}",
                "device",
                d.name,
                d.backend,
                d.clock,
                d.copy_bandwidth_gbs,
                d.host_ops.join(", ")
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<width$} {:>12} {:>7}  what",
            "operation", "median µs", "iters"
        );
        for op in &self.ops {
            let _ = writeln!(
                out,
                "  {:<width$} {:>12.1} {:>7}  {}",
                op.key,
                op.timing.micros(),
                op.timing.iters,
                op.what
            );
        }
        if let Some(ratio) = self.hoisted_extra_step_ratio() {
            let _ = writeln!(
                out,
                "  {:<width$} {:>12.3} {:>7}  {}",
                HOISTED_RATIO_KEY, ratio, "", HOISTED_RATIO_WHAT
            );
        }
        if let Some(d) = &self.device {
            let floors = d.floors(self);
            let width = floors
                .iter()
                .map(|f| f.0.len())
                .max()
                .unwrap_or(0)
                .max(width);
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  {:<width$} {:>12} {:>7}  (bytes that must move / copy bandwidth)",
                "floor", "floor µs", "ratio"
            );
            for (key, floor, _, ratio) in floors {
                let _ = writeln!(out, "  {key:<width$} {floor:>12.1} {ratio:>7.2}");
            }
            let launches: Vec<String> =
                d.launches.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(out, "  kernel launches per call: {}", launches.join(", "));
        }
        out
    }
}

/// Serialized flat: parameters, machine, then one `<op>_us` key per operation, so that
/// scripts read `report["rotate_us"]`; `definitions` says what each timed key measures.
impl Serialize for OpsReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (s, m) = (&self.setup, &self.machine);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("helora_version", env!("CARGO_PKG_VERSION"))?;
        map.serialize_entry("backend", self.device.as_ref().map_or("cpu", |d| d.backend))?;
        map.serialize_entry("n", &s.n)?;
        map.serialize_entry("slots", &s.slots)?;
        map.serialize_entry("level", &s.level)?;
        map.serialize_entry("limbs", &s.limbs)?;
        map.serialize_entry("special_primes", &s.special_primes)?;
        map.serialize_entry("digits", &s.digits)?;
        map.serialize_entry("log_qp", &s.log_qp)?;
        map.serialize_entry("log_qp_max_128", &s.log_qp_max_128)?;
        map.serialize_entry("log_scale", &s.log_scale)?;
        map.serialize_entry("cpu", &m.cpu)?;
        map.serialize_entry("simd", &m.simd)?;
        map.serialize_entry("simd_cpu", m.simd_cpu)?;
        map.serialize_entry("threads", &m.threads)?;
        map.serialize_entry("iters", &self.min_iters())?;
        map.serialize_entry("iters_mode", self.iters_mode)?;
        map.serialize_entry("keygen_ms", &self.keygen_ms())?;
        map.serialize_entry("switching_keys", &self.switching_keys)?;
        for op in &self.ops {
            map.serialize_entry(op.key, &round_us(op.timing.micros()))?;
        }
        if let Some(ratio) = self.hoisted_extra_step_ratio() {
            map.serialize_entry(HOISTED_RATIO_KEY, &((ratio * 1000.0).round() / 1000.0))?;
        }
        if let Some(d) = &self.device {
            map.serialize_entry("device", &d.name)?;
            map.serialize_entry("clock", d.clock)?;
            map.serialize_entry("copy_bandwidth_gbs", &round_us(d.copy_bandwidth_gbs))?;
            map.serialize_entry("ntt_batch_limbs", &d.ntt_batch_limbs)?;
            map.serialize_entry("key_switch_limbs", &d.key_switch_limbs)?;
            for (floor_key, floor, ratio_key, ratio) in d.floors(self) {
                map.serialize_entry(&floor_key, &round_us(floor))?;
                map.serialize_entry(&ratio_key, &((ratio * 100.0).round() / 100.0))?;
            }
            map.serialize_entry("launches", &Entries(d.launches.clone()))?;
            map.serialize_entry("host_ops", &d.host_ops)?;
        }
        map.serialize_entry(
            "iterations",
            &Entries(
                self.ops
                    .iter()
                    .map(|op| (op.key, op.timing.iters))
                    .collect(),
            ),
        )?;
        let mut definitions: Vec<(&str, &str)> =
            self.ops.iter().map(|op| (op.key, op.what)).collect();
        definitions.push((HOISTED_RATIO_KEY, HOISTED_RATIO_WHAT));
        map.serialize_entry("definitions", &Entries(definitions))?;
        map.serialize_entry("run", &self.run)?;
        map.end()
    }
}

/// An ordered JSON object from key–value pairs.
struct Entries<V>(Vec<(&'static str, V)>);

impl<V: Serialize> Serialize for Entries<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> OpsReport {
        let op = |key, us| OpTiming {
            key,
            what: "test op",
            timing: Timing {
                median: Duration::from_micros(us),
                iters: 12,
            },
        };
        OpsReport {
            run: Provenance::now(),
            setup: Setup {
                n: 8192,
                slots: 4096,
                level: 2,
                limbs: 3,
                special_primes: 1,
                digits: 3,
                log_qp: 180,
                log_qp_max_128: 218,
                log_scale: 40,
            },
            machine: Machine {
                cpu: "Test CPU".into(),
                simd: "avx2".into(),
                simd_cpu: "avx2",
                threads: 1,
            },
            iters_mode: "adaptive",
            keygen: Duration::from_millis(1234),
            switching_keys: 9,
            ops: vec![
                op("ntt_us", 50),
                op("rotate_us", 1000),
                op("hoisted_rotate_8_us", 3100),
            ],
            device: None,
        }
    }

    #[test]
    fn ratio_is_the_extra_step_cost() {
        let r = report();
        let ratio = r.hoisted_extra_step_ratio().unwrap();
        assert!((ratio - 0.3).abs() < 1e-12, "{ratio}");
    }

    #[test]
    fn json_is_flat_ordered_and_complete() {
        let json = serde_json::to_string(&report()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["n"], 8192);
        assert_eq!(v["rotate_us"], 1000.0);
        assert_eq!(v["keygen_ms"], 1234.0);
        assert_eq!(v["iters"], 12);
        assert_eq!(v["hoisted_extra_step_ratio"], 0.3);
        assert_eq!(v["definitions"]["ntt_us"], "test op");
        assert!(json.find("\"n\"").unwrap() < json.find("\"ntt_us\"").unwrap());
    }

    #[test]
    fn device_runs_add_floors_and_ratios() {
        let mut r = report();
        r.device = Some(DeviceFigures {
            name: "Test GPU".into(),
            backend: "cuda",
            clock: "test clock",
            copy_bandwidth_gbs: 1000.0,
            ntt_batch_limbs: 64,
            key_switch_limbs: 24,
            // 500 MB at 1000 GB/s: 500 µs, rotate measured at 1000 µs.
            floor_bytes: vec![("rotate_us", 5e8), ("missing_us", 1.0)],
            launches: vec![("rotate_us", 40)],
            host_ops: vec!["ntt_us"],
        });
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["backend"], "cuda");
        assert_eq!(v["device"], "Test GPU");
        assert_eq!(v["rotate_floor_us"], 500.0);
        assert_eq!(v["rotate_floor_ratio"], 2.0);
        assert_eq!(v["launches"]["rotate_us"], 40);
        assert!(v.get("missing_floor_us").is_none());
        assert!(r.table().contains("rotate_floor_us"));
        assert_eq!(serde_json::to_value(report()).unwrap()["backend"], "cpu");
    }

    #[test]
    fn table_rows_are_aligned() {
        let table = report().table();
        let rows: Vec<&str> = table.lines().filter(|l| l.contains("test op")).collect();
        assert_eq!(rows.len(), 3);
        let col = |l: &str| l.find("test op");
        assert!(rows.iter().all(|l| col(l) == col(rows[0])), "{table}");
        assert!(table.contains("hoisted_extra_step_ratio"));
    }
}

//! The result of `helora bench lora --device cuda`: the CPU run's keys (flattened) and the
//! GPU figures beside their memory-traffic floors; see `device_lora.rs` for what each means.

use super::lora::LoraReport;
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Debug, Serialize)]
pub struct DeviceLoraReport {
    /// The CPU run's keys; `ms_per_apply` is the device time of one apply, the batch keys
    /// (`tokens` = `batch`, `ms_per_token_batch`, `tokens_per_s`) the back-to-back batch.
    #[serde(flatten)]
    pub common: LoraReport,
    pub backend: &'static str,
    pub device: String,
    /// How the device times were taken.
    pub clock: &'static str,
    pub apply_us: f64,
    /// Host wall time of the `apply` call (queueing only, no wait for the device).
    pub apply_queue_us: f64,
    /// Kernel launches one apply queues.
    pub launches_per_apply: u64,
    pub apply_path_us: f64,
    pub expand_us: f64,
    pub token_layer_us: f64,
    pub batch: usize,
    pub batch_us: f64,
    pub batch_iterations: usize,
    pub applies_per_s: f64,
    pub batch_mode: &'static str,
    pub copy_bandwidth_gbs: f64,
    pub apply_floor_us: f64,
    pub apply_floor_ratio: f64,
    pub batch_floor_us_per_apply: f64,
    pub batch_floor_ratio: f64,
    pub host_syncs_in_apply: usize,
    /// One replay of the apply captured as a graph (device time, median).
    pub graph_apply_us: f64,
    pub graph_iterations: usize,
    /// Launches one replay queues: 1 graph launch (0 on the CPU backend, which has none).
    pub graph_launches_per_apply: u64,
    /// Host time to capture, instantiate and upload the graph.
    pub graph_capture_ms: f64,
    /// How the replays ran (a CUDA graph; on the CPU backend the eager apply again).
    pub graph_mode: &'static str,
    pub notes: Vec<&'static str>,
}

impl DeviceLoraReport {
    /// Aligned `name  value` lines for people: the GPU figures, then the CPU run's rows.
    pub fn table(&self) -> String {
        let rows = [
            ("device", format!("{} ({})", self.device, self.clock)),
            (
                "apply µs (device)",
                format!(
                    "{:.1} (floor {:.1}, ratio {:.2}; median of {})",
                    self.apply_us,
                    self.apply_floor_us,
                    self.apply_floor_ratio,
                    self.common.apply_iterations
                ),
            ),
            (
                "apply queued in µs",
                format!(
                    "{:.1} (host time to queue it; {} kernel launches)",
                    self.apply_queue_us, self.launches_per_apply
                ),
            ),
            (
                "graph replay µs",
                format!(
                    "{:.1} (median of {}; {} launch vs {} eager; captured in {:.1} ms; {})",
                    self.graph_apply_us,
                    self.graph_iterations,
                    self.graph_launches_per_apply,
                    self.launches_per_apply,
                    self.graph_capture_ms,
                    self.graph_mode
                ),
            ),
            (
                "upload + apply µs",
                format!(
                    "{:.1}; + seed expansion on the host {:.1} = {:.1} per token-layer",
                    self.apply_path_us, self.expand_us, self.token_layer_us
                ),
            ),
            (
                "batch",
                format!(
                    "{} applies in {:.1} µs: {:.0} applies/s (floor {:.1} µs/apply, ratio {:.2}; {})",
                    self.batch,
                    self.batch_us,
                    self.applies_per_s,
                    self.batch_floor_us_per_apply,
                    self.batch_floor_ratio,
                    self.batch_mode
                ),
            ),
            (
                "copy bandwidth",
                format!("{:.0} GB/s (read + write)", self.copy_bandwidth_gbs),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out + &self.common.table()
    }
}

//! The GPU a benchmark ran beside, read through NVML: name, clocks, power draw and the
//! energy of the timed decode. NVML is loaded at run time (`libnvidia-ml`), so the same
//! binary runs on machines without it; there the report simply has no hardware section.
//!
//! NVML is queried whenever it initialises, whatever `--device` says: a CPU run on a GPU
//! machine still reports the GPU (its power is then the idle draw, which says so).
//!
//! "The GPU" is CUDA's device 0: NVML numbers every GPU of the machine, CUDA only those in
//! `CUDA_VISIBLE_DEVICES`, so the first entry there (an index or a `GPU-…` UUID) picks
//! NVML's device. A MIG instance there has no NVML energy counter of its own: no report.

use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::{Device, Nvml};
use serde::Serialize;

/// What NVML said about CUDA's device 0; each field is absent where the GPU does not
/// report it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hardware {
    pub gpu_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
    /// Power draw at the end of the decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Energy counter difference over the decode, divided by the decoded tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_j_per_token: Option<f64>,
}

/// How `CUDA_VISIBLE_DEVICES` names CUDA's device 0 to NVML.
#[derive(Debug, PartialEq, Eq)]
enum VisibleDevice {
    Index(u32),
    Uuid(String),
    /// A MIG instance or something NVML cannot be asked about.
    Other,
}

/// The first entry of a `CUDA_VISIBLE_DEVICES` value (unset: device 0).
fn first_visible(value: Option<&str>) -> VisibleDevice {
    let Some(first) = value.and_then(|v| v.split(',').next()).map(str::trim) else {
        return VisibleDevice::Index(0);
    };
    if let Ok(i) = first.parse() {
        VisibleDevice::Index(i)
    } else if first.starts_with("GPU-") {
        VisibleDevice::Uuid(first.to_string())
    } else {
        VisibleDevice::Other
    }
}

/// NVML's handle on CUDA's device 0.
fn cuda_device_0(nvml: &Nvml) -> Option<Device<'_>> {
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    match first_visible(visible.as_deref()) {
        VisibleDevice::Index(i) => nvml.device_by_index(i).ok(),
        VisibleDevice::Uuid(uuid) => nvml.device_by_uuid(uuid.as_str()).ok(),
        VisibleDevice::Other => None,
    }
}

/// Free memory of CUDA's device 0 in bytes, as NVML reports it; `None` where NVML is not
/// there.
pub fn gpu_memory_free() -> Option<u64> {
    let nvml = Nvml::init().ok()?;
    let info = cuda_device_0(&nvml)?.memory_info().ok()?;
    Some(info.free)
}

/// An open NVML session on CUDA's device 0 with the energy counter at the start of the
/// timed part.
pub struct Probe {
    nvml: Nvml,
    start_mj: Option<u64>,
}

impl Probe {
    /// `None` where NVML does not load or sees no GPU: the caller goes on without it.
    pub fn open() -> Option<Self> {
        let nvml = Nvml::init().ok()?;
        cuda_device_0(&nvml)?;
        Some(Self {
            nvml,
            start_mj: None,
        })
    }

    /// Reads the energy counter (millijoules since the driver loaded) as the start.
    pub fn start(&mut self) {
        self.start_mj = cuda_device_0(&self.nvml).and_then(|d| d.total_energy_consumption().ok());
    }

    /// The report after `tokens` timed tokens since [`start`](Self::start).
    pub fn finish(&self, tokens: usize) -> Option<Hardware> {
        let device = cuda_device_0(&self.nvml)?;
        let energy = match (self.start_mj, device.total_energy_consumption().ok()) {
            (Some(a), Some(b)) if tokens > 0 && b >= a => {
                Some((b - a) as f64 / 1e3 / tokens as f64)
            }
            _ => None,
        };
        Some(Hardware {
            gpu_name: device.name().unwrap_or_else(|_| "unknown GPU".into()),
            sm_clock_mhz: device.clock_info(Clock::SM).ok(),
            memory_clock_mhz: device.clock_info(Clock::Memory).ok(),
            power_w: device.power_usage().ok().map(|mw| mw as f64 / 1e3),
            energy_j_per_token: energy,
        })
    }
}

/// One line for the human report.
pub fn describe(hardware: Option<&Hardware>) -> String {
    let Some(h) = hardware else {
        return "no NVML (no NVIDIA driver here): GPU clocks, power and energy not reported".into();
    };
    let mut parts = vec![h.gpu_name.clone()];
    if let (Some(sm), Some(mem)) = (h.sm_clock_mhz, h.memory_clock_mhz) {
        parts.push(format!("SM {sm} MHz, memory {mem} MHz"));
    }
    if let Some(w) = h.power_w {
        parts.push(format!("{w:.0} W"));
    }
    if let Some(j) = h.energy_j_per_token {
        parts.push(format!("{j:.2} J/token"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_nvml_is_one_line_and_no_fields() {
        assert!(describe(None).contains("no NVML"));
        let h = Hardware {
            gpu_name: "GPU".into(),
            power_w: Some(300.0),
            ..Hardware::default()
        };
        let v = serde_json::to_value(&h).unwrap();
        assert!(v.get("energy_j_per_token").is_none());
        assert_eq!(v["power_w"], 300.0);
        assert_eq!(describe(Some(&h)), "GPU, 300 W");
    }

    #[test]
    fn cuda_visible_devices_picks_the_nvml_device() {
        use VisibleDevice::*;
        assert_eq!(first_visible(None), Index(0));
        assert_eq!(first_visible(Some("3")), Index(3));
        assert_eq!(first_visible(Some(" 2, 0")), Index(2));
        assert_eq!(
            first_visible(Some("GPU-8f2c1a3e-0000-1111-2222-333344445555,1")),
            Uuid("GPU-8f2c1a3e-0000-1111-2222-333344445555".into())
        );
        assert_eq!(first_visible(Some("MIG-1e6c5a7b-aaaa")), Other);
        assert_eq!(first_visible(Some("")), Other);
    }

    #[test]
    fn opening_never_panics() {
        use std::io::Write;
        // Absent on a machine without the driver, present with one: either is fine, but
        // the GPU machine's run (HELORA_REQUIRE_GPU=1) must find it.
        let Some(mut probe) = Probe::open() else {
            let reason = "no NVML here (no NVIDIA driver): the probe is not exercised";
            assert_ne!(
                std::env::var("HELORA_REQUIRE_GPU").as_deref(),
                Ok("1"),
                "HELORA_REQUIRE_GPU=1 but {reason}"
            );
            // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "skipped: {reason}");
            return;
        };
        probe.start();
        assert!(probe.finish(1).is_some());
    }
}

//! The GPU a benchmark ran beside, read through NVML: name, clocks, power draw and the
//! energy of the timed decode. NVML is loaded at run time (`libnvidia-ml`), so the same
//! binary runs on machines without it; there the report simply has no hardware section.
//!
//! NVML is queried whenever it initialises, whatever `--device` says: a CPU run on a GPU
//! machine still reports the GPU (its power is then the idle draw, which says so).

use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::Nvml;
use serde::Serialize;

/// What NVML said about GPU 0; each field is absent where the GPU does not report it.
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

/// Free memory of GPU 0 in bytes, as NVML reports it; `None` where NVML is not there.
pub fn gpu_memory_free() -> Option<u64> {
    let nvml = Nvml::init().ok()?;
    let info = nvml.device_by_index(0).ok()?.memory_info().ok()?;
    Some(info.free)
}

/// An open NVML session on GPU 0 with the energy counter at the start of the timed part.
pub struct Probe {
    nvml: Nvml,
    start_mj: Option<u64>,
}

impl Probe {
    /// `None` where NVML does not load or sees no GPU: the caller goes on without it.
    pub fn open() -> Option<Self> {
        let nvml = Nvml::init().ok()?;
        nvml.device_by_index(0).ok()?;
        Some(Self {
            nvml,
            start_mj: None,
        })
    }

    /// Reads the energy counter (millijoules since the driver loaded) as the start.
    pub fn start(&mut self) {
        self.start_mj = self
            .nvml
            .device_by_index(0)
            .ok()
            .and_then(|d| d.total_energy_consumption().ok());
    }

    /// The report after `tokens` timed tokens since [`start`](Self::start).
    pub fn finish(&self, tokens: usize) -> Option<Hardware> {
        let device = self.nvml.device_by_index(0).ok()?;
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
    fn opening_never_panics() {
        // Absent on a machine without the driver, present with one: either is fine.
        if let Some(mut probe) = Probe::open() {
            probe.start();
            assert!(probe.finish(1).is_some());
        }
    }
}

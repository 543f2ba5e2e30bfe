//! What machine a benchmark ran on: CPU model, SIMD capability and the NTT kernel in use.

use helora::ring::RingContext;

/// The CPU model from /proc/cpuinfo, or the architecture name where that is not readable.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| model_from_cpuinfo(&info))
        .unwrap_or_else(|| format!("unknown {}", std::env::consts::ARCH))
}

/// The first `model name` (x86) or `Model`/`Hardware` (ARM) line of a cpuinfo text, with
/// x86's family, model and stepping where given: a VM's model name is often only the
/// vendor's brand ("AMD EPYC"), and the family tells its generations apart.
pub fn model_from_cpuinfo(info: &str) -> Option<String> {
    let field = |key: &str| {
        info.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    let name = ["model name", "Model", "Hardware"]
        .iter()
        .find_map(|key| field(key))?;
    match (field("cpu family"), field("model"), field("stepping")) {
        (Some(family), Some(model), Some(stepping)) => Some(format!(
            "{name} (family {family}, model {model}, stepping {stepping})"
        )),
        _ => Some(name),
    }
}

/// The NTT kernel(s) the ring's per-prime tables use, e.g. `avx512-ifma`; distinct kernels
/// are joined with `+` (a kernel may not support every prime size).
pub fn ntt_kernels(ctx: &RingContext) -> String {
    let basis = ctx.full_basis();
    let mut kernels: Vec<&str> = Vec::new();
    for i in 0..basis.len() {
        let k = ctx.ntt_table(basis, i).kernel();
        if !kernels.contains(&k) {
            kernels.push(k);
        }
    }
    kernels.join("+")
}

/// The widest SIMD level useful to the NTT that this CPU supports: `avx512ifma`, `avx2`
/// or `scalar`. This is the CPU's capability, not necessarily the path the NTT takes.
pub fn simd_capability() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512ifma") {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "scalar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_x86_and_arm_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            model_from_cpuinfo(x86).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        let amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 1\n";
        assert_eq!(
            model_from_cpuinfo(amd).as_deref(),
            Some("AMD EPYC (family 26, model 2, stepping 1)")
        );
        let arm = "processor : 0\nBogoMIPS : 48.00\nModel : Raspberry Pi 4 Model B\n";
        assert_eq!(
            model_from_cpuinfo(arm).as_deref(),
            Some("Raspberry Pi 4 Model B")
        );
        assert_eq!(model_from_cpuinfo("flags : fpu\n"), None);
    }

    #[test]
    fn ntt_kernels_are_named() {
        let ctx = helora::ckks::Params::new(helora::ckks::ParamSpec::n13_depth2())
            .unwrap()
            .ring()
            .clone();
        let kernels = ntt_kernels(&ctx);
        assert!(!kernels.is_empty());
        for k in kernels.split('+') {
            assert!(
                ["avx512-ifma", "avx512", "avx2", "scalar"].contains(&k),
                "{k}"
            );
        }
    }

    #[test]
    fn simd_is_a_known_level() {
        assert!(["avx512ifma", "avx2", "scalar"].contains(&simd_capability()));
    }
}

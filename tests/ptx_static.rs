//! Static checks of the PTX that build.rs embeds (nvcc 13.0, sm_90), without a GPU:
//! - driver 580 (CUDA 13.0) takes it: `.version` at most 9.0 and `.target` at most sm_90,
//!   compared as numbers (the stand-in driver's module-load check);
//! - every instruction is one the stand-in driver emulates (it refuses the module otherwise);
//! - no fused multiply-add in floating point (`fma`, float `mad`), and no f64 add, sub or
//!   mul without an explicit rounding modifier, which ptxas may contract into an fma: the
//!   kernels' f64 code (the base conversion's quotient estimate) relies on separately
//!   rounded products and sums, as the CPU backend computes them.
//!
//! Launch argument counts and by-value sizes against the PTX parameters are checked at every
//! launch (backend/cuda/launch.rs) and by the backend's unit tests.

use helora::backend::cuda::sources as kernels;

fn embedded() -> Vec<(&'static str, &'static str)> {
    let found: Vec<_> = kernels::FILES
        .iter()
        .filter_map(|name| kernels::ptx(name).map(|p| (*name, p)))
        .collect();
    if found.is_empty() {
        assert_ne!(
            std::env::var("HELORA_REQUIRE_NVCC").as_deref(),
            Ok("1"),
            "HELORA_REQUIRE_NVCC=1 but no PTX is embedded"
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: built without nvcc (no embedded PTX)"
        );
    } else {
        assert_eq!(
            found.len(),
            kernels::FILES.len(),
            "every kernel file or none"
        );
    }
    found
}

#[test]
fn the_driver_we_ship_for_accepts_every_kernel() {
    for (name, ptx) in embedded() {
        let m = cuda::driver::module::load_ptx(ptx)
            .unwrap_or_else(|e| panic!("kernels/{name}.cu: {e}"));
        assert!(m.version <= (9, 0), "{name}: .version {:?}", m.version);
        assert_eq!(m.target, "sm_90", "{name}");
        for entry in kernels::entries(name) {
            assert!(m.kernels.contains_key(*entry), "{name}: no entry {entry}");
        }
    }
}

/// Whether a PTX instruction line is a fused or contractable floating-point operation.
fn contractable(line: &str) -> bool {
    let mut ins = line.trim();
    // A guard (`@%p1`, `@!%p1`) before the instruction.
    if let Some(rest) = ins.strip_prefix('@') {
        ins = rest
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r.trim());
    }
    let op = ins.split_once(char::is_whitespace).map_or(ins, |(o, _)| o);
    let float = op.ends_with(".f64") || op.ends_with(".f32");
    op.starts_with("fma.")
        || (op.starts_with("mad.") && float)
        || (float
            && ["add.", "sub.", "mul."].iter().any(|o| op.starts_with(o))
            && ![".rn.", ".rz.", ".rm.", ".rp."]
                .iter()
                .any(|r| op.contains(r)))
}

#[test]
fn no_contracted_floating_point() {
    for (name, ptx) in embedded() {
        for (i, line) in ptx.lines().enumerate() {
            assert!(
                !contractable(line),
                "kernels/{name}.cu PTX line {}: `{}`",
                i + 1,
                line.trim()
            );
        }
    }
}

/// The check sees a fused or contractable operation, guarded or not.
#[test]
fn the_contraction_check_can_fail() {
    assert!(contractable("\tfma.rn.f64 \t%fd1, %fd2, %fd3, %fd4;"));
    assert!(contractable("\tmul.f64 \t%fd1, %fd2, %fd3;"));
    assert!(contractable("\t@%p1 add.f64 \t%fd1, %fd2, %fd3;"));
    assert!(!contractable("\tmul.rn.f64 \t%fd1, %fd2, %fd3;"));
    assert!(!contractable("\tadd.rz.f64 \t%fd1, %fd2, %fd3;"));
    assert!(!contractable("\tadd.s64 \t%rd1, %rd2, %rd3;"));
    assert!(
        cuda::driver::module::load_ptx(".version 9.1\n.target sm_90\n.address_size 64\n").is_err()
    );
}

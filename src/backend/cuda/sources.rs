//! The CUDA kernels of `kernels/`, embedded in the crate: always their CUDA C++ sources (for
//! NVRTC at run time), and their PTX for sm_90 when build.rs found nvcc (`cfg(helora_ptx)`).
//! Nothing here touches a GPU; a device backend loads these.
//!
//! See docs/cuda.md for how they are built and launched.

/// One `kernels/<name>.cu` file.
struct Kernel {
    name: &'static str,
    source: &'static str,
    ptx: Option<&'static str>,
    /// Its `extern "C" __global__` functions, as a launcher looks them up.
    entries: &'static [&'static str],
}

macro_rules! kernel {
    ($name:literal, [$($entry:literal),* $(,)?]) => {
        Kernel {
            name: $name,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/", $name, ".cu")),
            #[cfg(helora_ptx)]
            ptx: Some(include_str!(concat!(env!("OUT_DIR"), "/", $name, ".ptx"))),
            #[cfg(not(helora_ptx))]
            ptx: None,
            entries: &[$($entry),*],
        }
    };
}

/// Every kernel file, by name (`kernels/<name>.cu`).
pub const FILES: &[&str] = &[
    "automorphism",
    "basis_conversion",
    "key_switch",
    "ntt",
    "pointwise",
    "rescale",
];

// Keep in the order of `FILES` (a test checks both against kernels/).
const TABLE: &[Kernel] = &[
    kernel!(
        "automorphism",
        [
            "automorphism_ntt",
            "automorphism_ntt_batch",
            "automorphism_coeff",
        ]
    ),
    kernel!(
        "basis_conversion",
        [
            "base_convert_scale",
            "base_convert_sum",
            "base_convert_center",
        ]
    ),
    kernel!(
        "key_switch",
        ["key_switch_inner_product", "key_switch_inner_products"]
    ),
    kernel!(
        "ntt",
        [
            "ntt_forward_outer",
            "ntt_forward_inner",
            "ntt_inverse_inner",
            "ntt_inverse_outer",
        ]
    ),
    kernel!(
        "pointwise",
        [
            "poly_add",
            "poly_sub",
            "poly_neg",
            "poly_mul",
            "poly_mul_add",
            "poly_mul_scalar",
            "poly_sub_mul_scalar",
        ]
    ),
    kernel!("rescale", ["rescale_spread"]),
];

/// The headers the kernels include, as (include name, source): NVRTC takes them by name
/// since it reads no files.
pub const HEADERS: &[(&str, &str)] = &[(
    "modarith.cuh",
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/modarith.cuh")),
)];

fn find(name: &str) -> Option<&'static Kernel> {
    TABLE.iter().find(|k| k.name == name)
}

/// The CUDA C++ source of kernel file `name`, if there is one.
pub fn source(name: &str) -> Option<&'static str> {
    find(name).map(|k| k.source)
}

/// The PTX (sm_90) of kernel file `name`; `None` when the crate was built without nvcc
/// (compile [`source`] with NVRTC instead) or the name is unknown.
pub fn ptx(name: &str) -> Option<&'static str> {
    find(name).and_then(|k| k.ptx)
}

/// The `extern "C"` entry points of kernel file `name` (empty if unknown).
pub fn entries(name: &str) -> &'static [&'static str] {
    find(name).map_or(&[], |k| k.entries)
}

/// Whether build.rs compiled the kernels with nvcc (so [`ptx`] returns them).
pub const fn has_ptx() -> bool {
    cfg!(helora_ptx)
}

/// ptxas's register and spill figures per entry point, one line each, from the build (only
/// with nvcc).
pub fn ptxas_report() -> Option<&'static str> {
    #[cfg(helora_ptx)]
    {
        Some(include_str!(concat!(env!("OUT_DIR"), "/ptxas-report.txt")))
    }
    #[cfg(not(helora_ptx))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::path::Path;

    /// `(stem, extension)` of every file in kernels/.
    fn kernel_files() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("kernels/ is readable") {
            let path = entry.expect("kernels/ entry").path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("");
            files.push((stem.to_owned(), ext.to_owned()));
        }
        files
    }

    /// Names declared `extern "C" __global__ void NAME(` in a source.
    fn declared_entries(source: &str) -> BTreeSet<&str> {
        source
            .split("extern \"C\" __global__ void ")
            .skip(1)
            .filter_map(|rest| rest.split('(').next())
            .map(str::trim)
            .collect()
    }

    #[test]
    fn every_kernel_file_is_listed_and_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let files = kernel_files();
        let on_disk: BTreeSet<&str> = files
            .iter()
            .filter(|(_, ext)| ext == "cu")
            .map(|(stem, _)| stem.as_str())
            .collect();
        let listed: BTreeSet<&str> = FILES.iter().copied().collect();
        assert_eq!(on_disk, listed, "FILES must list every kernels/*.cu");
        let tabled: Vec<&str> = TABLE.iter().map(|k| k.name).collect();
        assert_eq!(tabled, FILES, "TABLE must follow FILES");

        for name in FILES {
            let text = std::fs::read_to_string(dir.join(format!("{name}.cu"))).unwrap();
            assert_eq!(
                source(name),
                Some(text.as_str()),
                "{name}.cu embedded as is"
            );
            let declared = declared_entries(&text);
            let listed: BTreeSet<&str> = entries(name).iter().copied().collect();
            assert_eq!(declared, listed, "entries of {name}.cu");
        }

        let headers: BTreeSet<String> = files
            .iter()
            .filter(|(_, ext)| ext == "cuh")
            .map(|(stem, ext)| format!("{stem}.{ext}"))
            .collect();
        let embedded: BTreeSet<String> = HEADERS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(headers, embedded, "HEADERS must hold every kernels/*.cuh");
        for (name, text) in HEADERS {
            assert_eq!(*text, std::fs::read_to_string(dir.join(name)).unwrap());
        }
        assert_eq!(source("no-such-kernel"), None);
        assert_eq!(ptx("no-such-kernel"), None);
        assert!(entries("no-such-kernel").is_empty());
    }

    #[test]
    fn ptx_has_every_entry() {
        if !has_ptx() {
            // CI sets HELORA_REQUIRE_NVCC=1 (and build.rs fails first without nvcc); elsewhere
            // a missing CUDA compiler is normal.
            assert_ne!(
                std::env::var("HELORA_REQUIRE_NVCC").as_deref(),
                Ok("1"),
                "HELORA_REQUIRE_NVCC=1 but the crate was built without nvcc"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: built without nvcc, so there is no PTX to check"
            );
            return;
        }
        for name in FILES {
            let ptx = ptx(name).unwrap_or_else(|| panic!("no PTX for {name}"));
            assert!(ptx.contains(".target sm_90"), "{name}.ptx targets sm_90");
            for entry in entries(name) {
                assert!(
                    ptx.contains(&format!(".entry {entry}(")),
                    "{name}.ptx lacks .entry {entry}"
                );
            }
        }
        let report = ptxas_report().unwrap_or_default();
        for entry in FILES.iter().flat_map(|name| entries(name)) {
            assert!(
                report.contains(&format!(" {entry}: ")),
                "ptxas report of {entry}"
            );
        }
        println!("ptxas (sm_90):\n{report}");
    }

    /// A host C++ compiler: `CXX`, else `c++` or `g++` on PATH.
    fn host_cxx() -> Option<std::path::PathBuf> {
        if let Some(cxx) = std::env::var_os("CXX").filter(|v| !v.is_empty()) {
            return Some(cxx.into());
        }
        let path = std::env::var_os("PATH")?;
        ["c++", "g++"].iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    }

    /// Cases for check.cpp's composite checks: random inputs and what the CPU backend makes
    /// of them, as little-endian u64 words (the layout is documented at each `case_*` there).
    mod cpu_cases {
        use crate::backend::{Backend, CpuBackend, KeySwitchStep};
        use crate::math::ntt_prime_chain;
        use crate::ring::{arith, rescale, Basis, BasisExtender, RingContext, RnsPoly};
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;
        use std::sync::Arc;

        const RESCALE: u64 = 1;
        const MOD_UP: u64 = 2;
        const MOD_DOWN: u64 = 3;
        const KEY_SWITCH: u64 = 4;
        const KEY_SWITCH_BATCH: u64 = 5;

        fn ring(log_n: u32, q_bits: &[u32], p_bits: &[u32]) -> Arc<RingContext> {
            let n = 1 << log_n;
            let (q, p) = ntt_prime_chain(n, q_bits, p_bits).unwrap();
            Arc::new(RingContext::new(n, &q, &p).unwrap())
        }

        fn random(ctx: &RingContext, basis: Basis, ntt: bool, rng: &mut ChaCha8Rng) -> RnsPoly {
            let mut p = RnsPoly::zero(ctx.n(), basis, ntt);
            for (i, limb) in p.limbs_mut().enumerate() {
                let q = ctx.modulus(basis, i).value();
                limb.iter_mut().for_each(|x| *x = rng.random_range(0..q));
            }
            p
        }

        /// log_n, then the primes and ψ of `basis`.
        fn header(out: &mut Vec<u64>, ctx: &RingContext, basis: Basis, psis: bool) {
            let primes: Vec<u64> = ctx.moduli(basis).map(|m| m.value()).collect();
            out.extend(&primes);
            if psis {
                out.extend((0..basis.len()).map(|i| ctx.ntt_table(basis, i).psi()));
            }
        }

        pub(super) fn write(path: &std::path::Path) -> usize {
            let mut rng = ChaCha8Rng::seed_from_u64(0x6b65_726e);
            let mut w: Vec<u64> = Vec::new();
            let mut cases = 0;
            // N = 2^10: one NTT launch; 2^13: outer + inner. P of two primes and of one (the
            // one-source conversion path), digits of 1 to 3 primes.
            for (log_n, p_bits) in [(10, &[61u32, 58][..]), (10, &[60]), (13, &[61, 59])] {
                let ctx = ring(log_n, &[50, 55, 60, 45], p_bits);
                let (n, q_all, p) = (ctx.n(), ctx.q().len(), ctx.p().len());
                for q in [q_all, 2] {
                    let x = random(&ctx, Basis::level(q - 1), true, &mut rng);
                    w.extend([RESCALE, log_n as u64, q as u64]);
                    header(&mut w, &ctx, x.basis(), true);
                    w.extend(x.data());
                    w.extend(rescale(&ctx, &x).data());

                    let x = random(&ctx, Basis::new(q, p), true, &mut rng);
                    w.extend([MOD_DOWN, log_n as u64, q as u64, p as u64]);
                    header(&mut w, &ctx, x.basis(), true);
                    w.extend(x.data());
                    w.extend(BasisExtender::new(&ctx, 1).mod_down(&ctx, &x).data());
                    cases += 2;
                }
                for (q, alpha) in [(4, 2), (4, 3), (2, 3), (3, 1)] {
                    let ext = BasisExtender::new(&ctx, alpha);
                    let c = random(&ctx, Basis::level(q - 1), true, &mut rng);
                    let mut coeff = c.clone();
                    arith::ntt_inverse(&ctx, &mut coeff);
                    for digit in 0..ext.digit_count(q - 1) {
                        let start = digit * alpha;
                        let end = (start + alpha).min(q);
                        w.extend([MOD_UP, log_n as u64, q as u64, p as u64]);
                        header(&mut w, &ctx, Basis::new(q, p), true);
                        w.extend([start as u64, end as u64]);
                        w.extend(c.data());
                        w.extend(ext.mod_up(&ctx, &coeff, &c, digit).data());
                        cases += 1;
                    }
                }
                cases += key_switch_batches(&ctx, &mut w, &mut rng);
                if log_n > 10 {
                    continue;
                }
                let backend = CpuBackend::new(ctx.clone(), 2);
                let full = ctx.full_basis();
                for (q, galois) in [(3usize, 0), (3, 5), (4, 2 * n as u64 - 1), (2, 3)] {
                    let digits_n = q.div_ceil(2);
                    let basis = Basis::new(q, p);
                    let digits: Vec<RnsPoly> = (0..digits_n)
                        .map(|_| random(&ctx, basis, true, &mut rng))
                        .collect();
                    // The key has a digit more than the input uses below the top level.
                    let keys: Vec<[RnsPoly; 2]> = (0..digits_n + 1)
                        .map(|_| {
                            [
                                random(&ctx, full, true, &mut rng),
                                random(&ctx, full, true, &mut rng),
                            ]
                        })
                        .collect();
                    let g = (galois != 0).then_some(galois);
                    let [o0, o1] = backend.key_switch_inner_product(&digits, &keys, g);
                    w.extend([KEY_SWITCH, log_n as u64, q as u64, p as u64]);
                    w.extend([q_all as u64, digits_n as u64, galois]);
                    header(&mut w, &ctx, basis, false);
                    digits.iter().for_each(|d| w.extend(d.data()));
                    for k in &keys[..digits_n] {
                        w.extend(k[0].data());
                        w.extend(k[1].data());
                    }
                    w.extend(o0.data());
                    w.extend(o1.data());
                    cases += 1;
                }
            }
            let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(path, bytes).unwrap();
            cases
        }

        /// Batched key-switch inner products (`key_switch_inner_products`, the CPU's loop
        /// over single steps) for several steps and digits: Galois elements with the identity
        /// and the conjugation 2N − 1 among them, keys over Q_L ∪ P and over Q_l ∪ P in one
        /// batch, and at N = 2^10 more steps than one launch takes.
        fn key_switch_batches(
            ctx: &Arc<RingContext>,
            w: &mut Vec<u64>,
            rng: &mut ChaCha8Rng,
        ) -> usize {
            let backend = CpuBackend::new(ctx.clone(), 2);
            let (n, p) = (ctx.n() as u64, ctx.p().len());
            let conjugate = 2 * n - 1;
            let mut batches = vec![
                (4usize, vec![5, conjugate, 0, 3, 25, 5]),
                (3, vec![conjugate, 7]),
            ];
            if ctx.log_n() == 10 {
                // 40 steps: two launches of at most 32 (the powers of 5 and conjugation).
                let powers = (1..=39).scan(1u64, |g, _| {
                    *g = *g * 5 % (2 * n);
                    Some(*g)
                });
                batches.push((2, std::iter::once(conjugate).chain(powers).collect()));
            }
            for (q, galois) in &batches {
                let q = *q;
                let digits_n = q.div_ceil(2);
                let basis = Basis::new(q, p);
                let digits: Vec<RnsPoly> = (0..digits_n)
                    .map(|_| random(ctx, basis, true, rng))
                    .collect();
                // Odd steps' keys over Q_l ∪ P, the others' over Q_L ∪ P with a digit more.
                let keys: Vec<Vec<[RnsPoly; 2]>> = (0..galois.len())
                    .map(|s| {
                        let (key_basis, count) = if s % 2 == 1 {
                            (basis, digits_n)
                        } else {
                            (ctx.full_basis(), digits_n + 1)
                        };
                        (0..count)
                            .map(|_| {
                                [
                                    random(ctx, key_basis, true, rng),
                                    random(ctx, key_basis, true, rng),
                                ]
                            })
                            .collect()
                    })
                    .collect();
                let steps: Vec<KeySwitchStep<RnsPoly>> = keys
                    .iter()
                    .zip(galois)
                    .map(|(k, &g)| (k.as_slice(), (g != 0).then_some(g)))
                    .collect();
                let outs = backend.key_switch_inner_products(&digits, &steps);
                w.extend([KEY_SWITCH_BATCH, ctx.log_n() as u64, q as u64, p as u64]);
                w.extend([digits_n as u64, galois.len() as u64]);
                for (k, &g) in keys.iter().zip(galois) {
                    w.extend([g, k[0][0].basis().q as u64]);
                }
                header(w, ctx, basis, false);
                digits.iter().for_each(|d| w.extend(d.data()));
                for k in &keys {
                    for [b, a] in &k[..digits_n] {
                        w.extend(b.data());
                        w.extend(a.data());
                    }
                }
                for [o0, o1] in &outs {
                    w.extend(o0.data());
                    w.extend(o1.data());
                }
            }
            batches.len()
        }
    }

    /// The kernels' source compiled as host C++ (kernels/emulate/shim.h stands in for the
    /// CUDA built-ins, a block runs as real threads) against 128-bit arithmetic, the NTT's
    /// definition, and the CPU backend's rescale, ModUp, ModDown and key-switch inner
    /// product on random inputs (run in the CUDA backend's launch sequence). It checks index
    /// math and formulas without a GPU; it is no evidence about the device compiler or the
    /// hardware.
    #[test]
    fn kernels_emulated_on_host() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(cxx) = host_cxx() else {
            assert_ne!(
                std::env::var("HELORA_REQUIRE_NVCC").as_deref(),
                Ok("1"),
                "HELORA_REQUIRE_NVCC=1 but no C++ compiler (CXX, c++, g++) was found"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no C++ compiler to run kernels/emulate/check.cpp"
            );
            return;
        };
        let dir = std::env::temp_dir().join(format!("helora-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("check");
        // HELORA_EMULATE_SANITIZE=thread or =address,undefined (CI): the same check built
        // with that sanitizer, every report fatal.
        let sanitize: Vec<String> = match std::env::var("HELORA_EMULATE_SANITIZE") {
            Ok(s) if !s.is_empty() => vec![
                format!("-fsanitize={s}"),
                "-fno-sanitize-recover=all".into(),
                "-fno-omit-frame-pointer".into(),
                "-g".into(),
            ],
            _ => Vec::new(),
        };
        let build = std::process::Command::new(&cxx)
            .args(&sanitize)
            .args(["-std=c++20", "-O2", "-pthread", "-I"])
            .arg(root.join("kernels"))
            .arg("-I")
            .arg(root.join("kernels/emulate"))
            .arg(root.join("kernels/emulate/check.cpp"))
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        let vectors = dir.join("cpu-cases.bin");
        let cases = cpu_cases::write(&vectors);
        let run = build.status.success().then(|| {
            std::process::Command::new(&exe)
                .arg(&vectors)
                .env("TSAN_OPTIONS", "halt_on_error=1")
                .env("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1")
                .output()
                .unwrap()
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            build.status.success(),
            "{} could not compile kernels/emulate/check.cpp:\n{}",
            cxx.display(),
            String::from_utf8_lossy(&build.stderr)
        );
        let run = run.unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("{stdout}");
        assert!(
            run.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            stdout.contains(&format!("; {cases} cases against the CPU backend")),
            "check.cpp ran a different number of CPU cases than the {cases} written: {stdout}"
        );
    }
}

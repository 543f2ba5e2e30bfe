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
pub const KERNELS: &[&str] = &["automorphism", "ntt", "pointwise"];

// Keep in the order of `KERNELS` (a test checks both against kernels/).
const TABLE: &[Kernel] = &[
    kernel!("automorphism", ["automorphism_ntt", "automorphism_coeff"]),
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
        ]
    ),
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
        let listed: BTreeSet<&str> = KERNELS.iter().copied().collect();
        assert_eq!(on_disk, listed, "KERNELS must list every kernels/*.cu");
        let tabled: Vec<&str> = TABLE.iter().map(|k| k.name).collect();
        assert_eq!(tabled, KERNELS, "TABLE must follow KERNELS");

        for name in KERNELS {
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
            println!("skipped: built without nvcc, so there is no PTX to check");
            return;
        }
        for name in KERNELS {
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
        for entry in KERNELS.iter().flat_map(|name| entries(name)) {
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

    /// The kernels' source compiled as host C++ (kernels/emulate/shim.h stands in for the
    /// CUDA built-ins, a block runs as real threads) against 128-bit arithmetic and the
    /// NTT's definition. It checks index math and formulas without a GPU; it is no evidence
    /// about the device compiler or the hardware.
    #[test]
    fn kernels_emulated_on_host() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(cxx) = host_cxx() else {
            assert_ne!(
                std::env::var("HELORA_REQUIRE_NVCC").as_deref(),
                Ok("1"),
                "HELORA_REQUIRE_NVCC=1 but no C++ compiler (CXX, c++, g++) was found"
            );
            println!("skipped: no C++ compiler to run kernels/emulate/check.cpp");
            return;
        };
        let dir = std::env::temp_dir().join(format!("helora-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("check");
        let build = std::process::Command::new(&cxx)
            .args(["-std=c++20", "-O2", "-pthread", "-I"])
            .arg(root.join("kernels"))
            .arg("-I")
            .arg(root.join("kernels/emulate"))
            .arg(root.join("kernels/emulate/check.cpp"))
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        let run = build
            .status
            .success()
            .then(|| std::process::Command::new(&exe).output().unwrap());
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
        assert!(run.status.success(), "{stdout}");
    }
}

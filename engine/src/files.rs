//! Checks on the files a user names before they are opened: a FIFO, socket or device
//! opened for reading can block forever or never end, so only regular files are read.
//! And the one way secrets (a client's key seed) are written: readable by their owner only.

use anyhow::{bail, Result};
use std::path::Path;

/// Fails unless `path` is a regular file (after following links).
pub fn regular_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(_) => bail!("{} does not exist", path.display()),
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => bail!("{} is a directory, not a file", path.display()),
        Ok(_) => bail!(
            "{} is not a regular file (a FIFO, socket or device is not read)",
            path.display()
        ),
    }
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600), atomically: through a
/// new file beside it, renamed over `path`. The directory must exist; it is left as it is.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use anyhow::Context;
    let part = path.with_extension(format!("part{}", std::process::id()));
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
            .with_context(|| format!("creating {}", part.display()))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("writing {}", part.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::write(&part, bytes).with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

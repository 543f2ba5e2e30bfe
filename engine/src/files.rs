//! Checks on the files a user names before they are opened: a FIFO, socket or device
//! opened for reading can block forever or never end, so only regular files are read.

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

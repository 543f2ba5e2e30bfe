//! The client's key file: the 32-byte seed its secret key grows from (as secret as the key)
//! and the parameters it is for. Written only to a path the caller names, with mode 0600;
//! the secret key itself is never written anywhere else, nor handed out.

use crate::error::{Error, Result, WithStatus, HELORA_BAD_MESSAGE, HELORA_IO};
use helora_engine::serve::tokens;
use zeroize::Zeroizing;

const FORMAT: &str = "helora client key 1";

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    format: String,
    params_id: u64,
    /// Hex; zeroised on drop.
    seed: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.seed.zeroize();
    }
}

pub(crate) fn save(path: &std::path::Path, seed: &[u8; 32], params_id: u64) -> Result<()> {
    let file = KeyFile {
        format: FORMAT.to_string(),
        params_id,
        seed: tokens::hex(seed),
    };
    let text = Zeroizing::new(
        serde_json::to_string_pretty(&file)
            .map_err(|e| Error::new(HELORA_IO, format!("encoding the key file: {e}")))?,
    );
    helora_engine::files::write_private(path, text.as_bytes()).status(HELORA_IO)
}

/// The seed saved at `path` for parameters `params_id`.
pub(crate) fn load(path: &std::path::Path, params_id: u64) -> Result<Zeroizing<[u8; 32]>> {
    helora_engine::files::regular_file(path).status(HELORA_IO)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::new(HELORA_IO, format!("reading {}: {e}", path.display())))?,
    );
    let bad = |why: &str| Error::new(HELORA_BAD_MESSAGE, format!("{}: {why}", path.display()));
    let file: KeyFile =
        serde_json::from_str(&text).map_err(|e| bad(&format!("not a helora key file ({e})")))?;
    if file.format != FORMAT {
        return Err(bad(&format!(
            "format {:?}, expected {FORMAT:?}",
            file.format
        )));
    }
    if file.params_id != params_id {
        return Err(bad("the keys are for other CKKS parameters"));
    }
    tokens::unhex::<32>(&file.seed)
        .map(Zeroizing::new)
        .ok_or_else(|| bad("the seed is damaged"))
}

//! `helora clients add|list|revoke|rotate|usage`: the operator's identities. A new client's API token
//! is printed once, as the last line; the state keeps only its hash.

use super::state::{self, ClientRecord};
use super::tokens;
use anyhow::{bail, Context, Result};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Names are what operators type and what metrics label: short and plain.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !ok {
        bail!("client name {name:?}: use 1–64 letters, digits, '-', '_', '.' or '@'");
    }
    Ok(())
}

/// Adds a client and returns it with its token (shown to nobody else, ever).
pub fn add(
    state: Option<&str>,
    name: &str,
    budget: u64,
    adapter: Option<&str>,
) -> Result<(ClientRecord, String)> {
    check_name(name)?;
    if budget == 0 {
        bail!("--budget 0 would serve this client nothing");
    }
    runtime()?.block_on(async {
        let store = state::open(state).await?;
        let token = tokens::new_token()?;
        let record = store
            .add_client(name, &tokens::hash(&token), budget, adapter)
            .await?;
        Ok((record, token))
    })
}

pub fn list(state: Option<&str>) -> Result<Vec<ClientRecord>> {
    runtime()?.block_on(async { state::open(state).await?.clients().await })
}

/// What every identity, and all of them together, have spent of each adapter.
pub fn usage(state: Option<&str>) -> Result<super::usage::UsageReport> {
    runtime()?.block_on(async { super::usage::report(state::open(state).await?.as_ref()).await })
}

pub fn revoke(state: Option<&str>, name: &str) -> Result<()> {
    runtime()?.block_on(async {
        if !state::open(state).await?.revoke(name).await? {
            bail!("no client named {name:?}");
        }
        Ok(())
    })
}

/// Gives `name` a new token and returns it; the old token stops working at once on every
/// server on this state (each call looks its token up).
pub fn rotate(state: Option<&str>, name: &str) -> Result<String> {
    runtime()?.block_on(async {
        let token = tokens::new_token()?;
        if !state::open(state)
            .await?
            .rotate_token(name, &tokens::hash(&token))
            .await?
        {
            bail!("no client named {name:?}");
        }
        Ok(token)
    })
}

/// The table `clients list` prints.
pub fn table(clients: &[ClientRecord]) -> String {
    let mut out = format!(
        "{:<24} {:>12} {:<16} {:<8}\n",
        "name", "budget", "adapter", "status"
    );
    for c in clients {
        let budget = if c.budget >= i64::MAX as u64 {
            "unbounded".to_string()
        } else {
            c.budget.to_string()
        };
        out.push_str(&format!(
            "{:<24} {:>12} {:<16} {:<8}\n",
            c.name,
            budget,
            c.adapter.as_deref().unwrap_or("any"),
            if c.revoked { "revoked" } else { "active" }
        ));
    }
    out
}

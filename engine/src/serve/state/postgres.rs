//! The shared store: PostgreSQL, the one truth that server replicas agree through (no
//! protocol between replicas). The schema is versioned (`migrations/postgres`, run at start
//! under an advisory lock, so replicas that start together migrate once). A budget is
//! charged by one conditional upsert per request: each projection's row is checked and
//! incremented by the statement that locks it, so two replicas charging one client at once
//! can neither exceed its budget nor lose a charge.

use super::{
    from_sql, now, to_sql, Charge, ChargeOutcome, ClientRecord, KeySet, KeysAdded, Projection,
    Store, SESSION_RETENTION_SECS,
};
use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;

/// Connections per replica: a few concurrent charges, authentications and key loads.
const POOL: u32 = 8;
/// How long a request waits for a connection before it is refused as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a group of charges that PostgreSQL aborted as a deadlock or a serialization
/// failure (two replicas locking the same rows in another order): such a group changed
/// nothing and is run again.
const ATTEMPTS: usize = 5;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    location: String,
}

fn record(row: &PgRow) -> Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        budget: from_sql(row.try_get("budget")?),
        adapter: row.try_get("adapter")?,
        revoked: row.try_get("revoked")?,
        created_at: row.try_get("created_at")?,
    })
}

const CLIENT_COLUMNS: &str = "id, name, budget, adapter, revoked, created_at";

/// Whether PostgreSQL aborted a transaction that would succeed if run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("40P01" | "40001")
    )
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23505")
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL; `?options[search_path]=S` picks a schema) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).context("--state: not a PostgreSQL URL")?;
        let location = format!(
            "postgres://{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the state database {location}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating the state database {location}"))?;
        sqlx::query("DELETE FROM sessions WHERE updated_at < $1")
            .bind(now() - SESSION_RETENTION_SECS)
            .execute(&pool)
            .await
            .with_context(|| format!("pruning old sessions in {location}"))?;
        Ok(Self { pool, location })
    }

    async fn charge_group(
        &self,
        charges: &[Charge<'_>],
    ) -> Result<Vec<ChargeOutcome>, sqlx::Error> {
        // Rows are locked in one order (client, layer, session) whatever order the charges
        // came in, so that two replicas' groups rarely wait on each other in a cycle.
        let mut order: Vec<usize> = (0..charges.len()).collect();
        order.sort_by_key(|&i| {
            let c = &charges[i];
            (c.client, c.projections.first().map(|p| p.0), c.session)
        });
        let mut outcomes = vec![ChargeOutcome::Revoked; charges.len()];
        let mut tx = self.pool.begin().await?;
        for i in order {
            // A savepoint per charge: a refused one is rolled back alone.
            let mut one = tx.begin().await?;
            let outcome = charge_one(&mut one, &charges[i]).await?;
            if outcome == ChargeOutcome::Charged {
                one.commit().await?;
            } else {
                one.rollback().await?;
            }
            outcomes[i] = outcome;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn server_secret(&self) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        // The first replica's insert wins; every replica reads the same secret back.
        sqlx::query("INSERT INTO server (key, value) VALUES ('secret', $1) ON CONFLICT DO NOTHING")
            .bind(&fresh[..])
            .execute(&self.pool)
            .await?;
        let value: Vec<u8> = sqlx::query("SELECT value FROM server WHERE key = 'secret'")
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?;
        value
            .try_into()
            .map_err(|_| anyhow::anyhow!("the stored server secret is not 32 bytes"))
    }

    async fn add_client(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        budget: u64,
        adapter: Option<&str>,
    ) -> Result<ClientRecord> {
        let row = sqlx::query(&format!(
            "INSERT INTO clients (name, token_hash, budget, adapter, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(name)
        .bind(&token_hash[..])
        .bind(to_sql(budget))
        .bind(adapter)
        .bind(now())
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => record(&row),
            Err(e) if is_unique_violation(&e) => anyhow::bail!(
                "a client named {name:?} exists already (revoke it or pick another name)"
            ),
            Err(e) => Err(e.into()),
        }
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>> {
        sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record)
            .collect()
    }

    async fn revoke(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET revoked = TRUE WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn rotate_token(&self, name: &str, token_hash: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET token_hash = $2 WHERE name = $1")
            .bind(name)
            .bind(&token_hash[..])
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn client_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<ClientRecord>> {
        sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE token_hash = $1"
        ))
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
    }

    async fn add_keys(
        &self,
        client: i64,
        fingerprint: &[u8; 32],
        eval_keys: &[u8],
        public_key: &[u8],
        max_per_client: usize,
    ) -> Result<KeysAdded> {
        let mut tx = self.pool.begin().await?;
        // The client's row lock serialises its registrations across replicas, so that two
        // at once cannot both pass the count.
        sqlx::query("SELECT 1 FROM clients WHERE id = $1 FOR UPDATE")
            .bind(client)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) =
            sqlx::query("SELECT id FROM key_sets WHERE client_id = $1 AND fingerprint = $2")
                .bind(client)
                .bind(&fingerprint[..])
                .fetch_optional(&mut *tx)
                .await?
        {
            return Ok(KeysAdded::AlreadyRegistered(row.try_get("id")?));
        }
        let held: i64 = sqlx::query("SELECT COUNT(*) AS n FROM key_sets WHERE client_id = $1")
            .bind(client)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if from_sql(held) >= max_per_client as u64 {
            return Ok(KeysAdded::TooMany {
                max: max_per_client,
            });
        }
        let id: i64 = sqlx::query(
            "INSERT INTO key_sets (client_id, fingerprint, eval_keys, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(client)
        .bind(&fingerprint[..])
        .bind(eval_keys)
        .bind(public_key)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        Ok(KeysAdded::Added(id))
    }

    async fn remove_keys(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM key_sets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn key_set_id(&self, client: i64, fingerprint: &[u8; 32]) -> Result<Option<i64>> {
        sqlx::query("SELECT id FROM key_sets WHERE client_id = $1 AND fingerprint = $2")
            .bind(client)
            .bind(&fingerprint[..])
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Ok(row.try_get("id")?))
            .transpose()
    }

    async fn key_set(&self, id: i64) -> Result<Option<KeySet>> {
        sqlx::query("SELECT id, eval_keys, public_key FROM key_sets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(KeySet {
                    id: row.try_get("id")?,
                    eval_keys: row.try_get("eval_keys")?,
                    public_key: row.try_get("public_key")?,
                })
            })
            .transpose()
    }

    async fn most_used(&self, client: i64, adapter: &str) -> Result<u64> {
        let used: Option<i64> =
            sqlx::query("SELECT MAX(used) AS m FROM usage WHERE client_id = $1 AND adapter = $2")
                .bind(client)
                .bind(adapter)
                .fetch_one(&self.pool)
                .await?
                .try_get("m")?;
        Ok(used.map(from_sql).unwrap_or(0))
    }

    async fn usage(&self) -> Result<Vec<(String, String, usize, String, u64)>> {
        sqlx::query(
            "SELECT c.name AS name, u.adapter AS adapter, u.layer AS layer, u.module AS module, \
             u.used AS used FROM usage u JOIN clients c ON c.id = u.client_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("name")?,
                row.try_get("adapter")?,
                from_sql(row.try_get("layer")?) as usize,
                row.try_get("module")?,
                from_sql(row.try_get("used")?),
            ))
        })
        .collect()
    }

    async fn adapter_usage(&self) -> Result<Vec<(String, usize, String, u64)>> {
        sqlx::query("SELECT adapter, layer, module, used FROM adapter_usage")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("adapter")?,
                    from_sql(row.try_get("layer")?) as usize,
                    row.try_get("module")?,
                    from_sql(row.try_get("used")?),
                ))
            })
            .collect()
    }

    async fn record_projections(&self, adapter: &str, projections: &[Projection]) -> Result<()> {
        let layers: Vec<i64> = projections.iter().map(|p| p.layer as i64).collect();
        let modules: Vec<&str> = projections.iter().map(|p| p.module.as_str()).collect();
        let widths: Vec<i64> = projections.iter().map(|p| p.d_in as i64).collect();
        sqlx::query(
            "INSERT INTO projections (adapter, layer, module, d_in) \
             SELECT $1, p.layer, p.module, p.d_in \
             FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BIGINT[]) AS p(layer, module, d_in) \
             ON CONFLICT (adapter, layer, module) DO UPDATE SET d_in = EXCLUDED.d_in",
        )
        .bind(adapter)
        .bind(&layers)
        .bind(&modules)
        .bind(&widths)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn projections(&self) -> Result<Vec<(String, Projection)>> {
        sqlx::query("SELECT adapter, layer, module, d_in FROM projections")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("adapter")?,
                    Projection {
                        layer: from_sql(row.try_get("layer")?) as usize,
                        module: row.try_get("module")?,
                        d_in: from_sql(row.try_get("d_in")?) as usize,
                    },
                ))
            })
            .collect()
    }

    async fn charge_many(&self, charges: &[Charge<'_>]) -> Result<Vec<ChargeOutcome>> {
        let mut attempt = 1;
        loop {
            match self.charge_group(charges).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => {
                    tracing::debug!("charging again after a conflict between replicas: {e}");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Checks and, if everything allows it, applies one charge inside its savepoint `tx`; the
/// caller rolls the savepoint back unless the outcome is `Charged`.
async fn charge_one(
    tx: &mut PgConnection,
    charge: &Charge<'_>,
) -> Result<ChargeOutcome, sqlx::Error> {
    let client = sqlx::query("SELECT revoked, budget FROM clients WHERE id = $1")
        .bind(charge.client)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(client) = client else {
        return Ok(ChargeOutcome::Revoked);
    };
    if client.try_get::<bool, _>("revoked")? {
        return Ok(ChargeOutcome::Revoked);
    }
    let budget = from_sql(client.try_get("budget")?).min(charge.server_budget);
    // Claims (session, seq) if it is newer than the session's last; the row stays locked
    // either way, so a re-send on another replica waits for this one's outcome.
    let claimed = sqlx::query(
        "INSERT INTO sessions (client_id, session, last_seq, digest, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (client_id, session) DO UPDATE SET last_seq = EXCLUDED.last_seq, \
         digest = EXCLUDED.digest, updated_at = EXCLUDED.updated_at \
         WHERE sessions.last_seq < EXCLUDED.last_seq RETURNING 1",
    )
    .bind(charge.client)
    .bind(charge.session)
    .bind(to_sql(charge.seq))
    .bind(&charge.digest[..])
    .bind(now())
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        let last = sqlx::query(
            "SELECT last_seq, digest FROM sessions WHERE client_id = $1 AND session = $2",
        )
        .bind(charge.client)
        .bind(charge.session)
        .fetch_one(&mut *tx)
        .await?;
        let last_seq = from_sql(last.try_get("last_seq")?);
        let digest: Vec<u8> = last.try_get("digest")?;
        return Ok(super::replay_outcome(charge, last_seq, &digest));
    }
    let mut projections: Vec<&(usize, String)> = charge.projections.iter().collect();
    projections.sort();
    let layers: Vec<i64> = projections.iter().map(|p| p.0 as i64).collect();
    let modules: Vec<&str> = projections.iter().map(|p| p.1.as_str()).collect();
    // The charge: every row that stays within the budget is incremented (or made), each
    // checked by the statement that locks it; a row over the budget is left alone.
    let charged = sqlx::query(
        "INSERT INTO usage AS u (client_id, adapter, layer, module, used) \
         SELECT $1, $2, p.layer, p.module, $3 FROM UNNEST($4::BIGINT[], $5::TEXT[]) AS p(layer, module) \
         WHERE $3 <= $6 \
         ON CONFLICT (client_id, adapter, layer, module) DO UPDATE SET used = u.used + EXCLUDED.used \
         WHERE u.used + EXCLUDED.used <= $6 \
         RETURNING u.layer, u.module",
    )
    .bind(charge.client)
    .bind(charge.adapter)
    .bind(to_sql(charge.count))
    .bind(&layers)
    .bind(&modules)
    .bind(to_sql(budget))
    .fetch_all(&mut *tx)
    .await?;
    if charged.len() != projections.len() {
        // Some projection is over its budget: the caller rolls all of it back.
        let (layer, module) = first_missing(&projections, &charged)?;
        return Ok(ChargeOutcome::Exhausted {
            layer,
            module,
            budget,
        });
    }
    // The same over all identities: the adapter's rows, locked after the client's own
    // (one order, so replicas' groups cannot lock each other's rows crosswise).
    let charged = sqlx::query(
        "INSERT INTO adapter_usage AS u (adapter, layer, module, used) \
         SELECT $1, p.layer, p.module, $2 FROM UNNEST($3::BIGINT[], $4::TEXT[]) AS p(layer, module) \
         WHERE $2 <= $5 \
         ON CONFLICT (adapter, layer, module) DO UPDATE SET used = u.used + EXCLUDED.used \
         WHERE u.used + EXCLUDED.used <= $5 \
         RETURNING u.layer, u.module",
    )
    .bind(charge.adapter)
    .bind(to_sql(charge.count))
    .bind(&layers)
    .bind(&modules)
    .bind(to_sql(charge.adapter_budget))
    .fetch_all(&mut *tx)
    .await?;
    if charged.len() != projections.len() {
        let (layer, module) = first_missing(&projections, &charged)?;
        return Ok(ChargeOutcome::AdapterExhausted {
            layer,
            module,
            budget: charge.adapter_budget,
        });
    }
    Ok(ChargeOutcome::Charged)
}

/// The first of `projections` that no row of `charged` (layer, module) names.
fn first_missing(
    projections: &[&(usize, String)],
    charged: &[PgRow],
) -> Result<(usize, String), sqlx::Error> {
    let charged: Vec<(i64, String)> = charged
        .iter()
        .map(|row| Ok((row.try_get("layer")?, row.try_get("module")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(projections
        .iter()
        .find(|p| !charged.iter().any(|(l, m)| *l == p.0 as i64 && *m == p.1))
        .map(|p| (p.0, p.1.clone()))
        .unwrap_or_default())
}

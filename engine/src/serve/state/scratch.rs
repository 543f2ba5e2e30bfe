//! A throwaway PostgreSQL schema: the tests and `bench serve` run replicas on one without
//! touching anything else in the database, and drop it after.

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// The database the tests use unless `HELORA_TEST_POSTGRES` names another: the one every
/// machine of the project runs (trust auth, database `test`).
pub const TEST_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct ScratchSchema {
    database: String,
    schema: String,
}

impl ScratchSchema {
    /// Creates a schema with a fresh name (from `tag`) in `database`.
    pub async fn create(database: &str, tag: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let schema = format!(
            "helora_{}_{}_{nanos}",
            tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id()
        );
        let mut connection = connect(database).await?;
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut connection)
            .await
            .with_context(|| format!("creating schema {schema} in {database}"))?;
        Ok(Self {
            database: database.to_string(),
            schema,
        })
    }

    /// A `--state` URL whose tables live in this schema.
    pub fn url(&self) -> String {
        let join = if self.database.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{join}options[search_path]={}",
            self.database, self.schema
        )
    }

    pub fn name(&self) -> &str {
        &self.schema
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> Result<()> {
        let mut connection = connect(&self.database).await?;
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(&mut connection)
            .await
            .with_context(|| format!("dropping schema {}", self.schema))?;
        Ok(())
    }
}

async fn connect(database: &str) -> Result<PgConnection> {
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(database))
        .await
        .map_err(|_| anyhow::anyhow!("PostgreSQL at {database} did not answer in 5 s"))?
        .with_context(|| format!("connecting to PostgreSQL at {database}"))
}

/// The database for tests: `HELORA_TEST_POSTGRES`, else [`TEST_DATABASE`]; `None` (and a
/// printed skip) when it does not answer, unless `HELORA_REQUIRE_POSTGRES=1` (CI), where
/// that is an error.
pub async fn test_database() -> Result<Option<String>> {
    let database =
        std::env::var("HELORA_TEST_POSTGRES").unwrap_or_else(|_| TEST_DATABASE.to_string());
    match connect(&database).await {
        Ok(_) => Ok(Some(database)),
        Err(e) if std::env::var("HELORA_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            Err(e.context("HELORA_REQUIRE_POSTGRES=1 and PostgreSQL is not reachable"))
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: PostgreSQL tests ({e:#})");
            Ok(None)
        }
    }
}

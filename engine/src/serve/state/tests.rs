//! One suite, two stores: every test runs on SQLite, then on PostgreSQL (its own schema,
//! dropped after; a printed skip where PostgreSQL is not reachable, a failure under
//! `HELORA_REQUIRE_POSTGRES=1`). Each test opens a store twice where it matters: a second
//! instance is a restart, or a second replica.

use super::*;
use std::future::Future;
use std::sync::Arc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Opens a fresh instance of one store's state.
#[derive(Clone)]
enum Backing {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backing {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backing::Sqlite(path) => Arc::new(SqliteStore::open(path).await.unwrap()),
            Backing::Postgres(url) => Arc::new(PostgresStore::open(url).await.unwrap()),
        }
    }
}

/// Runs `test` on a fresh SQLite file, then on a fresh PostgreSQL schema.
fn on_both_stores<F, Fut>(tag: &str, test: F)
where
    F: Fn(Backing) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = runtime();
    let dir = std::env::temp_dir().join(format!("helora-state-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    runtime.block_on(test(Backing::Sqlite(dir.join("state.sqlite"))));
    let _ = std::fs::remove_dir_all(&dir);
    runtime.block_on(async {
        let Some(database) = scratch::test_database().await.unwrap() else {
            return;
        };
        let schema = ScratchSchema::create(&database, tag).await.unwrap();
        test(Backing::Postgres(schema.url())).await;
        schema.drop_schema().await.unwrap();
    });
}

fn charge<'a>(
    client: i64,
    projections: &'a [(usize, String)],
    count: u64,
    session: &'a [u8],
    seq: u64,
    digest: &'a [u8; 32],
) -> Charge<'a> {
    Charge {
        client,
        adapter: "x",
        projections,
        count,
        server_budget: 100,
        adapter_budget: u64::MAX,
        session,
        seq,
        digest,
    }
}

/// The adapter's budget bounds every identity together, refuses whole (the identity's own
/// count is not charged either), survives a restart, and is reported in units of d_in;
/// registering another key set does not reset an identity's count.
#[test]
fn adapter_budgets_bound_all_identities_together() {
    on_both_stores("adapter-budget", |backing| async move {
        let store = backing.open().await;
        let projections = vec![(0, "q_proj".to_string())];
        let mut clients = Vec::new();
        for (name, hash) in [("a", [1; 32]), ("b", [2; 32]), ("c", [3; 32])] {
            clients.push(store.add_client(name, &hash, 100, None).await.unwrap());
        }
        let pooled = |store: Arc<dyn Store>, client: i64, seq: u64, count: u64| {
            let projections = projections.clone();
            async move {
                let (digest, session) = ([seq as u8; 32], [client as u8; 16]);
                let charge = Charge {
                    adapter_budget: 5,
                    ..charge(client, &projections, count, &session, seq, &digest)
                };
                store.charge(&charge).await.unwrap()
            }
        };
        let (a, b, c) = (clients[0].id, clients[1].id, clients[2].id);
        assert_eq!(pooled(store.clone(), a, 0, 3).await, ChargeOutcome::Charged);
        assert_eq!(
            pooled(store.clone(), b, 0, 3).await,
            ChargeOutcome::AdapterExhausted {
                layer: 0,
                module: "q_proj".into(),
                budget: 5
            }
        );
        assert_eq!(store.most_used(b, "x").await.unwrap(), 0, "refused whole");
        assert_eq!(pooled(store.clone(), b, 1, 2).await, ChargeOutcome::Charged);
        store
            .add_keys(a, &[4; 32], b"keys", b"pk", 4)
            .await
            .unwrap();
        assert_eq!(
            store.most_used(a, "x").await.unwrap(),
            3,
            "kept across registration"
        );

        let restarted = backing.open().await;
        assert_eq!(
            restarted.adapter_usage().await.unwrap(),
            vec![("x".to_string(), 0, "q_proj".to_string(), 5)]
        );
        assert!(matches!(
            pooled(restarted.clone(), c, 0, 1).await,
            ChargeOutcome::AdapterExhausted { budget: 5, .. }
        ));
        restarted
            .record_projections(
                "x",
                &[Projection {
                    layer: 0,
                    module: "q_proj".into(),
                    d_in: 10,
                }],
            )
            .await
            .unwrap();
        let report = crate::serve::usage::report(restarted.as_ref())
            .await
            .unwrap();
        let shares: Vec<(Option<String>, Option<f64>)> = report
            .identities
            .iter()
            .chain(&report.adapters)
            .map(|u| (u.client.clone(), u.d_in_fraction))
            .collect();
        assert_eq!(
            shares,
            vec![
                (Some("a".into()), Some(0.3)),
                (Some("b".into()), Some(0.2)),
                (None, Some(0.5)),
            ]
        );
    });
}

/// Every outcome of a charge, that nothing is charged unless it says `Charged`, and that
/// the counts survive a restart.
#[test]
fn charges_are_atomic_idempotent_and_bounded() {
    on_both_stores("charges", |backing| async move {
        let store = backing.open().await;
        let secret = store.server_secret().await.unwrap();
        assert_eq!(store.server_secret().await.unwrap(), secret, "made once");
        let client = store.add_client("a", &[1; 32], 3, None).await.unwrap();
        let err = store.add_client("a", &[2; 32], 3, None).await.unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err:#}");
        let projections = vec![(0, "q_proj".to_string()), (0, "v_proj".to_string())];
        let session = [7u8; 16];
        let at = |seq, count, digest: [u8; 32]| {
            let store = store.clone();
            let projections = projections.clone();
            async move {
                store
                    .charge(&charge(
                        client.id,
                        &projections,
                        count,
                        &session,
                        seq,
                        &digest,
                    ))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(at(0, 2, [0; 32]).await, ChargeOutcome::Charged);
        assert_eq!(at(0, 2, [0; 32]).await, ChargeOutcome::AlreadyCharged);
        assert!(matches!(
            at(0, 2, [9; 32]).await,
            ChargeOutcome::Conflict(_)
        ));
        // Two more would make 4 > 3: refused whole, nothing charged.
        assert!(matches!(
            at(1, 2, [1; 32]).await,
            ChargeOutcome::Exhausted { budget: 3, .. }
        ));
        assert_eq!(store.most_used(client.id, "x").await.unwrap(), 2);
        assert_eq!(at(1, 1, [1; 32]).await, ChargeOutcome::Charged);
        assert!(
            matches!(at(0, 1, [3; 32]).await, ChargeOutcome::Conflict(_)),
            "stale seq"
        );
        assert_eq!(store.most_used(client.id, "x").await.unwrap(), 3);
        assert!(store.revoke("a").await.unwrap());
        assert!(!store.revoke("nobody").await.unwrap());
        assert_eq!(at(2, 1, [2; 32]).await, ChargeOutcome::Revoked);
        let usage = store.usage().await.unwrap();
        assert_eq!(usage.len(), 2);
        assert!(usage.iter().all(|u| u.4 == 3));

        // The counts are durable: a new instance on the same state sees them.
        let reopened = backing.open().await;
        let clients = reopened.clients().await.unwrap();
        assert_eq!(reopened.most_used(clients[0].id, "x").await.unwrap(), 3);
        assert!(clients[0].revoked);
        assert_eq!(reopened.server_secret().await.unwrap(), secret);
    });
}

/// A charge over one projection's budget leaves the others of the same request alone, and
/// a group mixes outcomes without one affecting another.
#[test]
fn a_group_charges_each_request_on_its_own() {
    on_both_stores("group", |backing| async move {
        let store = backing.open().await;
        let a = store.add_client("a", &[1; 32], 4, None).await.unwrap();
        let b = store.add_client("b", &[2; 32], 4, None).await.unwrap();
        let q = vec![(3, "q_proj".to_string())];
        let qv = vec![(3, "q_proj".to_string()), (3, "v_proj".to_string())];
        let s = [1u8; 16];
        let d = [5u8; 32];
        // q of layer 3 reaches 4 for a: a request for q and v then exceeds q's budget.
        assert_eq!(
            store.charge(&charge(a.id, &q, 4, &s, 0, &d)).await.unwrap(),
            ChargeOutcome::Charged
        );
        let group = [
            charge(a.id, &qv, 1, &s, 1, &d),
            charge(b.id, &qv, 4, &s, 0, &d),
            charge(b.id, &qv, 1, &[2; 16], 0, &d),
        ];
        let outcomes = store.charge_many(&group).await.unwrap();
        assert_eq!(
            outcomes[0],
            ChargeOutcome::Exhausted {
                layer: 3,
                module: "q_proj".into(),
                budget: 4
            }
        );
        assert_eq!(outcomes[1], ChargeOutcome::Charged);
        assert!(matches!(
            outcomes[2],
            ChargeOutcome::Exhausted { budget: 4, .. }
        ));
        let usage = store.usage().await.unwrap();
        let used = |name: &str, module: &str| {
            usage
                .iter()
                .find(|u| u.0 == name && u.3 == module)
                .map(|u| u.4)
                .unwrap_or(0)
        };
        assert_eq!((used("a", "q_proj"), used("a", "v_proj")), (4, 0));
        assert_eq!((used("b", "q_proj"), used("b", "v_proj")), (4, 4));
        // The refused request's seq was not taken: it may come again, and is refused again.
        assert!(matches!(
            store
                .charge(&charge(a.id, &qv, 1, &s, 1, &d))
                .await
                .unwrap(),
            ChargeOutcome::Exhausted { .. }
        ));
    });
}

/// Key sets: stored once per (client, fingerprint), limited per client, read back whole.
#[test]
fn key_sets_are_stored_once_and_limited() {
    on_both_stores("keys", |backing| async move {
        let store = backing.open().await;
        let a = store.add_client("a", &[1; 32], 10, None).await.unwrap();
        let keys = vec![0xA5u8; 3 << 20];
        let added = store
            .add_keys(a.id, &[1; 32], &keys, b"pk", 2)
            .await
            .unwrap();
        let KeysAdded::Added(id) = added else {
            panic!("{added:?}")
        };
        assert_eq!(
            store
                .add_keys(a.id, &[1; 32], &keys, b"pk", 2)
                .await
                .unwrap(),
            KeysAdded::AlreadyRegistered(id)
        );
        assert!(matches!(
            store.add_keys(a.id, &[2; 32], b"k", b"p", 2).await.unwrap(),
            KeysAdded::Added(_)
        ));
        assert_eq!(
            store.add_keys(a.id, &[3; 32], b"k", b"p", 2).await.unwrap(),
            KeysAdded::TooMany { max: 2 }
        );
        // Another replica reads them back.
        let other = backing.open().await;
        assert_eq!(other.key_set_id(a.id, &[1; 32]).await.unwrap(), Some(id));
        assert_eq!(other.key_set_id(a.id, &[9; 32]).await.unwrap(), None);
        let set = other.key_set(id).await.unwrap().unwrap();
        assert_eq!((set.id, set.eval_keys == keys), (id, true));
        assert_eq!(set.public_key, b"pk");
        other.remove_keys(id).await.unwrap();
        assert!(store.key_set(id).await.unwrap().is_none());
        assert_eq!(store.key_set_id(a.id, &[1; 32]).await.unwrap(), None);
    });
}

/// Identities: looked up by token hash only; revocation and token rotation seen at once by
/// another instance.
#[test]
fn tokens_revocation_and_rotation() {
    on_both_stores("tokens", |backing| async move {
        let store = backing.open().await;
        let other = backing.open().await;
        let a = store
            .add_client("a", &[1; 32], 10, Some("demo"))
            .await
            .unwrap();
        let found = other.client_by_token(&[1; 32]).await.unwrap().unwrap();
        assert_eq!(found, a);
        assert_eq!(found.adapter.as_deref(), Some("demo"));
        assert!(other.client_by_token(&[2; 32]).await.unwrap().is_none());
        assert!(store.rotate_token("a", &[3; 32]).await.unwrap());
        assert!(!store.rotate_token("nobody", &[4; 32]).await.unwrap());
        assert!(other.client_by_token(&[1; 32]).await.unwrap().is_none());
        assert_eq!(
            other.client_by_token(&[3; 32]).await.unwrap().unwrap().id,
            a.id
        );
        assert!(store.revoke("a").await.unwrap());
        assert!(
            other
                .client_by_token(&[3; 32])
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        other.ping().await.unwrap();
    });
}

/// Two instances (two replicas) charge one client concurrently, many requests each: the
/// budget is spent exactly, never exceeded, and no charge is lost.
#[test]
fn concurrent_replicas_never_overspend() {
    on_both_stores("race", |backing| async move {
        const BUDGET: u64 = 37;
        const REQUESTS: usize = 64;
        let replicas = [backing.open().await, backing.open().await];
        let client = replicas[0]
            .add_client("a", &[1; 32], BUDGET, None)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for k in 0..REQUESTS {
            let store = replicas[k % 2].clone();
            tasks.push(tokio::spawn(async move {
                // Each request its own session; two layers, so groups lock rows in turn.
                let projections =
                    vec![(k % 2, "q_proj".to_string()), (k % 2, "v_proj".to_string())];
                let session = (k as u128).to_le_bytes();
                store
                    .charge(&charge(client.id, &projections, 1, &session, 0, &[0; 32]))
                    .await
                    .unwrap()
            }));
        }
        let mut charged = [0u64; 2];
        for (k, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                ChargeOutcome::Charged => charged[k % 2] += 1,
                ChargeOutcome::Exhausted { budget, .. } => assert_eq!(budget, BUDGET),
                other => panic!("{other:?}"),
            }
        }
        // 32 requests per layer, 37 allowed: all charged; then the rest of each budget.
        assert_eq!(charged, [32, 32]);
        let usage = replicas[1].usage().await.unwrap();
        assert_eq!(usage.len(), 4);
        assert!(usage.iter().all(|u| u.4 == 32), "{usage:?}");
        // Now over the budget from both replicas at once: exactly 5 more per projection.
        let mut tasks = Vec::new();
        for k in 0..24 {
            let store = replicas[k % 2].clone();
            tasks.push(tokio::spawn(async move {
                let projections = vec![(0, "q_proj".to_string()), (0, "v_proj".to_string())];
                let session = (1000 + k as u128).to_le_bytes();
                store
                    .charge(&charge(client.id, &projections, 1, &session, 0, &[0; 32]))
                    .await
                    .unwrap()
            }));
        }
        let mut more = 0;
        for task in tasks {
            if task.await.unwrap() == ChargeOutcome::Charged {
                more += 1;
            }
        }
        assert_eq!(more, BUDGET - 32);
        assert_eq!(replicas[0].most_used(client.id, "x").await.unwrap(), BUDGET);
    });
}

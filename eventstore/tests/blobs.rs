//! Content-addressed blobs on PostgreSQL (a fresh database on the test binary's managed server):
//! stored once under the SHA-256 of their bytes, read back byte for byte, missing ones told.

use bosun_eventstore::blobs::digest_of;
use bosun_eventstore::PgEventStore;

async fn pg() -> (PgEventStore, tokio_postgres::Config) {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config)
        .await
        .expect("open the PostgreSQL store");
    (store, config)
}

async fn rows(store: &PgEventStore) -> i64 {
    let client = store.pool().get().await.unwrap();
    client
        .query_one("SELECT count(*) FROM blobs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_is_stored_under_its_sha256_and_read_back_byte_for_byte() {
    let (store, _) = pg().await;
    let content: Vec<u8> = (0..=255u8).chain([0, 0, 0xff]).collect();
    let digest = store.put_blob(&content).await.unwrap();
    assert_eq!(digest, digest_of(&content));
    assert_eq!(digest.len(), 64);
    assert!(digest
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(store.blob(&digest).await.unwrap(), Some(content));
    // The known digest of "hello\n".
    assert_eq!(
        store.put_blob(b"hello\n").await.unwrap(),
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    let empty = store.put_blob(b"").await.unwrap();
    assert_eq!(store.blob(&empty).await.unwrap(), Some(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_is_stored_once_even_concurrently() {
    let (store, _) = pg().await;
    let content = vec![42u8; 100_000];
    let puts = (0..8).map(|_| {
        let store = store.clone();
        let content = content.clone();
        tokio::spawn(async move { store.put_blob(&content).await })
    });
    let digests: Vec<String> = futures::future::join_all(puts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]));
    assert_eq!(rows(&store).await, 1);
    store.put_blob(&content).await.unwrap();
    assert_eq!(rows(&store).await, 1);
    let client = store.pool().get().await.unwrap();
    let size: i64 = client
        .query_one("SELECT size FROM blobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(size, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blobs_are_told_in_the_order_given() {
    let (store, _) = pg().await;
    let a = store.put_blob(b"a").await.unwrap();
    let b = digest_of(b"b");
    let c = digest_of(b"c");
    assert_eq!(store.blob(&b).await.unwrap(), None);
    assert_eq!(store.blob("not a digest").await.unwrap(), None);
    let missing = store
        .has_blobs(&[c.clone(), a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(missing, vec![c, b]);
    assert_eq!(store.has_blobs(&[a]).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.has_blobs(&[]).await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_survive_reopening_and_the_table_takes_only_digests() {
    let (store, config) = pg().await;
    let digest = store.put_blob(b"kept").await.unwrap();
    drop(store);
    let store = PgEventStore::open(&config).await.unwrap();
    assert_eq!(store.blob(&digest).await.unwrap(), Some(b"kept".to_vec()));
    let client = store.pool().get().await.unwrap();
    let refused = client
        .execute(
            "INSERT INTO blobs (digest, size, content) VALUES ('ABC', 1, 'x')",
            &[],
        )
        .await;
    assert!(
        refused.is_err(),
        "a digest that is not sha256 hex is refused"
    );
    let version = |component: &'static str| {
        let client = &client;
        async move {
            let version: i32 = client
                .query_one(
                    "SELECT max(version) FROM schema_migrations WHERE component = $1",
                    &[&component],
                )
                .await
                .unwrap()
                .get(0);
            version
        }
    };
    assert_eq!(
        version("eventstore").await,
        1,
        "blobs are their own component: an older binary still opens the database"
    );
    assert_eq!(version("blobs").await, 1);
}

//! Content-addressed blobs on PostgreSQL (a fresh database on the test binary's managed server):
//! stored once under the SHA-256 of their bytes, read back byte for byte.

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
    let digest = digest_of(&content);
    store.put_blob(&digest, &content).await.unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(store.blob(&digest).await.unwrap(), Some(content.clone()));
    // What the table keeps under the digest is the content it is the SHA-256 of.
    let client = store.pool().get().await.unwrap();
    let (stored_digest, stored): (String, Vec<u8>) = {
        let row = client
            .query_one("SELECT digest, content FROM blobs", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(stored_digest, digest_of(&stored));
    assert_eq!(stored, content);
    // The known digest of "hello\n".
    let hello = digest_of(b"hello\n");
    assert_eq!(
        hello,
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    store.put_blob(&hello, b"hello\n").await.unwrap();
    assert_eq!(store.blob(&hello).await.unwrap(), Some(b"hello\n".to_vec()));
    let empty = digest_of(b"");
    store.put_blob(&empty, b"").await.unwrap();
    assert_eq!(store.blob(&empty).await.unwrap(), Some(vec![]));
    // An unknown digest, or what is not one, reads as none.
    assert_eq!(store.blob(&digest_of(b"b")).await.unwrap(), None);
    assert_eq!(store.blob("not a digest").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_is_stored_once_even_concurrently() {
    let (store, _) = pg().await;
    let content = vec![42u8; 100_000];
    let puts = (0..8).map(|_| {
        let store = store.clone();
        let content = content.clone();
        tokio::spawn(async move { store.put_blob(&digest_of(&content), &content).await })
    });
    for put in futures::future::join_all(puts).await {
        put.unwrap().unwrap();
    }
    assert_eq!(rows(&store).await, 1);
    store
        .put_blob(&digest_of(&content), &content)
        .await
        .unwrap();
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
async fn blobs_survive_reopening_and_the_table_takes_only_digests() {
    let (store, config) = pg().await;
    let digest = digest_of(b"kept");
    store.put_blob(&digest, b"kept").await.unwrap();
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

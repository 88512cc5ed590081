//! `contract!(a, b, …)`: each named async fn runs on a fresh SQLite file
//! and on a fresh PostgreSQL database (when `TIDINGS_TEST_DATABASE_URL` is
//! set), so every store behaviour is checked on both backends.

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let db = domain::testing::TestStore::fresh(domain::testing::Flavor::Sqlite).await.unwrap();
                super::$name(&db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(db) = domain::testing::TestStore::fresh(domain::testing::Flavor::Postgres).await {
                    super::$name(&db).await;
                }
            })*
        }
    };
}

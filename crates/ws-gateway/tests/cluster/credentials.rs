//! Revocation across processes: a credential taken back through the api
//! closes the sockets that used it on every gateway with 4003, and no
//! gateway lets it in again.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::delivery::connect;
use crate::ws_client::Client;

async fn handshake_status(gateway: &str, credential: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("ws://{gateway}/ws?token={credential}")).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_on_the_api_closes_sockets_on_every_gateway() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let key = cluster
        .rest(Method::POST, "/api/keys/", &alice, json!({"name":"bot"}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut on_a = connect(&cluster.gateways[0], &alice).await;
    let mut on_b = connect(&cluster.gateways[1], &alice).await;
    let mut key_on_b = connect(&cluster.gateways[1], &key).await;
    let mut bob_on_b = connect(&cluster.gateways[1], &bob).await;
    cluster
        .change_password(&alice, "a brand new password")
        .await;
    assert_eq!(on_b.closed().await.0, 4003, "gateway B");
    assert_eq!(on_a.closed().await.0, 4003, "gateway A");
    for gateway in &cluster.gateways {
        assert_eq!(handshake_status(gateway, &alice).await, 401);
    }
    // A key outlives a password change, and dies with its deletion.
    let reply = key_on_b
        .request(json!({"type":"notifications_list","page":1}))
        .await;
    assert_eq!(reply["type"], "notifications_list");
    let keys = reqwest::Client::new()
        .get(format!("{}/api/keys/", cluster.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let path = format!("/api/keys/{}/", keys[0]["id"]);
    let deleted = reqwest::Client::new()
        .delete(format!("{}{path}", cluster.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(key_on_b.closed().await.0, 4003);
    for gateway in &cluster.gateways {
        assert_eq!(handshake_status(gateway, &key).await, 401);
    }
    bob_on_b.expect_quiet().await;
    let mut bob_again: Client = connect(&cluster.gateways[0], &bob).await;
    bob_again.expect_quiet().await;
}

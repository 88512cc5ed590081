//! The OpenAPI document as served, checked by an outside validator, and
//! the Postman collection built from it, run by newman against a live
//! server: every request of it must pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;

use crate::helpers::{PASSWORD, TestApp, on_both_stores};

on_both_stores!(the_postman_collection_passes_under_newman);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `program` can run; a missing tool fails the test under CI.
fn available(program: &str) -> bool {
    let found = Command::new(program).arg("--version").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must provide {program}"
    );
    if !found {
        eprintln!("skipped: {program} is not installed");
    }
    found
}

/// The served document, saved to a file for the outside tools.
async fn served_document(app: &TestApp, dir: &Path) -> PathBuf {
    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let expected: serde_json::Value =
        serde_json::from_str(&tidings_api::openapi::document().unwrap()).unwrap();
    assert_eq!(doc, expected, "`tidings openapi` prints what is served");
    let path = dir.join("openapi.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn the_served_document_validates_and_the_collection_is_current() {
    let app = TestApp::spawn(domain::testing::Flavor::Sqlite)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let doc = served_document(&app, dir.path()).await;
    if available("openapi-spec-validator") {
        let out = Command::new("openapi-spec-validator")
            .arg(&doc)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if available("python3") {
        let out = Command::new("python3")
            .arg(repository().join("docs/postman/generate.py"))
            .arg(&doc)
            .arg("--check")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn the_postman_collection_passes_under_newman(app: &TestApp) {
    if !available("newman") {
        return;
    }
    let postman = repository().join("docs/postman");
    let out = tokio::process::Command::new("newman")
        .arg("run")
        .arg(postman.join("tidings.postman_collection.json"))
        .arg("-e")
        .arg(postman.join("tidings.postman_environment.json"))
        .args(["--env-var", &format!("baseUrl={}", app.base)])
        .args(["--env-var", "adminUsername=admin"])
        .args(["--env-var", &format!("adminPassword={PASSWORD}")])
        .args(["--color", "off", "--bail"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains('✗'), "{report}");
}

/// Paging and history bounds are in the document, so a client (or a
/// generated one) knows them before it is refused; each is what the
/// server enforces (`hostile.rs` sends values past them).
#[test]
fn the_document_states_every_paging_bound() {
    let doc: serde_json::Value =
        serde_json::from_str(&tidings_api::openapi::document().unwrap()).unwrap();
    let bounds = [
        ("page", Some(1), Some(i64::from(u32::MAX))),
        ("page_size", Some(1), Some(100)),
        ("limit", Some(1), Some(1000)),
        ("after", Some(0), None),
        ("before", Some(1), None),
    ];
    let mut seen = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for operation in operations.as_object().unwrap().values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let Some((_, min, max)) = bounds.iter().find(|(n, ..)| *n == name) else {
                    continue;
                };
                let schema = &parameter["schema"];
                assert_eq!(schema["minimum"].as_i64(), *min, "{path} {name}");
                assert_eq!(schema["maximum"].as_i64(), *max, "{path} {name}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 12, "only {seen} bounded parameters found");
}

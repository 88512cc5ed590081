//! docs/api.md is a session that works: its `sh` blocks, run in order by
//! bash against a fresh server, succeed at every request.

use std::path::Path;

use crate::helpers::{PASSWORD, TestApp};

/// The `sh` blocks of a Markdown file, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn the_api_guide_runs_top_to_bottom() {
    for tool in ["bash", "curl", "jq"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok();
        assert!(
            found || std::env::var_os("CI").is_none(),
            "CI must provide {tool}"
        );
        if !found {
            eprintln!("skipped: {tool} is not installed");
            return;
        }
    }
    let app = TestApp::spawn(domain::testing::Flavor::Sqlite)
        .await
        .unwrap();
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let blocks = shell_blocks(&std::fs::read_to_string(guide).unwrap());
    assert!(blocks.len() >= 8, "found {} sh blocks", blocks.len());
    // Every request must succeed: an error status fails the script.
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{}",
        blocks.join("")
    );
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("API", &app.base)
        .env("ADMIN_PASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "docs/api.md failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

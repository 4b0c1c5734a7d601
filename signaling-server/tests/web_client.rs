//! The web client is served at `/`: from the copy built into the binary, or
//! from `--web-dir`, with content types.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{TestServer, config, http_get};
use signaling_server::Config;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("signaling-web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn web_dir_is_served_with_content_types() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    std::fs::write(dir.0.join("app.js"), "export const x = 1;").unwrap();
    std::fs::write(dir.0.join("style.css"), "body{}").unwrap();
    let server = TestServer::start(Config {
        web_dir: Some(dir.0.clone()),
        ..config()
    })
    .await;

    let index = server.get("/").await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(index.text(), "<!doctype html><title>t</title>");
    let js = server.get("/app.js").await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().contains("javascript"));
    let css = server.get("/style.css").await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(server.get("/missing.js").await.status, 404);
    assert_eq!(server.get("/../Cargo.toml").await.status, 404);
    // The API routes still win over files.
    assert_eq!(server.get("/healthz").await.text(), "ok\n");
}

fn web_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if relative == "tests"
            || relative.contains("node_modules")
            || relative.starts_with("package")
        {
            continue;
        }
        if path.is_dir() {
            web_files(root, &path, out);
        } else {
            out.push(relative);
        }
    }
}

#[tokio::test]
async fn embedded_web_client_serves_every_file_of_web() {
    let server = TestServer::start(config()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut files = Vec::new();
    web_files(&root, &root, &mut files);
    for file in &files {
        let response = server.get(&format!("/{file}")).await;
        assert_eq!(response.status, 200, "/{file}");
        assert_eq!(
            response.body,
            std::fs::read(root.join(file)).unwrap(),
            "/{file}"
        );
        let etag = response.header("etag").expect("etag").to_owned();
        let again = http_get(
            server.addr,
            &format!("/{file}"),
            &[("If-None-Match", &etag)],
        )
        .await;
        assert_eq!(again.status, 304, "/{file} revalidates");
        if file.ends_with(".html") {
            assert!(
                response
                    .header("content-type")
                    .unwrap()
                    .starts_with("text/html")
            );
        }
        if file.ends_with(".js") {
            assert!(
                response
                    .header("content-type")
                    .unwrap()
                    .contains("javascript")
            );
        }
    }
    if files.iter().any(|f| f == "index.html") {
        let index = server.get("/").await;
        assert_eq!(index.status, 200);
        assert_eq!(index.body, std::fs::read(root.join("index.html")).unwrap());
    }
    assert_eq!(server.get("/no-such-file.txt").await.status, 404);
    assert_eq!(server.get("/tests/").await.status, 404);
}

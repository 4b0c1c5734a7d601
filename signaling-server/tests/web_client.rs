//! The web client is served at `/`: from the copy built into the binary, or
//! from `--web-dir`, with content types.

// Test helpers: a failed expectation is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{ServerExt, TestServer, config, http_get};
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
    });

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
    // Two connections per file in a burst, over the default allowance of
    // new connections per address (a browser reuses one).
    let server = TestServer::start(Config {
        connection_burst_per_address: 10_000,
        ..config()
    });
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
    // The loop above checks nothing if web/ is empty: the page and every
    // module it loads, directly or through imports, must be there.
    assert!(files.len() >= 5, "web/ holds only {files:?}");
    let page = page_modules(&root, "index.html");
    assert!(page.len() >= 3, "index.html loads only {page:?}");
    for file in ["index.html"]
        .iter()
        .copied()
        .chain(page.iter().map(String::as_str))
    {
        assert!(
            files.iter().any(|f| f == file),
            "{file} is missing from web/"
        );
    }
    let index = server.get("/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, std::fs::read(root.join("index.html")).unwrap());
    assert_eq!(server.get("/no-such-file.txt").await.status, 404);
    assert_eq!(server.get("/tests/").await.status, 404);
}

/// The files `page` (relative to `root`) loads as modules: `<script src>`
/// and, from those, every relative `import`/`export ... from`, followed
/// through the module graph.
fn page_modules(root: &Path, page: &str) -> Vec<String> {
    let html = std::fs::read_to_string(root.join(page)).unwrap();
    let mut pending: Vec<String> = quoted_after(&html, "src=")
        .into_iter()
        .filter(|src| src.ends_with(".js"))
        .collect();
    let mut found = Vec::new();
    while let Some(module) = pending.pop() {
        if found.contains(&module) {
            continue;
        }
        let source = std::fs::read_to_string(root.join(&module))
            .unwrap_or_else(|err| panic!("{module}, loaded by {page}: {err}"));
        // Code only: doc comments show imports as examples.
        let code: String = source
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                !line.starts_with('*') && !line.starts_with("//") && !line.starts_with("/*")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = Path::new(&module).parent().unwrap_or(Path::new(""));
        for target in quoted_after(&code, "from ") {
            if let Some(relative) = target.strip_prefix("./") {
                pending.push(dir.join(relative).to_string_lossy().into_owned());
            } else if target.starts_with("../") {
                let mut path = dir.to_path_buf();
                let mut rest = target.as_str();
                while let Some(tail) = rest.strip_prefix("../") {
                    path.pop();
                    rest = tail;
                }
                pending.push(path.join(rest).to_string_lossy().into_owned());
            }
        }
        found.push(module);
    }
    found
}

/// Every quoted string (single or double quotes) right after `marker`.
fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let end = rest[1..].find(quote)?;
            Some(rest[1..1 + end].to_owned())
        })
        .collect()
}

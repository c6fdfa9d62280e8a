#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Plugins written by hand as core modules (WAT, canonical ABI): run as core modules with WASI
//! preview 1, described, called — and every hostile behaviour contained with a clear error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use troupe_plugin::{Grants, Limits, Plugin, PluginError, Services};

const DESCRIBE: &str = r#"{"name": "fixture", "version": "0.1.0", "tools": [{"name": "echo", "description": "Returns its arguments", "parameters": {"type": "object"}}]}"#;

/// A core module of the tool-plugin world whose `invoke` body is `body` (locals: $ap/$al are the
/// arguments' pointer and length). `extra` adds imports or functions.
fn module(imports: &str, body: &str) -> String {
    let escaped = DESCRIBE.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"(module
  (import "troupe:plugin/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  {imports}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 32768))
  (data (i32.const 1024) "{escaped}")
  (data (i32.const 3000) "called")
  (data (i32.const 3100) "k")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    ;; bump allocation at the requested alignment, growing memory as needed
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (local.set $end (i32.add (local.get $p) (local.get 3)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then (drop (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                   (i32.const 65535))
                                          (i32.const 65536))))))
    (global.set $bump (local.get $end))
    (local.get $p))
  (func (export "describe") (result i32)
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const {len}))
    (i32.const 16))
  (func (export "invoke") (param $tp i32) (param $tl i32) (param $ap i32) (param $al i32) (result i32)
    {body})
)"#,
        len = DESCRIBE.len()
    )
}

const ECHO: &str = r#"
    (call $log (i32.const 1) (i32.const 3000) (i32.const 6))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (local.get $ap))
    (i32.store (i32.const 40) (local.get $al))
    (i32.const 32)"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(300),
        memory_bytes: 8 << 20,
        ..Limits::default()
    }
}

async fn load(path: &Path, grants: Grants) -> Result<Plugin, PluginError> {
    Plugin::load("fx", path, grants, limits(), Services::default()).await
}

#[tokio::test]
async fn a_core_module_is_described_and_called_through_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "echo.wat", &module("", ECHO));
    let plugin = load(&p, Grants::default()).await.unwrap();
    assert_eq!(plugin.description.name, "fixture");
    assert_eq!(plugin.description.tools[0].name, "echo");
    let report = plugin.call("echo", r#"{"x": 1}"#).await;
    assert_eq!(report.result, Ok(r#"{"x": 1}"#.to_string()));
    assert_eq!(report.logs.len(), 1);
    assert_eq!(report.logs[0].level, "info");
    assert_eq!(report.logs[0].message, "called");
    // A fresh instance per call: the second call sees nothing of the first.
    let again = plugin.call("echo", "[]").await;
    assert_eq!(again.result, Ok("[]".to_string()));
    assert_eq!(again.logs.len(), 1);
}

/// Every call starts from the module's initial state, though instance slots are reused (and
/// keep their pages resident): a byte of a data segment, a mutable global, the memory's size and
/// a page beyond the first MiB are all as new on each call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_state_survives_from_one_call_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"(data (i32.const 5000) "0")
  (global $calls (mut i32) (i32.const 0))"#;
    let body = r#"
    ;; [counter from the data segment + 1][pages at entry][far byte before writing][global + 1]
    (i32.store8 (i32.const 5000) (i32.add (i32.load8_u (i32.const 5000)) (i32.const 1)))
    (i32.store8 (i32.const 5001) (i32.add (i32.const 96) (memory.size)))
    (drop (memory.grow (i32.const 40)))
    (i32.store8 (i32.const 5002) (i32.add (i32.const 48) (i32.load8_u (i32.const 2621440))))
    (i32.store8 (i32.const 2621440) (i32.const 7))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 5003) (i32.add (i32.const 48) (global.get $calls)))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 5000))
    (i32.store (i32.const 40) (i32.const 4))
    (i32.const 32)"#;
    let p = write(dir.path(), "state.wat", &module(extra, body));
    let plugin = std::sync::Arc::new(load(&p, Grants::default()).await.unwrap());
    for _ in 0..3 {
        assert_eq!(
            plugin.call("echo", "{}").await.result,
            Ok("1a01".to_string())
        );
    }
    // The same from calls running at once.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let plugin = plugin.clone();
            tokio::spawn(async move { plugin.call("echo", "{}").await.result })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), Ok("1a01".to_string()));
    }
}

/// Logging is bounded too, and never silently: lines over the cap are counted.
#[tokio::test]
async fn log_lines_over_the_cap_are_counted() {
    let body = r#"
    (local $i i32)
    (loop $l
      (call $log (i32.const 1) (i32.const 3000) (i32.const 6))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 150))))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (local.get $ap))
    (i32.store (i32.const 40) (local.get $al))
    (i32.const 32)"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "chatty.wat", &module("", body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "{}").await;
    assert!(report.result.is_ok());
    assert_eq!(report.logs.len(), 100);
    assert_eq!(report.logs_dropped, 50);
}

/// An infinite loop is stopped at the deadline, and the plugin still serves the next call: the
/// fixture loops only when its argument starts with `l`, and echoes otherwise.
#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "(if (i32.eq (i32.load8_u (local.get $ap)) (i32.const 108)) (then (loop $l (br $l)))) {ECHO}"
    );
    let p = write(dir.path(), "loop.wat", &module("", &body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "loop").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("deadline"), "{err}");
    assert_eq!(report.limit, Some("limits.deadline_ms"));
    // The same plugin still works afterwards.
    let after = plugin.call("echo", "{}").await;
    assert_eq!(after.result, Ok("{}".to_string()));
    assert_eq!(after.limit, None);
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bomb.wat",
        &module(
            "",
            "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i32.const 32)",
        ),
    );
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "{}").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("memory"), "{err}");
    assert_eq!(report.limit, Some("limits.memory_mb"), "{err}");
}

#[tokio::test]
async fn a_giant_output_is_refused_at_the_output_cap() {
    let dir = tempfile::tempdir().unwrap();
    // Grow to ~6.5 MiB (under the memory cap) and return 6 MiB of it.
    let body = r#"
    (drop (memory.grow (i32.const 100)))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 65536))
    (i32.store (i32.const 40) (i32.const 6291456))
    (i32.const 32)"#;
    let p = write(dir.path(), "big.wat", &module("", body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "{}").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("over the limit of 262144 bytes"), "{err}");
    assert_eq!(report.limit, Some("limits.output_kb"));
}

#[tokio::test]
async fn a_trap_is_a_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "trap.wat", &module("", "(unreachable)"));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let err = plugin.call("echo", "{}").await.result.unwrap_err();
    assert!(
        err.contains("trapped") && err.contains("unreachable"),
        "{err}"
    );
}

/// `kv-get` without the grant: the plugin receives an error naming the key, and the host records
/// the denial; with the grant, values persist across calls (the only shared state).
#[tokio::test]
async fn host_capabilities_need_their_grant() {
    let body = r#"
    (call $kv_get (i32.const 3100) (i32.const 1) (i32.const 48))
    (if (i32.eqz (i32.load8_u (i32.const 48)))
      (then
        ;; Ok(option): return the option's tag as the output "0"/"1" would need formatting;
        ;; instead return the arguments (like echo) and let kv-set be observed through kv-get.
        (call $kv_set (i32.const 3100) (i32.const 1) (local.get $ap) (local.get $al) (i32.const 64))
        (i32.store8 (i32.const 32) (i32.const 0))
        (if (i32.load8_u (i32.const 52))
          (then
            (i32.store (i32.const 36) (i32.load (i32.const 56)))
            (i32.store (i32.const 40) (i32.load (i32.const 60))))
          (else
            (i32.store (i32.const 36) (i32.const 3000))
            (i32.store (i32.const 40) (i32.const 6)))))
      (else
        (i32.store8 (i32.const 32) (i32.const 1))
        (i32.store (i32.const 36) (i32.load (i32.const 52)))
        (i32.store (i32.const 40) (i32.load (i32.const 56)))))
    (i32.const 32)"#;
    let imports = r#"
  (import "troupe:plugin/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))
  (import "troupe:plugin/host@0.1.0" "kv-set" (func $kv_set (param i32 i32 i32 i32 i32)))"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "kv.wat", &module(imports, body));

    let denied = load(&p, Grants::default()).await.unwrap();
    let report = denied.call("echo", "first").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("add `\"kv\": true` to its `grants`"), "{err}");
    assert_eq!(report.denied.len(), 1);

    let granted = load(
        &p,
        Grants {
            kv: true,
            ..Grants::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        granted.call("echo", "first").await.result,
        Ok("called".into())
    );
    assert_eq!(
        granted.call("echo", "second").await.result,
        Ok("first".into())
    );
}

/// A module that imports WASI (preview 1, from the host) and tries to open a host
/// file: there is no preopened directory, so the open fails and the plugin reports the errno.
/// An `invoke` body that runs `call` (a WASI call returning an errno): Ok("called") when it
/// succeeds, Err("errno NN") when it fails.
fn errno_body(call: &str) -> String {
    format!(
        r#"
    (local $errno i32)
    (local.set $errno {call})
    (if (i32.eqz (local.get $errno))
      (then
        (i32.store8 (i32.const 32) (i32.const 0))
        (i32.store (i32.const 36) (i32.const 3000))
        (i32.store (i32.const 40) (i32.const 6)))
      (else
        ;; "errno " + two digits
        (i32.store (i32.const 3400) (i32.const 0x6e727265))
        (i32.store16 (i32.const 3404) (i32.const 0x206f))
        (i32.store8 (i32.const 3406) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
        (i32.store8 (i32.const 3407) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
        (i32.store8 (i32.const 32) (i32.const 1))
        (i32.store (i32.const 36) (i32.const 3400))
        (i32.store (i32.const 40) (i32.const 8))))
    (i32.const 32)"#
    )
}

/// Sockets: WASI preview 1 has no way to open one, only to accept on a preopened socket, and
/// there is none (the call fails with EBADF); a module that imports the preview-2 socket
/// interfaces directly is refused at load, because the host does not provide them (and the WASI
/// context disables TCP, UDP and name lookup besides).
#[tokio::test]
async fn a_plugin_cannot_open_sockets() {
    let imports = r#"
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))"#;
    let body = errno_body("(call $sock_accept (i32.const 3) (i32.const 0) (i32.const 3300))");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "accept.wat", &module(imports, &body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "{}").await;
    // EBADF (08): fd 3 is not a preopened socket, because there is none.
    assert_eq!(report.result, Err("errno 08".to_string()));

    let imports = r#"
  (import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket" (func (param i32 i32)))"#;
    let p = write(dir.path(), "tcp.wat", &module(imports, ECHO));
    let err = load(&p, Grants::default()).await.unwrap_err().to_string();
    assert!(err.contains("tcp.wat"), "{err}");
    assert!(err.contains("wasi:sockets/tcp-create-socket"), "{err}");
    assert!(err.contains("hint: build the plugin against"), "{err}");
}

#[tokio::test]
async fn a_plugin_cannot_open_host_files() {
    let imports = r#"
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#;
    // path_open(fd 3, follow symlinks, "/etc/passwd", …) → errno.
    let body = errno_body(
        r#"
    (i32.store (i32.const 3200) (i32.const 0x6374652f))
    (i32.store (i32.const 3204) (i32.const 0x7361702f))
    (i32.store (i32.const 3208) (i32.const 0x00647773))
    (call $path_open (i32.const 3) (i32.const 1) (i32.const 3200) (i32.const 11)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 3300))"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "open.wat", &module(imports, &body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    assert_eq!(plugin.kind, troupe_plugin::load::Kind::CoreModule);
    let report = plugin.call("echo", "{}").await;
    // EBADF (08): fd 3 is not a preopened directory, because there is none.
    assert_eq!(report.result, Err("errno 08".to_string()));
}

#[tokio::test]
async fn a_module_of_another_world_is_refused_with_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "wrong.wat",
        r#"(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"#,
    );
    let err = load(&p, Grants::default()).await.unwrap_err().to_string();
    assert!(err.contains("wrong.wat"), "{err}");
    assert!(err.contains("describe"), "{err}");
    assert!(err.contains("hint: build the plugin against"), "{err}");

    let p = write(dir.path(), "text.wasm", "hello");
    let err = load(&p, Grants::default()).await.unwrap_err().to_string();
    assert!(err.contains("not a WebAssembly file"), "{err}");

    // Importing a later version of the host interface.
    let future = module("", ECHO).replace("troupe:plugin/host@0.1.0", "troupe:plugin/host@0.2.0");
    let p = write(dir.path(), "future.wat", &future);
    let err = load(&p, Grants::default()).await.unwrap_err().to_string();
    assert!(err.contains("troupe:plugin/host@0.2.0"), "{err}");
}

/// `invoke` passes its arguments to a host function of signature (ptr, len, retptr) returning
/// `result<string, string>`, and returns that result as its own.
fn passthrough(import: &str) -> String {
    module(
        &format!(
            r#"(import "troupe:plugin/host@0.1.0" "{import}" (func $host (param i32 i32 i32)))"#
        ),
        "(call $host (local.get $ap) (local.get $al) (i32.const 48)) (i32.const 48)",
    )
}

fn corpus() -> std::sync::Arc<troupe_docs::Corpus> {
    std::sync::Arc::new(
        troupe_docs::Corpus::from_texts(
            vec![
                (
                    "nda.md".into(),
                    troupe_docs::Format::Markdown,
                    "# NDA\n\nThe Recipient shall keep the Confidential Information secret for five years.\n".into(),
                ),
                (
                    "sla.md".into(),
                    troupe_docs::Format::Markdown,
                    "# SLA\n\nAvailability is 99.9% each month; service credits apply below it.\n"
                        .into(),
                ),
            ],
            troupe_docs::ChunkOptions::default(),
        )
        .unwrap(),
    )
}

/// With `grants.documents`, a plugin lists, reads and searches the run's documents.
#[tokio::test]
async fn granted_documents_are_listed_read_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    let services = Services {
        documents: Some(corpus()),
        ..Services::default()
    };
    let grants = Grants {
        documents: true,
        ..Grants::default()
    };
    let read = write(dir.path(), "read.wat", &passthrough("read-document"));
    let plugin = Plugin::load("r", &read, grants.clone(), limits(), services.clone())
        .await
        .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&plugin.call("echo", "sla.md").await.result.unwrap()).unwrap();
    assert_eq!(doc["document"], "sla.md");
    assert!(
        doc["text"]
            .as_str()
            .unwrap()
            .contains("Availability is 99.9%")
    );
    let missing = plugin.call("echo", "nope.md").await.result.unwrap_err();
    assert!(
        missing.contains("no document or chunk `nope.md`"),
        "{missing}"
    );

    let search = module(
        r#"(import "troupe:plugin/host@0.1.0" "search-documents" (func $search (param i32 i32 i32 i32)))"#,
        "(call $search (local.get $ap) (local.get $al) (i32.const 3) (i32.const 48)) (i32.const 48)",
    );
    let search = write(dir.path(), "search.wat", &search);
    let plugin = Plugin::load("s", &search, grants.clone(), limits(), services.clone())
        .await
        .unwrap();
    let hits: serde_json::Value = serde_json::from_str(
        &plugin
            .call("echo", "confidential secret")
            .await
            .result
            .unwrap(),
    )
    .unwrap();
    let first = hits.as_array().unwrap()[0]["chunk"].as_str().unwrap();
    assert!(first.starts_with("nda.md:"), "{hits:#}");
    // The chunk id it found reads back as that chunk.
    let plugin = Plugin::load("r", &read, grants.clone(), limits(), services.clone())
        .await
        .unwrap();
    let chunk: serde_json::Value =
        serde_json::from_str(&plugin.call("echo", first).await.result.unwrap()).unwrap();
    assert_eq!(chunk["document"], "nda.md");
    assert!(chunk["text"].as_str().unwrap().contains("five years"));

    let list = module(
        r#"(import "troupe:plugin/host@0.1.0" "list-documents" (func $list (param i32)))"#,
        "(call $list (i32.const 48)) (i32.const 48)",
    );
    let list = write(dir.path(), "list.wat", &list);
    let plugin = Plugin::load("l", &list, grants, limits(), services)
        .await
        .unwrap();
    let docs: serde_json::Value =
        serde_json::from_str(&plugin.call("echo", "").await.result.unwrap()).unwrap();
    let ids: Vec<&str> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["nda.md", "sla.md"]);
}

/// A local HTTP server: /small, /big (2 MiB), /redirect (to `localhost`, another host name),
/// /slow (answers after 3 s).
async fn http_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/small", get(|| async { "hello from the allowed host" }))
        .route("/big", get(|| async { "x".repeat(2 << 20) }))
        .route(
            "/redirect",
            get(
                |axum::extract::State(port): axum::extract::State<u16>| async move {
                    axum::response::Redirect::temporary(&format!("http://localhost:{port}/small"))
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app.with_state(port)).await.unwrap();
    });
    format!("http://127.0.0.1:{port}")
}

/// `http-get` fetches from granted hosts only — redirects included — and refuses bodies over
/// `limits.http_kb`, reporting the limit; a fetch cannot outlive the call's deadline.
#[tokio::test]
async fn http_get_reaches_only_granted_hosts_within_the_size_cap() {
    let base = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "http.wat", &passthrough("http-get"));
    let plugin = Plugin::load(
        "web",
        &p,
        Grants {
            http: vec!["127.0.0.1".into()],
            ..Grants::default()
        },
        Limits {
            http_bytes: 64 << 10,
            ..limits()
        },
        Services::default(),
    )
    .await
    .unwrap();

    let ok = plugin.call("echo", &format!("{base}/small")).await;
    assert_eq!(ok.result, Ok("hello from the allowed host".into()));
    assert!(ok.hits.is_empty() && ok.denied.is_empty());

    let big = plugin.call("echo", &format!("{base}/big")).await;
    let err = big.result.unwrap_err();
    assert!(
        err.contains("over the limit of 64 KiB (`limits.http_kb`)"),
        "{err}"
    );
    assert_eq!(big.hits, ["limits.http_kb"]);

    let other_host = base.replace("127.0.0.1", "localhost");
    let denied = plugin.call("echo", &format!("{other_host}/small")).await;
    let err = denied.result.unwrap_err();
    assert!(err.contains("add `\"http\": [\"localhost\"]`"), "{err}");
    assert_eq!(denied.denied.len(), 1);

    let redirected = plugin.call("echo", &format!("{base}/redirect")).await;
    let err = redirected.result.unwrap_err();
    assert!(
        err.contains("redirected to `localhost`, which is not in the plugin's `grants.http`"),
        "{err}"
    );

    let missing = plugin.call("echo", &format!("{base}/missing")).await;
    assert!(missing.result.unwrap_err().contains("HTTP 404"));

    let file = plugin.call("echo", "file:///etc/passwd").await;
    assert!(
        file.result
            .unwrap_err()
            .contains("only http and https URLs can be fetched")
    );

    let slow = plugin.call("echo", &format!("{base}/slow")).await;
    let err = slow.result.unwrap_err();
    assert!(err.contains("deadline"), "{err}");
}

/// A core module's `_initialize` (a reactor's start: Go's runtime, wasi-libc's constructors)
/// runs once in every fresh instance, before `describe` or `invoke`.
#[tokio::test]
async fn a_reactor_is_initialized_once_before_each_call() {
    let dir = tempfile::tempdir().unwrap();
    // `_initialize` adds 1 to the byte at 3000 ('c' of "called"): "dalled" after one run,
    // "ealled" after two, "called" after none.
    let imports = r#"
  (func (export "_initialize")
    (i32.store8 (i32.const 3000) (i32.add (i32.load8_u (i32.const 3000)) (i32.const 1))))"#;
    let body = r#"
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 3000))
    (i32.store (i32.const 40) (i32.const 6))
    (i32.const 32)"#;
    let p = write(dir.path(), "reactor.wat", &module(imports, body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    assert_eq!(plugin.description.name, "fixture");
    for _ in 0..2 {
        assert_eq!(
            plugin.call("echo", "{}").await.result,
            Ok("dalled".to_string())
        );
    }
}

/// What a core module hands back is checked, never trusted: a result outside its memory, a
/// result case that is neither ok nor error, text that is not UTF-8, a misaligned return area
/// given to the host — each is the call's error, and the host goes on.
#[tokio::test]
async fn malformed_results_of_a_core_module_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let result = |case: u32, ptr: u32, len: u32| {
        format!(
            r#"
    (i32.store8 (i32.const 32) (i32.const {case}))
    (i32.store (i32.const 36) (i32.const {ptr}))
    (i32.store (i32.const 40) (i32.const {len}))
    (i32.const 32)"#
        )
    };
    let cases = [
        ("outside.wat", result(0, 65_530, 100), "outside its memory"),
        ("case.wat", result(7, 3000, 6), "returned case 7"),
        // 0xff is never UTF-8.
        (
            "utf8.wat",
            format!(
                "(i32.store8 (i32.const 3000) (i32.const 255)) {}",
                result(0, 3000, 6)
            ),
            "not UTF-8",
        ),
        (
            "misaligned.wat",
            r#"(call $kv_get (i32.const 3100) (i32.const 1) (i32.const 49)) (i32.const 48)"#
                .to_string(),
            "not 4-byte aligned",
        ),
    ];
    let imports = r#"
  (import "troupe:plugin/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))"#;
    for (name, body, expected) in cases {
        let p = write(dir.path(), name, &module(imports, &body));
        let grants = Grants {
            kv: true,
            ..Grants::default()
        };
        let plugin = Plugin::load("fx", &p, grants, limits(), Services::default())
            .await
            .unwrap();
        let err = plugin.call("echo", "{}").await.result.unwrap_err();
        assert!(err.contains(expected), "{name}: {err}");
    }
}

/// A plugin that waits in the host (a WASI clock subscription of 10 s in `poll_oneoff`) runs no
/// code for epoch interruption to stop; the call still ends at its deadline, naming the key.
#[tokio::test]
async fn waiting_in_the_host_ends_at_the_deadline() {
    let imports = r#"
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#;
    // One subscription at 4096: tag 0 (clock), clock id 1 (monotonic) at +16, timeout 10 s at
    // +24 (relative: flags 0 at +40).
    let body = errno_body(
        r#"
    (i32.store (i32.const 4112) (i32.const 1))
    (i64.store (i32.const 4120) (i64.const 10000000000))
    (call $poll (i32.const 4096) (i32.const 4200) (i32.const 1) (i32.const 4300))"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sleep.wat", &module(imports, &body));
    let plugin = load(&p, Grants::default()).await.unwrap();
    let report = plugin.call("echo", "{}").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("`limits.deadline_ms`"), "{err}");
    assert_eq!(report.limit, Some("limits.deadline_ms"));
}

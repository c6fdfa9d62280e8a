#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile plugins under the default limits (hand-written core modules, as in `sandbox.rs`): a
//! key-value bomb, a loop on a denied capability, a log flood and a loop of HTTP fetches each end
//! cleanly with the right error and limit in the report, the counts are right, and the host's
//! peak memory barely moves. Its own test binary, its tests one at a time (`SERIAL`), so that
//! the growth of the process's peak resident set (VmHWM) is the growth one call caused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use troupe_plugin::{
    CallReport, Grants, Limits, MAX_DENIAL_MESSAGES, MAX_DENIALS_PER_CALL, MAX_KV_KEY_BYTES,
    Plugin, Services,
};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DESCRIBE: &str = r#"{"name": "hostile", "version": "0.1.0", "tools": [{"name": "go", "description": "d", "parameters": {"type": "object"}}]}"#;

/// A core module of the tool-plugin world whose `invoke` is `body`. Memory: "called" at 3000,
/// the key "k0000000" at 3100, `data` at 3400, a value area from 65536 (grown on demand up to
/// 2 MiB); `cabi_realloc` allocates from 2 MiB up.
fn module(imports: &str, data: &str, body: &str) -> String {
    let escaped = DESCRIBE.replace('"', "\\\"");
    format!(
        r#"(module
  (import "troupe:plugin/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "troupe:plugin/host@0.1.0" "kv-get" (func $kv_get (param i32 i32 i32)))
  (import "troupe:plugin/host@0.1.0" "kv-set" (func $kv_set (param i32 i32 i32 i32 i32)))
  (import "troupe:plugin/host@0.1.0" "http-get" (func $http_get (param i32 i32 i32)))
  {imports}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 2097152))
  (data (i32.const 1024) "{escaped}")
  (data (i32.const 3000) "called")
  (data (i32.const 3100) "k0000000")
  (data (i32.const 3400) "{data}")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
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
  (func $distinct (param $at i32) (param $n i32)
    ;; 7 letters a-p from the low nibbles of $n at $at
    (local $j i32)
    (loop $d
      (i32.store8 (i32.add (local.get $at) (local.get $j))
                  (i32.add (i32.const 97) (i32.and (local.get $n) (i32.const 15))))
      (local.set $n (i32.shr_u (local.get $n) (i32.const 4)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $d (i32.lt_u (local.get $j) (i32.const 7)))))
  (func (export "invoke") (param $tp i32) (param $tl i32) (param $ap i32) (param $al i32) (result i32)
    (local $i i32)
    (drop (memory.grow (i32.const 32)))
    {body})
)"#,
        len = DESCRIBE.len()
    )
}

/// `step` (with the counter `$i`) `times` times, or until the call is stopped; then Ok("called").
/// A step may `(return (i32.const 32))` after storing a result at 32.
fn repeat(times: Option<u32>, step: &str) -> String {
    let until = times.map_or(String::new(), |n| {
        format!("(br_if $done (i32.ge_u (local.get $i) (i32.const {n})))")
    });
    format!(
        r#"
    (block $done
      (loop $l
        {until}
        {step}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 3000))
    (i32.store (i32.const 40) (i32.const 6))
    (i32.const 32)"#
    )
}

/// kv-set of `value_len` bytes (from 65536) under the key at (`kp`, `kl`), distinct each time
/// when `distinct`; with `stop`, the first error is returned as the call's.
fn kv_set_step(kp: u32, kl: u32, value_len: u32, distinct: bool, stop: bool) -> String {
    let key = if distinct {
        format!("(call $distinct (i32.const {}) (local.get $i))", kp + 1)
    } else {
        String::new()
    };
    let on_error = if stop {
        r#"(if (i32.load8_u (i32.const 64))
          (then
            (i32.store8 (i32.const 32) (i32.const 1))
            (i32.store (i32.const 36) (i32.load (i32.const 68)))
            (i32.store (i32.const 40) (i32.load (i32.const 72)))
            (return (i32.const 32))))"#
    } else {
        ""
    };
    format!(
        "{key}
        (call $kv_set (i32.const {kp}) (i32.const {kl}) (i32.const 65536) (i32.const {value_len}) (i32.const 64))
        {on_error}"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn kv() -> Grants {
    Grants {
        kv: true,
        ..Grants::default()
    }
}

/// Peak resident set of this process, KiB.
fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Calls the plugin once; the report, and how much the process's peak resident set grew (MiB).
async fn measured(plugin: &Plugin) -> (CallReport, u64) {
    let before = peak_kb();
    let report = plugin.call("go", "{}").await;
    (report, (peak_kb() - before) >> 10)
}

/// Host memory a hostile call may add to the process's peak: the instance's memory is capped
/// at 64 MiB, the rest is the host's; before the fix, the kv bomb reached 3.2 GB.
const GROWTH_MIB: u64 = 160;

/// The kv bomb: 256 KiB values under new keys, in a loop that ignores errors, for the whole
/// 2 s deadline. The space stops at its 1 MiB quota (3 values); each refused set is the
/// plugin's error and one `limits.kv_kb` hit; the call ends at the deadline.
#[tokio::test]
async fn a_kv_bomb_stops_at_the_quota_and_the_host_stays_small() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let body = repeat(None, &kv_set_step(3100, 8, 256 << 10, true, false));
    let p = write(dir.path(), "kvbomb.wat", &module("", "", &body));
    let services = Services::default();
    let plugin = Plugin::load("bomb", &p, kv(), Limits::default(), services.clone())
        .await
        .unwrap();
    let (report, growth) = measured(&plugin).await;
    let kv = services.kv.lock().unwrap();
    eprintln!(
        "kv bomb: {:?}; limit {:?}; hits {:?}; kv {} keys, {} bytes; peak RSS +{growth} MiB",
        report.result,
        report.limit,
        report.hits,
        kv.len(),
        kv.bytes()
    );
    assert!(report.result.unwrap_err().contains("deadline"));
    assert_eq!(report.limit, Some("limits.deadline_ms"));
    assert_eq!(report.hits, ["limits.kv_kb"]);
    assert_eq!(kv.len(), 3);
    assert_eq!(kv.bytes(), 3 * (8 + (256 << 10)));
    assert!(growth < GROWTH_MIB, "peak RSS grew by {growth} MiB");
}

/// The plugin that stops at the first error gets one naming the key to raise.
#[tokio::test]
async fn a_kv_set_over_the_quota_names_the_key_and_replacing_frees_the_old_value() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let services = Services::default();
    // The same key set ten times to 600 KiB: replacing counts the old value out.
    let same = module(
        "",
        "",
        &repeat(Some(10), &kv_set_step(3100, 8, 600 << 10, false, true)),
    );
    let plugin = Plugin::load(
        "kv",
        &write(dir.path(), "same.wat", &same),
        kv(),
        Limits::default(),
        services.clone(),
    )
    .await
    .unwrap();
    let report = plugin.call("go", "{}").await;
    assert_eq!(report.result, Ok("called".into()));
    assert!(report.hits.is_empty());
    assert_eq!(services.kv.lock().unwrap().bytes(), 8 + (600 << 10));

    // Another 600 KiB under a new key is over the 1 MiB quota.
    let other = module(
        "",
        "",
        &repeat(Some(1), &kv_set_step(3100, 8, 600 << 10, true, true)),
    );
    let plugin = Plugin::load(
        "kv",
        &write(dir.path(), "other.wat", &other),
        kv(),
        Limits::default(),
        services.clone(),
    )
    .await
    .unwrap();
    let report = plugin.call("go", "{}").await;
    let err = report.result.unwrap_err();
    assert!(err.contains("`kaaaaaaa`"), "{err}");
    assert!(
        err.contains("over the limit of 1024 KiB (`limits.kv_kb`)"),
        "{err}"
    );
    assert!(err.contains("raise `limits.kv_kb`"), "{err}");
    assert_eq!(report.hits, ["limits.kv_kb"]);
    assert_eq!(report.limit, None);
    let kv = services.kv.lock().unwrap();
    assert_eq!((kv.len(), kv.bytes()), (1, 8 + (600 << 10)));
}

#[tokio::test]
async fn the_key_count_and_the_key_length_are_bounded() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let services = Services::default();
    let many = module(
        "",
        "",
        &repeat(Some(5000), &kv_set_step(3100, 8, 1, true, true)),
    );
    let plugin = Plugin::load(
        "kv",
        &write(dir.path(), "many.wat", &many),
        kv(),
        Limits::default(),
        services.clone(),
    )
    .await
    .unwrap();
    let report = plugin.call("go", "{}").await;
    let err = report.result.unwrap_err();
    assert!(
        err.contains("holds 1000 keys, the limit (`limits.kv_keys`)"),
        "{err}"
    );
    assert!(err.contains("raise `limits.kv_keys`"), "{err}");
    assert_eq!(report.hits, ["limits.kv_keys"]);
    assert_eq!(services.kv.lock().unwrap().len(), 1000);
    // Setting a key it already holds is still allowed at the cap.
    let again = module(
        "",
        "",
        &repeat(Some(3), &kv_set_step(3100, 8, 5, true, true)),
    );
    let plugin = Plugin::load(
        "kv",
        &write(dir.path(), "again.wat", &again),
        kv(),
        Limits::default(),
        services.clone(),
    )
    .await
    .unwrap();
    assert_eq!(plugin.call("go", "{}").await.result, Ok("called".into()));

    // A key longer than MAX_KV_KEY_BYTES (2000 zero bytes from 65536).
    let long = module(
        "",
        "",
        &repeat(Some(1), &kv_set_step(65536, 2000, 4, false, true)),
    );
    let plugin = Plugin::load(
        "kv",
        &write(dir.path(), "long.wat", &long),
        kv(),
        Limits::default(),
        Services::default(),
    )
    .await
    .unwrap();
    let report = plugin.call("go", "{}").await;
    let err = report.result.unwrap_err();
    assert!(
        err.contains(&format!(
            "is 2000 bytes long; keys are at most {MAX_KV_KEY_BYTES} bytes"
        )),
        "{err}"
    );
    assert!(report.hits.is_empty());
}

/// The denial loop: kv-get without the grant, forever. Before the fix: 7.2 M denial records in
/// 2 s. Now the call is stopped at the 64th denial, with one message kept and the count.
#[tokio::test]
async fn a_denied_capability_in_a_loop_stops_the_call() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let body = repeat(
        None,
        "(call $kv_get (i32.const 3100) (i32.const 8) (i32.const 48))",
    );
    let p = write(dir.path(), "deny.wat", &module("", "", &body));
    let plugin = Plugin::load(
        "deny",
        &p,
        Grants::default(),
        Limits::default(),
        Services::default(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (report, growth) = measured(&plugin).await;
    eprintln!(
        "denial loop: {:?}; limit {:?}; {} denial records, {} denials; peak RSS +{growth} MiB; {:?}",
        report.result,
        report.limit,
        report.denied.len(),
        report.denied_total,
        started.elapsed()
    );
    let err = report.result.unwrap_err();
    assert!(
        err.contains(&format!(
            "stopped after {MAX_DENIALS_PER_CALL} denied requests"
        )),
        "{err}"
    );
    assert!(err.contains("add `\"kv\": true` to its `grants`"), "{err}");
    assert_eq!(report.limit, Some("grants.kv"));
    assert_eq!(report.denied_total, MAX_DENIALS_PER_CALL);
    assert_eq!(report.denied.len(), 1);
    assert!(report.denied[0].contains("add `\"kv\": true`"));
    assert!(
        report.duration < Duration::from_secs(1),
        "{:?}",
        report.duration
    );
    assert!(growth < GROWTH_MIB, "peak RSS grew by {growth} MiB");
    // The plugin works on: the next call starts afresh.
    assert_eq!(
        plugin.call("go", "{}").await.denied_total,
        MAX_DENIALS_PER_CALL
    );
}

/// Denials of many different hosts: only the first MAX_DENIAL_MESSAGES distinct messages are
/// kept, all are counted.
#[tokio::test]
async fn denial_messages_kept_are_bounded_and_distinct() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let body = repeat(
        None,
        "(call $distinct (i32.const 3408) (local.get $i))
        (call $http_get (i32.const 3400) (i32.const 21) (i32.const 48))",
    );
    let p = write(
        dir.path(),
        "hosts.wat",
        &module("", "http://haaaaaaa.test/", &body),
    );
    let plugin = Plugin::load(
        "hosts",
        &p,
        Grants::default(),
        Limits::default(),
        Services::default(),
    )
    .await
    .unwrap();
    let report = plugin.call("go", "{}").await;
    assert_eq!(report.limit, Some("grants.http"));
    assert_eq!(report.denied_total, MAX_DENIALS_PER_CALL);
    assert_eq!(report.denied.len(), MAX_DENIAL_MESSAGES);
    assert!(
        report.denied[0].contains("`haaaaaaa.test`"),
        "{:?}",
        report.denied
    );
    assert!(
        report.denied[1].contains("`hbaaaaaa.test`"),
        "{:?}",
        report.denied
    );
    let err = report.result.unwrap_err();
    assert!(err.contains("add `\"http\": [\"h"), "{err}");
}

/// A log flood of 64 KiB messages for the whole deadline: 100 lines of 2000 characters kept.
#[tokio::test]
async fn a_log_flood_keeps_a_bounded_number_of_short_lines() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let body = repeat(
        None,
        "(call $log (i32.const 1) (i32.const 65536) (i32.const 65536))",
    );
    let p = write(dir.path(), "flood.wat", &module("", "", &body));
    let plugin = Plugin::load(
        "flood",
        &p,
        Grants::default(),
        Limits::default(),
        Services::default(),
    )
    .await
    .unwrap();
    let (report, growth) = measured(&plugin).await;
    eprintln!(
        "log flood: {} kept, {} dropped; peak RSS +{growth} MiB",
        report.logs.len(),
        report.logs_dropped
    );
    assert_eq!(report.limit, Some("limits.deadline_ms"));
    assert_eq!(report.logs.len(), 100);
    assert!(
        report
            .logs
            .iter()
            .all(|l| l.message.chars().count() == 2000)
    );
    assert!(report.logs_dropped > 1000, "{}", report.logs_dropped);
    assert!(growth < GROWTH_MIB, "peak RSS grew by {growth} MiB");
}

/// A local server: /page (512 KiB) and /big (2 MiB, over the default 1 MiB `http_kb`).
async fn http_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/page", get(|| async { "p".repeat(512 << 10) }))
        .route("/big", get(|| async { "x".repeat(2 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

/// http-get in a loop: bodies over `http_kb` are refused (one hit however many), bodies within
/// it go to the plugin and are not kept on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_get_in_a_loop_accumulates_nothing_on_the_host() {
    let _serial = SERIAL.lock().await;
    let base = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let grants = Grants {
        http: vec!["127.0.0.1".into()],
        ..Grants::default()
    };
    for (path, times) in [("/big", 100), ("/page", 40)] {
        let url = format!("{base}{path}");
        let step = format!(
            "(call $http_get (i32.const 3400) (i32.const {}) (i32.const 48))",
            url.len()
        );
        let p = write(
            dir.path(),
            "fetch.wat",
            &module("", &url, &repeat(Some(times), &step)),
        );
        let plugin = Plugin::load(
            "web",
            &p,
            grants.clone(),
            Limits {
                deadline: Duration::from_secs(20),
                ..Limits::default()
            },
            Services::default(),
        )
        .await
        .unwrap();
        let (report, growth) = measured(&plugin).await;
        eprintln!(
            "{times} x GET {path}: {:?}; hits {:?}; peak RSS +{growth} MiB; {:?}",
            report.result, report.hits, report.duration
        );
        assert_eq!(report.result, Ok("called".into()));
        if path == "/big" {
            assert_eq!(report.hits, ["limits.http_kb"]);
        } else {
            assert!(report.hits.is_empty());
        }
        assert!(growth < GROWTH_MIB, "peak RSS grew by {growth} MiB");
    }
}

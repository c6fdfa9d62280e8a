//! The run store on a real SQLite file: runs, tasks, events and calls written and read back;
//! a run whose owner is gone is `crashed`; a run has one owner at a time.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use troupe_store::owner::{self, OwnerError};
use troupe_store::{Call, NewRun, Owner, RunFilter, Standing, Store, new_run_id};

fn new_run<'a>(id: &'a str, crew: &'a str, inputs: &'a serde_json::Value) -> NewRun<'a> {
    NewRun {
        id,
        parent: None,
        crew,
        crew_file: "crews/x.json",
        crew_text: "{}",
        crew_sha256: "00",
        inputs,
        documents: inputs,
        out_dir: "runs/x",
        started_ms: 1000,
        options: inputs,
    }
}

#[test]
fn a_run_is_written_as_it_goes_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = Store::open(&path).unwrap();
    let id = new_run_id();
    let empty = json!({});
    let _owner = Owner::acquire(&path, &id).unwrap();
    store.create_run(&new_run(&id, "x", &empty)).unwrap();
    store
        .append_events(
            &id,
            &[
                (1, "run_started".into(), "{}".into()),
                (2, "task_started".into(), "{}".into()),
            ],
        )
        .unwrap();
    let seq = store
        .record_call(
            &id,
            &Call {
                kind: "model",
                task: Some("t"),
                agent: Some("a"),
                request_sha256: "ab",
                request: "{\"messages\":[]}",
                response: Some("{\"content\":\"hi\"}"),
                error: None,
                input_tokens: Some(10),
                output_tokens: Some(2),
                duration_ms: 5,
            },
        )
        .unwrap();
    assert_eq!(seq, 1);
    assert_eq!(store.run(&id).unwrap().standing, Standing::Running);
    store
        .checkpoint(
            &id,
            "completed",
            &[("t", "completed", json!({"id": "t", "output": "hi"}))],
            (10, 2, None),
            None,
            Some(2000),
            &json!({"status": "completed"}),
        )
        .unwrap();
    // Read back by a second connection, as `troupe runs` in another process would.
    let other = Store::open(&path).unwrap();
    let run = other.run(&other.resolve(&id[..13]).unwrap()).unwrap();
    assert_eq!(run.standing, Standing::Ended("completed".into()));
    assert_eq!((run.input_tokens, run.output_tokens), (10, 2));
    assert_eq!(run.finished_ms, Some(2000));
    let tasks = other.tasks(&id).unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].record["output"], "hi");
    let events = other.events(&id).unwrap();
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(other.call_counts(&id).unwrap(), [("model".to_string(), 1)]);
}

#[test]
fn a_run_without_a_live_owner_is_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = Store::open(&path).unwrap();
    let empty = json!({});
    let (live, gone) = (new_run_id(), new_run_id());
    let owner = Owner::acquire(&path, &live).unwrap();
    store.create_run(&new_run(&live, "a", &empty)).unwrap();
    {
        let _owner = Owner::acquire(&path, &gone).unwrap();
        store.create_run(&new_run(&gone, "b", &empty)).unwrap();
        // Its owner ends here without finishing the run, as `kill -9` would.
    }
    assert_eq!(store.run(&live).unwrap().standing, Standing::Running);
    assert_eq!(store.run(&gone).unwrap().standing, Standing::Crashed);
    let crashed = store
        .runs(&RunFilter {
            status: Some("crashed".into()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(
        crashed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [gone.as_str()]
    );
    let by_crew = store
        .runs(&RunFilter {
            crew: Some("a".into()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(by_crew.len(), 1);
    // A second owner is refused, naming the first.
    match Owner::acquire(&path, &live) {
        Err(OwnerError::Taken { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
        other => panic!("{other:?}"),
    }
    assert!(owner::is_live(&path, &live));
    drop(owner);
    assert!(!owner::is_live(&path, &live));
}

#[test]
fn ids_sort_by_start_and_prefixes_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("runs.db")).unwrap();
    let empty = json!({});
    let ids: Vec<String> = (0..3).map(|_| new_run_id()).collect();
    for id in &ids {
        store.create_run(&new_run(id, "x", &empty)).unwrap();
    }
    let listed: Vec<String> = store
        .runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert!(store.resolve("nope").is_err());
    assert!(matches!(
        store.resolve(""),
        Err(troupe_store::StoreError::Ambiguous { n: 3, .. })
    ));
}

#[test]
fn a_run_is_taken_over_read_back_whole_and_pruned_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = Store::open(&path).unwrap();
    let opts = json!({"fence": "abc"});
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = new_run_id();
        store.create_run(&new_run(&id, "x", &opts)).unwrap();
        ids.push(id);
    }
    let call = |n: u64| Call {
        kind: if n.is_multiple_of(2) { "model" } else { "tool" },
        task: Some("t"),
        agent: Some("a"),
        request_sha256: "ab",
        request: "{}",
        response: Some("r"),
        error: None,
        input_tokens: Some(n),
        output_tokens: None,
        duration_ms: 1,
    };
    store.record_call(&ids[0], &call(2)).unwrap();
    store.record_call(&ids[0], &call(3)).unwrap();
    // A batch is numbered on after what is there, in order.
    store.record_calls(&ids[2], &[call(4), call(5)]).unwrap();
    store.record_call(&ids[2], &call(6)).unwrap();
    let batch = store.calls(&ids[2]).unwrap();
    assert_eq!(
        batch
            .iter()
            .map(|c| (c.seq, c.input_tokens))
            .collect::<Vec<_>>(),
        [(1, Some(4)), (2, Some(5)), (3, Some(6))]
    );
    let calls = store.calls(&ids[0]).unwrap();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.seq, c.kind.as_str(), c.input_tokens))
            .collect::<Vec<_>>(),
        [(1, "model", Some(2)), (2, "tool", Some(3))]
    );
    let source = store.source(&ids[0]).unwrap();
    assert_eq!(source.options["fence"], "abc");
    assert_eq!(source.crew_text, "{}");

    // A run ended by a failure is taken over by a resume: running again, not ended.
    let ended = |id: &str, status: &str| {
        store
            .checkpoint(
                id,
                status,
                &[],
                (0, 0, None),
                Some("task `t`: boom"),
                Some(9),
                &json!({}),
            )
            .unwrap();
    };
    ended(&ids[0], "failed");
    let _owner = Owner::acquire(&path, &ids[0]).unwrap();
    store.take_over(&ids[0], "runs/x").unwrap();
    let row = store.run(&ids[0]).unwrap();
    assert_eq!(row.standing, Standing::Running);
    assert_eq!((row.ended_by, row.finished_ms), (None, None));
    assert!(matches!(
        store.take_over("nope", "o"),
        Err(troupe_store::StoreError::NoSuchRun(_))
    ));
    assert_eq!(store.last_event_seq(&ids[0]).unwrap(), 0);

    // Keep the newest two ended runs; never a running (or crashed) one.
    for id in &ids[1..] {
        ended(id, "completed");
    }
    // A completed run is not taken over (a second resume that lost the race).
    assert!(matches!(
        store.take_over(&ids[1], "o"),
        Err(troupe_store::StoreError::Completed(_))
    ));
    let pruned = store.prune("x", 2).unwrap();
    assert_eq!(pruned, [ids[1].clone()]);
    assert!(store.run(&ids[1]).is_err());
    assert!(store.calls(&ids[0]).unwrap().len() == 2);
    assert_eq!(store.runs(&RunFilter::default()).unwrap().len(), 3);
}

/// A store written by the first schema (no `options`) opens and gains the column.
#[test]
fn a_schema_1_store_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, parent TEXT, crew TEXT NOT NULL,
                crew_file TEXT NOT NULL, crew_text TEXT NOT NULL, crew_sha256 TEXT NOT NULL,
                inputs TEXT NOT NULL, documents TEXT NOT NULL, out_dir TEXT NOT NULL,
                status TEXT NOT NULL, owner_pid INTEGER NOT NULL, owner_host TEXT NOT NULL,
                started_ms INTEGER NOT NULL, finished_ms INTEGER,
                input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
                cost_usd REAL, ended_by TEXT, record TEXT);
             INSERT INTO runs VALUES ('old', NULL, 'x', 'f', '{}', '00', '{}', '[]', 'o',
                'completed', 1, 'h', 5, 6, 0, 0, NULL, NULL, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.source("old").unwrap().options, json!({}));
    let id = new_run_id();
    let opts = json!({"fence": "f"});
    store.create_run(&new_run(&id, "x", &opts)).unwrap();
    assert_eq!(store.source(&id).unwrap().options["fence"], "f");
}

/// Many runs writing at once through the one writer: every write lands, numbered per run in the
/// order each run handed them over, and a write that fails (an unknown run: the foreign key) is
/// undone alone, its neighbours in the same transaction committed.
#[test]
fn concurrent_writes_are_committed_together_and_a_failure_stays_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = std::sync::Arc::new(Store::open(&path).unwrap());
    let empty = json!({});
    let ids: Vec<String> = (0..16).map(|_| new_run_id()).collect();
    for id in &ids {
        store.create_run(&new_run(id, "x", &empty)).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, id) in ids.iter().enumerate() {
        for seq in 1..=50u64 {
            let events_tx = tx.clone();
            store.append_events_then(
                id,
                vec![(seq, "e".into(), format!("{{\"n\":{seq}}}"))],
                Box::new(move |r| events_tx.send(r.is_ok()).unwrap()),
            );
            let calls_tx = tx.clone();
            let request = format!("{i}/{seq}");
            store.record_calls_then(
                id,
                Box::new(move || {
                    vec![troupe_store::NewCall {
                        kind: "model".into(),
                        request_sha256: "00".into(),
                        request,
                        ..Default::default()
                    }]
                }),
                Box::new(move |r| calls_tx.send(r.is_ok()).unwrap()),
            );
        }
    }
    let bad = tx.clone();
    store.append_events_then(
        "no-such-run",
        vec![(1, "e".into(), "{}".into())],
        Box::new(move |r| bad.send(r.is_ok()).unwrap()),
    );
    drop(tx);
    let results: Vec<bool> = rx.iter().collect();
    assert_eq!(results.len(), 16 * 100 + 1);
    assert_eq!(results.iter().filter(|ok| !**ok).count(), 1);
    let other = Store::open(&path).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let seqs: Vec<u64> = other.events(id).unwrap().iter().map(|e| e.0).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        let calls = other.calls(id).unwrap();
        assert_eq!(calls.len(), 50);
        for (n, c) in calls.iter().enumerate() {
            assert_eq!(c.seq, n as u64 + 1);
            assert_eq!(c.request, format!("{i}/{}", n + 1));
        }
    }
    assert!(other.events("no-such-run").unwrap().is_empty());
}

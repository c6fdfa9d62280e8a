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

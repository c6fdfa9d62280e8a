//! `for_each: "document"`: a task becomes one instance per document before the run starts.
//! Instances are independent, so they run at the same time (also in a sequential crew); a task
//! that takes the original as `context` waits for every instance and receives all their outputs
//! (map, then reduce).

use std::path::PathBuf;

use troupe_crew::{Crew, Diagnostic, JsonPath, Target};
use troupe_docs::Corpus;

/// Replaces every `for_each` task of `crew` by its instances and rewires `context` to them.
/// Without documents, a `for_each` task is an error that says how to give some.
pub fn expand(crew: &mut Crew, corpus: Option<&Corpus>) -> Result<(), Vec<Diagnostic>> {
    if crew.tasks.iter().all(|t| t.for_each.is_none()) {
        return Ok(());
    }
    let Some(corpus) = corpus else {
        return Err(crew
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.for_each.is_some())
            .map(|(i, t)| {
                crew.source.diagnostic(
                    &JsonPath::root().key("tasks").index(i).key("for_each"),
                    Target::Value,
                    format!("task `{}` runs for each document, but the run has no documents", t.id),
                    Some(
                        "pass documents with `troupe run … --docs PATH` (files, folders, globs) or add `\"documents\": {\"paths\": [\"docs/\"]}` to the crew file"
                            .into(),
                    ),
                )
            })
            .collect());
    };
    // Old index → new indexes.
    let mut map: Vec<Vec<usize>> = Vec::with_capacity(crew.tasks.len());
    let mut tasks = Vec::new();
    for task in std::mem::take(&mut crew.tasks) {
        let first = tasks.len();
        if task.for_each.is_some() {
            for doc in corpus.documents() {
                let mut instance = task.clone();
                instance.id = format!("{}[{}]", task.id, doc.id);
                instance.for_each = None;
                instance.document = Some(doc.id.clone());
                instance.group = Some(task.id.clone());
                instance.output_file = task
                    .output_file
                    .as_ref()
                    .map(|f| per_document_file(f, &doc.id));
                tasks.push(instance);
            }
        } else {
            tasks.push(task);
        }
        map.push((first..tasks.len()).collect());
    }
    for task in &mut tasks {
        task.context = task
            .context
            .iter()
            .flat_map(|&old| map.get(old).cloned().unwrap_or_default())
            .collect();
    }
    crew.tasks = tasks;
    Ok(())
}

/// `findings.json` for document `contracts/nda.pdf` → `findings.contracts_nda.pdf.json`.
fn per_document_file(file: &std::path::Path, doc: &str) -> PathBuf {
    let slug: String = doc
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match file.extension() {
        Some(ext) => format!("{stem}.{slug}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{slug}"),
    };
    file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_document_files_keep_the_extension() {
        assert_eq!(
            per_document_file(
                std::path::Path::new("out/findings.json"),
                "contracts/nda.pdf"
            ),
            PathBuf::from("out/findings.contracts_nda.pdf.json")
        );
    }
}

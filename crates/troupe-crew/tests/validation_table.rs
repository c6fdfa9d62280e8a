//! A table of broken crew files: each must produce the exact problem, at the exact place, with a
//! hint. Every problem of a file is reported, not only the first.

use std::collections::BTreeMap;

use troupe_crew::{Diagnostic, Source};

fn problems(text: &str, inputs: &[(&str, &str)]) -> Vec<Diagnostic> {
    let inputs: BTreeMap<String, String> = inputs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match troupe_crew::parse(
        Source::new("crew.json", text.to_string()),
        ".".into(),
        &inputs,
    ) {
        Ok(_) => Vec::new(),
        Err(d) => d.0,
    }
}

/// A valid crew as a template for breaking.
const BASE: &str = r#"{
  "name": "t",
  "llm": { "model": "m" },
  "agents": [
    { "id": "researcher", "role": "R", "goal": "G" },
    { "id": "writer", "role": "W", "goal": "G" }
  ],
  "tasks": [
    { "id": "research", "agent": "researcher", "description": "Research" },
    { "id": "write", "agent": "writer", "description": "Write", "context": ["research"] }
  ]
}"#;

struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// (where it must point: the first occurrence of this text in the broken file,
    ///  path, message part, hint part)
    expect: (&'static str, &'static str, &'static str, &'static str),
}

const CASES: &[Case] = &[
    Case {
        name: "a plugin's pin is a SHA-256",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "sha256": "abc123"}],"#,
        expect: (
            r#""abc123""#,
            "plugins[0].sha256",
            "not a SHA-256 (64 hexadecimal digits)",
            "troupe plugin lock FILE",
        ),
    },
    Case {
        name: "an MCP server is a command or a URL, not both",
        from: r#""name": "t","#,
        to: r#""name": "t", "mcp_servers": [{"id": "fs", "command": "npx", "url": "https://mcp.example.org/mcp"}],"#,
        expect: (
            r#"{"id": "fs""#,
            "mcp_servers[0]",
            "has both `command` and `url`",
            "`command` for a local server",
        ),
    },
    Case {
        name: "a remote MCP server's secret headers go over https",
        from: r#""name": "t","#,
        to: r#""name": "t", "mcp_servers": [{"id": "tickets", "url": "http://mcp.example.org/mcp", "headers_env": {"Authorization": "TICKETS_AUTH"}}],"#,
        expect: (
            r#""http://mcp.example.org/mcp""#,
            "mcp_servers[0].url",
            "unencrypted",
            "use `https://`",
        ),
    },
    Case {
        name: "a local MCP server takes no headers",
        from: r#""name": "t","#,
        to: r#""name": "t", "mcp_servers": [{"id": "fs", "command": "npx", "headers_env": {"Authorization": "A"}}],"#,
        expect: (
            r#"{"Authorization": "A"}"#,
            "mcp_servers[0].headers_env",
            "`headers_env` is for a remote server",
            "`env` or `env_from`",
        ),
    },
    Case {
        name: "an MCP server's env_from names variables",
        from: r#""name": "t","#,
        to: r#""name": "t", "mcp_servers": [{"id": "fs", "command": "npx", "env_from": ["MY-TOKEN"]}],"#,
        expect: (
            r#""MY-TOKEN""#,
            "mcp_servers[0].env_from[0]",
            "not an environment variable's name",
            "`GITHUB_TOKEN`",
        ),
    },
    Case {
        name: "an MCP server may not take a plugin's id",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml"}], "mcp_servers": [{"id": "web", "command": "npx"}],"#,
        expect: (
            r#""web", "command""#,
            "mcp_servers[0].id",
            "is also a plugin's id",
            "its own id",
        ),
    },
    Case {
        name: "an MCP call timeout of 0 is refused",
        from: r#""name": "t","#,
        to: r#""name": "t", "mcp_servers": [{"id": "fs", "command": "npx", "limits": {"call_timeout_ms": 0}}],"#,
        expect: (
            "0}}",
            "mcp_servers[0].limits.call_timeout_ms",
            "`call_timeout_ms` is 0",
            "use a positive value",
        ),
    },
    Case {
        name: "a plugin's HTTP grant takes host names, not URLs",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "grants": {"http": ["https://api.example.org/v1"]}}],"#,
        expect: (
            r#""https://api.example.org/v1""#,
            "plugins[0].grants.http[0]",
            "`https://api.example.org/v1` is not a host name",
            "`*.example.org` for its subdomains",
        ),
    },
    Case {
        name: "a zero HTTP response cap is refused",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"http_kb": 0}}],"#,
        expect: (
            "0}",
            "plugins[0].limits.http_kb",
            "`http_kb` is 0: no call could succeed",
            "use a positive value",
        ),
    },
    Case {
        name: "a plugin deadline past every sane bound is refused",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"deadline_ms": 18446744073709551615}}],"#,
        expect: (
            "18446744073709551615",
            "plugins[0].limits.deadline_ms",
            "`deadline_ms` is 18446744073709551615, over the largest value accepted (600000)",
            "use 1 to 600000 (10 minutes",
        ),
    },
    Case {
        name: "a plugin cannot have more memory than wasm32 addresses",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"memory_mb": 8192}}],"#,
        expect: (
            "8192",
            "plugins[0].limits.memory_mb",
            "`memory_mb` is 8192, over the largest value accepted (4096)",
            "use 1 to 4096",
        ),
    },
    Case {
        name: "a plugin's log lines are bounded",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"log_lines": 4294967295}}],"#,
        expect: (
            "4294967295",
            "plugins[0].limits.log_lines",
            "`log_lines` is 4294967295, over the largest value accepted (1000)",
            "use 0 to 1000",
        ),
    },
    Case {
        name: "a plugin's key-value space is bounded",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"kv_kb": 1048576}}],"#,
        expect: (
            "1048576",
            "plugins[0].limits.kv_kb",
            "`kv_kb` is 1048576, over the largest value accepted (65536)",
            "remove the key for the default (1024)",
        ),
    },
    Case {
        name: "a plugin's key count is bounded",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"kv_keys": 5000000}}],"#,
        expect: (
            "5000000",
            "plugins[0].limits.kv_keys",
            "`kv_keys` is 5000000, over the largest value accepted (100000)",
            "use 1 to 100000",
        ),
    },
    Case {
        name: "a zero key-value quota is refused",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "web", "path": "Cargo.toml", "limits": {"kv_kb": 0}}],"#,
        expect: (
            "0}",
            "plugins[0].limits.kv_kb",
            "`kv_kb` is 0: no `kv-set` could succeed",
            "use a positive value (at most 65536)",
        ),
    },
    Case {
        name: "a plugin cannot take the id of the built-in docs tools",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "docs", "path": "Cargo.toml"}],"#,
        expect: (
            r#""docs""#,
            "plugins[0].id",
            "plugin id `docs` is reserved for Troupe's built-in `docs.*` tools",
            "rename the plugin",
        ),
    },
    Case {
        name: "reserved plugin ids are reserved in any case",
        from: r#""name": "t","#,
        to: r#""name": "t", "plugins": [{"id": "Text", "path": "Cargo.toml"}],"#,
        expect: (
            r#""Text""#,
            "plugins[0].id",
            "plugin id `Text` is reserved for Troupe's built-in `text.*` tools",
            "reserved ids: ",
        ),
    },
    Case {
        name: "unknown key suggests the right one",
        from: r#""goal": "G" },
    { "id": "writer""#,
        to: r#""goal": "G", "backstroy": "x" },
    { "id": "writer""#,
        expect: (
            r#""backstroy""#,
            "agents[0].backstroy",
            "unknown key `backstroy`",
            "did you mean `backstory`?",
        ),
    },
    Case {
        name: "unknown agent lists the agents",
        from: r#""agent": "writer""#,
        to: r#""agent": "writter""#,
        expect: (
            r#""writter""#,
            "tasks[1].agent",
            "unknown agent `writter`",
            "did you mean `writer`? (agents in this crew: `researcher`, `writer`)",
        ),
    },
    Case {
        name: "unknown context task",
        from: r#""context": ["research"]"#,
        to: r#""context": ["reserch"]"#,
        expect: (
            r#""reserch""#,
            "tasks[1].context[0]",
            "unknown task `reserch` in context",
            "did you mean `research`?",
        ),
    },
    Case {
        name: "wrong type names the expected type",
        from: r#""name": "t""#,
        to: r#""name": 7"#,
        expect: (
            "7",
            "name",
            "wrong type: expected a string, found a number",
            "write this value as a string",
        ),
    },
    Case {
        name: "missing required key",
        from: r#"{ "id": "writer", "role": "W", "goal": "G" }"#,
        to: r#"{ "id": "writer", "goal": "G" }"#,
        expect: (
            r#"{ "id": "writer""#,
            "agents[1]",
            "missing required key `role`",
            "add `\"role\": …`",
        ),
    },
    Case {
        name: "placeholder without input lists the inputs given",
        from: r#""description": "Research""#,
        to: r#""description": "Research {topic}""#,
        expect: (
            r#""Research {topic}""#,
            "tasks[0].description",
            "placeholder `{topic}` has no input",
            "pass `--input topic=…`",
        ),
    },
    Case {
        name: "document placeholder outside a per-document task says how to get it",
        from: r#""description": "Research""#,
        to: r#""description": "Research {document_text}""#,
        expect: (
            r#""Research {document_text}""#,
            "tasks[0].description",
            "placeholder `{document_text}` has no input",
            "is filled per document in a task with `\"for_each\": \"document\"`",
        ),
    },
    Case {
        name: "for_each takes only document",
        from: r#""description": "Research""#,
        to: r#""description": "Research", "for_each": "documents""#,
        expect: (
            r#""documents""#,
            "tasks[0].for_each",
            "unknown value `documents` for `for_each`",
            "did you mean `document`?",
        ),
    },
    Case {
        name: "chunk overlap not below the chunk size",
        from: r#""name": "t","#,
        to: r#""name": "t", "documents": {"paths": ["docs"], "chunk_tokens": 100, "chunk_overlap": 100},"#,
        expect: (
            "100}",
            "documents.chunk_overlap",
            "`chunk_overlap` (100) is not smaller than `chunk_tokens` (100)",
            "use an overlap of 10-20% of the chunk size",
        ),
    },
    Case {
        name: "enum typo",
        from: r#""name": "t","#,
        to: r#""name": "t", "process": "hierachical","#,
        expect: (
            r#""hierachical""#,
            "process",
            "unknown value `hierachical` for `process`",
            "did you mean `hierarchical`?",
        ),
    },
    Case {
        name: "later context in a sequential crew",
        from: r#"{ "id": "research", "agent": "researcher", "description": "Research" }"#,
        to: r#"{ "id": "research", "agent": "researcher", "description": "Research", "context": ["write"] }"#,
        expect: (
            r#""write"]"#,
            "tasks[0].context[0]",
            "task `research` needs `write`, which comes later",
            "use `\"process\": \"parallel\"`",
        ),
    },
    Case {
        name: "duplicate id",
        from: r#"{ "id": "writer", "role""#,
        to: r#"{ "id": "researcher", "role""#,
        expect: (
            r#""researcher", "role": "W""#,
            "agents[1].id",
            "duplicate agent id `researcher`",
            "`agents[0]` already uses it",
        ),
    },
    Case {
        name: "reviewer reviewing itself",
        from: r#""context": ["research"] }"#,
        to: r#""context": ["research"], "review": {"by": "writer"} }"#,
        expect: (
            r#""writer"}"#,
            "tasks[1].review.by",
            "`writer` would review its own work",
            "name a different agent",
        ),
    },
    Case {
        name: "output file outside the output directory",
        from: r#""context": ["research"] }"#,
        to: r#""context": ["research"], "output_file": "../../etc/passwd" }"#,
        expect: (
            r#""../../etc"#,
            "tasks[1].output_file",
            "is not the path of a file inside the output directory",
            "without `..`",
        ),
    },
    Case {
        name: "invalid output schema",
        from: r#""context": ["research"] }"#,
        to: r#""context": ["research"], "output_schema": {"type": "banana"} }"#,
        expect: (
            r#"{"type": "banana"}"#,
            "tasks[1].output_schema",
            "is not a valid JSON Schema",
            "json-schema.org",
        ),
    },
    Case {
        name: "unknown provider",
        from: r#""model": "m""#,
        to: r#""model": "m", "provider": "anthropic""#,
        expect: (
            r#""anthropic""#,
            "llm.provider",
            "unknown value `anthropic` for `provider`",
            "use one of `auto`, `local`, `openai`",
        ),
    },
    Case {
        name: "a negative limit names its key and why",
        from: r#""name": "t","#,
        to: r#""name": "t", "limits": {"max_iterations": -1},"#,
        expect: (
            "-1}",
            "limits.max_iterations",
            "`max_iterations` is -1: it must be at least 0",
            "use a value of 0 or more",
        ),
    },
    Case {
        name: "a fractional count names its key and why",
        from: r#""name": "t","#,
        to: r#""name": "t", "limits": {"max_parallel": 2.5},"#,
        expect: (
            "2.5}",
            "limits.max_parallel",
            "`max_parallel` is 2.5: it must be a whole number",
            "e.g. 3",
        ),
    },
    Case {
        name: "a negative optional agent limit is found inside its anyOf",
        from: r#""role": "W", "goal": "G""#,
        to: r#""role": "W", "goal": "G", "limits": {"max_output_retries": -2}"#,
        expect: (
            "-2}",
            "agents[1].limits.max_output_retries",
            "`max_output_retries` is -2",
            "0 or more",
        ),
    },
    Case {
        name: "a key written twice",
        from: r#""llm": { "model": "m" },"#,
        to: r#""llm": { "model": "m", "model": "gpt-4o" },"#,
        expect: (
            r#""model": "gpt-4o""#,
            "llm.model",
            "duplicate key `model` (first written on line 3)",
            "JSON keeps only one of them",
        ),
    },
    Case {
        name: "a cost limit without prices would never fire",
        from: r#""name": "t","#,
        to: r#""name": "t", "limits": {"max_cost_usd": 0.5},"#,
        expect: (
            "0.5}",
            "limits.max_cost_usd",
            "`max_cost_usd` is set, but `researcher`, `writer` have no prices",
            "input_cost_per_mtok",
        ),
    },
    Case {
        name: "a negative price",
        from: r#""llm": { "model": "m" },"#,
        to: r#""llm": { "model": "m", "input_cost_per_mtok": -1, "output_cost_per_mtok": 1 },"#,
        expect: (
            "-1,",
            "llm.input_cost_per_mtok",
            "`input_cost_per_mtok` is -1",
            "per million tokens",
        ),
    },
    Case {
        name: "a wrong type names the key",
        from: r#""role": "W", "goal": "G""#,
        to: r#""role": "W", "goal": "G", "tools": "text.stats""#,
        expect: (
            r#""text.stats""#,
            "agents[1].tools",
            "`tools` has the wrong type: expected an array, found a string",
            "write this value as an array",
        ),
    },
    Case {
        name: "zero iterations",
        from: r#""name": "t","#,
        to: r#""name": "t", "limits": {"max_iterations": 0},"#,
        expect: (
            "0}",
            "limits.max_iterations",
            "`max_iterations` is 0",
            "use at least 1",
        ),
    },
    Case {
        name: "syntax error with line and column",
        from: r#""name": "t","#,
        to: r#""name": "t",,"#,
        expect: (",\n  \"llm\"", "(syntax)", "invalid JSON", "doubled comma"),
    },
    Case {
        name: "trailing comma",
        from: r#""description": "Write", "context": ["research"] }"#,
        to: r#""description": "Write", "context": ["research"], }"#,
        expect: (", }", "(syntax)", "trailing comma", "remove it"),
    },
];

/// 1-based line and column of the first occurrence of `needle`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn each_broken_file_gets_its_precise_diagnostic() {
    assert!(problems(BASE, &[]).is_empty(), "{:?}", problems(BASE, &[]));
    for case in CASES {
        assert!(
            BASE.contains(case.from),
            "{}: template text not found",
            case.name
        );
        let text = BASE.replacen(case.from, case.to, 1);
        let found = problems(&text, &[]);
        let (needle, path, msg, hint) = case.expect;
        let (line, col) = position_of(&text, needle);
        let d = found
            .iter()
            .find(|d| d.message.contains(msg))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no diagnostic containing {msg:?} in {found:#?}",
                    case.name
                )
            });
        assert_eq!((d.line, d.column), (line, col), "{}: {d}", case.name);
        assert_eq!(d.path, path, "{}", case.name);
        assert!(
            d.hint.as_deref().unwrap_or("").contains(hint),
            "{}: hint {:?} lacks {hint:?}",
            case.name,
            d.hint
        );
        assert_eq!(d.file, std::path::Path::new("crew.json"));
    }
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = BASE
        .replacen(r#""agent": "writer""#, r#""agent": "nobody""#, 1)
        .replacen(
            r#""description": "Research""#,
            r#""description": "{a} {b}""#,
            1,
        );
    let found = problems(&text, &[("a", "1")]);
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(found.len(), 2, "{messages:?}");
    assert!(messages.contains(&"unknown agent `nobody`"));
    assert!(messages.contains(&"placeholder `{b}` has no input"));
    let placeholder = found.iter().find(|d| d.message.contains("{b}")).unwrap();
    assert!(
        placeholder
            .hint
            .as_deref()
            .unwrap()
            .contains("inputs given: `a`")
    );
}

/// The issue's example: a misspelt key, an unknown agent, a cycle and a missing input are four
/// problems, reported together (a shape error used to hide the other three).
#[test]
fn shape_errors_do_not_hide_the_others() {
    let text = BASE
        .replacen(
            r#""name": "t","#,
            r#""name": "t", "process": "parallel","#,
            1,
        )
        .replacen(r#""role": "R""#, r#""rol": "R""#, 1)
        .replacen(r#""agent": "writer""#, r#""agent": "nobody""#, 1)
        .replacen(
            r#""description": "Research" }"#,
            r#""description": "Research {topic}", "context": ["write"] }"#,
            1,
        );
    let found = problems(&text, &[]);
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown key `rol`",
            "placeholder `{topic}` has no input",
            "unknown agent `nobody`",
            "dependency cycle: research → write → research",
        ],
        "{found:#?}"
    );
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `role`?"));
    assert!(found.iter().all(|d| d.hint.is_some()), "{found:#?}");
}

/// A stand-in value filled in for a missing or mistyped key is never itself reported.
#[test]
fn stand_ins_are_not_reported() {
    let text = BASE.replacen(r#""id": "writer", "#, "", 1).replacen(
        r#""goal": "G" },"#,
        r#""goal": 7 },"#,
        1,
    );
    let found = problems(&text, &[]);
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"missing required key `id`"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"`goal` has the wrong type: expected a string, found a number"),
        "{messages:?}"
    );
    // Not "agent id `` is not a valid id": that id was made up to go on checking.
    assert!(
        !messages.iter().any(|m| m.contains("is not a valid id")),
        "{messages:?}"
    );
}

#[test]
fn a_byte_order_mark_is_not_an_error() {
    let text = format!("\u{feff}{BASE}");
    assert!(
        problems(&text, &[]).is_empty(),
        "{:#?}",
        problems(&text, &[])
    );
    // Places are still right after it.
    let broken = format!(
        "\u{feff}{}",
        BASE.replacen(r#""agent": "writer""#, r#""agent": "x""#, 1)
    );
    let found = problems(&broken, &[]);
    let (line, col) = position_of(&broken[3..], r#""x""#);
    assert_eq!((found[0].line, found[0].column), (line, col), "{found:#?}");
}

/// `openai/gpt-4o-mini` and `Qwen/Qwen2.5-7B-Instruct` are model names; only a `.gguf` file is
/// a path (relative to the crew file).
#[test]
fn a_model_name_with_a_slash_is_a_name() {
    for name in ["Qwen/Qwen2.5-7B-Instruct", "openai/gpt-4o-mini"] {
        let text = BASE.replacen(r#""model": "m""#, &format!(r#""model": "{name}""#), 1);
        let crew = troupe_crew::parse(
            Source::new("crew.json", text),
            "crews".into(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(crew.agents[0].llm.model, name);
    }
    let text = BASE.replacen(r#""model": "m""#, r#""model": "models/tiny.gguf""#, 1);
    let crew = troupe_crew::parse(
        Source::new("crew.json", text),
        "crews".into(),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(crew.agents[0].llm.model, "crews/models/tiny.gguf");
}

#[test]
fn a_cost_limit_with_prices_or_a_local_model_is_fine() {
    let priced = BASE.replacen(
        r#""llm": { "model": "m" },"#,
        r#""llm": { "model": "m", "input_cost_per_mtok": 0.15, "output_cost_per_mtok": 0.6 }, "limits": {"max_cost_usd": 0.5},"#,
        1,
    );
    assert!(
        problems(&priced, &[]).is_empty(),
        "{:#?}",
        problems(&priced, &[])
    );
    let local = BASE.replacen(
        r#""llm": { "model": "m" },"#,
        r#""llm": { "provider": "local" }, "limits": {"max_cost_usd": 0.5},"#,
        1,
    );
    assert!(
        problems(&local, &[]).is_empty(),
        "{:#?}",
        problems(&local, &[])
    );
}

#[test]
fn a_hierarchical_crew_needs_someone_to_delegate_to() {
    let text = BASE
        .replacen(
            r#""name": "t","#,
            r#""name": "t", "process": "hierarchical", "manager": "researcher","#,
            1,
        )
        .replacen(
            r#""role": "W", "goal": "G""#,
            r#""role": "W", "goal": "G", "allow_delegation": false"#,
            1,
        )
        .replacen(r#""agent": "writer", "#, "", 1);
    let found = problems(&text, &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "agents");
    assert!(
        found[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("allow_delegation")
    );
}

#[test]
fn dependency_cycles_are_spelled_out() {
    let text = BASE
        .replacen(
            r#""name": "t","#,
            r#""name": "t", "process": "parallel","#,
            1,
        )
        .replacen(
            r#""description": "Research" }"#,
            r#""description": "Research", "context": ["write"] }"#,
            1,
        );
    let found = problems(&text, &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        found[0].message,
        "dependency cycle: research → write → research"
    );
}

#[test]
fn inputs_fill_placeholders_everywhere() {
    let text = BASE
        .replacen(r#""goal": "G" },"#, r#""goal": "Study {topic}" },"#, 1)
        .replacen(
            r#""description": "Research""#,
            r#""description": "Research {topic} ({{literal}})""#,
            1,
        );
    let crew = troupe_crew::parse(
        Source::new("crew.json", text),
        ".".into(),
        &BTreeMap::from([("topic".to_string(), "tides".to_string())]),
    )
    .unwrap();
    assert_eq!(crew.agents[0].goal, "Study tides");
    assert_eq!(crew.tasks[0].description, "Research tides ({literal})");
}

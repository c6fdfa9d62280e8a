//! The crew file's shape: what the generated JSON Schema finds (unknown, missing and mistyped
//! keys, values out of range), each said with its key, its reason and a hint; duplicate keys,
//! which JSON parsers silently collapse; and a repaired copy of the file so that the checks of
//! meaning still run over everything the shape errors did not touch.

use jsonc_parser::ast::{ObjectPropName, Value as Ast};
use jsonc_parser::common::Ranged;
use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind as K};
use serde_json::Value;

use crate::diag::{Diagnostic, JsonPath, Seg, Source, Target, did_you_mean, list};
use crate::schema::FileSchema;

/// How many times the file is repaired and validated again: a repair can only reveal the
/// problems of the value it fills in, so two rounds suffice; four leave room.
const MAX_REPAIR_ROUNDS: usize = 4;

/// What the schema found, and the places whose value was invented to step past it.
pub struct Shape {
    pub diagnostics: Vec<Diagnostic>,
    /// Paths whose value was removed or filled in: findings of the meaning checks at or under
    /// them are about the stand-in, not about what the user wrote, and are not reported.
    pub repaired: Vec<JsonPath>,
}

impl Shape {
    /// Whether a diagnostic is about a stand-in value.
    pub fn covers(&self, path: &str) -> bool {
        self.repaired.iter().any(|r| {
            let r = r.to_string();
            path == r || path.starts_with(&format!("{r}.")) || path.starts_with(&format!("{r}["))
        })
    }
}

/// A repair: what to change in the value so that validation can go on past one error.
enum Repair {
    /// Drop these keys of the object at the path (unknown keys).
    RemoveKeys(JsonPath, Vec<String>),
    /// Drop or replace the value at the path (wrong type, out of range).
    Replace(JsonPath),
    /// Fill in a missing required key.
    Fill(JsonPath),
}

/// Validates `value` against the file's schema (the crew's: [`crate::schema::crew`]),
/// describing every error once, and repairs it in place so that it deserialises whenever the
/// repairs allow.
pub fn check(schema: &FileSchema, source: &Source, value: &mut Value) -> Shape {
    let mut shape = Shape {
        diagnostics: Vec::new(),
        repaired: Vec::new(),
    };
    let validator = match schema.validator() {
        Ok(v) => v,
        Err(e) => {
            shape.diagnostics.push(source.diagnostic(
                &JsonPath::root(),
                Target::Value,
                format!(
                    "internal error: the schema of {} does not compile: {e}",
                    schema.noun
                ),
                Some(format!(
                    "this is a bug in Troupe: please report it with {}",
                    schema.noun
                )),
            ));
            return shape;
        }
    };
    for _ in 0..MAX_REPAIR_ROUNDS {
        let mut found = Vec::new();
        let mut repairs = Vec::new();
        for err in validator.iter_errors(value) {
            for leaf in leaves(err.to_owned()) {
                describe(schema, source, &leaf, &mut found, &mut repairs);
            }
        }
        if repairs.is_empty() {
            push_new(&mut shape.diagnostics, found);
            break;
        }
        push_new(&mut shape.diagnostics, found);
        let mut changed = false;
        for r in repairs {
            changed |= apply(schema, value, r, &mut shape.repaired);
        }
        if !changed {
            break;
        }
    }
    drop_echoes(&mut shape.diagnostics);
    shape
}

fn push_new(out: &mut Vec<Diagnostic>, found: Vec<Diagnostic>) {
    for d in found {
        if !out
            .iter()
            .any(|o| o.path == d.path && o.message == d.message)
        {
            out.push(d);
        }
    }
}

/// The errors worth telling: an `anyOf`/`oneOf` of a value and `null` (how every optional key
/// is described) is replaced by the errors of the value's own branch, so that
/// `"limits": {"max_iterations": -1}` names `max_iterations` and says why.
fn leaves(err: ValidationError<'static>) -> Vec<ValidationError<'static>> {
    let Some(branch) = value_branch(&err) else {
        return vec![err];
    };
    match err.into_parts().kind {
        K::AnyOf { context } | K::OneOfNotValid { context } => context
            .into_iter()
            .nth(branch)
            .unwrap_or_default()
            .into_iter()
            .flat_map(leaves)
            .collect(),
        _ => Vec::new(),
    }
}

/// For an `anyOf`/`oneOf` of one value branch and `null`, failed by a value, the value branch.
fn value_branch(err: &ValidationError<'_>) -> Option<usize> {
    let context = match err.kind() {
        K::AnyOf { context } | K::OneOfNotValid { context } if !err.instance().is_null() => context,
        _ => return None,
    };
    let real: Vec<usize> = (0..context.len())
        .filter(|&i| !context[i].iter().all(is_not_null))
        .collect();
    match real.as_slice() {
        [only] if !context[*only].is_empty() => Some(*only),
        _ => None,
    }
}

/// The error of a `{"type": "null"}` branch.
fn is_not_null(e: &ValidationError<'_>) -> bool {
    matches!(e.kind(), K::Type { kind: TypeKind::Single(t) } if t.to_string() == "null")
}

fn key_name(schema: &FileSchema, path: &JsonPath) -> String {
    match path.0.last() {
        Some(Seg::Key(k)) => format!("`{k}`"),
        Some(Seg::Index(_)) => format!("`{path}`"),
        None => schema.noun.into(),
    }
}

fn describe(
    schema: &FileSchema,
    source: &Source,
    err: &ValidationError<'_>,
    out: &mut Vec<Diagnostic>,
    repairs: &mut Vec<Repair>,
) {
    let path = JsonPath::from_pointer(err.instance_path().as_str());
    let instance = err.instance();
    let key = key_name(schema, &path);
    let mut push = |p: &JsonPath, target, message: String, hint: String| {
        out.push(source.diagnostic(p, target, message, Some(hint)));
    };
    match err.kind() {
        K::AdditionalProperties { unexpected } => {
            let allowed = schema.keys_at(&path);
            for k in unexpected {
                let hint = did_you_mean(k, allowed.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("allowed keys here: {}", list(&allowed)));
                push(
                    &path.key(k),
                    Target::Key,
                    format!("unknown key `{k}`"),
                    hint,
                );
            }
            repairs.push(Repair::RemoveKeys(path, unexpected.clone()));
        }
        K::Required { property } => {
            let k = property.as_str().unwrap_or_default();
            push(
                &path,
                Target::Value,
                format!("missing required key `{k}`"),
                format!("add `\"{k}\": …` to this object"),
            );
            repairs.push(Repair::Fill(path.key(k)));
        }
        K::Type { kind } => {
            let expected = type_name(kind);
            let whole = matches!(kind, TypeKind::Single(t) if t.to_string() == "integer")
                || matches!(kind, TypeKind::Multiple(ts) if ts.iter().any(|t| t.to_string() == "integer"));
            if whole && instance.is_number() {
                push(
                    &path,
                    Target::Value,
                    format!("{key} is {instance}: it must be a whole number"),
                    format!(
                        "write a whole number without a fraction, e.g. {}",
                        round(instance)
                    ),
                );
            } else {
                push(
                    &path,
                    Target::Value,
                    format!(
                        "{key} has the wrong type: expected {expected}, found {}",
                        json_type(instance)
                    ),
                    format!("write this value as {expected}"),
                );
            }
            repairs.push(Repair::Replace(path));
        }
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => {
            let strict = matches!(err.kind(), K::ExclusiveMinimum { .. });
            push(
                &path,
                Target::Value,
                format!(
                    "{key} is {instance}: it must be {} {limit}",
                    if strict { "more than" } else { "at least" }
                ),
                format!("use a value of {limit} or more, or remove the key for its default"),
            );
            repairs.push(Repair::Replace(path));
        }
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => {
            push(
                &path,
                Target::Value,
                format!("{key} is {instance}: it must be at most {limit}"),
                format!("use a value up to {limit}, or remove the key for its default"),
            );
            repairs.push(Repair::Replace(path));
        }
        K::Enum { .. } | K::Constant { .. } | K::OneOfNotValid { .. } | K::AnyOf { .. }
            if instance.is_string() =>
        {
            let allowed = schema.values_at(&path);
            let found = instance.as_str().unwrap_or_default();
            let hint = did_you_mean(found, allowed.iter().map(String::as_str))
                .unwrap_or_else(|| format!("use one of {}", list(&allowed)));
            push(
                &path,
                Target::Value,
                format!("unknown value `{found}` for {key}"),
                hint,
            );
            repairs.push(Repair::Replace(path));
        }
        _ => {
            let allowed = schema.values_at(&path);
            let hint = if allowed.is_empty() {
                format!("`{}` prints what {key} accepts", schema.command)
            } else {
                format!("use one of {}", list(&allowed))
            };
            push(
                &path,
                Target::Value,
                format!("{key} is not valid here: {err}"),
                hint,
            );
            repairs.push(Repair::Replace(path));
        }
    }
}

fn round(v: &Value) -> String {
    let n = v.as_f64().unwrap_or(1.0).round().max(0.0);
    format!("{n:.0}")
}

/// Applies a repair; false when it changed nothing (the value cannot be repaired further).
fn apply(
    schema: &FileSchema,
    value: &mut Value,
    repair: Repair,
    repaired: &mut Vec<JsonPath>,
) -> bool {
    match repair {
        Repair::RemoveKeys(path, keys) => {
            let Some(Value::Object(obj)) = pointer_mut(value, &path) else {
                return false;
            };
            let before = obj.len();
            for k in &keys {
                obj.remove(k);
            }
            obj.len() < before
        }
        Repair::Fill(path) => {
            let Some((parent, Seg::Key(k))) = split(&path) else {
                return false;
            };
            let stand_in = placeholder(schema, &path);
            let Some(Value::Object(obj)) = pointer_mut(value, &parent) else {
                return false;
            };
            if obj.contains_key(&k) {
                return false;
            }
            obj.insert(k, stand_in);
            repaired.push(path);
            true
        }
        Repair::Replace(path) => {
            let Some((parent, last)) = split(&path) else {
                return false;
            };
            let stand_in = placeholder(schema, &path);
            let changed = match (pointer_mut(value, &parent), last) {
                // An optional key goes; a required one is filled in by the next round.
                (Some(Value::Object(obj)), Seg::Key(k)) => obj.remove(&k).is_some(),
                (Some(Value::Array(arr)), Seg::Index(i)) => match arr.get_mut(i) {
                    Some(slot) if *slot != stand_in => {
                        *slot = stand_in;
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if changed {
                repaired.push(path);
            }
            changed
        }
    }
}

fn split(path: &JsonPath) -> Option<(JsonPath, Seg)> {
    let (last, parent) = path.0.split_last()?;
    Some((JsonPath(parent.to_vec()), last.clone()))
}

fn pointer_mut<'v>(value: &'v mut Value, path: &JsonPath) -> Option<&'v mut Value> {
    path.0.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Index(i) => v.get_mut(*i),
    })
}

/// The emptiest value of the type the schema gives `path`.
fn placeholder(schema: &FileSchema, path: &JsonPath) -> Value {
    match schema.type_at(path).as_deref() {
        Some("array") => Value::Array(Vec::new()),
        Some("object") => Value::Object(Default::default()),
        Some("integer" | "number") => Value::from(1),
        Some("boolean") => Value::Bool(false),
        _ => Value::String(String::new()),
    }
}

/// "missing `role`" beside "unknown key `rol`, did you mean `role`?" says the same thing twice.
fn drop_echoes(out: &mut Vec<Diagnostic>) {
    let typos: Vec<(String, String)> = out
        .iter()
        .filter_map(|d| {
            let key = d
                .hint
                .as_ref()?
                .strip_prefix("did you mean `")?
                .strip_suffix("`?")?;
            let parent = d.path.rsplit_once('.').map_or("(top level)", |(p, _)| p);
            Some((parent.to_string(), key.to_string()))
        })
        .collect();
    out.retain(|d| {
        !typos.iter().any(|(parent, key)| {
            d.path == *parent && d.message == format!("missing required key `{key}`")
        })
    });
}

fn type_name(kind: &TypeKind) -> String {
    let article = |t: String| match t.as_str() {
        "object" | "array" | "integer" => format!("an {t}"),
        "null" => t,
        _ => format!("a {t}"),
    };
    match kind {
        TypeKind::Single(t) => article(t.to_string()),
        TypeKind::Multiple(ts) => ts
            .iter()
            .map(|t| t.to_string())
            .filter(|t| t != "null")
            .map(article)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Every key written twice in one object. JSON parsers keep the last silently, so a crew file
/// with two `"model"` keys would run on whichever came last without a word.
pub fn duplicate_keys(source: &Source) -> Vec<Diagnostic> {
    let Ok(parsed) = jsonc_parser::parse_to_ast(
        &source.text,
        &Default::default(),
        &jsonc_parser::ParseOptions::default(),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(v) = &parsed.value {
        walk(source, v, &JsonPath::root(), &mut out);
    }
    out
}

fn walk(source: &Source, node: &Ast<'_>, path: &JsonPath, out: &mut Vec<Diagnostic>) {
    match node {
        Ast::Object(obj) => {
            let mut seen: Vec<(&str, usize)> = Vec::new();
            for prop in &obj.properties {
                let name = match &prop.name {
                    ObjectPropName::String(s) => &*s.value,
                    ObjectPropName::Word(w) => w.value,
                };
                if let Some(&(_, first)) = seen.iter().find(|(n, _)| *n == name) {
                    let (line, _) = source.line_col(first);
                    out.push(source.diagnostic_at_offset(
                        prop.name.start(),
                        &path.key(name),
                        format!("duplicate key `{name}` (first written on line {line})"),
                        Some(
                            "JSON keeps only one of them (the last) without a word: remove the one you do not mean"
                                .into(),
                        ),
                    ));
                } else {
                    seen.push((name, prop.name.start()));
                }
                walk(source, &prop.value, &path.key(name), out);
            }
        }
        Ast::Array(arr) => {
            for (i, el) in arr.elements.iter().enumerate() {
                walk(source, el, &path.index(i), out);
            }
        }
        _ => {}
    }
}

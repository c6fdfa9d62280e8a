"""clausediff: what changed between two versions of a document, clause by clause."""
import difflib
import json
import re

import wit_world
from wit_world.imports import host
from componentize_py_types import Err

DESCRIPTION = {
    "name": "clausediff",
    "version": "0.1.0",
    "capabilities": {"documents": True},
    "tools": [{
        "name": "diff",
        "description": "Compare two texts clause by clause (sentences and list items): which were removed, added or changed, with the changed wording and a similarity score. Give `a` and `b` texts, or `document_a` and `document_b` ids of the run's documents.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "string", "description": "The earlier text"},
                "b": {"type": "string", "description": "The later text"},
                "document_a": {"type": "string", "description": "Id of the earlier document"},
                "document_b": {"type": "string", "description": "Id of the later document"},
            },
            "additionalProperties": False,
        },
    }],
}

# A sentence ends at . ; ! or ? followed by a capital, a bracket or a quote.
SENTENCE = re.compile(r"(?<=[.;!?])\s+(?=[A-Z(\"“])")
# A list item: "1.", "(a)", "iv)", "-", "*", "•".
ITEM = re.compile(r"^\s*(?:\(?[0-9a-zA-Z]{1,4}[.)]|[-*•])\s")
# A Markdown table's rule line, `|---|:--:|`.
RULE = re.compile(r"[|:\- ]+")


def clauses(text):
    """Headings and table rows whole, list items apart, paragraphs cut into sentences."""
    out, para = [], []

    def flush():
        if para:
            out.extend(s for s in SENTENCE.split(" ".join(para)) if s.strip())
            para.clear()

    for line in text.splitlines():
        s = " ".join(line.split())
        if not s:
            flush()
        elif s.startswith("#") or s.startswith("|"):
            flush()
            if not RULE.fullmatch(s):
                out.append(s)
        else:
            if ITEM.match(line):
                flush()
            para.append(s)
    flush()
    return out


def text_of(args, key):
    if key in args:
        return args[key]
    doc = args.get("document_" + key)
    if doc is None:
        raise Err(f"give `{key}` (a text) or `document_{key}` (a document id)")
    return json.loads(host.read_document(doc))["text"]


def diff(a, b):
    ca, cb = clauses(a), clauses(b)
    matcher = difflib.SequenceMatcher(a=ca, b=cb, autojunk=False)
    removed, added, changed = [], [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "delete":
            removed += ca[i1:i2]
        elif op == "insert":
            added += cb[j1:j2]
        elif op == "replace":
            olds, news = ca[i1:i2], cb[j1:j2]
            for old in olds:
                best = max(news, key=lambda n: difflib.SequenceMatcher(a=old, b=n).ratio(), default=None)
                ratio = difflib.SequenceMatcher(a=old, b=best).ratio() if best else 0.0
                if best is not None and ratio >= 0.5:
                    news.remove(best)
                    changed.append({"before": old, "after": best, "similarity": round(ratio, 2)})
                else:
                    removed.append(old)
            added += news
    return {
        "clauses_a": len(ca), "clauses_b": len(cb),
        "unchanged": sum(b.size for b in matcher.get_matching_blocks()),
        "similarity": round(difflib.SequenceMatcher(a=a, b=b, autojunk=False).quick_ratio(), 3),
        "removed": removed, "added": added, "changed": changed,
    }


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return json.dumps(DESCRIPTION)

    def invoke(self, tool: str, args: str) -> str:
        if tool != "diff":
            raise Err(f"unknown tool `{tool}`; this plugin has `diff`")
        try:
            parsed = json.loads(args)
        except ValueError as e:
            raise Err(f"arguments are not JSON: {e}")
        host.log(host.Level.INFO, "comparing")
        return json.dumps(diff(text_of(parsed, "a"), text_of(parsed, "b")))

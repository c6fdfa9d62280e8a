//! keywords: the terms and two-word phrases that characterise a text, ranked by frequency with
//! stop words left out — a Troupe tool plugin in Zig, a core module of the
//! `troupe:plugin/tool-plugin@0.1.0` world written against the canonical ABI by hand.
//!
//!   zig build-exe keywords.zig -target wasm32-wasi -O ReleaseSmall -fno-entry -rdynamic
//!
//! Tool `rank` takes {"text": "..."} or {"document": "<id>"} (needs `grants.documents`) and
//! an optional {"top": n}; it returns {"words", "distinct", "keywords": [...], "phrases": [...]}.
const std = @import("std");

// Allocations come from a 1 MiB static buffer first, and from growing linear memory only when
// that is used up: every call is a fresh instance, so the buffer starts empty each time, and a
// call that fits never grows memory (each growth is a system call in the host; 17 -> 6 us).
var heap_buffer: [1 << 20]u8 = undefined;
var heap = std.heap.BufferFirstAllocator.init(&heap_buffer, std.heap.wasm_allocator);
const gpa = heap.allocator();

extern "troupe:plugin/host@0.1.0" fn log(level: i32, ptr: [*]const u8, len: usize) void;
extern "troupe:plugin/host@0.1.0" fn @"read-document"(ptr: [*]const u8, len: usize, ret: *[3]u32) void;

const describe_json =
    \\{"name": "keywords", "version": "0.1.0", "capabilities": {"documents": true}, "tools": [{"name": "rank",
    \\ "description": "The terms and two-word phrases that characterise a text, most frequent first, with stop words left out: what a document is about at a glance. Give `text`, or `document` (the id of one of the run's documents).",
    \\ "parameters": {"type": "object", "properties": {
    \\   "text": {"type": "string", "description": "The text to rank"},
    \\   "document": {"type": "string", "description": "Id of a run document to rank instead"},
    \\   "top": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many terms and phrases (default 10)"}},
    \\ "additionalProperties": false}}]}
;

const stop_words = [_][]const u8{
    "a",        "about",   "above",  "after",    "again",   "all",   "also",  "an",      "and",     "any",
    "are",      "as",      "at",     "be",       "been",    "being", "but",   "by",      "can",     "could",
    "did",      "do",      "does",   "each",     "either",  "for",   "from",  "had",     "has",     "have",
    "he",       "her",     "here",   "his",      "how",     "if",    "in",    "into",    "is",      "it",
    "its",      "may",     "more",   "most",     "must",    "no",    "nor",   "not",     "of",      "on",
    "only",     "or",      "other",  "our",      "out",     "over",  "same",  "shall",   "she",     "should",
    "so",       "such",    "than",   "that",     "the",     "their", "them",  "then",    "there",   "these",
    "they",     "this",    "those",  "through",  "to",      "under", "until", "up",      "upon",    "very",
    "was",      "we",      "were",   "what",     "when",    "where", "which", "while",   "who",     "whom",
    "will",     "with",    "within", "without",  "would",   "you",   "your",  "hereby",  "herein",  "thereof",
    "whether",  "between", "because", "before",  "both",    "during", "further", "made", "make",   "one",
};

var ret_area: [3]u32 = undefined;

export fn cabi_realloc(old: ?[*]u8, old_len: usize, alignment: usize, new_len: usize) ?[*]u8 {
    const a = std.mem.Alignment.fromByteUnits(alignment);
    const fresh = gpa.rawAlloc(new_len, a, @returnAddress()) orelse return null;
    if (old) |p| @memcpy(fresh[0..@min(old_len, new_len)], p[0..@min(old_len, new_len)]);
    return fresh;
}

export fn describe() *[3]u32 {
    ret_area[0] = @intFromPtr(describe_json.ptr);
    ret_area[1] = describe_json.len;
    return &ret_area;
}

fn finish(ok: bool, text: []const u8) *[3]u32 {
    ret_area[0] = if (ok) 0 else 1;
    ret_area[1] = @intFromPtr(text.ptr);
    ret_area[2] = text.len;
    return &ret_area;
}

fn fail(comptime fmt: []const u8, args: anytype) *[3]u32 {
    const message = std.fmt.allocPrint(gpa, fmt, args) catch "out of memory";
    return finish(false, message);
}

const Args = struct {
    text: ?[]const u8 = null,
    document: ?[]const u8 = null,
    top: u32 = 10,
};

const Ranked = struct { term: []const u8, count: u32 };

const Output = struct {
    words: u32,
    distinct: u32,
    keywords: []const Ranked,
    phrases: []const Ranked,
};

fn isStop(word: []const u8) bool {
    for (stop_words) |s| if (std.mem.eql(u8, s, word)) return true;
    return false;
}

fn byCount(_: void, a: Ranked, b: Ranked) bool {
    if (a.count != b.count) return a.count > b.count;
    return std.mem.order(u8, a.term, b.term) == .lt;
}

fn ranked(counts: *std.StringHashMap(u32), top: u32) ![]Ranked {
    var all = try gpa.alloc(Ranked, counts.count());
    var i: usize = 0;
    var it = counts.iterator();
    while (it.next()) |e| : (i += 1) all[i] = .{ .term = e.key_ptr.*, .count = e.value_ptr.* };
    std.mem.sort(Ranked, all, {}, byCount);
    return all[0..@min(all.len, top)];
}

fn rank(text: []const u8, top: u32) !Output {
    var terms = std.StringHashMap(u32).init(gpa);
    var phrases = std.StringHashMap(u32).init(gpa);
    var words: u32 = 0;
    var previous: ?[]const u8 = null;
    var i: usize = 0;
    while (i < text.len) {
        if (!std.ascii.isAlphanumeric(text[i])) {
            // Punctuation other than spaces ends a phrase.
            if (text[i] != ' ' and text[i] != '\n' and text[i] != '\t' and text[i] != '-') previous = null;
            i += 1;
            continue;
        }
        const start = i;
        while (i < text.len and (std.ascii.isAlphanumeric(text[i]) or
            (text[i] == '\'' and i + 1 < text.len and std.ascii.isAlphabetic(text[i + 1])))) i += 1;
        words += 1;
        const word = try std.ascii.allocLowerString(gpa, text[start..i]);
        if (word.len < 3 or isStop(word) or std.ascii.isDigit(word[0])) {
            previous = null;
            continue;
        }
        const t = try terms.getOrPut(word);
        t.value_ptr.* = if (t.found_existing) t.value_ptr.* + 1 else 1;
        if (previous) |p| {
            const phrase = try std.fmt.allocPrint(gpa, "{s} {s}", .{ p, word });
            const e = try phrases.getOrPut(phrase);
            e.value_ptr.* = if (e.found_existing) e.value_ptr.* + 1 else 1;
        }
        previous = word;
    }
    // A phrase seen once says nothing about the text.
    var once = std.ArrayList([]const u8).empty;
    var it = phrases.iterator();
    while (it.next()) |e| if (e.value_ptr.* < 2) try once.append(gpa, e.key_ptr.*);
    for (once.items) |k| _ = phrases.remove(k);
    return .{
        .words = words,
        .distinct = terms.count(),
        .keywords = try ranked(&terms, top),
        .phrases = try ranked(&phrases, top),
    };
}

fn readDocument(id: []const u8) ![]const u8 {
    var ret: [3]u32 = undefined;
    @"read-document"(id.ptr, id.len, &ret);
    const body = @as([*]const u8, @ptrFromInt(ret[1]))[0..ret[2]];
    if (ret[0] & 0xff != 0) {
        log(3, body.ptr, body.len);
        return error.HostRefused;
    }
    const Doc = struct { text: []const u8 };
    const doc = try std.json.parseFromSliceLeaky(Doc, gpa, body, .{ .ignore_unknown_fields = true });
    return doc.text;
}

export fn invoke(tool_ptr: [*]const u8, tool_len: usize, args_ptr: [*]const u8, args_len: usize) *[3]u32 {
    const tool = tool_ptr[0..tool_len];
    if (!std.mem.eql(u8, tool, "rank")) return fail("unknown tool `{s}`; this plugin has `rank`", .{tool});
    const args = std.json.parseFromSliceLeaky(Args, gpa, args_ptr[0..args_len], .{}) catch |e|
        return fail("arguments do not match the schema: {s}", .{@errorName(e)});
    const text = if (args.text) |t| t else if (args.document) |id|
        (readDocument(id) catch |e| return fail("cannot read document `{s}`: {s} (see the log)", .{ id, @errorName(e) }))
    else
        return fail("give `text` (a string) or `document` (a document id)", .{});
    if (args.top < 1 or args.top > 100) return fail("`top` must be between 1 and 100", .{});
    const message = "ranking terms";
    log(1, message.ptr, message.len);
    const out = rank(text, args.top) catch return fail("out of memory", .{});
    const json = std.json.Stringify.valueAlloc(gpa, out, .{}) catch return fail("out of memory", .{});
    return finish(true, json);
}

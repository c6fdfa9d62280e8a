//! {{name}}: a Troupe tool plugin in Zig (a core module of `troupe:plugin/tool-plugin@0.1.0`).
//! Build: plugins/build.sh <this directory>   Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
//! The canonical ABI by hand: strings are (pointer, length); results go through a return area.
const std = @import("std");

// A static buffer first, growing memory only past it: a call that fits never grows memory.
var heap_buffer: [1 << 20]u8 = undefined;
var heap = std.heap.BufferFirstAllocator.init(&heap_buffer, std.heap.wasm_allocator);
const gpa = heap.allocator();

/// host.log(level, message): 0 debug, 1 info, 2 warn, 3 error.
extern "troupe:plugin/host@0.1.0" fn log(level: i32, ptr: [*]const u8, len: usize) void;

const describe_json =
    \\{"name": "{{name}}", "version": "0.1.0", "capabilities": {}, "tools": [{"name": "words",
    \\ "description": "Counts the words of a text",
    \\ "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}
;

var ret_area: [3]u32 = undefined;

export fn cabi_realloc(old: ?[*]u8, old_len: usize, alignment: usize, new_len: usize) ?[*]u8 {
    const fresh = gpa.rawAlloc(new_len, std.mem.Alignment.fromByteUnits(alignment), @returnAddress()) orelse return null;
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

export fn invoke(tool_ptr: [*]const u8, tool_len: usize, args_ptr: [*]const u8, args_len: usize) *[3]u32 {
    if (!std.mem.eql(u8, tool_ptr[0..tool_len], "words")) return finish(false, "unknown tool");
    const Args = struct { text: []const u8 };
    const args = std.json.parseFromSliceLeaky(Args, gpa, args_ptr[0..args_len], .{}) catch
        return finish(false, "`text` is required");
    var words: u32 = 0;
    var it = std.mem.tokenizeAny(u8, args.text, " \t\n\r");
    while (it.next()) |_| words += 1;
    log(1, "counted", 7);
    const out = std.fmt.allocPrint(gpa, "{{\"words\": {d}}}", .{words}) catch return finish(false, "out of memory");
    return finish(true, out);
}

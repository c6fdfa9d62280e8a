// {{name}}: a Troupe tool plugin in AssemblyScript (a core module of `troupe:plugin/tool-plugin@0.1.0`).
// Build: plugins/build.sh <this directory>   Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
// The canonical ABI by hand: strings are (pointer, length) of UTF-8; results go through a return area.
// Built with `--runtime stub` (nothing is freed: every call runs in a fresh instance).

// host.log(level, message): 0 debug, 1 info, 2 warn, 3 error.
@external("troupe:plugin/host@0.1.0", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;

const DESCRIBE = `{"name": "{{name}}", "version": "0.1.0", "capabilities": {}, "tools": [{"name": "words", "description": "Counts the words of a text", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}`;

const RET: usize = memory.data(12, 4);

export function cabi_realloc(ptr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  return ptr == 0 ? heap.alloc(newSize) : heap.realloc(ptr, newSize);
}

function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message, false);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

// Used for failed assertions and bounds checks (`--use abort={{name}}/abort`): log, then trap.
function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  log(3, "abort at line " + line.toString());
  unreachable();
}

export function describe(): usize {
  const bytes = String.UTF8.encode(DESCRIBE, false);
  store<u32>(RET, <u32>changetype<usize>(bytes));
  store<u32>(RET, <u32>bytes.byteLength, 4);
  return RET;
}

function respond(tag: u8, text: string): usize {
  const bytes = String.UTF8.encode(text, false);
  store<u8>(RET, tag);
  store<u32>(RET, <u32>changetype<usize>(bytes), 4);
  store<u32>(RET, <u32>bytes.byteLength, 8);
  return RET;
}

export function invoke(toolPtr: usize, toolLen: usize, argsPtr: usize, argsLen: usize): usize {
  if (String.UTF8.decodeUnsafe(toolPtr, toolLen, false) != "words") return respond(1, "unknown tool");
  // AssemblyScript has no JSON.parse: find the "text" member (see plugins/tables-as for a parser).
  const args = String.UTF8.decodeUnsafe(argsPtr, argsLen, false);
  const at = args.indexOf("\"text\"");
  if (at < 0) return respond(1, "`text` is required");
  const start = args.indexOf("\"", args.indexOf(":", at)) + 1;
  let words = 0;
  let inWord = false;
  for (let i = start; i < args.length; i++) {
    const c = args.charCodeAt(i);
    if (c == 34 && args.charCodeAt(i - 1) != 92) break;
    const space = c == 32 || c == 9;
    if (!space && !inWord) words++;
    inWord = !space;
  }
  log(1, "counted");
  return respond(0, "{\"words\": " + words.toString() + "}");
}

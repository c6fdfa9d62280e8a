// tables: a summary of a table — CSV, TSV or a Markdown table — column by column, so an agent can
// reason about the numbers in a document without reading every row. A Troupe tool plugin in
// AssemblyScript: a core module of the `troupe:plugin/tool-plugin@0.1.0` world, canonical ABI by hand.
//
//   asc tables.ts -o tables.wasm --runtime stub --use abort=tables/abort -O3
//
// Tool `summarize` takes {"table": "..."} and optionally {"delimiter": ","} (guessed otherwise);
// it returns the row count and, for each column, its type, empty cells, distinct values, and
// min/max/sum/mean for numbers or the most frequent values for text.

@external("troupe:plugin/host@0.1.0", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;

const DESCRIBE = `{"name": "tables", "version": "0.1.0", "capabilities": {}, "tools": [{"name": "summarize", "description": "Summarise a table (CSV, TSV, semicolon-separated or a Markdown table) column by column: row count; for each column its type, empty cells and distinct values, with min/max/sum/mean for numeric columns and the most frequent values for text columns.", "parameters": {"type": "object", "properties": {"table": {"type": "string", "description": "The table, header row first"}, "delimiter": {"type": "string", "description": "The cell separator; guessed when absent"}}, "required": ["table"], "additionalProperties": false}}]}`;

// The canonical ABI's return area: describe -> (ptr, len); invoke -> (tag, ptr, len).
const RET: usize = memory.data(12, 4);

export function cabi_realloc(ptr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  return ptr == 0 ? heap.alloc(newSize) : heap.realloc(ptr, newSize);
}

function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message, false);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

// Called by the runtime on a failed assertion or bounds check: say where, then trap.
function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  log(3, `abort: ${message !== null ? message : ""} at ${file !== null ? file : "?"}:${line}:${column}`);
  unreachable();
}

function respond(tag: u8, text: string): usize {
  const bytes = String.UTF8.encode(text, false);
  store<u8>(RET, tag);
  store<u32>(RET, <u32>changetype<usize>(bytes), 4);
  store<u32>(RET, <u32>bytes.byteLength, 8);
  return RET;
}

export function describe(): usize {
  const bytes = String.UTF8.encode(DESCRIBE, false);
  store<u32>(RET, <u32>changetype<usize>(bytes));
  store<u32>(RET, <u32>bytes.byteLength, 4);
  return RET;
}

// ---- minimal JSON: the string members of one object, and string escaping ----

class Field { constructor(public name: string, public value: string) {} }

function skipSpace(s: string, i: i32): i32 {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c != 32 && c != 9 && c != 10 && c != 13) break;
    i++;
  }
  return i;
}

// Reads the string starting at s[i] == '"'; returns the end index, the value in `out[0]`.
function readString(s: string, i: i32, out: string[]): i32 {
  let value = "";
  i++;
  let start = i;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c == 34) { out[0] = value + s.substring(start, i); return i + 1; }
    if (c == 92) {
      value += s.substring(start, i);
      const e = s.charCodeAt(i + 1);
      if (e == 110) value += "\n";
      else if (e == 116) value += "\t";
      else if (e == 114) value += "\r";
      else if (e == 98) value += "\b";
      else if (e == 102) value += "\f";
      else if (e == 117) { value += String.fromCharCode(<i32>parseInt(s.substring(i + 2, i + 6), 16)); i += 4; }
      else value += String.fromCharCode(e);
      i += 2;
      start = i;
      continue;
    }
    i++;
  }
  return -1;
}

function parseObject(s: string): Field[] | null {
  const fields: Field[] = [];
  let i = skipSpace(s, 0);
  if (i >= s.length || s.charCodeAt(i) != 123) return null;
  i = skipSpace(s, i + 1);
  if (i < s.length && s.charCodeAt(i) == 125) return fields;
  const out = [""];
  while (i < s.length) {
    if (s.charCodeAt(i) != 34) return null;
    i = readString(s, i, out);
    if (i < 0) return null;
    const name = out[0];
    i = skipSpace(s, i);
    if (i >= s.length || s.charCodeAt(i) != 58) return null;
    i = skipSpace(s, i + 1);
    if (i >= s.length || s.charCodeAt(i) != 34) return null;
    i = readString(s, i, out);
    if (i < 0) return null;
    fields.push(new Field(name, out[0]));
    i = skipSpace(s, i);
    if (i < s.length && s.charCodeAt(i) == 44) { i = skipSpace(s, i + 1); continue; }
    if (i < s.length && s.charCodeAt(i) == 125) return fields;
    return null;
  }
  return null;
}

function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\"";
    else if (c == 92) out += "\\\\";
    else if (c == 10) out += "\\n";
    else if (c == 13) out += "\\r";
    else if (c == 9) out += "\\t";
    else if (c < 32) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

function number(x: f64): string {
  if (x == Math.floor(x) && Math.abs(x) < 1e15) return (<i64>x).toString();
  return (Math.round(x * 1000) / 1000).toString();
}

// ---- the table ----

function splitRow(line: string, delimiter: string): string[] {
  const cells: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (quoted) {
      if (c == "\"" && i + 1 < line.length && line.charAt(i + 1) == "\"") { cell += "\""; i++; }
      else if (c == "\"") quoted = false;
      else cell += c;
    } else if (c == "\"" && cell.trim().length == 0) { quoted = true; cell = ""; }
    else if (c == delimiter) { cells.push(cell.trim()); cell = ""; }
    else cell += c;
  }
  cells.push(cell.trim());
  if (delimiter == "|") {
    // `| a | b |`: the outer pipes make empty first and last cells.
    if (cells.length > 0 && cells[0].length == 0) cells.shift();
    if (cells.length > 0 && cells[cells.length - 1].length == 0) cells.pop();
  }
  return cells;
}

function guessDelimiter(header: string): string {
  const candidates = ["|", "\t", ";", ","];
  let best = ",";
  let most = 0;
  for (let k = 0; k < candidates.length; k++) {
    const n = header.split(candidates[k]).length - 1;
    if (n > most) { most = n; best = candidates[k]; }
  }
  return best;
}

function isRule(cells: string[]): bool {
  // The `|---|:--:|` line under a Markdown header.
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    for (let j = 0; j < c.length; j++) {
      const ch = c.charAt(j);
      if (ch != "-" && ch != ":" && ch != " ") return false;
    }
  }
  return cells.length > 0;
}

// A number the way tables write them: 1,234.50 / $1,200 / 12% / (300) for negatives.
function parseNumber(cell: string): f64 {
  let s = cell.trim();
  let negative = false;
  if (s.startsWith("(") && s.endsWith(")")) { negative = true; s = s.substring(1, s.length - 1); }
  let digits = "";
  let seen = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charAt(i);
    const code = s.charCodeAt(i);
    if (code >= 48 && code <= 57) { digits += c; seen = true; }
    else if (c == "." || (c == "-" && digits.length == 0)) digits += c;
    else if (c == "," || c == " " || c == "$" || c == "€" || c == "£" || c == "%") continue;
    else return NaN;
  }
  if (!seen) return NaN;
  const x = parseFloat(digits);
  return negative ? -x : x;
}

function summarize(table: string, delimiter: string): string {
  const lines = table.split("\n").map<string>((l: string) => l.trim()).filter((l: string) => l.length > 0);
  if (lines.length == 0) return "";
  if (delimiter.length == 0) delimiter = guessDelimiter(lines[0]);
  const header = splitRow(lines[0], delimiter);
  const rows: string[][] = [];
  for (let i = 1; i < lines.length; i++) {
    const cells = splitRow(lines[i], delimiter);
    if (delimiter == "|" && isRule(cells)) continue;
    rows.push(cells);
  }
  let out = "{\"delimiter\": " + quote(delimiter) + ", \"rows\": " + rows.length.toString() + ", \"columns\": [";
  let ragged = 0;
  for (let r = 0; r < rows.length; r++) if (rows[r].length != header.length) ragged++;
  for (let c = 0; c < header.length; c++) {
    let empty = 0;
    let numeric = 0;
    let min = Infinity, max = -Infinity, sum = 0.0;
    const counts = new Map<string, i32>();
    const order: string[] = [];
    for (let r = 0; r < rows.length; r++) {
      const cell = c < rows[r].length ? rows[r][c] : "";
      if (cell.length == 0) { empty++; continue; }
      if (!counts.has(cell)) { counts.set(cell, 0); order.push(cell); }
      counts.set(cell, counts.get(cell) + 1);
      const x = parseNumber(cell);
      if (!isNaN(x)) { numeric++; sum += x; if (x < min) min = x; if (x > max) max = x; }
    }
    const filled = rows.length - empty;
    if (c > 0) out += ", ";
    out += "{\"name\": " + quote(header[c]) + ", \"empty\": " + empty.toString() + ", \"distinct\": " + order.length.toString();
    if (filled > 0 && numeric == filled) {
      out += ", \"type\": \"number\", \"min\": " + number(min) + ", \"max\": " + number(max) + ", \"sum\": " + number(sum) + ", \"mean\": " + number(sum / numeric);
    } else {
      out += ", \"type\": \"text\", \"top\": [";
      // The three most frequent values, first seen first among equals.
      const taken = new Set<string>();
      for (let k = 0; k < 3 && k < order.length; k++) {
        let best = "";
        let bestCount = 0;
        for (let j = 0; j < order.length; j++) {
          const v = order[j];
          if (!taken.has(v) && counts.get(v) > bestCount) { best = v; bestCount = counts.get(v); }
        }
        taken.add(best);
        if (k > 0) out += ", ";
        out += "{\"value\": " + quote(best) + ", \"count\": " + bestCount.toString() + "}";
      }
      out += "]";
    }
    out += "}";
  }
  out += "], \"ragged_rows\": " + ragged.toString() + "}";
  return out;
}

export function invoke(toolPtr: usize, toolLen: usize, argsPtr: usize, argsLen: usize): usize {
  const tool = String.UTF8.decodeUnsafe(toolPtr, toolLen, false);
  if (tool != "summarize") return respond(1, "unknown tool `" + tool + "`; this plugin has `summarize`");
  const fields = parseObject(String.UTF8.decodeUnsafe(argsPtr, argsLen, false));
  if (fields == null) return respond(1, "arguments must be a JSON object of strings: {\"table\": \"...\", \"delimiter\": \",\"}");
  let table: string | null = null;
  let delimiter = "";
  for (let i = 0; i < fields!.length; i++) {
    const f = fields![i];
    if (f.name == "table") table = f.value;
    else if (f.name == "delimiter") delimiter = f.value;
    else return respond(1, "unknown argument `" + f.name + "`; expected `table` and optionally `delimiter`");
  }
  if (table == null) return respond(1, "`table` is required: the table's text, header row first");
  if (delimiter.length > 1) return respond(1, "`delimiter` must be one character");
  log(1, "summarising " + table!.length.toString() + " characters");
  const summary = summarize(table!, delimiter);
  if (summary.length == 0) return respond(1, "the table is empty");
  return respond(0, summary);
}

// outline: the headings and numbered clauses of a document with their line numbers, as a Troupe
// tool plugin in C++ (libc++ for wasm32, no exceptions, no RTTI). An agent navigating a long
// contract asks for its outline first, then reads the clauses it needs.
//
// Implements the `troupe:plugin/tool-plugin@0.1.0` world by hand with the canonical ABI (strings
// are pointer + length; results are returned through a small area of linear memory):
//
//   clang++-14 --target=wasm32-wasi -O2 -mexec-model=reactor -fno-exceptions -fno-rtti \
//     -o outline.wasm outline.cpp -lc++ -lc++abi
//
// Tool `outline` takes {"text": "..."} or {"document": "<id>"} (needs `grants.documents`) and
// returns {"lines", "headings": [{"line", "level", "title"}], "clauses": [{"line", "number",
// "title"}]}: Markdown headings (`#` to `######`), and lines that start with a clause number
// (`4.`, `4.2`, `12.3.1`, `Section 7`, `Article IV`).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#define EXPORT(name) __attribute__((export_name(name)))
#define HOST(name) __attribute__((import_module("troupe:plugin/host@0.1.0"), import_name(name)))

extern "C" {
HOST("log") void host_log(int32_t level, const char *ptr, size_t len);
HOST("read-document") void host_read_document(const char *ptr, size_t len, uint32_t *ret);
}

namespace {

const char DESCRIBE[] =
    R"J({"name": "outline", "version": "0.1.0", "capabilities": {"documents": true}, "tools": [{"name": "outline",)J"
    R"J( "description": "The outline of a document: its headings and numbered clauses (1., 4.2, 12.3.1, Section 7, Article IV), each with its line number and title, so that you can read the clauses you need instead of the whole text. Give `text`, or `document` (the id of one of the run's documents).",)J"
    R"J( "parameters": {"type": "object", "properties": {)J"
    R"J("text": {"type": "string", "description": "The text to outline"},)J"
    R"J( "document": {"type": "string", "description": "The id of a document of the run, instead of text"},)J"
    R"J( "max_items": {"type": "integer", "minimum": 1, "maximum": 2000, "description": "At most this many headings and clauses each (default 500)"}},)J"
    R"J( "additionalProperties": false}}]})J";

// The canonical ABI's return area: describe -> (ptr, len); invoke -> (tag, ptr, len).
uint32_t RET[3];

void log(int32_t level, std::string_view message) { host_log(level, message.data(), message.size()); }

uint32_t *result(bool ok, std::string text) {
  // The host copies the result out before the instance is dropped: leaking it here is fine.
  auto *kept = new std::string(std::move(text));
  reinterpret_cast<uint8_t *>(RET)[0] = ok ? 0 : 1;
  RET[1] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(kept->data()));
  RET[2] = static_cast<uint32_t>(kept->size());
  return RET;
}

// Where the value of member `key` starts in a JSON object (after the colon and spaces), or npos.
size_t value_at(std::string_view json, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  for (size_t at = json.find(quoted); at != std::string_view::npos; at = json.find(quoted, at + 1)) {
    size_t j = at + quoted.size();
    while (j < json.size() && (json[j] == ' ' || json[j] == '\n' || json[j] == '\t' || json[j] == '\r')) j++;
    if (j < json.size() && json[j] == ':') {
      j++;
      while (j < json.size() && (json[j] == ' ' || json[j] == '\n' || json[j] == '\t' || json[j] == '\r')) j++;
      return j;
    }
  }
  return std::string_view::npos;
}

void put_utf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t hex4(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t k = at; k < at + 4 && k < s.size(); k++) {
    char c = s[k];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
  }
  return v;
}

// The string member `key`, unescaped; false when absent or not a string.
bool json_string(std::string_view json, std::string_view key, std::string &out) {
  size_t j = value_at(json, key);
  if (j == std::string_view::npos || j >= json.size() || json[j] != '"') return false;
  out.clear();
  for (j++; j < json.size(); j++) {
    char c = json[j];
    if (c == '"') return true;
    if (c != '\\' || j + 1 >= json.size()) {
      out += c;
      continue;
    }
    char e = json[++j];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        uint32_t cp = hex4(json, j + 1);
        j += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && j + 6 < json.size() && json[j + 1] == '\\' && json[j + 2] == 'u') {
          uint32_t low = hex4(json, j + 3);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          j += 6;
        }
        put_utf8(out, cp);
        break;
      }
      default: out += e;
    }
  }
  return false;
}

// The integer member `key`, or `fallback` when absent.
long json_int(std::string_view json, std::string_view key, long fallback) {
  size_t j = value_at(json, key);
  if (j == std::string_view::npos) return fallback;
  return std::strtol(std::string(json.substr(j, 24)).c_str(), nullptr, 10);
}

void escape(std::string &out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          static const char digits[] = "0123456789abcdef";
          out += "\\u00";
          out += digits[c >> 4];
          out += digits[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A title as an outline shows it: trimmed, separators dropped, at most 120 bytes (whole UTF-8
// characters).
std::string title_of(std::string_view rest) {
  rest = trim(rest);
  while (!rest.empty() && (rest.front() == '.' || rest.front() == ')' || rest.front() == ':' || rest.front() == '-'))
    rest = trim(rest.substr(1));
  if (rest.size() > 120) {
    size_t cut = 120;
    while (cut > 0 && (static_cast<unsigned char>(rest[cut]) & 0xC0) == 0x80) cut--;
    return std::string(rest.substr(0, cut)) + "…";
  }
  return std::string(rest);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_roman(std::string_view s) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s)
    if (std::strchr("IVXLC", c) == nullptr) return false;
  return true;
}

// A clause number at the start of `line` (`4.`, `4.2`, `12.3.1`, `(a)` is not one), with the
// rest of the line; false when the line does not start with one.
bool clause_number(std::string_view line, std::string &number, std::string_view &rest) {
  for (std::string_view word : {std::string_view("Section "), std::string_view("Article "),
                                std::string_view("SECTION "), std::string_view("ARTICLE "),
                                std::string_view("Clause "), std::string_view("CLAUSE ")}) {
    if (line.substr(0, word.size()) == word) {
      std::string_view after = line.substr(word.size());
      size_t n = 0;
      while (n < after.size() && (is_digit(after[n]) || after[n] == '.' || std::strchr("IVXLC", after[n]))) n++;
      std::string_view num = after.substr(0, n);
      while (!num.empty() && num.back() == '.') num.remove_suffix(1);
      if (num.empty() || !(is_digit(num[0]) || is_roman(num))) return false;
      number = std::string(word) + std::string(num);
      rest = after.substr(n);
      return true;
    }
  }
  size_t n = 0;
  while (n < line.size() && (is_digit(line[n]) || (line[n] == '.' && n > 0 && is_digit(line[n - 1])))) n++;
  if (n == 0 || !is_digit(line[0])) return false;
  std::string_view num = line.substr(0, n);
  bool dotted = num.find('.') != std::string_view::npos;
  // "2025 was…" or "30 days" is not a clause: a number alone needs a dot after it ("12. Term").
  while (!num.empty() && num.back() == '.') num.remove_suffix(1);
  if (num.size() > 12 || n >= line.size() || (line[n] != ' ' && line[n] != '\t')) return false;
  if (!dotted) return false;
  std::string_view after = trim(line.substr(n));
  // A title starts with a letter or a quote, not with a figure ("1.5% per month").
  if (after.empty() || is_digit(after[0]) || after[0] == '%') return false;
  number = std::string(num);
  rest = after;
  return true;
}

std::string outline(std::string_view text, long max_items) {
  std::string headings, clauses;
  long n_headings = 0, n_clauses = 0, lines = 0;
  bool in_fence = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(start, end - start);
    lines++;
    std::string_view line = trim(raw);
    if (line.substr(0, 3) == "```") in_fence = !in_fence;
    if (!in_fence && !line.empty()) {
      size_t level = 0;
      while (level < line.size() && line[level] == '#') level++;
      std::string number;
      std::string_view rest;
      if (level >= 1 && level <= 6 && level < line.size() && line[level] == ' ') {
        std::string_view heading = trim(line.substr(level));
        // A numbered heading ("## 4. Service levels") is a clause too.
        if (clause_number(heading, number, rest) && n_clauses < max_items) {
          if (n_clauses++) clauses += ", ";
          clauses += "{\"line\": " + std::to_string(lines) + ", \"number\": ";
          escape(clauses, number);
          clauses += ", \"title\": ";
          escape(clauses, title_of(rest));
          clauses += "}";
        }
        if (n_headings < max_items) {
          if (n_headings++) headings += ", ";
          headings += "{\"line\": " + std::to_string(lines) + ", \"level\": " + std::to_string(level) + ", \"title\": ";
          escape(headings, title_of(heading));
          headings += "}";
        }
      } else if (clause_number(line, number, rest) && n_clauses < max_items) {
        if (n_clauses++) clauses += ", ";
        clauses += "{\"line\": " + std::to_string(lines) + ", \"number\": ";
        escape(clauses, number);
        clauses += ", \"title\": ";
        escape(clauses, title_of(rest));
        clauses += "}";
      }
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return "{\"lines\": " + std::to_string(lines) + ", \"headings\": [" + headings + "], \"clauses\": [" +
         clauses + "]}";
}

}  // namespace

extern "C" {

EXPORT("cabi_realloc")
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
  (void)old_size;
  (void)align;  // malloc's alignment (16) covers every canonical ABI alignment
  return std::realloc(ptr, new_size);
}

EXPORT("describe")
uint32_t *describe() {
  RET[0] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(DESCRIBE));
  RET[1] = static_cast<uint32_t>(sizeof(DESCRIBE) - 1);
  return RET;
}

EXPORT("invoke")
uint32_t *invoke(const char *tool_ptr, size_t tool_len, const char *args_ptr, size_t args_len) {
  std::string_view tool(tool_ptr, tool_len), args(args_ptr, args_len);
  if (tool != "outline") return result(false, "unknown tool `" + std::string(tool) + "`; this plugin has `outline`");
  long max_items = json_int(args, "max_items", 500);
  if (max_items < 1 || max_items > 2000) return result(false, "`max_items` must be between 1 and 2000");
  std::string text, id;
  if (!json_string(args, "text", text)) {
    if (!json_string(args, "document", id)) return result(false, "give `text` (a string) or `document` (a document id)");
    uint32_t ret[3];
    host_read_document(id.data(), id.size(), ret);
    std::string_view body(reinterpret_cast<const char *>(static_cast<uintptr_t>(ret[1])), ret[2]);
    if ((ret[0] & 0xff) != 0) {
      log(3, body);
      return result(false, "cannot read document `" + id + "`: " + std::string(body));
    }
    if (!json_string(body, "text", text)) return result(false, "document `" + id + "` came without its text");
  }
  log(1, "outlining");
  return result(true, outline(text, max_items));
}

}

// {{name}}: a Troupe tool plugin in C++ (a core module of `troupe:plugin/tool-plugin@0.1.0`),
// with libc++ for wasm32; built without exceptions or RTTI (the toolchain here has no unwinder).
// Build: plugins/build.sh <this directory>   Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
// The canonical ABI by hand: strings are (pointer, length); results go through a return area.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#define EXPORT(name) __attribute__((export_name(name)))
#define HOST(name) __attribute__((import_module("troupe:plugin/host@0.1.0"), import_name(name)))

// host.log(level, message): 0 debug, 1 info, 2 warn, 3 error.
extern "C" HOST("log") void host_log(int32_t level, const char *ptr, size_t len);

namespace {

const std::string_view DESCRIBE =
    R"J({"name": "{{name}}", "version": "0.1.0", "capabilities": {}, "tools": [{"name": "words", )J"
    R"J("description": "Counts the words of a text", "parameters": {"type": "object", )J"
    R"J("properties": {"text": {"type": "string"}}, "required": ["text"]}}]})J";

uint32_t RET[3];

uint32_t *result(bool ok, std::string text) {
  auto *kept = new std::string(std::move(text));  // the host copies it out
  reinterpret_cast<uint8_t *>(RET)[0] = ok ? 0 : 1;
  RET[1] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(kept->data()));
  RET[2] = static_cast<uint32_t>(kept->size());
  return RET;
}

}  // namespace

extern "C" {

EXPORT("cabi_realloc")
void *cabi_realloc(void *ptr, size_t, size_t, size_t new_size) { return std::realloc(ptr, new_size); }

EXPORT("describe")
uint32_t *describe() {
  RET[0] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(DESCRIBE.data()));
  RET[1] = static_cast<uint32_t>(DESCRIBE.size());
  return RET;
}

EXPORT("invoke")
uint32_t *invoke(const char *tool, size_t tool_len, const char *args, size_t args_len) {
  if (std::string_view(tool, tool_len) != "words") return result(false, "unknown tool");
  // Find the "text" member (a real plugin would use a JSON parser such as nlohmann/json).
  std::string_view json(args, args_len);
  size_t at = json.find("\"text\"");
  if (at == std::string_view::npos) return result(false, "`text` is required");
  at = json.find('"', at + 6);
  long words = 0;
  bool in_word = false;
  for (size_t i = at + 1; i < json.size() && json[i] != '"'; i++) {
    if (json[i] == '\\') {
      i++;
      in_word = false;
      continue;
    }
    bool space = json[i] == ' ' || json[i] == '\t';
    if (!space && !in_word) words++;
    in_word = !space;
  }
  host_log(1, "counted", 7);
  return result(true, "{\"words\": " + std::to_string(words) + "}");
}

}

// {{name}}: a Troupe tool plugin in C (a core module of `troupe:plugin/tool-plugin@0.1.0`).
// Build: plugins/build.sh <this directory>   Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
// The canonical ABI by hand: strings are (pointer, length); results go through a return area.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define HOST(name) __attribute__((import_module("troupe:plugin/host@0.1.0"), import_name(name)))

// host.log(level, message): 0 debug, 1 info, 2 warn, 3 error.
HOST("log") extern void host_log(int32_t level, const char *ptr, size_t len);

static const char DESCRIBE[] =
    "{\"name\": \"{{name}}\", \"version\": \"0.1.0\", \"capabilities\": {}, \"tools\": [{\"name\": \"words\", "
    "\"description\": \"Counts the words of a text\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"text\": {\"type\": \"string\"}}, \"required\": [\"text\"]}}]}";

static uint32_t RET[3];

EXPORT("cabi_realloc")
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
  (void)old_size;
  (void)align;
  return realloc(ptr, new_size);
}

EXPORT("describe")
uint32_t *describe(void) {
  RET[0] = (uint32_t)(uintptr_t)DESCRIBE;
  RET[1] = (uint32_t)strlen(DESCRIBE);
  return RET;
}

static uint32_t *result(int ok, char *text) {
  ((uint8_t *)RET)[0] = ok ? 0 : 1;
  RET[1] = (uint32_t)(uintptr_t)text;
  RET[2] = (uint32_t)strlen(text);
  return RET;
}

EXPORT("invoke")
uint32_t *invoke(const char *tool, size_t tool_len, const char *args, size_t args_len) {
  if (tool_len != 5 || strncmp(tool, "words", 5) != 0) return result(0, strdup("unknown tool"));
  // Find the "text" member (a real plugin would use a JSON parser such as cJSON).
  const char *key = "\"text\"";
  const char *p = NULL;
  for (size_t i = 0; i + 6 <= args_len; i++)
    if (memcmp(args + i, key, 6) == 0) { p = args + i + 6; break; }
  if (!p) return result(0, strdup("`text` is required"));
  while (p < args + args_len && *p != '"') p++;
  long words = 0;
  int in_word = 0;
  for (p++; p < args + args_len && *p != '"'; p++) {
    if (*p == '\\') { p++; in_word = 0; continue; }
    int space = *p == ' ' || *p == '\t';
    if (!space && !in_word) words++;
    in_word = !space;
  }
  host_log(1, "counted", 7);
  char *out = malloc(64);
  if (!out) return result(0, strdup("out of memory"));
  snprintf(out, 64, "{\"words\": %ld}", words);
  return result(1, out);
}

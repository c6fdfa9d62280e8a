// textstats: readability statistics of a text, as a Troupe tool plugin in plain C.
//
// Implements the `troupe:plugin/tool-plugin@0.1.0` world by hand with the canonical ABI (strings
// are pointer + length; results are returned through a small area of linear memory), so it builds
// with nothing but clang and wasi-libc:
//
//   clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -o textstats.wasm textstats.c
//
// Tool `stats` takes {"text": "..."} and returns words, sentences, syllables, characters,
// average sentence length and the Flesch reading-ease score.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define HOST(name) __attribute__((import_module("troupe:plugin/host@0.1.0"), import_name(name)))

HOST("log") extern void host_log(int32_t level, const char *ptr, size_t len);

static const char DESCRIBE[] =
    "{\"name\": \"textstats\", \"version\": \"0.1.0\", \"capabilities\": {}, \"tools\": [{\"name\": \"stats\", "
    "\"description\": \"Readability statistics of a text: words, sentences, syllables, "
    "characters, average words per sentence and the Flesch reading-ease score (0-100, higher "
    "is easier; 60-70 is plain English).\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"text\": {\"type\": \"string\", \"description\": \"The text to "
    "measure\"}}, \"required\": [\"text\"], \"additionalProperties\": false}}]}";

// The canonical ABI's return area: describe -> (ptr, len); invoke -> (tag, ptr, len).
static uint32_t RET[3];

EXPORT("cabi_realloc")
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
  (void)old_size;
  (void)align;  // malloc's alignment (16) covers every canonical ABI alignment
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

static uint32_t *error(const char *message) {
  char *copy = strdup(message);
  return result(0, copy ? copy : "out of memory");
}

// The value of the string member `key` of a JSON object, unescaped (\uXXXX outside ASCII becomes
// '?': it only matters as a letter or not). NULL when absent or not a string.
static char *json_string(const char *json, size_t len, const char *key) {
  size_t klen = strlen(key);
  for (size_t i = 0; i + klen + 2 < len; i++) {
    if (json[i] != '"' || strncmp(json + i + 1, key, klen) != 0 || json[i + 1 + klen] != '"')
      continue;
    size_t j = i + klen + 2;
    while (j < len && (json[j] == ' ' || json[j] == ':' || json[j] == '\n' || json[j] == '\t')) j++;
    if (j >= len || json[j] != '"') return NULL;
    char *out = malloc(len - j);
    if (!out) return NULL;
    size_t n = 0;
    for (j++; j < len && json[j] != '"'; j++) {
      char c = json[j];
      if (c == '\\' && j + 1 < len) {
        char e = json[++j];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case 'u': c = '?'; j += 4; break;
          default: c = e;
        }
      }
      out[n++] = c;
    }
    out[n] = 0;
    return out;
  }
  return NULL;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_vowel(char c) { return strchr("aeiouyAEIOUY", c) != NULL; }

// Vowel groups, a silent final 'e' removed, at least one per word.
static int syllables(const char *w, size_t n) {
  int count = 0, prev = 0;
  for (size_t i = 0; i < n; i++) {
    int v = is_vowel(w[i]);
    if (v && !prev) count++;
    prev = v;
  }
  if (n > 2 && (w[n - 1] == 'e' || w[n - 1] == 'E') && !is_vowel(w[n - 2]) && count > 1) count--;
  return count > 0 ? count : 1;
}

EXPORT("invoke")
uint32_t *invoke(const char *tool, size_t tool_len, const char *args, size_t args_len) {
  if (tool_len != 5 || strncmp(tool, "stats", 5) != 0) return error("unknown tool; this plugin has `stats`");
  char *text = json_string(args, args_len, "text");
  if (!text) return error("`text` must be a string");
  host_log(1, "measuring", 9);

  long words = 0, sentences = 0, syll = 0, letters = 0, chars = 0;
  size_t len = strlen(text);
  for (size_t i = 0; i < len;) {
    chars++;
    if (is_letter(text[i])) {
      size_t start = i;
      while (i < len && (is_letter(text[i]) || text[i] == '\'' || text[i] == '-')) i++;
      words++;
      letters += (long)(i - start);
      syll += syllables(text + start, i - start);
      chars += (long)(i - start) - 1;
      continue;
    }
    if (text[i] == '.' || text[i] == '!' || text[i] == '?') {
      while (i + 1 < len && (text[i + 1] == '.' || text[i + 1] == '!' || text[i + 1] == '?')) i++;
      sentences++;
    }
    i++;
  }
  if (words > 0 && sentences == 0) sentences = 1;
  double wps = sentences ? (double)words / (double)sentences : 0.0;
  double spw = words ? (double)syll / (double)words : 0.0;
  double flesch = words ? 206.835 - 1.015 * wps - 84.6 * spw : 0.0;
  char *out = malloc(256);
  if (!out) return error("out of memory");
  snprintf(out, 256,
           "{\"words\": %ld, \"sentences\": %ld, \"syllables\": %ld, \"letters\": %ld, "
           "\"characters\": %ld, \"words_per_sentence\": %.2f, \"flesch_reading_ease\": %.1f}",
           words, sentences, syll, letters, chars, wps, flesch);
  free(text);
  return result(1, out);
}

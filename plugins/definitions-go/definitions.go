// definitions: the defined terms of a contract or licence, where each is defined, how often it
// is used, and which are never used or used before their definition — as a Troupe tool plugin
// in Go (a wasip1 reactor: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared).
//
// Implements the `troupe:plugin/tool-plugin@0.1.0` world by hand with the canonical ABI:
// strings are pointer + length, results go through a return area, and the host passes strings
// in through `cabi_realloc`. Troupe runs the module as a core module with WASI preview 1 and
// calls `_initialize` (the Go runtime's start) once per fresh instance.
//
// Tool `terms` takes {"text": "..."} or {"document": "<id>"} (needs `grants.documents`) and
// returns {"lines", "terms": [{"term", "line", "definition", "uses", "first_use",
// "used_before_definition", "also_defined_at"}], "unused": [...]}. A term is defined by
// `"Term" means …` (or shall mean, has the meaning, refers to, includes) or by a parenthesised
// `(the "Term")`, with straight or curly quotes.
package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strings"
	"unsafe"
)

//go:wasmimport troupe:plugin/host@0.1.0 log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport troupe:plugin/host@0.1.0 read-document
func hostReadDocument(ptr unsafe.Pointer, n uint32, ret unsafe.Pointer)

const describeJSON = `{"name": "definitions", "version": "0.1.0", "capabilities": {"documents": true},
 "tools": [{"name": "terms",
  "description": "The defined terms of a contract or licence (\"X\" means …, (the \"X\")): where each is defined, how many times it is used, where it is first used, and the terms never used or used before their definition. Give ` + "`text`" + `, or ` + "`document`" + ` (the id of one of the run's documents).",
  "parameters": {"type": "object", "properties": {
   "text": {"type": "string", "description": "The text to read"},
   "document": {"type": "string", "description": "The id of a document of the run, instead of text"},
   "max_terms": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many terms (default 200)"}},
  "additionalProperties": false}}]}`

// The canonical ABI's return area: describe -> (ptr, len); invoke -> (case, ptr, len).
var ret [3]uint32

// Everything handed to or received from the host stays referenced until the instance is
// dropped (after one call), so the garbage collector never frees memory the host reads.
var pinned [][]byte

func pin(s string) unsafe.Pointer {
	b := []byte(s)
	if len(b) == 0 {
		b = []byte{0}
	}
	pinned = append(pinned, b)
	return unsafe.Pointer(unsafe.SliceData(b))
}

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	b := make([]byte, newSize+1)
	if old != nil && oldSize > 0 {
		copy(b, unsafe.Slice((*byte)(old), oldSize))
	}
	pinned = append(pinned, b)
	return unsafe.Pointer(unsafe.SliceData(b))
}

//go:wasmexport describe
func describe() unsafe.Pointer {
	ret[0] = uint32(uintptr(pin(describeJSON)))
	ret[1] = uint32(len(describeJSON))
	return unsafe.Pointer(&ret[0])
}

//go:wasmexport invoke
func invoke(toolPtr unsafe.Pointer, toolLen uint32, argsPtr unsafe.Pointer, argsLen uint32) unsafe.Pointer {
	tool := unsafe.String((*byte)(toolPtr), toolLen)
	args := unsafe.Slice((*byte)(argsPtr), argsLen)
	out, err := run(tool, args)
	var text string
	if err != nil {
		*(*uint8)(unsafe.Pointer(&ret[0])) = 1
		text = err.Error()
	} else {
		*(*uint8)(unsafe.Pointer(&ret[0])) = 0
		text = out
	}
	ret[1] = uint32(uintptr(pin(text)))
	ret[2] = uint32(len(text))
	return unsafe.Pointer(&ret[0])
}

func log(level int32, message string) {
	hostLog(level, pin(message), uint32(len(message)))
}

// readDocument asks the host for a document of the run; its answer is JSON with the text.
func readDocument(id string) (string, error) {
	var area [3]uint32
	hostReadDocument(pin(id), uint32(len(id)), unsafe.Pointer(&area[0]))
	answer := unsafe.String((*byte)(unsafe.Pointer(uintptr(area[1]))), area[2])
	if *(*uint8)(unsafe.Pointer(&area[0])) != 0 {
		return "", errors.New(answer)
	}
	var doc struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(answer), &doc); err != nil {
		return "", errors.New("the host's document was not the expected JSON: " + err.Error())
	}
	return doc.Text, nil
}

type arguments struct {
	Text     *string `json:"text"`
	Document *string `json:"document"`
	MaxTerms *int    `json:"max_terms"`
}

type term struct {
	Term                 string `json:"term"`
	Line                 int    `json:"line"`
	Definition           string `json:"definition"`
	Uses                 int    `json:"uses"`
	FirstUse             *int   `json:"first_use"`
	UsedBeforeDefinition bool   `json:"used_before_definition"`
	AlsoDefinedAt        []int  `json:"also_defined_at"`
}

type answer struct {
	Lines  int      `json:"lines"`
	Terms  []term   `json:"terms"`
	Unused []string `json:"unused"`
	// Set when max_terms cut the list.
	Truncated bool `json:"truncated,omitempty"`
}

func run(tool string, raw []byte) (string, error) {
	if tool != "terms" {
		return "", errors.New("unknown tool `" + tool + "`; this plugin has `terms`")
	}
	var args arguments
	if err := json.Unmarshal(raw, &args); err != nil {
		return "", errors.New("the arguments are not the expected JSON: " + err.Error())
	}
	var text string
	switch {
	case args.Text != nil && args.Document != nil:
		return "", errors.New("give `text` or `document`, not both")
	case args.Text != nil:
		text = *args.Text
	case args.Document != nil:
		var err error
		if text, err = readDocument(*args.Document); err != nil {
			return "", err
		}
	default:
		return "", errors.New("give `text`, or `document` (a document id)")
	}
	max := 200
	if args.MaxTerms != nil {
		max = *args.MaxTerms
	}
	found := definitions(text, max)
	out, err := json.Marshal(found)
	if err != nil {
		return "", err
	}
	log(1, "found defined terms")
	return string(out), nil
}

const quoted = `["“]([A-Z][^"“”\n]{0,60}?)["”]`

var (
	// "Term" means / shall mean / has the meaning / refers to / includes
	// ("You" (or "Your") shall mean: the parenthesis is a second term, found by parenRe;
	// "Source" form shall mean: one lowercase word may come between)
	meansRe = regexp.MustCompile(quoted + `(?:\s+\(or\s+["“][^"“”\n]{1,60}["”]\))?(?:\s+[a-z]+)??\s+(?:shall\s+)?(?:means?|has\s+the\s+meaning|refers?\s+to|includes?)\b`)
	// (the "Term"), ("Term"), (each a "Term"), (hereinafter "Term"), (collectively, the "Term")
	parenRe = regexp.MustCompile(`\((?:(?:the|each|a|an|or|collectively|hereinafter|together|referred|to|as),?\s+)*` + quoted + `\)`)
)

func definitions(text string, max int) answer {
	lines := strings.Split(text, "\n")
	if strings.HasSuffix(text, "\n") {
		lines = lines[:len(lines)-1]
	}
	byName := map[string]*term{}
	var order []*term
	// Where each definition's quoted term sits, to leave it out of the uses.
	defined := map[int][][2]int{}
	for i, line := range lines {
		for _, re := range []*regexp.Regexp{meansRe, parenRe} {
			for _, m := range re.FindAllStringSubmatchIndex(line, -1) {
				name := strings.TrimSpace(line[m[2]:m[3]])
				defined[i] = append(defined[i], [2]int{m[2], m[3]})
				if t, ok := byName[name]; ok {
					if t.Line != i+1 && !contains(t.AlsoDefinedAt, i+1) {
						t.AlsoDefinedAt = append(t.AlsoDefinedAt, i+1)
					}
					continue
				}
				t := &term{Term: name, Line: i + 1, Definition: clip(strings.TrimSpace(line), 200), AlsoDefinedAt: []int{}}
				byName[name] = t
				order = append(order, t)
			}
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].Line < order[b].Line })
	for _, t := range order {
		re := regexp.MustCompile(`\b` + regexp.QuoteMeta(t.Term) + `\b`)
		for i, line := range lines {
			for _, m := range re.FindAllStringIndex(line, -1) {
				if inside(defined[i], m) {
					continue
				}
				t.Uses++
				if t.FirstUse == nil {
					n := i + 1
					t.FirstUse = &n
					t.UsedBeforeDefinition = n < t.Line
				}
			}
		}
	}
	out := answer{Lines: len(lines), Terms: []term{}, Unused: []string{}}
	for _, t := range order {
		if len(out.Terms) == max {
			out.Truncated = true
			break
		}
		out.Terms = append(out.Terms, *t)
		if t.Uses == 0 {
			out.Unused = append(out.Unused, t.Term)
		}
	}
	return out
}

func inside(spans [][2]int, m []int) bool {
	for _, s := range spans {
		if m[0] >= s[0] && m[1] <= s[1] {
			return true
		}
	}
	return false
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func main() {}

// {{name}}: a Troupe tool plugin in Go (a wasip1 reactor implementing `troupe:plugin/tool-plugin@0.1.0`).
// Build: plugins/build.sh <this directory>   Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
// The canonical ABI by hand: strings are (pointer, length); results go through a return area;
// the host passes strings in through `cabi_realloc`. Troupe calls `_initialize` (the Go
// runtime's start) once per fresh instance, before anything else.
package main

import (
	"encoding/json"
	"errors"
	"strings"
	"unsafe"
)

// host.log(level, message): 0 debug, 1 info, 2 warn, 3 error.
//
//go:wasmimport troupe:plugin/host@0.1.0 log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

const describeJSON = `{"name": "{{name}}", "version": "0.1.0", "capabilities": {}, "tools": [{"name": "words",
 "description": "Counts the words of a text",
 "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}`

// The return area: describe -> (ptr, len); invoke -> (case, ptr, len).
var ret [3]uint32

// What the host reads or wrote stays referenced until the instance is dropped (after one call).
var pinned [][]byte

func pin(s string) unsafe.Pointer {
	b := append([]byte(s), 0)
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
	out, err := run(unsafe.String((*byte)(toolPtr), toolLen), unsafe.Slice((*byte)(argsPtr), argsLen))
	text := out
	*(*uint8)(unsafe.Pointer(&ret[0])) = 0
	if err != nil {
		*(*uint8)(unsafe.Pointer(&ret[0])) = 1
		text = err.Error()
	}
	ret[1] = uint32(uintptr(pin(text)))
	ret[2] = uint32(len(text))
	return unsafe.Pointer(&ret[0])
}

func run(tool string, raw []byte) (string, error) {
	if tool != "words" {
		return "", errors.New("unknown tool `" + tool + "`")
	}
	var args struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &args); err != nil || args.Text == nil {
		return "", errors.New("`text` is required")
	}
	msg := "counted"
	hostLog(1, pin(msg), uint32(len(msg)))
	out, _ := json.Marshal(map[string]int{"words": len(strings.Fields(*args.Text))})
	return string(out), nil
}

func main() {}

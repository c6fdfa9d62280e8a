"""{{name}}: a Troupe tool plugin in Python, made a component of `troupe:plugin/tool-plugin@0.1.0`
by componentize-py. Build: plugins/build.sh <this directory>
Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
Host functions are in `wit_world.imports.host`; one that fails raises `Err`."""
import json

import wit_world
from wit_world.imports import host
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return json.dumps({
            "name": "{{name}}",
            "version": "0.1.0",
            # The grants it needs, e.g. {"documents": True, "kv": True, "http": ["api.example.org"]}.
            "capabilities": {},
            "tools": [{
                "name": "words",
                "description": "Counts the words of a text",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            }],
        })

    def invoke(self, tool: str, args: str) -> str:
        """Return the result; raise Err(message) for the tool's error."""
        if tool != "words":
            raise Err(f"unknown tool `{tool}`")
        text = json.loads(args).get("text")
        if not isinstance(text, str):
            raise Err("`text` is required")
        host.log(host.Level.INFO, "counted")
        return json.dumps({"words": len(text.split())})

// {{name}}: a Troupe tool plugin in JavaScript, made a component of `troupe:plugin/tool-plugin@0.1.0`
// by componentize-qjs (QuickJS). Build: plugins/build.sh <this directory>
// Try: troupe plugin call {{name}}.wasm words '{"text": "a b c"}'
// Host functions are imported from the world's `host` interface; one that fails throws.
import { log } from 'troupe:plugin/host@0.1.0';

export function describe() {
  return JSON.stringify({
    name: '{{name}}',
    version: '0.1.0',
    // The grants it needs, e.g. { documents: true, kv: true, http: ['api.example.org'] }.
    capabilities: {},
    tools: [{
      name: 'words',
      description: 'Counts the words of a text',
      parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    }],
  });
}

// Return the result; throw a string for the tool's error.
export function invoke(tool, args) {
  if (tool !== 'words') throw `unknown tool \`${tool}\``;
  const { text } = JSON.parse(args);
  if (typeof text !== 'string') throw '`text` is required';
  log('info', 'counted');
  return JSON.stringify({ words: text.split(/\s+/).filter(Boolean).length });
}

// entities: the dates, money amounts, percentages, durations, e-mail addresses and defined terms in
// a text, each with its line — the facts a reviewer cross-checks between documents.
import { log, readDocument } from 'troupe:plugin/host@0.1.0';

const MONTHS = 'January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec';
const NUMBER_WORDS = 'one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|forty-five|sixty|ninety';
const PATTERNS = {
  date: new RegExp(
    `\\b(?:\\d{4}-\\d{2}-\\d{2}|\\d{1,2}/\\d{1,2}/\\d{2,4}|(?:${MONTHS})\\.? \\d{1,2}(?:st|nd|rd|th)?,? \\d{4}|\\d{1,2}(?:st|nd|rd|th)? (?:of )?(?:${MONTHS}),? \\d{4}|(?:${MONTHS}) \\d{4})\\b`,
    'g'),
  money: /(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand|[MBK]))?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP|dollars|euros|pounds)\b)/g,
  percentage: /\b\d+(?:\.\d+)?\s?(?:%|percent\b|per cent\b)/g,
  duration: new RegExp(`\\b(?:[A-Za-z]+(?:-[A-Za-z]+)?\\s\\(\\d+\\)|\\d+|${NUMBER_WORDS})[\\s-](?:business |calendar )?(?:hour|day|week|month|year)s?\\b`, 'gi'),
  email: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g,
  defined_term: /(?:"|“)([A-Z][A-Za-z0-9 -]{1,60})(?:"|”)\s+(?:shall\s+)?(?:mean|means|refers? to|includes?)\b|\((?:the\s+)?(?:"|“)([A-Z][A-Za-z0-9 -]{1,60})(?:"|”)\)/g,
};

const TOOLS = [{
  name: 'extract',
  description: 'Find the dates, money amounts, percentages, durations, e-mail addresses and defined terms in a text, each with the line it is on and how often it occurs. Give `text`, or `document` (the id of one of the run\'s documents).',
  parameters: {
    type: 'object',
    properties: {
      text: { type: 'string', description: 'The text to scan' },
      document: { type: 'string', description: 'Id of a run document to scan instead' },
      kinds: { type: 'array', items: { type: 'string', enum: Object.keys(PATTERNS) }, description: 'Only these kinds (default: all)' },
    },
    additionalProperties: false,
  },
}];

export function describe() {
  // It reads the run's documents when given a `document` id; it needs nothing else.
  return JSON.stringify({ name: 'entities', version: '0.1.0', capabilities: { documents: true }, tools: TOOLS });
}

function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return starts;
}

function lineOf(starts, offset) {
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid; else hi = mid - 1;
  }
  return lo + 1;
}

function extract(text, kinds) {
  const starts = lineStarts(text);
  const out = {};
  for (const kind of kinds) {
    const found = new Map();
    for (const m of text.matchAll(PATTERNS[kind])) {
      const value = (kind === 'defined_term' ? (m[1] || m[2]) : m[0]).replace(/\s+/g, ' ').trim();
      const entry = found.get(value) || { value, count: 0, lines: [] };
      const line = lineOf(starts, m.index);
      entry.count += 1;
      if (!entry.lines.includes(line)) entry.lines.push(line);
      found.set(value, entry);
    }
    out[kind] = [...found.values()];
  }
  return out;
}

export function invoke(tool, args) {
  if (tool !== 'extract') throw `unknown tool \`${tool}\`; this plugin has \`extract\``;
  let parsed;
  try { parsed = JSON.parse(args); } catch (e) { throw `arguments are not JSON: ${e.message}`; }
  let text = parsed.text;
  if (typeof text !== 'string') {
    if (typeof parsed.document !== 'string') throw 'give `text` (a string) or `document` (a document id)';
    text = JSON.parse(readDocument(parsed.document)).text;
  }
  const kinds = Array.isArray(parsed.kinds) && parsed.kinds.length ? parsed.kinds : Object.keys(PATTERNS);
  const unknown = kinds.filter((k) => !(k in PATTERNS));
  if (unknown.length) throw `unknown kinds ${unknown.join(', ')}; known: ${Object.keys(PATTERNS).join(', ')}`;
  log('info', `scanning ${text.length} characters`);
  return JSON.stringify(extract(text, kinds));
}

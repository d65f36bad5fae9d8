// validate.mjs: check recorded HTTP exchanges with jobd against openapi/openapi.yaml.
//
// Usage: node validate.mjs [--spec PATH] [--quiet] RECORDING.jsonl [RECORDING.jsonl ...]
//
// Exit status: 0 when every exchange matches the contract, 1 when one does
// not (every mismatch is listed), 2 on a usage error or an unreadable input.
//
// RECORDING FORMAT (JSON Lines): one JSON object per line, one line per HTTP
// exchange, in any order; blank lines are skipped. Written by exercise.py
// here, and by tests/integration/jobdtest.py when JOBD_RECORD=PATH is set.
//
//   {
//     "method": "POST",                  request method (any case)
//     "path": "/v1/jobs?wait=5",         request target as sent: path, then ?query (percent-encoded)
//     "status": 201,                     response status code
//     "content_type": "application/json",response Content-Type header as sent, or null when absent
//     "headers": {"Location": "/v1/jobs/j1", "Retry-After": "1"},
//                                        response headers, names in any case, values strings
//                                        (a repeated header: its values joined with ", ")
//     "body": {...},                     response body: the parsed JSON value, or the raw text as a
//                                        string (parsed here when content_type is JSON), or null
//                                        when the body is empty; non-JSON bodies may be recorded
//                                        as lossy UTF-8 text or left null (only their type is checked)
//     "note": "free text"                optional: what the exchange is for, shown with mismatches
//   }
//
// Other keys (for example request_headers, request_body, duration_ms) are
// allowed and ignored.
//
// WHAT IS CHECKED, for each exchange:
//   - the path matches a path template of the spec (`{id}` matches one segment);
//     otherwise it must be one of the answers any unknown path gets: 404
//     (components/responses/NotFound), 401 (Unauthorized), 503 (Unavailable);
//   - the method is an operation of that path; otherwise the answer must be
//     405 (the operations' 405 response) with an Allow header listing exactly
//     the path's methods, or 401 / 503;
//   - the status is documented for the operation (exactly, or as 4XX/5XX/default);
//   - the response's required headers are present and every documented
//     header that is present matches its schema (case-insensitive names);
//   - a response documented without content has an empty body;
//   - the content type is one documented for that status, and a JSON body
//     (application/json, anything +json) is valid against its schema (ajv,
//     JSON Schema 2020-12, formats checked); a problem+json body's `status`
//     equals the HTTP status;
//   - HEAD answers have no body by HTTP's rules, so only status and headers
//     are checked for them.
// Query parameters the operation does not document are reported as warnings.
//
// npm modules: ajv, ajv-formats and yaml are taken from the node_modules of
// $CONTRACT_NODE_PREFIX when it is set (CTest installs them in the build
// directory), else from this directory's (after `npm ci` here).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = process.env.CONTRACT_NODE_PREFIX || here;
const require = createRequire(join(resolve(prefix), 'package.json'));
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;
const YAML = require('yaml');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SPEC_ID = 'https://jobd.invalid/openapi.json';

// ---- arguments ----

function usage(msg) {
  if (msg) console.error(`validate.mjs: ${msg}`);
  console.error('usage: node validate.mjs [--spec openapi.yaml] [--quiet] RECORDING.jsonl...');
  process.exit(2);
}

let specPath = join(here, '..', '..', 'openapi', 'openapi.yaml');
let quiet = false;
const inputs = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--spec') {
    if (++i >= process.argv.length) usage('--spec needs a path');
    specPath = process.argv[i];
  } else if (a.startsWith('--spec=')) {
    specPath = a.slice(7);
  } else if (a === '--quiet') {
    quiet = true;
  } else if (a === '-h' || a === '--help') {
    usage();
  } else if (a.startsWith('-')) {
    usage(`unknown option ${a}`);
  } else {
    inputs.push(a);
  }
}
if (inputs.length === 0) usage('no recording given');

// ---- the spec ----

let spec;
try {
  spec = YAML.parse(readFileSync(specPath, 'utf8'));
} catch (e) {
  console.error(`validate.mjs: cannot read the spec ${specPath}: ${e.message}`);
  process.exit(2);
}

/** The value at a local JSON pointer ("#/a/b") of the spec. */
function atPointer(ref) {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
  let v = spec;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (v === null || typeof v !== 'object' || !(key in v)) throw new Error(`unresolved $ref ${ref}`);
    v = v[key];
  }
  return v;
}

/** Follow $refs of OpenAPI objects (responses, parameters, headers) to the object. */
function deref(obj) {
  const seen = new Set();
  while (obj && typeof obj === 'object' && typeof obj.$ref === 'string') {
    if (seen.has(obj.$ref)) throw new Error(`$ref cycle at ${obj.$ref}`);
    seen.add(obj.$ref);
    obj = atPointer(obj.$ref);
  }
  return obj;
}

/** A deep copy of a schema whose local $refs point into the registered spec. */
function rebase(schema) {
  if (Array.isArray(schema)) return schema.map(rebase);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? SPEC_ID + v : rebase(v);
  }
  return out;
}

const ajv = new Ajv2020({ strict: false, allErrors: true, allowUnionTypes: true });
addFormats(ajv);
// OpenAPI's numeric formats: ajv-formats does not know them.
ajv.addFormat('int32', { type: 'number', validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addFormat('int64', { type: 'number', validate: (n) => Number.isInteger(n) });
ajv.addFormat('float', { type: 'number', validate: () => true });
ajv.addFormat('double', { type: 'number', validate: () => true });
ajv.addSchema({ $id: SPEC_ID, components: rebase(spec.components || {}) });

const validators = new Map();
/** A compiled validator of `schema`, cached by a key naming where it is. */
function validatorFor(key, schema) {
  let v = validators.get(key);
  if (!v) {
    v = ajv.compile(rebase(schema));
    validators.set(key, v);
  }
  return v;
}

function formatErrors(errors) {
  // allOf/oneOf produce a cascade of errors; show the first few, they name the cause.
  const lines = (errors || []).slice(0, 8).map((e) => {
    const where = e.instancePath || '(body)';
    const extra = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : '';
    return `${where} ${e.message}${extra}`;
  });
  if ((errors || []).length > 8) lines.push(`... and ${errors.length - 8} more`);
  return lines.join('; ');
}

// Path templates, most literal first, so /v1/openapi.yaml wins over /v1/{x}.
const templates = Object.keys(spec.paths || {})
  .map((tpl) => {
    const segs = tpl.split('/');
    const re = new RegExp(
      '^' +
        segs
          .map((s) => (/^\{[^}]+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('/') +
        '$',
    );
    return { tpl, re, literal: segs.filter((s) => !s.startsWith('{')).length };
  })
  .sort((a, b) => b.literal - a.literal);

function findPath(path) {
  for (const t of templates) if (t.re.test(path)) return t.tpl;
  return null;
}

function operationsOf(tpl) {
  const item = spec.paths[tpl];
  return METHODS.filter((m) => item[m]).map((m) => [m, item[m]]);
}

function componentResponse(name) {
  const r = spec.components && spec.components.responses && spec.components.responses[name];
  if (!r) throw new Error(`the spec has no components/responses/${name}, which unknown paths answer`);
  return { where: `components/responses/${name}`, response: deref(r) };
}

/** The documented response for `status` in an operation's responses, or null. */
function responseFor(responses, status) {
  const s = String(status);
  if (responses[s]) return { key: s, response: deref(responses[s]) };
  const range = `${s[0]}XX`;
  for (const k of Object.keys(responses)) if (k.toUpperCase() === range) return { key: k, response: deref(responses[k]) };
  if (responses.default) return { key: 'default', response: deref(responses.default) };
  return null;
}

const isJson = (mt) => mt === 'application/json' || mt.endsWith('+json');

function mediaTypeOf(ct) {
  return ct ? String(ct).split(';')[0].trim().toLowerCase() : null;
}

function matchContent(content, mt) {
  if (content[mt]) return mt;
  const keys = Object.keys(content);
  const lower = keys.find((k) => k.toLowerCase() === mt);
  if (lower) return lower;
  const wild = keys.find((k) => k.endsWith('/*') && mt.startsWith(k.slice(0, -1)));
  if (wild) return wild;
  return keys.includes('*/*') ? '*/*' : null;
}

// ---- one exchange ----

/**
 * Check one exchange; return the list of mismatches (strings) and of
 * warnings, with `opKey` ("METHOD template") and `alsoSeen` (the operations a
 * 405 stands for) for the coverage table.
 */
function check(ex) {
  const problems = [];
  const warnings = [];
  const method = String(ex.method || '').toUpperCase();
  const target = String(ex.path || '');
  const status = Number(ex.status);
  const qpos = target.indexOf('?');
  const path = qpos >= 0 ? target.slice(0, qpos) : target;
  const query = qpos >= 0 ? target.slice(qpos + 1) : '';
  const headers = {};
  for (const [k, v] of Object.entries(ex.headers || {})) headers[k.toLowerCase()] = v == null ? '' : String(v);
  const ctype = ex.content_type !== undefined ? ex.content_type : headers['content-type'] || null;
  let opKey = null;
  let alsoSeen = [];

  if (!method || !path.startsWith('/') || !Number.isInteger(status)) {
    problems.push('not a recorded exchange: it needs method, path (starting with /) and an integer status');
    return { problems, warnings, opKey, alsoSeen };
  }

  const tpl = findPath(path);
  let where;
  let resp;

  if (!tpl) {
    opKey = `${method} (unknown path)`;
    const names = { 404: 'NotFound', 401: 'Unauthorized', 503: 'Unavailable' };
    if (!names[status]) {
      problems.push(`the path is not in the spec and the answer is ${status}; an unknown path answers 404 (or 401/503)`);
      return { problems, warnings, opKey, alsoSeen };
    }
    ({ where, response: resp } = componentResponse(names[status]));
  } else {
    const item = spec.paths[tpl];
    const op = item[method.toLowerCase()];
    if (!op) {
      opKey = `${method} ${tpl} (not an operation)`;
      const allowed = operationsOf(tpl).map(([m]) => m.toUpperCase());
      if (status === 405) {
        // Every operation documents the same 405; take the first one's (or the component).
        const first = operationsOf(tpl).map(([, o]) => o.responses && o.responses['405']).find(Boolean);
        resp = first ? deref(first) : componentResponse('MethodNotAllowed').response;
        where = `${tpl} 405`;
        alsoSeen = operationsOf(tpl).map(([m]) => `${m.toUpperCase()} ${tpl}`);
        const allow = headers.allow;
        if (allow !== undefined) {
          const got = allow.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean).sort();
          const want = [...allowed].sort();
          if (got.join(',') !== want.join(',')) {
            problems.push(`Allow is "${allow}" but the spec's methods of ${tpl} are ${want.join(', ')}`);
          }
        }
      } else if (status === 401 || status === 503) {
        ({ where, response: resp } = componentResponse(status === 401 ? 'Unauthorized' : 'Unavailable'));
      } else {
        problems.push(
          `${method} is not an operation of ${tpl} (it has ${allowed.join(', ')}), so the answer should be 405, not ${status}`,
        );
        return { problems, warnings, opKey, alsoSeen };
      }
    } else {
      opKey = `${method} ${tpl}`;
      const found = responseFor(op.responses || {}, status);
      if (!found) {
        problems.push(
          `status ${status} is not documented for ${opKey} (documented: ${Object.keys(op.responses || {}).join(', ')})`,
        );
        return { problems, warnings, opKey, alsoSeen };
      }
      resp = found.response;
      where = `${opKey} ${found.key}`;
      // Query parameters the operation does not document.
      if (query) {
        const params = [...(item.parameters || []), ...(op.parameters || [])].map(deref);
        const known = new Set(params.filter((p) => p.in === 'query').map((p) => p.name));
        for (const pair of query.split('&')) {
          if (!pair) continue;
          let name = pair.split('=')[0];
          try {
            name = decodeURIComponent(name.replace(/\+/g, ' '));
          } catch {
            /* keep it as it is */
          }
          if (!known.has(name)) warnings.push(`query parameter "${name}" is not documented for ${opKey}`);
        }
      }
    }
  }

  // Headers.
  for (const [name, h0] of Object.entries(resp.headers || {})) {
    if (name.toLowerCase() === 'content-type') continue;
    const h = deref(h0);
    const got = headers[name.toLowerCase()];
    if (got === undefined) {
      if (h.required) problems.push(`${where}: required header ${name} is missing`);
      continue;
    }
    if (h.schema) {
      const v = validatorFor(`${where} header ${name}`, h.schema);
      if (!v(got)) problems.push(`${where}: header ${name}: "${got}": ${formatErrors(v.errors)}`);
    }
  }

  // Body.
  const content = resp.content || {};
  const body = ex.body;
  const empty = body === null || body === undefined || body === '';
  if (Object.keys(content).length === 0) {
    if (!empty && method !== 'HEAD') problems.push(`${where}: documented without a body, but the body is not empty`);
    return { problems, warnings, opKey, alsoSeen };
  }
  const mt = mediaTypeOf(ctype);
  if (!mt) {
    problems.push(`${where}: no Content-Type; documented: ${Object.keys(content).join(', ')}`);
    return { problems, warnings, opKey, alsoSeen };
  }
  const key = matchContent(content, mt);
  if (!key) {
    problems.push(`${where}: Content-Type ${mt} is not documented (documented: ${Object.keys(content).join(', ')})`);
    return { problems, warnings, opKey, alsoSeen };
  }
  if (method === 'HEAD' || !isJson(mt)) return { problems, warnings, opKey, alsoSeen };

  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch (e) {
      problems.push(`${where}: the ${mt} body is not JSON: ${e.message}`);
      return { problems, warnings, opKey, alsoSeen };
    }
  }
  if (value === null || value === undefined) {
    problems.push(`${where}: the ${mt} body is empty`);
    return { problems, warnings, opKey, alsoSeen };
  }
  const schema = content[key].schema;
  if (schema) {
    const v = validatorFor(`${where} ${key}`, schema);
    if (!v(value)) problems.push(`${where} ${key}: ${formatErrors(v.errors)}`);
  }
  if (mt === 'application/problem+json' && value && typeof value === 'object' && value.status !== status) {
    problems.push(`${where}: the problem's status is ${JSON.stringify(value.status)}, the HTTP status ${status}`);
  }
  return { problems, warnings, opKey, alsoSeen };
}

// ---- main ----

let total = 0;
let failed = 0;
const mismatches = [];
const allWarnings = new Set();
const seen = new Map(); // opKey -> Set(status)

for (const file of inputs) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    console.error(`validate.mjs: cannot read ${file}: ${e.message}`);
    process.exit(2);
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    total++;
    let ex;
    let res;
    try {
      ex = JSON.parse(line);
      res = check(ex);
    } catch (e) {
      res = { problems: [`cannot check this line: ${e.message}`], warnings: [], opKey: null };
      ex = ex || {};
    }
    for (const k of [res.opKey, ...(res.alsoSeen || [])]) {
      if (!k) continue;
      if (!seen.has(k)) seen.set(k, new Set());
      seen.get(k).add(Number(ex.status));
    }
    for (const w of res.warnings) allWarnings.add(w);
    if (res.problems.length) {
      failed++;
      const note = ex.note ? ` [${ex.note}]` : '';
      mismatches.push(
        `${file}:${i + 1}: ${ex.method} ${ex.path} -> ${ex.status}${note}\n` + res.problems.map((p) => `    ${p}`).join('\n'),
      );
    }
  }
}

if (!quiet) {
  // Coverage: which documented statuses were seen, per operation.
  console.log('coverage (status codes seen / documented):');
  for (const tpl of Object.keys(spec.paths || {})) {
    for (const [m, op] of operationsOf(tpl)) {
      const key = `${m.toUpperCase()} ${tpl}`;
      const got = seen.get(key) || new Set();
      const documented = Object.keys(op.responses || {});
      const marks = documented.map((s) => (got.has(Number(s)) ? s : `(${s})`)).join(' ');
      console.log(`  ${key.padEnd(34)} ${marks}`);
    }
  }
  for (const [key, st] of seen) {
    if (key.includes('(')) console.log(`  ${key.padEnd(34)} ${[...st].sort().join(' ')}`);
  }
  console.log('  (a status in parentheses was not seen in these recordings)');
}
for (const w of allWarnings) console.log(`warning: ${w}`);
for (const m of mismatches) console.log(`MISMATCH ${m}`);
console.log(`contract: ${total} exchanges checked against ${specPath}`);
console.log(`${total - failed} passed, ${failed} failed`);
process.exit(total === 0 ? 1 : failed ? 1 : 0);

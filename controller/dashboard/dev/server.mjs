#!/usr/bin/env node
// A stand-in for etl-controller's dashboard endpoints, for working on the page without a lattice:
// serves the page and its assets as the controller does (`/`, `/assets/<file>`), a token login
// like the controller's (`/` without a session answers 401 with a form; `POST /login` with the
// form field `token` sets the `etl_session` cookie and redirects to `/`), and the API documents
// from dev/fixtures/*.json (checked against the Rust types by `cargo test -p etl-controller
// --lib dashboard`), with counts that climb from 0 to the fixtures' over `--ramp` seconds (and go
// on climbing with `--live`) and rate series that move with the clock.
//
//   node controller/dashboard/dev/server.mjs [--port 9470] [--token dev-token]
//        [--scenario full|empty] [--ramp 8] [--live]
//
// No dependencies; loopback only.
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dashboard = join(here, '..');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  if (typeof fallback === 'boolean') return true;
  const value = process.argv[i + 1];
  if (value === undefined) throw new Error(`--${name} needs a value`);
  return value;
}

const port = Number(option('port', '9470'));
const token = option('token', 'dev-token');
const scenario = option('scenario', 'full');
const ramp = Math.max(0.001, Number(option('ramp', '8')));
const keepClimbing = option('live', false);
const fixtures = option('fixtures', join(here, 'fixtures'));
const started = Date.now();
const sessions = new Set();

const fixture = (name) => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));
const overviewFixture = fixture(scenario === 'empty' ? 'overview-empty.json' : 'overview.json');
const deadLetters = fixture('dead-letters.json');

// ---- the clock: how far the counts have climbed, and the rates' wobble

function progress() {
  const f = (Date.now() - started) / 1000 / ramp;
  return keepClimbing ? f : Math.min(1, f);
}

const scale = (n, f) => Math.floor(n * f);
const scaleMap = (m, f) => Object.fromEntries(Object.entries(m || {}).map(([k, v]) => [k, scale(v, f)]));
const wobble = (t, phase) => 1 + 0.22 * Math.sin(t / 9 + phase) + 0.08 * Math.sin(t / 2.3 + 2 * phase);

function counters(c, f) {
  if (!c) return c;
  const dead = scaleMap(c.deadLettered, f);
  const failed = scaleMap(c.failed, f);
  const produced = scale(c.produced, f);
  const filtered = scale(c.filtered, f);
  const records = produced + filtered + Object.values(dead).reduce((a, b) => a + b, 0)
    + Object.values(failed).reduce((a, b) => a + b, 0);
  const perRecord = c.in.records ? c.in.bytes / c.in.records : 0;
  return {
    ...c,
    batches: scale(c.batches, f),
    in: { records, bytes: Math.floor(records * perRecord) },
    out: { records: scale(c.out.records, f), bytes: scale(c.out.bytes, f) },
    produced,
    filtered,
    deadLettered: dead,
    failed,
    transient: scale(c.transient, f),
    retries: scale(c.retries, f),
    process: { sum: c.process.sum * Math.min(1, f), buckets: c.process.buckets.map((b) => scale(b, f)) },
  };
}

function rates(r, t, phase, on) {
  if (!on) return { in: 0, out: 0, errors: 0 };
  const w = wobble(t, phase);
  const round = (x) => Math.round(x * 100) / 100;
  return {
    in: round(r.in * w),
    out: round(r.out * w),
    errors: round(r.errors * Math.max(0, 1 + 0.9 * Math.sin(t / 5 + phase))),
  };
}

/** 60 samples, 2 s apart, ending now. */
function series(r, phase) {
  const end = Math.floor(Date.now() / 2000) * 2;
  return Array.from({ length: 60 }, (_, i) => {
    const t = end - 2 * (59 - i);
    return { t, ...rates(r, t, phase, true) };
  });
}

function pipeline(name) {
  const file = join(fixtures, `pipeline-${name}.json`);
  if (!/^[a-z0-9-]+$/.test(name) || !existsSync(file) || scenario === 'empty') return null;
  const view = JSON.parse(readFileSync(file, 'utf8'));
  const f = progress();
  const t = Date.now() / 1000;
  view.nodes = view.nodes.map((n, i) => ({
    ...n,
    counters: counters(n.counters, f),
    // The rates go on after the counts stop climbing: a page to look at, not a consistent world.
    rates: rates(n.rates, t, i, !!n.counters),
    series: n.series.length ? series(n.rates, i) : [],
  }));
  view.edges = view.edges.map((e, i) => ({
    ...e,
    records: scale(e.records, f),
    errors: scale(e.errors, f),
    rate: Math.round(e.rate * wobble(t, i) * 100) / 100,
  }));
  return view;
}

function overview() {
  const f = progress();
  const t = Date.now() / 1000;
  return {
    ...overviewFixture,
    pipelines: overviewFixture.pipelines.map((p, i) => ({
      ...p,
      recordsIn: scale(p.recordsIn, f),
      recordsOut: scale(p.recordsOut, f),
      deadLettered: scale(p.deadLettered, f),
      failed: scale(p.failed, f),
      rates: rates(p.rates, t, i, true),
    })),
    reports: { ...overviewFixture.reports, counted: scale(overviewFixture.reports.counted, f) },
  };
}

// ---- HTTP

const PAGE_HEADERS = {
  // What the controller should send with the page too: nothing but its own origin.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    + "font-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, ...PAGE_HEADERS, ...headers });
  res.end(body);
}

function json(res, status, doc) {
  send(res, status, 'application/json', JSON.stringify(doc), { 'cache-control': 'no-store' });
}

function loginPage(res, status, message) {
  // The controller's own login page is the backend's; this one only has the same form.
  send(res, status, 'text/html; charset=utf-8', `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · etl</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>etl-controller</h1>
${message ? `<p role="alert">${message}</p>` : ''}
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button>
</form></main></body></html>`);
}

function session(req) {
  const cookie = req.headers.cookie || '';
  const m = /(?:^|;\s*)etl_session=([A-Za-z0-9_-]+)/.exec(cookie);
  if (m && sessions.has(m[1])) return true;
  const auth = req.headers.authorization || '';
  return auth.startsWith('Bearer ') && same(auth.slice(7).trim(), token);
}

function same(a, b) {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

function body(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function asset(path) {
  const name = path === '/' ? 'index.html' : path.startsWith('/assets/') ? path.slice('/assets/'.length) : null;
  if (!name || (path !== '/' && name === 'index.html') || !/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) {
    return null;
  }
  const own = ['index.html', 'app.js', 'app.css'].includes(name);
  const file = own ? join(dashboard, name) : join(dashboard, 'vendor', name);
  const type = TYPES[extname(name)];
  if (!type || !existsSync(file)) return null;
  return { type, bytes: readFileSync(file) };
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://dev.invalid');
  const path = url.pathname;
  if (path === '/login' && req.method === 'POST') {
    const form = new URLSearchParams(await body(req, 4096));
    if (!same(form.get('token') || '', token)) {
      loginPage(res, 401, 'That is not the token.');
      return;
    }
    const id = randomBytes(24).toString('base64url');
    sessions.add(id);
    res.writeHead(303, {
      location: '/',
      'set-cookie': `etl_session=${id}; Path=/; HttpOnly; SameSite=Strict`,
      'cache-control': 'no-store',
    });
    res.end();
    return;
  }
  if (!session(req)) {
    if (path === '/') loginPage(res, 401, '');
    else json(res, 401, { error: 'unauthorized' });
    return;
  }
  if (path.startsWith('/api/v1/')) {
    await apiRoute(req, res, path.slice('/api/v1/'.length), url.searchParams);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    json(res, 405, { error: 'method not allowed' });
    return;
  }
  const found = asset(path);
  if (!found) {
    json(res, 404, { error: 'not found' });
    return;
  }
  send(res, 200, found.type, req.method === 'HEAD' ? undefined : found.bytes);
}

async function apiRoute(req, res, route, query) {
  if (route === 'dead-letters/replay') {
    if (req.method !== 'POST') return json(res, 405, { error: 'method not allowed' });
    if (req.headers['x-etl-csrf'] !== '1') return json(res, 403, { error: 'missing x-etl-csrf: 1' });
    let ask;
    try {
      ask = JSON.parse(await body(req));
    } catch (_) {
      return json(res, 400, { error: 'not a replay request' });
    }
    if (typeof ask.actor !== 'string' || !ask.actor) return json(res, 400, { error: 'actor is required' });
    const chosen = (ask.ids || []).length
      ? deadLetters.filter((d) => ask.ids.includes(d.id))
      : deadLetters.filter((d) => d.pipeline === ask.pipeline && (!ask.step || d.step === ask.step));
    const replay = {
      actor: ask.actor,
      credential: createHash('sha256').update(token).digest('hex').slice(0, 12),
      remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      replayed: chosen.map((d) => [d.id, `etl.${overviewFixture.project}.${d.pipeline}.replay.${d.step}`]),
      missing: (ask.ids || []).filter((id) => !deadLetters.some((d) => d.id === id)),
    };
    console.log(`replay by ${replay.actor}: ${replay.replayed.map(([id]) => id).join(', ') || 'nothing'}`);
    return json(res, 200, replay);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
  if (route === 'overview') return json(res, 200, overview());
  if (route.startsWith('pipelines/')) {
    const view = pipeline(decodeURIComponent(route.slice('pipelines/'.length)));
    return view ? json(res, 200, view) : json(res, 404, { error: 'no such pipeline' });
  }
  if (route === 'dead-letters') {
    const limit = Math.min(1000, Number(query.get('limit') || 100));
    const list = scenario === 'empty' ? [] : deadLetters
      .filter((d) => !query.get('pipeline') || d.pipeline === query.get('pipeline'))
      .filter((d) => !query.get('step') || d.step === query.get('step'))
      .slice(0, limit);
    return json(res, 200, list);
  }
  return json(res, 404, { error: 'not found' });
}

const server = createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(e);
    if (!res.headersSent) json(res, 500, { error: String(e.message || e) });
    else res.end();
  });
});
server.listen(port, '127.0.0.1', () => {
  const { port: actual } = server.address();
  console.log(`dev dashboard on http://127.0.0.1:${actual}/ (token: ${token}, scenario: ${scenario})`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));

#!/usr/bin/env node
// Drives a real browser (Debian's Chromium, through playwright-core) through the etl-controller
// dashboard as a person would, and checks what it shows:
//
//   1. `GET /` without credentials answers 401;
//   2. the login form takes the token, sets the `etl_session` cookie and leads to the page;
//   3. the pipeline opens from the environment's list, and within --timeout seconds its counts
//      table (`tr[data-node]`) shows the expected counts;
//   4. every expected node and edge is in the drawn graph (`window.etlGraph`, cytoscape);
//   5. nothing was loaded from another origin, and the page logged no error (a CSP violation
//      is one);
//   6. a full-page screenshot is written;
//   7. with --replay, the first dead letter's Replay button gets an answer naming the subject;
//   8. once the session is gone (cookies cleared), the page says so and links to `/`.
//
//   node tests/browser/dashboard.mjs --url http://127.0.0.1:9464/ --token TOKEN \
//     --expect expect.json --screenshot dashboard.png [--timeout 30] [--viewport 1280x800] [--replay]
//
// expect.json: {"pipeline": "p", "nodes": {"parse": {"in": 5, "out": 3, "filtered": 1, "dead": 1,
// "failed": 0}, …}, "edges": [["ingest", "parse"], …]} — a node's keys are the row's data-*
// attributes (in, out, produced, filtered, dead, failed, batches, retries).
//
// Exits 0 when all holds, 1 with a message saying what did not.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.ETL_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function usage(message) {
  console.error(`dashboard.mjs: ${message}`);
  console.error('usage: dashboard.mjs --url URL --token TOKEN --expect FILE.json --screenshot FILE.png '
    + '[--timeout SECONDS] [--viewport WxH] [--replay]');
  process.exit(2);
}

function option(name, { required = false, flag = false, fallback } = {}) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) {
    if (required) usage(`--${name} is required`);
    return flag ? false : fallback;
  }
  if (flag) return true;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) usage(`--${name} needs a value`);
  return value;
}

const base = new URL(option('url', { required: true }));
const token = option('token', { required: true });
const expectFile = option('expect', { required: true });
const screenshot = option('screenshot', { required: true });
const timeout = Number(option('timeout', { fallback: '30' })) * 1000;
const [vw, vh] = option('viewport', { fallback: '1280x800' }).split('x').map(Number);
const replay = option('replay', { flag: true });

let expected;
try {
  expected = JSON.parse(readFileSync(expectFile, 'utf8'));
} catch (e) {
  usage(`--expect ${expectFile}: ${e.message}`);
}
if (typeof expected.pipeline !== 'string' || typeof expected.nodes !== 'object') {
  usage(`--expect ${expectFile}: needs "pipeline" and "nodes"`);
}
expected.edges = expected.edges || [];

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};
const step = (message) => console.log(`dashboard: ${message}`);

const root = new URL('/', base);
const profile = mkdtempSync(join(tmpdir(), 'etl-chromium-'));
let context;

async function main() {
  // 1. Nothing without credentials.
  const anonymous = await fetch(root, { redirect: 'manual' });
  if (anonymous.status !== 401) fail(`GET / without credentials answered ${anonymous.status}, not 401`);
  step('GET / without credentials: 401');

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: vw, height: vh },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['data:', 'blob:'].includes(u.protocol) && u.origin !== root.origin) {
      problems.push(`request to another origin: ${r.url()}`);
    }
  });

  // 2. The login form.
  const first = await page.goto(root.href);
  if (first.status() !== 401) fail(`the browser's GET / answered ${first.status()}, not 401 with the login form`);
  const field = page.locator('input[name="token"]');
  if ((await field.count()) !== 1) fail('the 401 page has no login form with an input named "token"');
  await field.fill(token);
  const [login] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/login' && r.request().method() === 'POST'),
    field.press('Enter'),
  ]);
  await page.waitForLoadState('load');
  if (login.status() === 401 || login.status() === 403) fail(`the token was refused: POST /login answered ${login.status()}`);
  const cookies = await context.cookies(root.href);
  if (!cookies.some((c) => c.name === 'etl_session')) {
    fail(`no etl_session cookie after logging in (cookies: ${cookies.map((c) => c.name).join(', ') || 'none'})`);
  }
  if (new URL(page.url()).pathname !== '/') fail(`after logging in the browser is at ${page.url()}, not /`);
  step('logged in through the form: etl_session set, back at /');
  // The 401s of the login page itself are no misbehaviour of the dashboard's.
  problems.length = 0;

  // 3. The pipeline, from the environment's list.
  const link = page.locator(`a[data-pipeline="${cssString(expected.pipeline)}"]`);
  try {
    await link.waitFor({ timeout });
  } catch (_) {
    fail(`the environment's page lists no pipeline ${expected.pipeline} (within ${timeout / 1000} s)`);
  }
  await link.click();
  step(`opened ${expected.pipeline}`);

  try {
    await page.waitForFunction(matches, expected.nodes, { timeout, polling: 250 });
  } catch (_) {
    const shown = await page.evaluate(table);
    const lines = Object.entries(expected.nodes).map(([name, want]) => {
      const got = shown[name];
      if (!got) return `  ${name}: no row`;
      const wrong = Object.entries(want).filter(([k, v]) => got[k] !== String(v));
      return wrong.length
        ? `  ${name}: ${wrong.map(([k, v]) => `${k} ${got[k] ?? 'none'} (expected ${v})`).join(', ')}`
        : `  ${name}: as expected`;
    });
    fail(`the counts table did not show the expected counts within ${timeout / 1000} s:\n${lines.join('\n')}`);
  }
  step(`the counts table shows the expected counts of ${Object.keys(expected.nodes).length} node(s)`);

  // 4. The drawn graph.
  const graph = await page.evaluate(() => {
    const cy = window.etlGraph;
    if (!cy) return null;
    return {
      nodes: cy.nodes().map((n) => n.id()),
      edges: cy.edges().map((e) => [e.source().id(), e.target().id()]),
      positioned: cy.nodes().every((n) => Number.isFinite(n.position('x')) && Number.isFinite(n.position('y'))),
    };
  });
  if (!graph) fail('window.etlGraph is not set on the pipeline page');
  const missingNodes = Object.keys(expected.nodes).filter((n) => !graph.nodes.includes(n));
  const missingEdges = expected.edges.filter(([a, b]) => !graph.edges.some(([x, y]) => x === a && y === b));
  if (missingNodes.length || missingEdges.length) {
    fail(`the graph lacks node(s) [${missingNodes.join(', ')}] and edge(s) [${missingEdges.map((e) => e.join('→')).join(', ')}]; `
      + `it has nodes [${graph.nodes.join(', ')}], edges [${graph.edges.map((e) => e.join('→')).join(', ')}]`);
  }
  if (!graph.positioned) fail('the graph has nodes without a position (no layout)');
  step(`the graph has ${graph.nodes.length} nodes and ${graph.edges.length} edges, the expected among them`);

  // 5. Nothing from elsewhere, no errors.
  if (problems.length) fail(`the page misbehaved:\n  ${problems.join('\n  ')}`);

  // 6. The screenshot: let the charts draw a refresh or two first.
  await page.waitForTimeout(2500);
  await page.screenshot({ path: screenshot, fullPage: true });
  step(`screenshot: ${screenshot}`);

  // 7. Replaying a dead letter.
  if (replay) {
    const button = page.locator('button[data-replay]').first();
    if ((await button.count()) === 0) fail('--replay: the page shows no dead letter to replay');
    const id = await button.getAttribute('data-replay');
    await page.locator('.dl-tools input[type="text"]').fill('browser-test');
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/dead-letters/replay')),
      button.click(),
    ]);
    if (response.status() !== 200) fail(`replaying ${id}: HTTP ${response.status()}`);
    const sent = response.request().postDataJSON();
    if (response.request().headers()['x-etl-csrf'] !== '1') fail('the replay request lacks x-etl-csrf: 1');
    if (sent.actor !== 'browser-test' || !sent.ids.includes(id)) fail(`the replay request was ${JSON.stringify(sent)}`);
    const outcome = page.locator(`tr[data-dead-letter="${cssString(id)}"] .outcome`);
    await page.waitForFunction((el) => /replayed to \S+/.test(el.textContent), await outcome.elementHandle(), { timeout: 5000 })
      .catch(() => fail(`replaying ${id}: the page did not say where it went`));
    step(`replayed ${id}: ${await outcome.textContent()}`);
  }

  if (problems.length) fail(`the page misbehaved:\n  ${problems.join('\n  ')}`);

  // 8. An expired session (its 401s are expected now).
  await context.clearCookies();
  const signIn = page.locator('a[data-sign-in]');
  try {
    await signIn.waitFor({ timeout: 10000 });
  } catch (_) {
    fail('with the session gone, the page did not offer to sign in again');
  }
  const href = await signIn.evaluate((a) => a.href);
  if (new URL(href).pathname !== '/') fail(`the sign-in link goes to ${href}, not /`);
  step('with the session gone, the page links to / to sign in again');
}

/** Runs in the page: whether every expected node's row has the expected data-* values. */
function matches(nodes) {
  for (const [name, want] of Object.entries(nodes)) {
    const row = [...document.querySelectorAll('tr[data-node]')].find((tr) => tr.dataset.node === name);
    if (!row) return false;
    for (const [key, value] of Object.entries(want)) {
      if (row.getAttribute(`data-${key}`) !== String(value)) return false;
    }
  }
  return true;
}

/** Runs in the page: every row's data-* attributes, by node. */
function table() {
  const out = {};
  for (const tr of document.querySelectorAll('tr[data-node]')) out[tr.dataset.node] = { ...tr.dataset };
  return out;
}

function cssString(s) {
  return s.replace(/["\\]/g, '\\$&');
}

let code = 0;
try {
  await main();
  console.log('dashboard: ok');
} catch (e) {
  code = 1;
  console.error(e instanceof Failure ? `dashboard: FAILED: ${e.message}` : `dashboard: FAILED: ${e.stack || e}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);

// etl-controller dashboard: the environment, its pipelines, and one pipeline's graph with live
// counts, rates, the deployed bundle, capability grants and recent dead letters.
//
// It reads the controller's API (etl::ops::telemetry's documents, camelCase JSON) every 2 s with
// the session cookie, and updates the page in place: the graph is laid out once per shape (its
// nodes and edges), then only its labels change. Everything it loads comes from the controller
// (assets/…); it fetches nothing from elsewhere.
//
// The graph is a canvas; the same counts are in DOM tables (`tr[data-node]`, `tr[data-edge]`)
// for screen readers and tests, and the cytoscape instance is `window.etlGraph`.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const API = 'api/v1/';
  const DEAD_LETTER_LIMIT = 50;
  const CARD = { w: 200, h: 80 };
  const COLORS = { in: '#2459c8', out: '#1b7a47', errors: '#c0262d' };

  // ---------------------------------------------------------------------------------------------
  // Small helpers.

  /** An element: `props` are attributes (`class`, `text`, `on<event>` handlers, others as is). */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  /** Replaces an element's children, leaving out null and false (which replaceChildren would write). */
  function put(el, ...kids) {
    el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
  }

  /** Sets an element's text only when it changed (no needless layout work). */
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function setAttr(el, name, value) {
    const v = value == null ? null : String(value);
    if (v === null) {
      if (el.hasAttribute(name)) el.removeAttribute(name);
    } else if (el.getAttribute(name) !== v) {
      el.setAttribute(name, v);
    }
  }

  const integer = new Intl.NumberFormat('en-US');
  const compactFormat = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

  function count(n) {
    return integer.format(n || 0);
  }

  /** A count short enough for a graph card. */
  function short(n) {
    return (n || 0) < 100000 ? integer.format(n || 0) : compactFormat.format(n);
  }

  function perSecond(x) {
    if (!x) return '0/s';
    if (x < 0.1) return `${x.toFixed(2)}/s`;
    if (x < 100) return `${x.toFixed(1)}/s`;
    return `${short(Math.round(x))}/s`;
  }

  function seconds(s) {
    if (!(s > 0)) return '–';
    if (s < 0.001) return `${Math.round(s * 1e6)} µs`;
    if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
    return `${s.toFixed(2)} s`;
  }

  /** `sha256:0123456789ab…` */
  function shortDigest(digest) {
    if (!digest) return '–';
    const [algo, hex] = digest.includes(':') ? digest.split(':', 2) : ['', digest];
    return `${algo ? `${algo}:` : ''}${hex.slice(0, 12)}`;
  }

  function digestEl(digest) {
    if (!digest) return h('span', { class: 'zero', text: '–' });
    return h('code', { class: 'digest', title: digest, text: digest });
  }

  function when(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso || '–';
    return new Date(t).toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

  function stateClass(state) {
    switch (state) {
      case 'ready':
      case 'deployed':
        return 'pill ok';
      case 'reconciling':
      case 'waiting':
        return 'pill warn';
      case 'failed':
      case 'stale':
        return 'pill bad';
      default:
        return 'pill';
    }
  }

  function pill(state) {
    return h('span', { class: stateClass(state), text: state || 'unknown' });
  }

  /** A node's counts as the tables and cards show them; `null` before its first report. */
  function tally(node) {
    const c = node.counters;
    if (!c) return null;
    const n = (c.process && c.process.buckets || []).reduce((a, b) => a + b, 0);
    return {
      in: c.in.records,
      out: c.out.records,
      produced: c.produced,
      filtered: c.filtered,
      dead: sum(c.deadLettered),
      failed: sum(c.failed),
      batches: c.batches,
      transient: c.transient,
      retries: c.retries,
      avg: n ? c.process.sum / n : 0,
      deadByClass: c.deadLettered || {},
      failedBy: c.failed || {},
    };
  }

  // ---------------------------------------------------------------------------------------------
  // The API.

  class SignedOut extends Error {}
  class NotFound extends Error {}

  async function api(path, init) {
    const response = await fetch(API + path, {
      credentials: 'same-origin',
      cache: 'no-store',
      ...init,
      headers: { accept: 'application/json', ...(init && init.headers) },
    });
    if (response.status === 401) throw new SignedOut();
    if (response.status === 404) throw new NotFound(path);
    if (!response.ok) {
      let detail = '';
      try {
        detail = (await response.json()).error || '';
      } catch (_) {
        // not JSON
      }
      throw new Error(`${response.status}${detail ? `: ${detail}` : ''}`);
    }
    return response.json();
  }

  // ---------------------------------------------------------------------------------------------
  // The frame: breadcrumbs, the live indicator, the banner.

  const $main = document.getElementById('main');
  const $crumbs = document.getElementById('crumbs');
  const $live = document.getElementById('live');
  const $banner = document.getElementById('banner');

  function crumbs(overview, pipeline) {
    const parts = [];
    if (overview && overview.project) parts.push(h('span', { text: overview.project }));
    const env = (overview && overview.environment) || 'environment';
    parts.push(pipeline ? h('a', { href: '#/', text: env }) : h('span', { class: 'here', text: env }));
    if (pipeline) parts.push(h('span', { class: 'here', 'aria-current': 'page', text: pipeline }));
    const key = parts.map((p) => p.textContent).join('/') + (pipeline ? '#p' : '');
    if ($crumbs.dataset.key === key) return;
    $crumbs.dataset.key = key;
    const kids = [];
    parts.forEach((p, i) => {
      if (i) kids.push(h('span', { class: 'sep', 'aria-hidden': 'true', text: '›' }));
      kids.push(p);
    });
    $crumbs.replaceChildren(...kids);
    document.title = `${pipeline ? `${pipeline} · ` : ''}${env} — etl`;
  }

  let lastUpdate = 0;

  function live(kind, text) {
    $live.className = `live ${kind}`;
    const label = `${text}`;
    if ($live.lastChild && $live.lastChild.nodeType === Node.TEXT_NODE) {
      if ($live.lastChild.data !== label) $live.lastChild.data = label;
    } else {
      $live.append(label);
    }
  }

  function clock(t) {
    return new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }

  function banner(kind, ...content) {
    if (!content.length) {
      $banner.hidden = true;
      $banner.replaceChildren();
      return;
    }
    $banner.className = `banner ${kind}`;
    $banner.replaceChildren(...content);
    $banner.hidden = false;
  }

  // ---------------------------------------------------------------------------------------------
  // The overview: the environment, its bundle, its pipelines.

  class OverviewPage {
    constructor(root) {
      this.title = h('h1');
      this.facts = h('div', { class: 'facts' });
      this.body = h('div');
      root.replaceChildren(h('div', { class: 'head' }, this.title, this.facts), this.body);
      this.key = null;
    }

    update(overview) {
      setText(this.title, overview.environment ? `Environment ${overview.environment}` : 'Environment');
      put(this.facts, envFacts(overview));
      const key = JSON.stringify([!!overview.deployed, overview.pipelines.map((p) => p.name)]);
      if (key !== this.key) {
        this.key = key;
        this.build(overview);
      }
      if (this.table) this.table.update(overview.pipelines);
      if (this.deployment) this.deployment.update(overview);
    }

    build(overview) {
      this.table = null;
      this.deployment = null;
      if (!overview.deployed) {
        this.body.replaceChildren(
          h('section', { class: 'panel' }, h('div', { class: 'empty', 'data-empty': 'environment' },
            h('strong', { text: 'No bundle has been applied to this environment yet.' }),
            `The controller applies the bundle its tag names once one is pushed or promoted (etl push --env ${overview.environment || 'ENV'}). `,
            `It says: ${overview.state}.`))
        );
        return;
      }
      this.table = new PipelinesTable();
      this.deployment = new DeploymentPanel();
      this.body.replaceChildren(
        h('div', { class: 'grid2' },
          h('section', { class: 'panel', 'aria-labelledby': 'pipelines-h' },
            h('h2', { id: 'pipelines-h', text: 'Pipelines' }), this.table.el),
          this.deployment.el)
      );
    }
  }

  function envFacts(overview) {
    const r = overview.reports || {};
    const facts = [
      h('span', {}, 'state ', pill(overview.state)),
      h('span', {}, 'wasmCloud ', h('b', { text: overview.generation })),
      h('span', { title: 'reports counted · refused · lost before they were counted' },
        'reports ', h('b', { text: count(r.counted) }),
        r.refused ? h('span', { class: 'pill bad', text: ` ${count(r.refused)} refused` }) : null,
        r.missed ? h('span', { class: 'pill warn', text: ` ${count(r.missed)} missed` }) : null),
    ];
    return facts;
  }

  class PipelinesTable {
    constructor() {
      this.body = h('tbody');
      this.rows = new Map();
      this.el = h('div', { class: 'scroll' }, h('table', { class: 'pipelines' },
        h('caption', { class: 'note', text: 'Totals since the controller began counting; rates over its last window.' }),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Pipeline' }),
          h('th', { scope: 'col', text: 'State' }),
          h('th', { scope: 'col', class: 'n', text: 'In' }),
          h('th', { scope: 'col', class: 'n', text: 'Out' }),
          h('th', { scope: 'col', class: 'n', text: 'Dead-lettered' }),
          h('th', { scope: 'col', class: 'n', text: 'Failed' }),
          h('th', { scope: 'col', class: 'n', text: 'In/s' }),
          h('th', { scope: 'col', class: 'n', text: 'Out/s' }),
          h('th', { scope: 'col', class: 'n', text: 'Errors/s' }))),
        this.body));
    }

    update(pipelines) {
      if (!pipelines.length) {
        this.body.replaceChildren(h('tr', {}, h('td', { colspan: 9, class: 'empty', text: 'No pipelines in this bundle.' })));
        this.rows.clear();
        return;
      }
      const rows = pipelines.map((p) => {
        let row = this.rows.get(p.name);
        if (!row) {
          row = {
            tr: h('tr', { 'data-pipeline-row': p.name }),
            cells: Array.from({ length: 9 }, (_, i) => h('td', { class: i >= 2 ? 'n' : '' })),
          };
          row.cells[0].append(h('a', { href: `#/pipelines/${encodeURIComponent(p.name)}`, 'data-pipeline': p.name, text: p.name }));
          row.tr.append(...row.cells);
          this.rows.set(p.name, row);
        }
        const c = row.cells;
        c[1].replaceChildren(pill(p.state));
        setText(c[2], count(p.recordsIn));
        setText(c[3], count(p.recordsOut));
        bad(c[4], p.deadLettered, count(p.deadLettered));
        bad(c[5], p.failed, count(p.failed));
        setText(c[6], perSecond(p.rates.in));
        setText(c[7], perSecond(p.rates.out));
        bad(c[8], p.rates.errors, perSecond(p.rates.errors));
        return row.tr;
      });
      for (const name of this.rows.keys()) {
        if (!pipelines.some((p) => p.name === name)) this.rows.delete(name);
      }
      if (rows.length !== this.body.children.length || rows.some((tr, i) => this.body.children[i] !== tr)) {
        this.body.replaceChildren(...rows);
      }
    }
  }

  /** A numeric cell: red when non-zero, faint when zero. */
  function bad(td, value, text) {
    setText(td, text);
    const cls = value ? 'n bad' : 'n zero';
    if (td.className !== cls) td.className = cls;
  }

  // ---------------------------------------------------------------------------------------------
  // The deployed bundle and the ones before it.

  class DeploymentPanel {
    constructor() {
      this.current = h('dl', { class: 'kv' });
      this.history = h('ol', { class: 'history' });
      this.el = h('section', { class: 'panel deployment', 'aria-labelledby': 'deployed-h' },
        h('div', { class: 'split' },
          h('div', {}, h('h2', { id: 'deployed-h', text: 'Deployed bundle' }), this.current),
          h('div', {}, h('h2', { class: 'sub', text: 'Promotion history' }), this.history)));
      this.key = null;
    }

    update(overview) {
      const key = JSON.stringify([overview.deployed, overview.history, Math.floor(Date.now() / 30000)]);
      if (key === this.key) return;
      this.key = key;
      const d = overview.deployed;
      if (!d) {
        this.current.replaceChildren(h('dt', { text: 'Bundle' }), h('dd', { text: 'none applied yet' }));
      } else {
        this.current.replaceChildren(
          h('dt', { text: 'Commit' }), h('dd', {}, d.revision ? digestEl(d.revision) : h('span', { class: 'zero', text: 'unknown' })),
          h('dt', { text: 'Bundle digest' }), h('dd', {}, digestEl(d.digest)),
          h('dt', { text: 'Signed by' }), h('dd', {}, h('code', { text: d.signer })),
          h('dt', { text: 'Applied' }), h('dd', { title: d.appliedAt }, when(d.appliedAt), h('span', { class: 'zero', text: ` · ${ago(d.appliedAt)}` })),
          h('dt', { text: 'Source' }), h('dd', {}, d.source ? h('code', { text: d.source }) : h('span', { class: 'zero', text: '–' })));
      }
      const history = overview.history || [];
      if (!history.length) {
        this.history.replaceChildren(h('li', { class: 'note', text: 'No bundle applied before this one.' }));
      } else {
        this.history.replaceChildren(...history.map((b) => h('li', {},
          h('span', {}, 'commit ', b.revision ? h('code', { title: b.revision, text: b.revision.slice(0, 12) }) : '–'),
          h('span', {}, 'bundle ', h('code', { title: b.digest, text: shortDigest(b.digest) })),
          h('span', { class: 'when', title: b.appliedAt, text: `${when(b.appliedAt)} · ${ago(b.appliedAt)}` }))));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // A pipeline's graph: cytoscape lays it out (dagre, left to right) and draws the edges; a DOM
  // card over each node box shows its name, rate and counts.

  /** The view with its nodes unique by name and its edges between them, once each: what the graph
   * can draw (cytoscape refuses a duplicate id or an edge to nowhere). */
  function drawable(view) {
    const names = new Set();
    const nodes = (view.nodes || []).filter((n) => !names.has(n.name) && names.add(n.name));
    const pairs = new Set();
    const edges = (view.edges || []).filter((e) => {
      const key = `${e.from}\u2192${e.to}`;
      return names.has(e.from) && names.has(e.to) && !pairs.has(key) && pairs.add(key);
    });
    return { ...view, nodes, edges };
  }

  function shapeOf(view) {
    return JSON.stringify([
      view.nodes.map((n) => [n.name, n.kind]),
      view.edges.map((e) => [e.from, e.to]),
    ]);
  }

  const GRAPH_STYLE = [
    {
      selector: 'node',
      style: {
        shape: 'round-rectangle',
        width: CARD.w,
        height: CARD.h,
        'background-color': '#ffffff',
        'background-opacity': 0,
        'border-width': 0,
        label: '',
      },
    },
    {
      selector: 'edge',
      style: {
        width: 'data(width)',
        'curve-style': 'taxi',
        'taxi-direction': 'horizontal',
        'taxi-turn': '50%',
        'line-color': '#a7afbf',
        'target-arrow-color': '#a7afbf',
        'target-arrow-shape': 'triangle',
        'arrow-scale': 0.9,
        label: 'data(label)',
        'font-family': 'Arial, "Liberation Sans", sans-serif',
        'font-size': 11,
        'font-weight': 600,
        color: '#5a6376',
        'text-background-color': '#fbfbfd',
        'text-background-opacity': 1,
        'text-background-padding': 2,
        'text-background-shape': 'round-rectangle',
      },
    },
    {
      selector: 'edge[errors > 0]',
      style: { color: '#c0262d', 'line-color': '#e3a3a6', 'target-arrow-color': '#e3a3a6' },
    },
  ];

  class Graph {
    constructor() {
      this.cyEl = h('div', { class: 'cy' });
      this.cardsEl = h('div', { class: 'cards', 'aria-hidden': 'true' });
      this.hint = h('div', { class: 'hint', 'aria-hidden': 'true', hidden: true, text: 'drag sideways for the rest' });
      this.el = h('div', { class: 'graph', role: 'img' }, this.cyEl, this.cardsEl, this.hint);
      this.cy = null;
      this.shape = null;
      this.cards = new Map();
      this.onResize = () => this.fit();
      window.addEventListener('resize', this.onResize);
    }

    destroy() {
      window.removeEventListener('resize', this.onResize);
      if (this.cy) this.cy.destroy();
      if (window.etlGraph === this.cy) window.etlGraph = null;
      this.cy = null;
    }

    update(view) {
      const shape = shapeOf(view);
      if (shape !== this.shape) {
        this.build(view);
        this.shape = shape;
      }
      this.refresh(view);
    }

    build(view) {
      if (this.cy) this.cy.destroy();
      const elements = [
        ...view.nodes.map((n) => ({ group: 'nodes', data: { id: n.name, name: n.name, kind: n.kind } })),
        ...view.edges.map((e) => ({
          group: 'edges',
          data: { id: `${e.from}\u2192${e.to}`, source: e.from, target: e.to, label: '', errors: 0, width: 2 },
        })),
      ];
      this.cy = cytoscape({
        container: this.cyEl,
        elements,
        style: GRAPH_STYLE,
        layout: { name: 'preset' },
        userZoomingEnabled: false,
        userPanningEnabled: true,
        boxSelectionEnabled: false,
        autoungrabify: true,
        autounselectify: true,
        minZoom: 0.3,
        maxZoom: 1,
      });
      this.cy.layout({ name: 'dagre', rankDir: 'LR', nodeSep: 26, rankSep: 130, edgeSep: 14, fit: false }).run();
      window.etlGraph = this.cy;
      this.cards.clear();
      this.cardsEl.replaceChildren(...view.nodes.map((n) => {
        const card = new Card(n);
        this.cards.set(n.name, card);
        return card.el;
      }));
      this.el.setAttribute('aria-label',
        `Graph of ${view.name}: ${view.nodes.length} nodes, ${view.edges.length} edges. The counts are in the tables below.`);
      this.cy.on('viewport', () => this.place());
      this.fit();
    }

    /** Fits the graph to the width, never larger than life, and the box to the graph. */
    fit() {
      if (!this.cy) return;
      const pad = 24;
      const bb = this.cy.elements().boundingBox({ includeLabels: true });
      const width = this.el.clientWidth || 800;
      // Never so small that the cards cannot be read: a wider graph is dragged sideways.
      const zoom = Math.max(0.7, Math.min(1, (width - 2 * pad) / Math.max(1, bb.w)));
      const height = Math.round(Math.min(560, Math.max(180, bb.h * zoom + 2 * pad)));
      if (this.el.style.height !== `${height}px`) this.el.style.height = `${height}px`;
      this.cy.resize();
      this.cy.zoom(zoom);
      this.cy.center();
      const clipped = bb.w * zoom > width - 2 * pad;
      if (clipped) {
        // Too wide: start at the source's end.
        this.cy.pan({ x: pad - bb.x1 * zoom, y: this.cy.pan().y });
      }
      this.hint.hidden = !clipped;
      this.place();
    }

    /** Puts each card over its node box. */
    place() {
      if (!this.cy) return;
      const z = this.cy.zoom();
      this.cy.nodes().forEach((node) => {
        const card = this.cards.get(node.id());
        if (!card) return;
        const p = node.renderedPosition();
        const t = `translate(${(p.x - (CARD.w * z) / 2).toFixed(1)}px, ${(p.y - (CARD.h * z) / 2).toFixed(1)}px) scale(${z.toFixed(4)})`;
        if (card.el.style.transform !== t) card.el.style.transform = t;
      });
    }

    refresh(view) {
      const maxRate = Math.max(1, ...view.edges.map((e) => e.rate || 0));
      this.cy.batch(() => {
        for (const e of view.edges) {
          const edge = this.cy.getElementById(`${e.from}\u2192${e.to}`);
          const label = e.errors ? `${perSecond(e.rate)} · ${short(e.errors)} err` : perSecond(e.rate);
          const width = 1.5 + 2.5 * Math.log1p(e.rate || 0) / Math.log1p(maxRate);
          if (edge.data('label') !== label) edge.data('label', label);
          if (edge.data('errors') !== e.errors) edge.data('errors', e.errors);
          if (Math.abs(edge.data('width') - width) > 0.05) edge.data('width', width);
          edge.data('records', e.records);
          edge.data('rate', e.rate);
        }
        for (const n of view.nodes) {
          const node = this.cy.getElementById(n.name);
          const t = tally(n);
          node.data('counts', t ? { in: t.in, out: t.out, filtered: t.filtered, dead: t.dead, failed: t.failed } : null);
          node.data('rates', n.rates);
        }
      });
      for (const n of view.nodes) {
        const card = this.cards.get(n.name);
        if (card) card.update(n, view);
      }
    }
  }

  class Card {
    constructor(node) {
      this.name = h('div', { class: 'name' }, h('span', { class: 'kindline', text: node.kind === 'step' ? 'step' : `${node.connector || ''} ${node.kind}`.trim() }), node.name);
      this.rate = h('div', { class: 'rate' });
      this.line1 = h('div', { class: 'counts' });
      this.line2 = h('div', { class: 'counts' });
      this.el = h('div', { class: `card ${node.kind}` }, this.name, this.rate, this.line1, this.line2);
      this.key = null;
    }

    update(node, view) {
      const t = tally(node);
      let key;
      let build;
      if (node.kind === 'source' && !t) {
        const out = view.edges.filter((e) => e.from === node.name);
        const rate = out.reduce((a, e) => a + (e.rate || 0), 0);
        // Fan-out sends each record down every edge: the busiest edge counts the records.
        const records = out.reduce((a, e) => Math.max(a, e.records || 0), 0);
        key = `s${rate}/${records}`;
        build = () => {
          this.rate.replaceChildren(h('b', { text: perSecond(rate) }), ' out');
          this.line1.replaceChildren(h('span', {}, 'sent ', h('span', { class: 'v', text: short(records) })));
          this.line2.replaceChildren();
        };
      } else if (!t) {
        key = 'none';
        build = () => {
          this.rate.replaceChildren(h('span', { class: 'quiet', text: 'no reports yet' }));
          this.line1.replaceChildren();
          this.line2.replaceChildren();
        };
      } else {
        const r = node.rates || {};
        key = JSON.stringify([r, t.in, t.out, t.filtered, t.dead, t.failed]);
        build = () => {
          this.rate.replaceChildren(h('b', { text: perSecond(r.in) }), ' in · ', h('b', { text: perSecond(r.out) }), ' out');
          this.line1.replaceChildren(
            h('span', {}, 'in ', h('span', { class: 'v', text: short(t.in) })),
            h('span', {}, 'out ', h('span', { class: 'v', text: short(t.out) })),
            h('span', {}, 'filtered ', h('span', { class: 'v', text: short(t.filtered) })));
          put(this.line2,
            h('span', { class: t.dead ? 'bad' : '' }, 'dead ', h('span', { class: 'v', text: short(t.dead) })),
            h('span', { class: t.failed ? 'bad' : '' }, 'failed ', h('span', { class: 'v', text: short(t.failed) })),
            r.errors ? h('span', { class: 'bad' }, 'errors ', h('span', { class: 'v', text: perSecond(r.errors) })) : null);
        };
      }
      if (key === this.key) return;
      this.key = key;
      build();
      const errors = t && (t.dead || t.failed);
      this.el.classList.toggle('has-errors', !!errors);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The counts as tables: what screen readers read, and what the browser test checks.

  const NODE_COLUMNS = [
    ['In/s', 'n'], ['Out/s', 'n'], ['Errors/s', 'n'], ['In', 'n'], ['Out', 'n'], ['Filtered', 'n'],
    ['Dead-lettered', 'n'], ['Failed', 'n'], ['Retries', 'n'], ['Avg time', 'n'],
  ];

  class CountsTables {
    constructor() {
      this.nodesBody = h('tbody');
      this.edgesBody = h('tbody');
      this.el = h('div', {},
        h('div', { class: 'scroll' }, h('table', { class: 'counts', 'aria-label': 'Counts per node' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Node' }),
            h('th', { scope: 'col', text: 'Kind' }),
            NODE_COLUMNS.map(([label, cls]) => h('th', { scope: 'col', class: cls, text: label })))),
          this.nodesBody)),
        h('div', { class: 'scroll gap' }, h('table', { class: 'edges', 'aria-label': 'Records per edge' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Edge' }),
            h('th', { scope: 'col', class: 'n', text: 'Records' }),
            h('th', { scope: 'col', class: 'n', text: 'Errors' }),
            h('th', { scope: 'col', class: 'n', text: 'Rate' }))),
          this.edgesBody)));
      this.shape = null;
    }

    update(view) {
      const shape = shapeOf(view);
      if (shape !== this.shape) {
        this.shape = shape;
        this.nodeRows = view.nodes.map((n) => {
          const cells = NODE_COLUMNS.map(([, cls]) => h('td', { class: cls }));
          const tr = h('tr', { 'data-node': n.name, 'data-kind': n.kind },
            h('th', { scope: 'row', text: n.name }),
            h('td', {}, h('span', { class: `kind ${n.kind}`, text: n.connector ? `${n.connector} ${n.kind}` : n.kind })),
            cells);
          return { tr, cells };
        });
        this.nodesBody.replaceChildren(...this.nodeRows.map((r) => r.tr));
        this.edgeRows = view.edges.map((e) => {
          const cells = [h('td', { class: 'n' }), h('td', { class: 'n' }), h('td', { class: 'n' })];
          const tr = h('tr', { 'data-edge': `${e.from}\u2192${e.to}`, 'data-from': e.from, 'data-to': e.to },
            h('th', { scope: 'row' }, e.from, h('span', { class: 'sep', 'aria-label': ' to ', text: ' → ' }), e.to),
            cells);
          return { tr, cells };
        });
        this.edgesBody.replaceChildren(...this.edgeRows.map((r) => r.tr));
      }
      view.nodes.forEach((n, i) => {
        const { tr, cells } = this.nodeRows[i];
        const t = tally(n);
        const r = n.rates || { in: 0, out: 0, errors: 0 };
        setAttr(tr, 'data-reported', t ? 'true' : 'false');
        for (const k of ['in', 'out', 'produced', 'filtered', 'dead', 'failed', 'batches', 'retries']) {
          setAttr(tr, `data-${k}`, t ? t[k] : null);
        }
        setAttr(tr, 'data-rate-in', r.in);
        setAttr(tr, 'data-rate-out', r.out);
        setAttr(tr, 'data-rate-errors', r.errors);
        const dash = n.kind === 'source' ? '–' : 'no reports yet';
        if (n.kind === 'source' && !t) {
          // A source does not report: what it sends is what its edges carry.
          const sent = view.edges.filter((e) => e.from === n.name).reduce((a, e) => a + (e.rate || 0), 0);
          setText(cells[0], '–');
          setText(cells[1], perSecond(sent));
          setText(cells[2], '–');
          cells[2].className = 'n zero';
        } else {
          setText(cells[0], perSecond(r.in));
          setText(cells[1], perSecond(r.out));
          bad(cells[2], r.errors, perSecond(r.errors));
        }
        if (!t) {
          cells.slice(3).forEach((c, j) => {
            setText(c, j === 0 ? dash : '');
            c.className = 'n zero';
          });
          return;
        }
        setText(cells[3], count(t.in));
        setText(cells[4], count(t.out));
        setText(cells[5], count(t.filtered));
        bad(cells[6], t.dead, count(t.dead));
        setAttr(cells[6], 'title', t.dead ? Object.entries(t.deadByClass).map(([k, v]) => `${k}: ${count(v)}`).join(', ') : null);
        bad(cells[7], t.failed, count(t.failed));
        setAttr(cells[7], 'title', t.failed ? Object.entries(t.failedBy).map(([k, v]) => `${k}: ${count(v)}`).join(', ') : null);
        setText(cells[8], t.retries ? `${count(t.retries)} (${count(t.transient)} transient)` : '0');
        setText(cells[9], seconds(t.avg));
      });
      view.edges.forEach((e, i) => {
        const { tr, cells } = this.edgeRows[i];
        setAttr(tr, 'data-records', e.records);
        setAttr(tr, 'data-errors', e.errors);
        setAttr(tr, 'data-rate', e.rate);
        setText(cells[0], count(e.records));
        bad(cells[1], e.errors, count(e.errors));
        setText(cells[2], perSecond(e.rate));
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Per-node charts of records in, out and errors per second.

  class Charts {
    constructor() {
      this.el = h('div', { class: 'charts' });
      this.shape = null;
      this.charts = new Map();
      this.resize = new ResizeObserver(() => this.fit());
      this.resize.observe(this.el);
    }

    destroy() {
      this.resize.disconnect();
      for (const c of this.charts.values()) if (c.plot) c.plot.destroy();
      this.charts.clear();
    }

    update(view) {
      const nodes = view.nodes.filter((n) => n.kind !== 'source');
      const shape = JSON.stringify(nodes.map((n) => n.name));
      if (shape !== this.shape) {
        this.shape = shape;
        this.destroy();
        this.resize = new ResizeObserver(() => this.fit());
        this.resize.observe(this.el);
        this.el.replaceChildren(...nodes.map((n) => {
          const plot = h('div', { class: 'plot' });
          const box = h('figure', { class: 'chart', 'data-chart': n.name },
            h('h3', {}, n.name, h('span', { class: `kind ${n.kind}`, text: n.kind })), plot);
          this.charts.set(n.name, { box, plotEl: plot, plot: null, empty: null });
          return box;
        }));
        if (!nodes.length) this.el.replaceChildren(h('p', { class: 'note', text: 'No steps or sinks.' }));
      }
      for (const n of nodes) this.draw(this.charts.get(n.name), n);
    }

    draw(chart, node) {
      const series = node.series || [];
      if (!series.length) {
        if (chart.plot) {
          chart.plot.destroy();
          chart.plot = null;
        }
        if (!chart.empty) {
          chart.empty = h('div', { class: 'quiet', text: node.counters ? 'no samples yet' : 'no reports yet' });
          chart.plotEl.replaceChildren(chart.empty);
        }
        return;
      }
      const data = [
        series.map((s) => s.t),
        series.map((s) => s.in),
        series.map((s) => s.out),
        series.map((s) => s.errors),
      ];
      if (chart.plot) {
        chart.plot.setData(data);
        return;
      }
      chart.empty = null;
      chart.plotEl.replaceChildren();
      const axis = {
        stroke: '#5a6376',
        font: '11px Arial, "Liberation Sans", sans-serif',
        grid: { stroke: '#eef0f4', width: 1 },
        ticks: { stroke: '#e1e4ea', width: 1, size: 4 },
      };
      chart.plot = new uPlot({
        width: Math.max(200, chart.plotEl.clientWidth || 300),
        height: 130,
        cursor: { drag: { x: false, y: false } },
        legend: { show: false },
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
        axes: [
          { ...axis, space: 70, values: (u, vals) => vals.map((v) => clock(v * 1000)) },
          { ...axis, size: 48, values: (u, vals) => vals.map((v) => (v == null ? '' : perSecond(v).replace('/s', ''))) },
        ],
        series: [
          { value: (u, v) => (v == null ? '' : clock(v * 1000)) },
          { label: 'in/s', stroke: COLORS.in, width: 1.6, fill: 'rgba(36,89,200,0.07)', value: (u, v) => (v == null ? '–' : perSecond(v)) },
          { label: 'out/s', stroke: COLORS.out, width: 1.6, dash: [5, 3], value: (u, v) => (v == null ? '–' : perSecond(v)) },
          { label: 'errors/s', stroke: COLORS.errors, width: 1.6, value: (u, v) => (v == null ? '–' : perSecond(v)) },
        ],
      }, data, chart.plotEl);
    }

    fit() {
      for (const c of this.charts.values()) {
        if (!c.plot) continue;
        const w = Math.max(200, c.plotEl.clientWidth);
        if (Math.abs(c.plot.width - w) > 1) c.plot.setSize({ width: w, height: 130 });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Recent dead letters, and replaying them.

  class DeadLetters {
    constructor(pipeline, onFilter) {
      this.pipeline = pipeline;
      this.step = '';
      this.stepSelect = h('select', { 'aria-label': 'Step', onchange: () => { this.step = this.stepSelect.value; onFilter(); } },
        h('option', { value: '', text: 'all steps' }));
      const saved = (() => { try { return localStorage.getItem('etl.actor') || ''; } catch (_) { return ''; } })();
      this.actor = h('input', {
        type: 'text', placeholder: 'dashboard', value: saved, size: 16, autocomplete: 'username',
        'aria-describedby': 'actor-help',
        onchange: () => { try { localStorage.setItem('etl.actor', this.actor.value.trim()); } catch (_) { /* private mode */ } },
      });
      this.summary = h('span', { class: 'note' });
      this.body = h('tbody');
      this.rows = new Map();
      this.el = h('div', {},
        h('div', { class: 'dl-tools' },
          h('label', {}, 'Step', this.stepSelect),
          h('label', {}, 'Replay as', this.actor),
          h('span', { id: 'actor-help', class: 'note', text: 'your name goes into the replay\u2019s audit record' }),
          this.summary),
        h('div', { class: 'scroll' }, h('table', { class: 'dl', 'aria-label': 'Recent dead letters' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'When' }),
            h('th', { scope: 'col', text: 'Step' }),
            h('th', { scope: 'col', text: 'Class' }),
            h('th', { scope: 'col', text: 'Reason' }),
            h('th', { scope: 'col', text: 'Record (preview)' }),
            h('th', { scope: 'col', class: 'n', text: 'Replay' }))),
          this.body)));
      this.stepsKey = null;
    }

    query() {
      const q = new URLSearchParams({ pipeline: this.pipeline, limit: String(DEAD_LETTER_LIMIT) });
      if (this.step) q.set('step', this.step);
      return `dead-letters?${q}`;
    }

    update(view, letters, kept) {
      const steps = view.nodes.filter((n) => n.kind === 'step').map((n) => n.name);
      const stepsKey = steps.join('\n');
      if (stepsKey !== this.stepsKey) {
        this.stepsKey = stepsKey;
        this.stepSelect.replaceChildren(h('option', { value: '', text: 'all steps' }), ...steps.map((s) => h('option', { value: s, text: s })));
        this.stepSelect.value = steps.includes(this.step) ? this.step : '';
      }
      const list = Array.isArray(letters) ? letters : (letters && letters.deadLetters) || [];
      setText(this.summary, list.length
        ? `newest ${count(list.length)}${kept != null ? ` of ${count(kept)} kept` : ''}`
        : '');
      if (!list.length) {
        this.rows.clear();
        const text = this.step ? `No dead letters kept for ${this.step}.` : 'No dead letters kept for this pipeline.';
        if (this.body.dataset.empty !== text) {
          this.body.dataset.empty = text;
          this.body.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'empty', text })));
        }
        return;
      }
      delete this.body.dataset.empty;
      const trs = list.map((d) => {
        let row = this.rows.get(d.id);
        if (!row) {
          row = this.row(d);
          this.rows.set(d.id, row);
        }
        setText(row.when, ago(d.at));
        return row.tr;
      });
      const ids = new Set(list.map((d) => d.id));
      for (const id of this.rows.keys()) if (!ids.has(id)) this.rows.delete(id);
      if (trs.length !== this.body.children.length || trs.some((tr, i) => this.body.children[i] !== tr)) {
        this.body.replaceChildren(...trs);
      }
    }

    row(d) {
      const whenEl = h('span');
      const button = h('button', { type: 'button', 'data-replay': d.id, text: 'Replay' });
      const outcome = h('div', { class: 'outcome', role: 'status' });
      button.addEventListener('click', () => this.replay(d, button, outcome));
      const more = h('details', { class: 'more' },
        h('summary', { text: 'details' }),
        h('dl', { class: 'kv' },
          h('dt', { text: 'id' }), h('dd', {}, h('code', { text: d.id })),
          h('dt', { text: 'size' }), h('dd', { text: `${count(d.size)} bytes` }),
          h('dt', { text: 'input' }), h('dd', {}, digestEl(d.inputDigest)),
          h('dt', { text: 'key' }), h('dd', {}, d.key != null ? h('code', { text: d.key }) : '–'),
          h('dt', { text: 'headers' }), h('dd', {}, (d.headers || []).length
            ? (d.headers || []).map(([k, v]) => h('div', {}, h('code', { text: `${k}: ${v}` })))
            : '–')));
      const tr = h('tr', { 'data-dead-letter': d.id, 'data-step': d.step, 'data-class': d.class },
        h('td', { class: 'when', title: `${when(d.at)} (${d.at})` }, whenEl),
        h('td', { text: d.step }),
        h('td', {}, h('span', { class: 'chip', text: d.class })),
        h('td', { class: 'reason', text: d.reason }),
        h('td', {},
          h('pre', { class: 'preview', text: d.preview }),
          d.truncated ? h('span', { class: 'cut', text: `cut short · ${count(d.size)} bytes in all` }) : null,
          more),
        h('td', { class: 'n' }, button, outcome));
      return { tr, when: whenEl };
    }

    async replay(d, button, outcome) {
      const actor = this.actor.value.trim() || 'dashboard';
      button.disabled = true;
      outcome.className = 'outcome';
      setText(outcome, 'replaying…');
      try {
        const result = await api('dead-letters/replay', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-etl-csrf': '1' },
          body: JSON.stringify({ ids: [d.id], actor }),
        });
        const sent = (result.replayed || []).find(([id]) => id === d.id);
        if (sent) {
          setText(outcome, `replayed to ${sent[1]}`);
        } else {
          outcome.className = 'outcome bad';
          setText(outcome, (result.missing || []).includes(d.id) ? 'no longer kept' : 'not replayed');
        }
      } catch (e) {
        if (e instanceof SignedOut) {
          signedOut();
          return;
        }
        outcome.className = 'outcome bad';
        setText(outcome, `replay failed: ${e.message}`);
      } finally {
        button.disabled = false;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Components, artifacts and capability grants.

  class Components {
    constructor() {
      this.body = h('tbody');
      this.el = h('div', { class: 'scroll' }, h('table', { class: 'components', 'aria-label': 'Components and capability grants' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Node' }),
          h('th', { scope: 'col', text: 'Component' }),
          h('th', { scope: 'col', text: 'Artifact' }),
          h('th', { scope: 'col', text: 'Capability grants' }))),
        this.body));
      this.key = null;
    }

    update(view) {
      const key = JSON.stringify(view.nodes.map((n) => [n.name, n.kind, n.component, n.artifact, n.grants]));
      if (key === this.key) return;
      this.key = key;
      this.body.replaceChildren(...view.nodes.filter((n) => n.kind !== 'source').map((n) => h('tr', { 'data-grants': n.name },
        h('th', { scope: 'row' }, n.name, ' ', h('span', { class: `kind ${n.kind}`, text: n.kind })),
        h('td', {}, digestEl(n.component)),
        h('td', {}, digestEl(n.artifact)),
        h('td', {}, n.kind !== 'step'
          ? h('span', { class: 'zero', text: '–' })
          : (n.grants || []).length
            ? n.grants.map((g) => h('span', { class: 'chip', text: g }))
            : h('span', { class: 'zero', text: 'none beyond the contract' })))));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // A pipeline's page.

  class PipelinePage {
    constructor(root, name, refreshNow) {
      this.name = name;
      this.title = h('h1', { text: name });
      this.facts = h('div', { class: 'facts' });
      this.notice = h('p', { class: 'note', hidden: true });
      this.graph = new Graph();
      this.counts = new CountsTables();
      this.charts = new Charts();
      this.letters = new DeadLetters(name, refreshNow);
      this.components = new Components();
      this.deployment = new DeploymentPanel();
      this.legend = h('span', { class: 'aside legend' },
        h('span', {}, 'cards: rate, then counts since the controller began counting'),
        h('span', {}, 'edges: records/s from → to, errors in red'));
      const section = (id, title, aside, ...body) => h('section', { class: 'panel', 'aria-labelledby': id },
        h('h2', { id }, title, aside), ...body);
      this.root = root;
      this.missing = h('section', { class: 'panel', hidden: true });
      this.content = h('div', {},
        section('graph-h', 'Graph', this.legend, this.notice, this.graph.el),
        section('counts-h', 'Counts', null, this.counts.el),
        section('rates-h', 'Records per second', h('span', { class: 'aside legend' },
          h('span', { class: 'c-in', text: '— in' }), h('span', { class: 'c-out', text: '-- out' }),
          h('span', { class: 'c-errors', text: '— errors' })), this.charts.el),
        section('dl-h', 'Dead letters', null, this.letters.el),
        section('grants-h', 'Components and capability grants', null, this.components.el),
        this.deployment.el);
      root.replaceChildren(h('div', { class: 'head' }, this.title, this.facts), this.missing, this.content);
    }

    destroy() {
      this.graph.destroy();
      this.charts.destroy();
    }

    deadLetterQuery() {
      return this.letters.query();
    }

    notFound() {
      this.content.hidden = true;
      this.missing.hidden = false;
      this.missing.replaceChildren(h('div', { class: 'empty', 'data-empty': 'pipeline' },
        h('strong', { text: `No pipeline named ${this.name} runs in this environment.` }),
        h('a', { href: '#/', text: 'All pipelines' })));
    }

    update(overview, view, letters) {
      this.content.hidden = false;
      this.missing.hidden = true;
      const summary = (overview.pipelines || []).find((p) => p.name === view.name);
      put(this.facts,
        h('span', {}, 'state ', pill(view.state)),
        view.version ? h('span', {}, 'version ', h('b', { text: view.version })) : null,
        summary ? h('span', {}, 'in ', h('b', { text: count(summary.recordsIn) }), ' · out ', h('b', { text: count(summary.recordsOut) })) : null,
        summary ? h('span', { class: summary.deadLettered || summary.failed ? 'bad-text' : '' },
          'dead-lettered ', h('b', { text: count(summary.deadLettered) }), ' · failed ', h('b', { text: count(summary.failed) })) : null);
      const reporting = view.nodes.some((n) => n.kind !== 'source' && n.counters);
      this.notice.hidden = reporting;
      setText(this.notice, reporting ? '' : 'No reports yet: the counts appear once the steps and sinks have processed their first batch.');
      this.graph.update(view);
      this.counts.update(view);
      this.charts.update(view);
      this.letters.update(view, letters, summary ? summary.deadLettersKept : null);
      this.components.update(view);
      this.deployment.update(overview);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Routing and the refresh loop.

  let page = null;
  let route = null;
  let generation = 0;
  let timer = null;
  let signedOutNow = false;

  function routeOf(hash) {
    const m = /^#\/pipelines\/(.+)$/.exec(hash);
    return m ? { pipeline: decodeURIComponent(m[1]) } : { pipeline: null };
  }

  function navigate() {
    if (signedOutNow) return;
    const next = routeOf(location.hash);
    if (route && next.pipeline === route.pipeline) return;
    route = next;
    generation += 1;
    clearTimeout(timer);
    if (page && page.destroy) page.destroy();
    page = route.pipeline
      ? new PipelinePage($main, route.pipeline, refreshNow)
      : new OverviewPage($main);
    window.scrollTo(0, 0);
    tick(generation);
  }

  function refreshNow() {
    generation += 1;
    clearTimeout(timer);
    tick(generation);
  }

  async function load() {
    if (!route.pipeline) return { overview: await api('overview') };
    const [overview, view, letters] = await Promise.all([
      api('overview'),
      api(`pipelines/${encodeURIComponent(route.pipeline)}`).then(drawable, (e) => {
        if (e instanceof NotFound) return null;
        throw e;
      }),
      api(page.deadLetterQuery()).catch((e) => {
        if (e instanceof SignedOut) throw e;
        return [];
      }),
    ]);
    return { overview, view, letters };
  }

  async function tick(gen) {
    if (gen !== generation) return;
    if (document.hidden) {
      timer = setTimeout(() => tick(gen), REFRESH_MS);
      return;
    }
    try {
      const { overview, view, letters } = await load();
      if (gen !== generation) return;
      crumbs(overview, route.pipeline);
      if (route.pipeline) {
        if (view) page.update(overview, view, letters);
        else page.notFound();
      } else {
        page.update(overview);
      }
      lastUpdate = Date.now();
      banner();
      live('', `Live · updated ${clock(lastUpdate)}`);
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof SignedOut) {
        signedOut();
        return;
      }
      console.warn('dashboard refresh:', e);
      live('stale', lastUpdate ? `Reconnecting · last update ${clock(lastUpdate)}` : 'Cannot reach the controller · retrying');
    }
    if (gen === generation) timer = setTimeout(() => tick(gen), REFRESH_MS);
  }

  function signedOut() {
    signedOutNow = true;
    generation += 1;
    clearTimeout(timer);
    live('off', 'Signed out');
    banner('bad', 'Your session has expired or was signed out. ', h('a', { href: '/', 'data-sign-in': '', text: 'Sign in again' }), '.');
  }

  window.addEventListener('hashchange', () => {
    // `#main` (the skip link) and the like are not routes.
    if (location.hash === '' || location.hash.startsWith('#/')) navigate();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && !signedOutNow && route) refreshNow();
  });
  if (typeof cytoscape !== 'function' || typeof uPlot !== 'function') {
    banner('bad', 'The dashboard\u2019s libraries did not load. Reload the page.');
    return;
  }
  navigate();
})();

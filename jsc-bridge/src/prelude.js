// The Marg JS prelude: evaluated once per VM, before the app.
//
// It owns everything JS-side: the `Marg` object (routing, middleware), the `req`/`res`
// objects, timers, `console`, `require`, and polyfills for the web APIs that a bare
// JavaScriptCore lacks (TextEncoder/TextDecoder, URL/URLSearchParams, structuredClone,
// performance). The Rust side (engine.rs) calls the returned `tick(...)` once per
// event-loop tick with every request of that tick; numbers travel through the shared
// Float64Array (slots SH_* below, mirrored in engine.rs), so they cost no API calls.
// `req`/`res` are plain objects of a fixed shape (fast property access in JSC); headers and
// the peer address come from Rust only when first read.
(function (native, shared, dev) {
  'use strict';
  const G = globalThis;
  const nativeRespond = native.respond;
  const nativeFlush = native.flush;
  const nativeHeaders = native.headers;
  const nativeIp = native.ip;
  const now = native.now;
  const nativeLog = native.log;
  const utf8Decode = native.utf8Decode;
  const utf8Encode = native.utf8Encode;

  // Shared-memory slots (engine.rs SH_*).
  const SH_CURRENT = 0;        // id of the request whose handler runs (-1 timer, -2 microtasks)
  const SH_NEXT_TIMER = 1;     // next timer deadline, ms since VM start (Infinity: none)
  const SH_RESUME = 2;         // next batch index to dispatch (resume after a stop)
  const SH_PORT = 3;           // the port given to Marg.listen
  const SH_AWAITING = 4;       // requests waiting on a handler's promise ...
  const SH_AWAITING_ID = 5;    // ... and one of them (*the* one when the count is 1)
  const SH_RESP_ID = 6;        // respond(): request id, status, Content-Type code
  const SH_RESP_STATUS = 7;
  const SH_RESP_CTYPE = 8;
  const SH_BATCH_LEN = 9;      // requests in this batch
  const SH_RESUME_OFFSET = 10; // offset into the targets string at SH_RESUME
  const SH_OUT_COUNT = 11;     // responses queued for flush()
  const SH_NOW = 12;           // the tick's time, ms since VM start
  const SH_BATCH = 16;         // per request: id, method code, method length, target length, flags
  const BATCH_CAP = 512;
  // Queued responses: id, status, Content-Type code, header-lines length, body length.
  const SH_OUT = SH_BATCH + BATCH_CAP * 5;
  const OUT_CAP = 512;

  // ---------------------------------------------------------------- console

  function formatStack(e) {
    const head = (e && e.name ? e.name : 'Error') + (e && e.message ? ': ' + e.message : '');
    const stack = e && typeof e.stack === 'string' ? e.stack : '';
    if (!stack) return head;
    if (stack.startsWith(head)) return stack; // already V8-style
    const frames = stack.split('\n').filter((l) => l && !l.includes('marg:prelude.js'));
    return head + frames.map((l) => {
      const at = l.indexOf('@');
      if (at < 0) return '\n    at ' + l;
      const fn = l.slice(0, at);
      return '\n    at ' + (fn ? fn + ' (' + l.slice(at + 1) + ')' : l.slice(at + 1));
    }).join('');
  }

  const IDENT = /^[A-Za-z_$][\w$]*$/;

  function inspect(v, depth, seen, top) {
    switch (typeof v) {
      case 'string': return top ? v : JSON.stringify(v).replace(/^"|"$/g, "'");
      case 'number': return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint': return v + 'n';
      case 'undefined': return 'undefined';
      case 'boolean': return String(v);
      case 'symbol': return v.toString();
      case 'function': {
        const src = Function.prototype.toString.call(v);
        if (src.startsWith('class')) return '[class ' + (v.name || '(anonymous)') + ']';
        return '[Function: ' + (v.name || '(anonymous)') + ']';
      }
    }
    if (v === null) return 'null';
    if (seen.includes(v)) return '[Circular]';
    if (v instanceof Error) return formatStack(v);
    if (v instanceof Date) return isNaN(v) ? 'Invalid Date' : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (v instanceof Promise) return 'Promise {}';
    if (v instanceof ArrayBuffer) return 'ArrayBuffer { byteLength: ' + v.byteLength + ' }';
    if (depth < 0) return Array.isArray(v) ? '[Array]' : '[Object]';
    seen.push(v);
    let out;
    if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
      const items = [];
      const n = Math.min(v.length, 100);
      for (let i = 0; i < n; i++) items.push(inspect(v[i], depth - 1, seen, false));
      if (v.length > n) items.push('... ' + (v.length - n) + ' more items');
      const prefix = Array.isArray(v) ? '' : v.constructor.name + '(' + v.length + ') ';
      out = prefix + (items.length ? '[ ' + items.join(', ') + ' ]' : '[]');
    } else if (v instanceof Map) {
      const items = [];
      for (const [k, x] of v) items.push(inspect(k, depth - 1, seen, false) + ' => ' + inspect(x, depth - 1, seen, false));
      out = 'Map(' + v.size + ') {' + (items.length ? ' ' + items.join(', ') + ' ' : '') + '}';
    } else if (v instanceof Set) {
      const items = [];
      for (const x of v) items.push(inspect(x, depth - 1, seen, false));
      out = 'Set(' + v.size + ') {' + (items.length ? ' ' + items.join(', ') + ' ' : '') + '}';
    } else {
      const keys = Object.keys(v);
      const items = keys.map((k) => (IDENT.test(k) ? k : JSON.stringify(k).replace(/^"|"$/g, "'")) + ': ' + inspect(v[k], depth - 1, seen, false));
      const proto = Object.getPrototypeOf(v);
      const name = proto === null ? '[Object: null prototype] ' : proto !== Object.prototype && proto.constructor && proto.constructor.name ? proto.constructor.name + ' ' : '';
      out = name + (items.length ? '{ ' + items.join(', ') + ' }' : '{}');
    }
    seen.pop();
    return out;
  }

  function format(args) {
    let first = args[0];
    let rest = 1;
    let out;
    if (typeof first === 'string' && first.includes('%')) {
      out = first.replace(/%[sdifjoOc%]/g, (m) => {
        if (m === '%%') return '%';
        if (rest >= args.length) return m;
        const a = args[rest++];
        switch (m) {
          case '%s': return typeof a === 'string' ? a : inspect(a, 1, [], false);
          case '%d': case '%i': return String(m === '%i' ? parseInt(a) : Number(a));
          case '%f': return String(parseFloat(a));
          case '%j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
          case '%c': return '';
          default: return inspect(a, 4, [], false);
        }
      });
    } else {
      out = inspect(first, 2, [], true);
    }
    for (let i = rest; i < args.length; i++) out += ' ' + inspect(args[i], 2, [], true);
    return out;
  }

  const counts = new Map();
  const timeLabels = new Map();
  const consoleObj = {
    log: (...a) => nativeLog(1, format(a)),
    info: (...a) => nativeLog(1, format(a)),
    debug: (...a) => nativeLog(1, format(a)),
    warn: (...a) => nativeLog(2, format(a)),
    error: (...a) => nativeLog(3, format(a)),
    trace: (...a) => nativeLog(1, 'Trace: ' + format(a) + '\n' + formatStack(new Error()).split('\n').slice(2).join('\n')),
    dir: (v) => nativeLog(1, inspect(v, 2, [], false)),
    assert: (c, ...a) => { if (!c) nativeLog(3, 'Assertion failed' + (a.length ? ': ' + format(a) : '')); },
    count: (l = 'default') => { const n = (counts.get(l) || 0) + 1; counts.set(l, n); nativeLog(1, l + ': ' + n); },
    time: (l = 'default') => { timeLabels.set(l, now()); },
    timeEnd: (l = 'default') => { const t = timeLabels.get(l); if (t !== undefined) { timeLabels.delete(l); nativeLog(1, l + ': ' + (now() - t).toFixed(3) + 'ms'); } },
  };
  consoleObj.timeLog = (l = 'default') => { const t = timeLabels.get(l); if (t !== undefined) nativeLog(1, l + ': ' + (now() - t).toFixed(3) + 'ms'); };
  Object.defineProperty(G, 'console', { value: consoleObj, writable: true, configurable: true, enumerable: false });

  // ---------------------------------------------------------------- timers

  // A binary min-heap on (when, seq); cleared timers are dropped lazily.
  const heap = [];
  const live = new Map();
  let timerSeq = 0;

  function less(a, b) { return a.when < b.when || (a.when === b.when && a.seq < b.seq); }
  function heapPush(t) {
    heap.push(t);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i], heap[p])) break;
      const x = heap[i]; heap[i] = heap[p]; heap[p] = x; i = p;
    }
  }
  function heapPop() {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l], heap[m])) m = l;
        if (r < heap.length && less(heap[r], heap[m])) m = r;
        if (m === i) break;
        const x = heap[i]; heap[i] = heap[m]; heap[m] = x; i = m;
      }
    }
    return top;
  }
  function publishNext() {
    while (heap.length > 0 && live.get(heap[0].id) !== heap[0]) heapPop();
    shared[SH_NEXT_TIMER] = heap.length > 0 ? heap[0].when : Infinity;
  }

  class Timeout {
    constructor(id, fn, ms, args, repeat) {
      this.id = id; this.fn = fn; this.ms = ms; this.args = args; this.repeat = repeat;
      this.when = now() + ms; this.seq = ++timerSeq;
    }
    ref() { return this; }
    unref() { return this; }
    hasRef() { return true; }
    refresh() { if (live.get(this.id) === this) { this.when = now() + this.ms; this.seq = ++timerSeq; heapPush(this); publishNext(); } return this; }
    [Symbol.toPrimitive]() { return this.id; }
  }

  function schedule(fn, ms, args, repeat) {
    if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be a function');
    ms = Number(ms);
    if (!(ms >= 1 && ms <= 2147483647)) ms = 1;
    const t = new Timeout(timerSeq + 1, fn, ms, args, repeat);
    t.id = t.seq;
    live.set(t.id, t);
    heapPush(t);
    if (t.when < shared[SH_NEXT_TIMER]) shared[SH_NEXT_TIMER] = t.when;
    return t;
  }
  function clear(t) {
    if (t === undefined || t === null) return;
    const id = typeof t === 'object' ? t.id : Number(t);
    live.delete(id);
  }

  function runTimers(nowMs) {
    while (heap.length > 0 && heap[0].when <= nowMs) {
      const t = heapPop();
      if (live.get(t.id) !== t) continue;
      if (t.repeat) {
        t.when = Math.max(nowMs, t.when + t.ms);
        t.seq = ++timerSeq;
        heapPush(t);
      } else {
        live.delete(t.id);
      }
      shared[SH_CURRENT] = -1;
      try {
        t.fn.apply(undefined, t.args);
      } catch (e) {
        consoleObj.error('Uncaught exception in a timer callback:', e);
      }
    }
    publishNext();
  }

  G.setTimeout = (fn, ms, ...args) => schedule(fn, ms, args, false);
  G.setInterval = (fn, ms, ...args) => schedule(fn, ms, args, true);
  G.clearTimeout = clear;
  G.clearInterval = clear;
  G.setImmediate = (fn, ...args) => schedule(fn, 0, args, false);
  G.clearImmediate = clear;

  if (typeof G.queueMicrotask !== 'function') {
    G.queueMicrotask = (fn) => {
      if (typeof fn !== 'function') throw new TypeError('queueMicrotask: argument must be a function');
      Promise.resolve().then(() => {
        try { fn(); } catch (e) { consoleObj.error('Uncaught exception in a microtask:', e); }
      });
    };
  }

  if (typeof G.performance !== 'object' || G.performance === null || typeof G.performance.now !== 'function') {
    const origin = Date.now() - now();
    G.performance = { now, timeOrigin: origin, toJSON() { return { timeOrigin: origin }; } };
  }

  G.global = G;
  if (typeof G.process !== 'object') {
    let env;
    G.process = {
      get env() {
        if (env === undefined) {
          env = {};
          for (const e of native.env().split('\0')) {
            const i = e.indexOf('=');
            if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
          }
        }
        return env;
      },
      set env(v) { env = v; },
      argv: ['marg'],
      platform: 'linux',
      version: 'v0.0.0-marg',
      versions: {},
      nextTick: (fn, ...args) => G.queueMicrotask(() => fn(...args)),
      hrtime: Object.assign((prev) => {
        const t = now() * 1e6;
        let s = Math.floor(t / 1e9), ns = Math.floor(t % 1e9);
        if (prev) { s -= prev[0]; ns -= prev[1]; if (ns < 0) { s--; ns += 1e9; } }
        return [s, ns];
      }, { bigint: () => BigInt(Math.floor(now() * 1e6)) }),
    };
  }

  // ---------------------------------------------------------------- encoding

  if (typeof G.TextEncoder !== 'function') {
    G.TextEncoder = class TextEncoder {
      get encoding() { return 'utf-8'; }
      encode(s = '') { return utf8Encode(String(s)); }
      encodeInto(s, dest) {
        s = String(s);
        let read = 0, written = 0;
        for (const ch of s) {
          const bytes = utf8Encode(ch);
          if (written + bytes.length > dest.length) break;
          dest.set(bytes, written);
          written += bytes.length;
          read += ch.length;
        }
        return { read, written };
      }
    };
  }
  if (typeof G.TextDecoder !== 'function') {
    G.TextDecoder = class TextDecoder {
      constructor(label = 'utf-8', options = {}) {
        const l = String(label).trim().toLowerCase();
        if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') {
          throw new RangeError('TextDecoder: only utf-8 is supported, not "' + label + '"');
        }
        this.fatal = !!(options && options.fatal);
        this.ignoreBOM = !!(options && options.ignoreBOM);
      }
      get encoding() { return 'utf-8'; }
      decode(input) {
        if (input === undefined || input === null) return '';
        if (!(input instanceof ArrayBuffer) && !ArrayBuffer.isView(input)) {
          throw new TypeError('TextDecoder.decode: argument must be an ArrayBuffer or a view');
        }
        return utf8Decode(input, this.fatal);
      }
    };
  }

  if (typeof G.DOMException !== 'function') {
    G.DOMException = class DOMException extends Error {
      constructor(message = '', name = 'Error') { super(message); this.name = name; }
    };
  }

  // ---------------------------------------------------------------- URLSearchParams / URL

  function decodeForm(s) {
    if (s.indexOf('+') >= 0) s = s.replace(/\+/g, ' ');
    if (s.indexOf('%') < 0) return s;
    try {
      return decodeURIComponent(s);
    } catch (e) {
      // Malformed escapes stay as they are; well-formed ones are decoded.
      return s.replace(/(%[0-9A-Fa-f]{2})+/g, (m) => { try { return decodeURIComponent(m); } catch (e2) { return m; } });
    }
  }
  function encodeForm(s) {
    return encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  }
  function parsePairs(s, list) {
    if (s.length === 0) return;
    let start = 0;
    while (start <= s.length) {
      let amp = s.indexOf('&', start);
      if (amp < 0) amp = s.length;
      if (amp > start) {
        const eq = s.indexOf('=', start);
        if (eq >= 0 && eq < amp) list.push([decodeForm(s.slice(start, eq)), decodeForm(s.slice(eq + 1, amp))]);
        else list.push([decodeForm(s.slice(start, amp)), '']);
      }
      start = amp + 1;
    }
  }

  class URLSearchParams {
    constructor(init) {
      this._list = [];
      this._url = null;
      if (init === undefined || init === null) return;
      if (typeof init === 'object' || typeof init === 'function') {
        if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            const p = Array.from(pair);
            if (p.length !== 2) throw new TypeError('URLSearchParams: each pair must have exactly two elements');
            this._list.push([String(p[0]), String(p[1])]);
          }
        } else {
          for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
        }
        return;
      }
      let s = String(init);
      if (s.startsWith('?')) s = s.slice(1);
      parsePairs(s, this._list);
    }
    _update() {
      if (this._url) { const s = this.toString(); this._url._search = s ? '?' + s : ''; }
    }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k, v) {
      k = String(k);
      this._list = this._list.filter((p) => !(p[0] === k && (v === undefined || p[1] === String(v))));
      this._update();
    }
    get(k) { k = String(k); for (const p of this._list) if (p[0] === k) return p[1]; return null; }
    getAll(k) { k = String(k); return this._list.filter((p) => p[0] === k).map((p) => p[1]); }
    has(k, v) { k = String(k); return this._list.some((p) => p[0] === k && (v === undefined || p[1] === String(v))); }
    set(k, v) {
      k = String(k); v = String(v);
      const i = this._list.findIndex((p) => p[0] === k);
      if (i < 0) this._list.push([k, v]);
      else { this._list[i][1] = v; this._list = this._list.filter((p, j) => j <= i || p[0] !== k); }
      this._update();
    }
    sort() {
      this._list = this._list.map((p, i) => [p, i]).sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1])).map((x) => x[0]);
      this._update();
    }
    forEach(fn, thisArg) { for (const p of this._list) fn.call(thisArg, p[1], p[0], this); }
    *keys() { for (const p of this._list) yield p[0]; }
    *values() { for (const p of this._list) yield p[1]; }
    *entries() { for (const p of this._list) yield [p[0], p[1]]; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map((p) => encodeForm(p[0]) + '=' + encodeForm(p[1])).join('&'); }
    get [Symbol.toStringTag]() { return 'URLSearchParams'; }
  }

  const SPECIAL = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443', 'ftp:': '21', 'file:': '' };

  function pctEncode(s, re) {
    return s.replace(re, (c) => { try { return encodeURIComponent(c); } catch (e) { return '%EF%BF%BD'; } });
  }
  const PATH_ENC = /[\u0000-\u0020"#<>?`{}\u007f]|[\u0080-\uffff]/g;
  const QUERY_ENC = /[\u0000-\u0020"#<>\u007f]|[\u0080-\uffff]/g;
  const SPECIAL_QUERY_ENC = /[\u0000-\u0020"#<>'\u007f]|[\u0080-\uffff]/g;
  const FRAG_ENC = /[\u0000-\u0020"<>`\u007f]|[\u0080-\uffff]/g;
  const USER_ENC = /[\u0000-\u0020"#<>?`{}/:;=@\[\\\]^|\u007f]|[\u0080-\uffff]/g;

  function removeDots(path) {
    const out = [];
    const segs = path.split('/');
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      const last = i === segs.length - 1;
      if (s === '..' || s.toLowerCase() === '%2e%2e' || s === '.%2e' || s === '%2e.') {
        if (out.length > 1) out.pop();
        if (last) out.push('');
      } else if (s === '.' || s.toLowerCase() === '%2e') {
        if (last) out.push('');
      } else {
        out.push(s);
      }
    }
    let r = out.join('/');
    if (!r.startsWith('/')) r = '/' + r;
    return r;
  }

  class URL {
    constructor(input, base) {
      const r = URL._parse(String(input), base === undefined ? undefined : base instanceof URL ? base : new URL(String(base)));
      if (!r) throw new TypeError('Invalid URL: ' + String(input));
      Object.assign(this, r);
      this._sp = null;
    }
    static canParse(input, base) { try { new URL(input, base); return true; } catch (e) { return false; } }
    static parse(input, base) { try { return new URL(input, base); } catch (e) { return null; } }

    static _parse(input, base) {
      input = input.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '').replace(/[\t\n\r]/g, '');
      const r = { _protocol: '', _username: '', _password: '', _hostname: '', _port: '', _pathname: '', _search: '', _hash: '' };
      let rest;
      const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(input);
      if (m) {
        r._protocol = m[1].toLowerCase() + ':';
        rest = input.slice(m[0].length);
        const special = r._protocol in SPECIAL;
        if (special) rest = rest.replace(/\\/g, '/');
        if (special && base && base._protocol === r._protocol && !rest.startsWith('/')) {
          return URL._relative(rest, base, r);
        }
        if (special || rest.startsWith('//')) {
          rest = special ? rest.replace(/^\/*/, '') : rest.slice(2);
          if (!URL._authority(rest, r)) return null;
          rest = rest.slice(r._authLen);
          if (special && !r._hostname && r._protocol !== 'file:') return null;
        } else {
          r._opaque = true;
        }
      } else {
        if (!base) return null;
        r._protocol = base._protocol;
        rest = r._protocol in SPECIAL ? input.replace(/\\/g, '/') : input;
        if (rest.startsWith('//')) {
          rest = rest.slice(2);
          if (!URL._authority(rest, r)) return null;
          rest = rest.slice(r._authLen);
        } else {
          return URL._relative(rest, base, r);
        }
      }
      URL._tail(rest, r);
      return URL._finish(r);
    }

    static _relative(rest, base, r) {
      r._protocol = base._protocol;
      r._username = base._username; r._password = base._password;
      r._hostname = base._hostname; r._port = base._port;
      if (base._opaque) {
        if (!rest.startsWith('#')) return null;
        r._opaque = true; r._pathname = base._pathname; r._search = base._search;
        URL._tail(rest, r, true);
        return URL._finish(r);
      }
      if (rest === '') { r._pathname = base._pathname; r._search = base._search; return URL._finish(r); }
      if (rest.startsWith('?')) { r._pathname = base._pathname; URL._tail(rest, r, true); r._pathSet = true; return URL._finish(r); }
      if (rest.startsWith('#')) { r._pathname = base._pathname; r._search = base._search; URL._tail(rest, r, true); return URL._finish(r); }
      if (!rest.startsWith('/')) {
        const dir = base._pathname.slice(0, base._pathname.lastIndexOf('/') + 1);
        rest = dir + rest;
      }
      URL._tail(rest, r);
      return URL._finish(r);
    }

    static _authority(rest, r) {
      let end = rest.search(/[/?#]/);
      if (end < 0) end = rest.length;
      r._authLen = end;
      let auth = rest.slice(0, end);
      const at = auth.lastIndexOf('@');
      if (at >= 0) {
        const info = auth.slice(0, at);
        const c = info.indexOf(':');
        r._username = pctEncode(c < 0 ? info : info.slice(0, c), USER_ENC);
        r._password = c < 0 ? '' : pctEncode(info.slice(c + 1), USER_ENC);
        auth = auth.slice(at + 1);
      }
      let host = auth, port = '';
      const pm = /:(\d*)$/.exec(auth);
      if (pm && !(auth.startsWith('[') && !auth.slice(0, pm.index).endsWith(']'))) {
        host = auth.slice(0, pm.index);
        port = pm[1];
      } else if (/:[^\]]*$/.test(auth) && !auth.startsWith('[')) {
        return false;
      }
      if (port !== '') {
        const n = Number(port);
        if (!(n <= 65535)) return false;
        port = String(n);
        if (SPECIAL[r._protocol] === port) port = '';
      }
      if (/[\u0000\t\n\r #/<>?@\\^|]/.test(host.replace(/^\[.*\]$/, ''))) return false;
      try { host = decodeURIComponent(host); } catch (e) { return false; }
      r._hostname = r._protocol in SPECIAL ? host.toLowerCase() : host;
      r._port = port;
      return true;
    }

    static _tail(rest, r, keepPath) {
      let hash = '', search = '';
      const h = rest.indexOf('#');
      if (h >= 0) { hash = rest.slice(h); rest = rest.slice(0, h); }
      const q = rest.indexOf('?');
      if (q >= 0) { search = rest.slice(q); rest = rest.slice(0, q); }
      if (!keepPath) r._pathname = rest;
      r._search = search === '?' ? '' : search;
      r._hash = hash === '#' ? '' : hash;
      if (keepPath && rest && !rest.startsWith('?') && !rest.startsWith('#')) r._pathname = rest;
    }

    static _finish(r) {
      const special = r._protocol in SPECIAL;
      if (!r._opaque) {
        let p = r._pathname;
        if (special && p === '') p = '/';
        if (p !== '' && (special || p.startsWith('/'))) p = removeDots(p);
        r._pathname = pctEncode(p, PATH_ENC);
      } else {
        r._pathname = pctEncode(r._pathname, /[\u0000-\u001f\u007f-\uffff]/g);
      }
      if (r._search) r._search = '?' + pctEncode(r._search.slice(1), special ? SPECIAL_QUERY_ENC : QUERY_ENC);
      if (r._hash) r._hash = '#' + pctEncode(r._hash.slice(1), FRAG_ENC);
      delete r._authLen;
      delete r._pathSet;
      if (!r._opaque) delete r._opaque;
      return r;
    }

    get protocol() { return this._protocol; }
    set protocol(v) { const p = String(v).replace(/:.*$/, '').toLowerCase() + ':'; if (/^[a-z][a-z0-9+.-]*:$/.test(p) && ((p in SPECIAL) === (this._protocol in SPECIAL))) { this._protocol = p; if (SPECIAL[p] === this._port) this._port = ''; } }
    get username() { return this._username; }
    set username(v) { if (this._hostname) this._username = pctEncode(String(v), USER_ENC); }
    get password() { return this._password; }
    set password(v) { if (this._hostname) this._password = pctEncode(String(v), USER_ENC); }
    get hostname() { return this._hostname; }
    set hostname(v) { if (!this._opaque) this._hostname = this._protocol in SPECIAL ? String(v).toLowerCase() : String(v); }
    get port() { return this._port; }
    set port(v) { const s = String(v); if (s === '') { this._port = ''; return; } const n = parseInt(s, 10); if (n >= 0 && n <= 65535) this._port = SPECIAL[this._protocol] === String(n) ? '' : String(n); }
    get host() { return this._hostname + (this._port ? ':' + this._port : ''); }
    set host(v) { const s = String(v); const c = s.lastIndexOf(':'); if (c > 0 && !s.endsWith(']')) { this.hostname = s.slice(0, c); this.port = s.slice(c + 1); } else this.hostname = s; }
    get origin() {
      if (this._protocol === 'blob:') { try { return new URL(this._pathname).origin; } catch (e) { return 'null'; } }
      return this._protocol in SPECIAL && this._protocol !== 'file:' ? this._protocol + '//' + this.host : 'null';
    }
    get pathname() { return this._pathname; }
    set pathname(v) { if (this._opaque) return; let p = String(v); if (this._protocol in SPECIAL) p = p.replace(/\\/g, '/'); if (!p.startsWith('/') && (this._protocol in SPECIAL)) p = '/' + p; this._pathname = pctEncode(this._protocol in SPECIAL ? removeDots(p) : p, PATH_ENC); }
    get search() { return this._search; }
    set search(v) { let s = String(v); if (s.startsWith('?')) s = s.slice(1); this._search = s ? '?' + pctEncode(s, this._protocol in SPECIAL ? SPECIAL_QUERY_ENC : QUERY_ENC) : ''; if (this._sp) { this._sp._list = []; parsePairs(s, this._sp._list); } }
    get searchParams() {
      if (!this._sp) { this._sp = new URLSearchParams(this._search); this._sp._url = this; }
      return this._sp;
    }
    get hash() { return this._hash; }
    set hash(v) { let s = String(v); if (s.startsWith('#')) s = s.slice(1); this._hash = s ? '#' + pctEncode(s, FRAG_ENC) : ''; }
    get href() {
      let s = this._protocol;
      if (!this._opaque) {
        if (this._hostname || this._protocol === 'file:' || this._protocol in SPECIAL) {
          s += '//';
          if (this._username || this._password) s += this._username + (this._password ? ':' + this._password : '') + '@';
          s += this.host;
        } else if (this._pathname.startsWith('//')) {
          s += '/.';
        }
      }
      return s + this._pathname + this._search + this._hash;
    }
    set href(v) { const u = new URL(String(v)); Object.assign(this, u); this._sp = null; }
    toString() { return this.href; }
    toJSON() { return this.href; }
    get [Symbol.toStringTag]() { return 'URL'; }
  }

  if (typeof G.URLSearchParams !== 'function') G.URLSearchParams = URLSearchParams;
  if (typeof G.URL !== 'function') G.URL = URL;

  // ---------------------------------------------------------------- structuredClone

  if (typeof G.structuredClone !== 'function') {
    const cloneError = (what) => new G.DOMException(what + ' could not be cloned.', 'DataCloneError');
    const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
    G.structuredClone = function structuredClone(value) {
      const seen = new Map();
      const clone = (v) => {
        const t = typeof v;
        if (t === 'function' || t === 'symbol') throw cloneError(String(t === 'function' ? v.name || 'function' : v.toString()));
        if (t !== 'object' || v === null) return v;
        if (seen.has(v)) return seen.get(v);
        let out;
        if (Array.isArray(v)) {
          out = new Array(v.length);
          seen.set(v, out);
          for (const k of Object.keys(v)) out[k] = clone(v[k]);
          return out;
        }
        if (v instanceof Date) out = new Date(v.getTime());
        else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
        else if (v instanceof ArrayBuffer) out = v.slice(0);
        else if (ArrayBuffer.isView(v)) {
          const buf = seen.has(v.buffer) ? seen.get(v.buffer) : v.buffer.slice(0);
          seen.set(v.buffer, buf);
          out = v instanceof DataView ? new DataView(buf, v.byteOffset, v.byteLength) : new v.constructor(buf, v.byteOffset, v.length);
        } else if (v instanceof Map) {
          out = new Map(); seen.set(v, out);
          for (const [k, x] of v) out.set(clone(k), clone(x));
          return out;
        } else if (v instanceof Set) {
          out = new Set(); seen.set(v, out);
          for (const x of v) out.add(clone(x));
          return out;
        } else if (v instanceof Error) {
          out = new (ERRORS[v.name] || Error)(v.message);
          seen.set(v, out);
          if (typeof v.stack === 'string') out.stack = v.stack;
          if ('cause' in v) out.cause = clone(v.cause);
          return out;
        } else if (v instanceof Boolean || v instanceof Number || v instanceof String) {
          out = Object(v.valueOf());
        } else if (v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet || (typeof WeakRef === 'function' && v instanceof WeakRef)) {
          throw cloneError(Object.prototype.toString.call(v));
        } else {
          out = {};
          seen.set(v, out);
          for (const k of Object.keys(v)) out[k] = clone(v[k]);
          return out;
        }
        seen.set(v, out);
        return out;
      };
      return clone(value);
    };
  }

  // ---------------------------------------------------------------- require

  const moduleCache = new Map();
  let Marg; // defined below; `require('marg')` returns it

  function dirname(p) {
    const i = p.lastIndexOf('/');
    return i <= 0 ? '/' : p.slice(0, i);
  }

  function makeRequire(dir) {
    function require(spec) {
      if (typeof spec !== 'string') throw new TypeError('require: the module name must be a string');
      if (spec === 'marg') return Marg;
      if (!(spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/'))) {
        const e = new Error("Cannot find module '" + spec + "': Marg loads only local files by relative path " +
          "(require('./lib.js'), require('./data.json')); packages from node_modules and Node built-ins are not available");
        e.code = 'MODULE_NOT_FOUND';
        throw e;
      }
      let file;
      try {
        file = native.resolve(dir, spec);
      } catch (err) {
        const e = new Error(err.message);
        e.code = 'MODULE_NOT_FOUND';
        throw e;
      }
      return loadFile(file);
    }
    require.resolve = (spec) => native.resolve(dir, spec);
    require.cache = moduleCache;
    return require;
  }

  function loadFile(file) {
    const cached = moduleCache.get(file);
    if (cached) return cached.exports;
    const module = { id: file, filename: file, path: dirname(file), exports: {}, loaded: false };
    moduleCache.set(file, module);
    try {
      const source = native.readFile(file);
      if (file.endsWith('.json')) {
        try {
          module.exports = JSON.parse(source);
        } catch (e) {
          throw new SyntaxError(file + ': invalid JSON: ' + e.message);
        }
      } else {
        const fn = native.compile(source.startsWith('#!') ? '//' + source : source, file);
        const dir = dirname(file);
        fn.call(module.exports, module.exports, makeRequire(dir), module, file, dir);
      }
      module.loaded = true;
    } catch (e) {
      moduleCache.delete(file);
      throw e;
    }
    return module.exports;
  }

  // ---------------------------------------------------------------- HTTP tables

  const STATUS_TEXT = {
    100: 'Continue', 101: 'Switching Protocols', 200: 'OK', 201: 'Created', 202: 'Accepted',
    203: 'Non-Authoritative Information', 204: 'No Content', 205: 'Reset Content', 206: 'Partial Content',
    300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
    307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized',
    402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
    406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 411: 'Length Required',
    412: 'Precondition Failed', 413: 'Content Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type',
    416: 'Range Not Satisfiable', 417: 'Expectation Failed', 418: "I'm a Teapot", 422: 'Unprocessable Content',
    425: 'Too Early', 426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
    431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons', 500: 'Internal Server Error',
    501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
    505: 'HTTP Version Not Supported',
  };

  const MIME = {
    html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8',
    text: 'text/plain; charset=utf-8', txt: 'text/plain; charset=utf-8',
    json: 'application/json; charset=utf-8', js: 'text/javascript; charset=utf-8',
    mjs: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', csv: 'text/csv; charset=utf-8',
    md: 'text/markdown; charset=utf-8', xml: 'application/xml', svg: 'image/svg+xml', png: 'image/png',
    jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', ico: 'image/x-icon',
    pdf: 'application/pdf', wasm: 'application/wasm', bin: 'application/octet-stream',
    form: 'application/x-www-form-urlencoded', urlencoded: 'application/x-www-form-urlencoded',
  };

  // Content-Type codes understood by the native respond (engine.rs CONTENT_TYPES).
  const CT_NONE = 0, CT_HTML = 1, CT_JSON = 2, CT_BYTES = 3, CT_TEXT = 4;
  // Content-Type values that travel as a code instead of a header string.
  const CT_CODES = new Map([
    ['text/html; charset=utf-8', CT_HTML], ['application/json; charset=utf-8', CT_JSON],
    ['application/octet-stream', CT_BYTES], ['text/plain; charset=utf-8', CT_TEXT],
  ]);
  const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  const PROTOCOLS = ['http/1.1', 'h2', 'h3', 'http/1.1'];

  function statusOf(err) {
    const s = err !== null && typeof err === 'object' ? err.status || err.statusCode : undefined;
    return Number.isInteger(s) && s >= 400 && s < 600 ? s : 500;
  }

  function badRequest(message, cause) {
    const e = new SyntaxError(message);
    e.status = 400;
    e.expose = true;
    if (cause !== undefined) e.cause = cause;
    return e;
  }

  function parseQuery(qs) {
    const q = {};
    const n = qs.length;
    let start = 0;
    while (start < n) {
      let amp = qs.indexOf('&', start);
      if (amp < 0) amp = n;
      if (amp > start) {
        const eq = qs.indexOf('=', start);
        let k, v;
        if (eq >= 0 && eq < amp) { k = decodeForm(qs.slice(start, eq)); v = decodeForm(qs.slice(eq + 1, amp)); }
        else { k = decodeForm(qs.slice(start, amp)); v = ''; }
        if (k !== '__proto__' && k !== 'constructor' && k !== 'prototype') {
          const prev = q[k];
          if (prev === undefined) q[k] = v;
          else if (Array.isArray(prev)) prev.push(v);
          else q[k] = [prev, v];
        }
      }
      start = amp + 1;
    }
    return q;
  }

  // ---------------------------------------------------------------- req

  const UNPARSED = Symbol('unparsed');

  // The path and query string of a request-target (an absolute-form target loses its
  // scheme and authority).
  function splitTarget(url) {
    let path = url;
    if (url.charCodeAt(0) !== 47) path = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, '') || '/';
    const q = path.indexOf('?');
    return q < 0 ? { path, qs: '' } : { path: path.slice(0, q), qs: path.slice(q + 1) };
  }
  // splitTarget results of the hot targets Rust sends as cached strings.
  const urlParts = new Map();

  class Request {
    constructor(id, method, url, parts, flags, body) {
      this._id = id;
      this.method = method;
      this.url = url;
      this.originalUrl = url;
      this.path = parts.path;
      this._qs = parts.qs;
      this._params = undefined;
      this.baseUrl = '';
      this.secure = (flags & 1) === 1;
      this.protocol = PROTOCOLS[(flags >> 1) & 3];
      this.res = undefined;
      this._query = undefined;
      this._headers = undefined;
      this._ip = undefined;
      this._raw = body;
      this._body = UNPARSED;
    }
    // Made on first read: most routes have no params and most handlers never look.
    get params() {
      let p = this._params;
      if (p === undefined) p = this._params = {};
      return p;
    }
    set params(v) { this._params = v; }
    get query() {
      let q = this._query;
      if (q === undefined) q = this._query = parseQuery(this._qs);
      return q;
    }
    set query(v) { this._query = v; }
    get headers() {
      let h = this._headers;
      if (h !== undefined) return h;
      h = {};
      const raw = nativeHeaders(this._id);
      if (raw !== undefined) {
        let pos = 0;
        const n = raw.length;
        while (pos < n) {
          let nl = raw.indexOf('\n', pos);
          if (nl < 0) nl = n;
          const c = raw.indexOf(':', pos);
          const name = raw.slice(pos, c).toLowerCase();
          const value = raw.slice(c + 1, nl);
          pos = nl + 1;
          const prev = h[name];
          if (prev === undefined) h[name] = name === 'set-cookie' ? [value] : value;
          else if (name === 'set-cookie') prev.push(value);
          else h[name] = prev + (name === 'cookie' ? '; ' : ', ') + value;
        }
      }
      return (this._headers = h);
    }
    set headers(v) { this._headers = v; }
    get(name) {
      const lc = String(name).toLowerCase();
      const h = this.headers;
      if (lc === 'referer' || lc === 'referrer') return h.referer !== undefined ? h.referer : h.referrer;
      return h[lc];
    }
    header(name) { return this.get(name); }
    get ip() {
      let ip = this._ip;
      if (ip === undefined) ip = this._ip = nativeIp(this._id) || '';
      return ip;
    }
    get hostname() {
      const host = this.get('host');
      if (!host) return undefined;
      const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
      return end > 0 ? host.slice(0, end) : host;
    }
    get xhr() { return String(this.get('x-requested-with') || '').toLowerCase() === 'xmlhttprequest'; }
    is(type) {
      const ct = String(this.get('content-type') || '').split(';')[0].trim().toLowerCase();
      if (!ct) return false;
      const t = String(type).toLowerCase();
      const want = t.includes('/') ? t : (MIME[t] || '').split(';')[0];
      if (want.endsWith('/*')) return ct.startsWith(want.slice(0, -1)) ? ct : false;
      return ct === want ? ct : false;
    }
    get body() {
      let b = this._body;
      if (b !== UNPARSED) return b;
      const raw = this._raw;
      b = {};
      if (raw !== undefined) {
        const ct = String(this.get('content-type') || '').toLowerCase();
        if (ct.includes('json')) {
          const text = utf8Decode(raw, false);
          try {
            b = JSON.parse(text);
          } catch (e) {
            throw badRequest('Invalid JSON in the request body: ' + e.message, e);
          }
        } else if (ct.startsWith('application/x-www-form-urlencoded')) {
          b = parseQuery(utf8Decode(raw, false));
        }
      }
      return (this._body = b);
    }
    set body(v) { this._body = v; }
    text() { return Promise.resolve(this._raw === undefined ? '' : utf8Decode(this._raw, false)); }
    json() {
      const text = this._raw === undefined ? '' : utf8Decode(this._raw, false);
      try {
        return Promise.resolve(JSON.parse(text));
      } catch (e) {
        return Promise.reject(badRequest('Invalid JSON in the request body: ' + e.message, e));
      }
    }
    arrayBuffer() { return Promise.resolve(this._raw === undefined ? new ArrayBuffer(0) : this._raw); }
    bytes() { return Promise.resolve(new Uint8Array(this._raw === undefined ? new ArrayBuffer(0) : this._raw)); }
  }

  // ---------------------------------------------------------------- res

  const BAD_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;
  const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

  function isBytes(b) { return b instanceof ArrayBuffer || ArrayBuffer.isView(b); }

  // Content-Type is kept apart from the other headers (`_type`): it is set on most responses
  // and usually travels to Rust as a small code (CT_CODES) instead of a header string.
  // Responses made while `tick` runs (synchronous handlers, timers) with string bodies are
  // queued: records in shared memory (SH_OUT), header lines and bodies back to back in
  // `outText`, which `tick` returns to Rust (no native call; native flush() only when the
  // queue is full). Rust zeroes SH_OUT_COUNT when it has taken them, and the next queued
  // response starts a new `outText`, so a text lost to a stopped entry is still there for
  // the prelude's `flush`. Responses made later (promise continuations) go out at once
  // through respond().
  let inTick = false;
  let outText = '';
  // Queued string bodies of BIG_BODY or more UTF-16 units stay out of `outText`: Rust reads
  // each as its own value (record body length -1 - index), which lets it reuse the bytes of
  // a big constant body answered again and again (engine.rs: BIG_BODY, BodyCache).
  const BIG_BODY = 1024;
  const outBig = [];
  function flushOut() {
    if (shared[SH_OUT_COUNT] !== 0) nativeFlush(outText);
  }

  class Response {
    constructor(id, req) {
      this._id = id;
      this.req = req;
      this.statusCode = 200;
      this._h = null;
      this._type = undefined;
      this.headersSent = false;
      this._locals = undefined;
    }
    get locals() { return this._locals || (this._locals = {}); }
    set locals(v) { this._locals = v; }
    get finished() { return this.headersSent; }
    get writableEnded() { return this.headersSent; }
    status(code) {
      if (typeof code !== 'number' || !Number.isInteger(code) || code < 100 || code > 999) {
        const c = Number(code);
        if (!Number.isInteger(c) || c < 100 || c > 999) throw new RangeError('Invalid status code: ' + code);
        code = c;
      }
      this.statusCode = code;
      return this;
    }
    set(name, value) {
      if (name !== null && typeof name === 'object') {
        for (const k of Object.keys(name)) this.set(k, name[k]);
        return this;
      }
      if (this.headersSent) throw new Error('Cannot set headers after they are sent to the client');
      const n = typeof name === 'string' ? name : String(name);
      if (!TOKEN.test(n)) throw new TypeError('Header name must be a valid HTTP token ["' + n + '"]');
      let v;
      if (Array.isArray(value)) {
        v = value.map(String);
        for (let i = 0; i < v.length; i++) {
          if (BAD_HEADER_VALUE.test(v[i])) throw new TypeError('Invalid character in header content ["' + n + '"]');
        }
      } else {
        v = typeof value === 'string' ? value : String(value);
        if (BAD_HEADER_VALUE.test(v)) throw new TypeError('Invalid character in header content ["' + n + '"]');
      }
      const lc = n.toLowerCase();
      if (lc === 'content-type' && typeof v === 'string') {
        this._type = v;
        return this;
      }
      if (this._h === null) this._h = {};
      this._h[lc] = [n, v];
      return this;
    }
    header(name, value) { return value === undefined && typeof name === 'string' ? this.get(name) : this.set(name, value); }
    setHeader(name, value) { this.set(name, value); return this; }
    append(name, value) {
      const prev = this.get(name);
      if (prev === undefined) return this.set(name, value);
      const add = Array.isArray(value) ? value : [value];
      return this.set(name, (Array.isArray(prev) ? prev : [prev]).concat(add));
    }
    get(name) {
      const lc = String(name).toLowerCase();
      if (lc === 'content-type') return this._type;
      const e = this._h === null ? undefined : this._h[lc];
      return e === undefined ? undefined : e[1];
    }
    getHeader(name) { return this.get(name); }
    hasHeader(name) { return this.get(name) !== undefined; }
    removeHeader(name) {
      const lc = String(name).toLowerCase();
      if (lc === 'content-type') this._type = undefined;
      else if (this._h !== null) delete this._h[lc];
      return this;
    }
    getHeaders() {
      const o = {};
      if (this._type !== undefined) o['content-type'] = this._type;
      if (this._h !== null) for (const k of Object.keys(this._h)) o[k] = this._h[k][1];
      return o;
    }
    type(t) {
      const s = String(t);
      const mime = MIME[s];
      if (mime !== undefined) {
        if (this.headersSent) throw new Error('Cannot set headers after they are sent to the client');
        this._type = mime;
        return this;
      }
      return this.set('Content-Type', s.includes('/') ? s : MIME[s.replace(/^\./, '').toLowerCase()] || 'application/octet-stream');
    }
    contentType(t) { return this.type(t); }
    location(url) { return this.set('Location', url === 'back' ? this.req.get('referer') || '/' : String(url)); }
    redirect(a, b) {
      let status = 302, url = a;
      if (typeof a === 'number') { status = a; url = b; } else if (typeof b === 'number') { status = b; }
      this.location(url);
      this.statusCode = status;
      return this._finish(CT_TEXT, (STATUS_TEXT[status] || 'Redirect') + '. Redirecting to ' + this.get('Location'));
    }
    sendStatus(code) {
      this.status(code);
      return this._finish(CT_TEXT, STATUS_TEXT[this.statusCode] || String(this.statusCode));
    }
    json(obj) {
      const s = JSON.stringify(obj);
      return this._finish(CT_JSON, s === undefined ? '' : s);
    }
    send(body) {
      switch (typeof body) {
        case 'string': return this._finish(CT_HTML, body);
        case 'undefined': return this._finish(CT_NONE, '');
        case 'object':
          if (body === null) return this._finish(CT_NONE, '');
          if (isBytes(body)) return this._finish(CT_BYTES, body);
          return this.json(body);
        case 'number': case 'boolean': return this.json(body);
        default: return this._finish(CT_HTML, String(body));
      }
    }
    end(data) {
      if (data === undefined || data === null) return this._finish(CT_NONE, '');
      return this._finish(CT_NONE, typeof data === 'string' || isBytes(data) ? data : String(data));
    }
    _finish(ctype, body) {
      if (this.headersSent) return this;
      this.headersSent = true;
      if (awaiting.size !== 0 && awaiting.delete(this._id)) awaitingChanged();
      let hs;
      const t = this._type;
      if (t !== undefined) {
        const code = CT_CODES.get(t);
        if (code !== undefined) {
          ctype = code;
        } else {
          ctype = CT_NONE;
          hs = 'Content-Type:' + t + '\n';
        }
      }
      const h = this._h;
      if (h !== null) {
        if (hs === undefined) hs = '';
        for (const k in h) {
          const n = h[k][0], v = h[k][1];
          if (typeof v === 'string') hs += n + ':' + v + '\n';
          else for (let i = 0; i < v.length; i++) hs += n + ':' + v[i] + '\n';
        }
        if (hs === '') hs = undefined;
      }
      if (inTick && typeof body === 'string') {
        // Queued; `tick` hands the whole queue to Rust in one flush() call at its end.
        let k = shared[SH_OUT_COUNT];
        if (k === OUT_CAP) { flushOut(); k = 0; }
        const r = SH_OUT + k * 5;
        shared[r] = this._id;
        shared[r + 1] = this.statusCode;
        shared[r + 2] = ctype;
        if (k === 0) outBig.length = 0;
        let piece;
        if (body.length >= BIG_BODY) {
          shared[r + 4] = -1 - outBig.length;
          outBig.push(body);
          piece = hs === undefined ? '' : hs;
        } else {
          shared[r + 4] = body.length;
          piece = hs === undefined ? body : hs + body;
        }
        shared[r + 3] = hs === undefined ? 0 : hs.length;
        outText = k === 0 ? piece : outText + piece;
        shared[SH_OUT_COUNT] = k + 1;
        return this;
      }
      shared[SH_RESP_ID] = this._id;
      shared[SH_RESP_STATUS] = this.statusCode;
      shared[SH_RESP_CTYPE] = ctype;
      nativeRespond(hs, body);
      return this;
    }
  }

  // ---------------------------------------------------------------- routing

  const layers = [];
  const settings = Object.create(null);

  function escapeRe(s) { return s.replace(/[.+*?^${}()|[\]\\]/g, '\\$&'); }

  // Compiles an Express-style path: `:name`, `:name?` (optional), `*` / `*name` (rest),
  // literal text. `end` false: prefix match at a segment boundary (for `use`).
  function compilePath(path, end) {
    if (path instanceof RegExp) return { fast: null, re: path, keys: null };
    if (typeof path !== 'string') throw new TypeError('Marg: a route path must be a string or a RegExp, got ' + typeof path);
    if (!path.startsWith('/') && path !== '*') path = '/' + path;
    if (!/[:*?(]/.test(path)) {
      const fast = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
      return { fast, re: null, keys: null, segs: null };
    }
    // Only literal and whole `:name` segments, matched by the route (`end`): compared segment
    // by segment, without a RegExp.
    if (end && /^(\/(:[A-Za-z_$][\w$]*|[^:*?(/]+))+\/?$/.test(path)) {
      const segs = path.split('/').slice(1).filter((x, i, a) => x !== '' || i < a.length - 1);
      return { fast: null, re: null, keys: null, segs: segs.map((x) => (x.startsWith(':') ? { key: x.slice(1) } : { lit: x })) };
    }
    const keys = [];
    let wild = 0;
    let src = '^';
    if (path === '*' || path === '/*') {
      keys.push('0');
      return { fast: null, re: new RegExp('^/?(.*)$'), keys, segs: null };
    }
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const seg = segs[i];
      if (seg === '' && i === segs.length - 1) break;
      let m = /^:([A-Za-z_$][\w$]*)\?$/.exec(seg);
      if (m) { keys.push(m[1]); src += '(?:/([^/]+?))?'; continue; }
      m = /^\*([A-Za-z_$][\w$]*)?$/.exec(seg);
      if (m) { keys.push(m[1] || String(wild++)); src += '/(.*)'; continue; }
      src += '/';
      const tok = /:([A-Za-z_$][\w$]*)(\?)?|\*|[^:*]+/g;
      let t;
      while ((t = tok.exec(seg)) !== null) {
        if (t[1] !== undefined) { keys.push(t[1]); src += t[2] ? '([^/]*?)' : '([^/]+?)'; }
        else if (t[0] === '*') { keys.push(String(wild++)); src += '(.*)'; }
        else src += escapeRe(t[0]);
      }
    }
    src += end ? '/?$' : '(?=/|$)';
    return { fast: null, re: new RegExp(src), keys, segs: null };
  }

  // Matches `path` against literal / `:name` segments; returns the params or null.
  function matchSegments(segs, path) {
    let pos = 1;
    let params = null;
    const n = path.length;
    for (let i = 0; i < segs.length; i++) {
      if (pos > n) return null;
      let end = path.indexOf('/', pos);
      if (end < 0) end = n;
      const sg = segs[i];
      if (sg.lit !== undefined) {
        if (end - pos !== sg.lit.length || !path.startsWith(sg.lit, pos)) return null;
      } else {
        if (end === pos) return null;
        if (params === null) params = {};
        params[sg.key] = decodeParam(path.slice(pos, end));
      }
      pos = end + 1;
    }
    // All segments consumed: the path must end here (one trailing slash allowed).
    if (pos <= n && !(pos === n && path.charCodeAt(n - 1) === 47)) return null;
    return params === null ? {} : params;
  }

  function decodeParam(v) {
    if (v === undefined || v.indexOf('%') < 0) return v;
    try {
      return decodeURIComponent(v);
    } catch (e) {
      throw badRequest("Failed to decode param '" + v + "'");
    }
  }

  // Whether layer L matches `path`; fills req.params for parameterised routes.
  function matches(L, path, req) {
    const fast = L.fast;
    if (fast !== null) {
      if (L.end) {
        if (path === fast) return true;
        return path.length === fast.length + 1 && path.charCodeAt(fast.length) === 47 && path.startsWith(fast);
      }
      if (fast === '/' || path === fast) return true;
      return path.startsWith(fast) && path.charCodeAt(fast.length) === 47;
    }
    if (L.segs !== null) {
      const p = matchSegments(L.segs, path);
      if (p === null) return false;
      req.params = p;
      return true;
    }
    const m = L.re.exec(path);
    if (m === null) return false;
    const params = L.end ? {} : Object.assign({}, req.params);
    if (L.keys === null) {
      for (let i = 1; i < m.length; i++) params[i - 1] = decodeParam(m[i]);
    } else {
      for (let i = 0; i < L.keys.length; i++) {
        const v = m[i + 1];
        if (v !== undefined) params[L.keys[i]] = decodeParam(v);
      }
    }
    req.params = params;
    return true;
  }

  function flatten(fns, what) {
    const out = [];
    const walk = (f) => {
      if (Array.isArray(f)) f.forEach(walk);
      else if (typeof f === 'function') out.push(f);
      else throw new TypeError('Marg.' + what + '() requires callback functions but got a ' + (f === null ? 'null' : typeof f));
    };
    walk(fns);
    if (out.length === 0) throw new TypeError('Marg.' + what + '() requires at least one callback function');
    return out;
  }

  function addLayer(method, path, fns, end, what) {
    const c = compilePath(path, end);
    const handlers = flatten(fns, what);
    layers.push({ method, fast: c.fast, re: c.re, keys: c.keys, segs: c.segs, end, handlers, direct: takesNoNext(handlers[0]) });
  }

  function logError(req, err) {
    consoleObj.error(req.method + ' ' + req.url + ': ' + (err instanceof Error ? formatStack(err) : 'non-Error thrown: ' + inspect(err, 2, [], false)));
  }

  function finalHandler(req, res, err) {
    if (err) {
      const status = statusOf(err);
      if (status >= 500) logError(req, err);
      if (res.headersSent) return;
      res._h = null;
      res._type = undefined;
      res.statusCode = status;
      let body = STATUS_TEXT[status] || String(status);
      if (dev) body = err instanceof Error ? formatStack(err) : inspect(err, 2, [], false);
      else if (status < 500 && err && err.expose && err.message) body = String(err.message);
      res._finish(CT_TEXT, body);
      return;
    }
    if (res.headersSent) return;
    res.statusCode = 404;
    res._finish(CT_TEXT, 'Cannot ' + req.method + ' ' + req.path);
  }

  // Requests whose handler returned a promise that has not settled yet.
  const awaiting = new Set();
  function awaitingChanged() {
    shared[SH_AWAITING] = awaiting.size;
    if (awaiting.size === 1) for (const id of awaiting) shared[SH_AWAITING_ID] = id;
  }

  function settle(res, next) {
    const id = res._id;
    awaiting.add(id);
    awaitingChanged();
    const done = () => { awaiting.delete(id); awaitingChanged(); };
    return [
      (v) => { done(); if (v !== undefined && v !== res && !res.headersSent) res.send(v); },
      (e) => { done(); next(e || new Error('handler rejected with ' + inspect(e, 1, [], false))); },
    ];
  }

  // Whether `fn` cannot reach a third argument (`next`): fewer than three declared parameters
  // and no rest or default parameter (which `length` does not count). Decided once per
  // handler, when it is registered.
  function takesNoNext(fn) {
    if (fn.length >= 3) return false;
    const src = Function.prototype.toString.call(fn);
    if (src.includes('[native code]')) return false;
    const close = src.indexOf(')');
    const head = close < 0 ? src.slice(0, src.indexOf('=>')) : src.slice(0, close);
    return !head.includes('...') && !head.includes('=');
  }

  // Runs the middleware/route chain of one request (Express semantics: `next()`,
  // `next(err)` to error middleware `(err, req, res, next)`, `next('route')`). The common
  // case, a first matching layer whose first handler takes no `next`, runs without creating
  // the per-request `next` closure; everything else continues in `routeFrom`.
  function route(req, res) {
    const method = req.method;
    const path = req.path;
    for (let li = 0; li < layers.length; li++) {
      const L = layers[li];
      if (L.method !== null && L.method !== method && !(method === 'HEAD' && L.method === 'GET')) continue;
      let hit;
      try {
        hit = matches(L, path, req);
      } catch (e) {
        return routeFrom(req, res, li + 1, null, 0, e);
      }
      if (!hit) continue;
      if (!L.direct) return routeFrom(req, res, li + 1, L, 0, undefined);
      let r;
      try {
        r = L.handlers[0](req, res);
      } catch (e) {
        return routeFrom(req, res, li + 1, L, 1, e === undefined || e === null ? new Error('handler threw ' + e) : e);
      }
      if (r !== undefined && r !== null && typeof r.then === 'function') {
        const [ok, fail] = settle(res, (err) => routeFrom(req, res, li + 1, L, 1, err));
        r.then(ok, fail);
      }
      return;
    }
    finalHandler(req, res, undefined);
  }

  // The chain from layer index `li0` (the layer `cur0` matched, its handler `hi0` next) with
  // error `err0`.
  function routeFrom(req, res, li0, cur0, hi0, err0) {
    const method = req.method;
    const path = req.path;
    let li = li0, hi = hi0, cur = cur0;
    function next(err) {
      if (err === 'route') { cur = null; err = undefined; }
      for (;;) {
        if (cur !== null && hi < cur.handlers.length) {
          const fn = cur.handlers[hi++];
          const isErrorHandler = fn.length === 4;
          if (err ? !isErrorHandler : isErrorHandler) continue;
          let r;
          try {
            r = err ? fn(err, req, res, next) : fn(req, res, next);
          } catch (e) {
            return next(e === undefined || e === null ? new Error('handler threw ' + e) : e);
          }
          if (r !== undefined && r !== null && typeof r.then === 'function') {
            const [ok, fail] = settle(res, next);
            r.then(ok, fail);
          }
          return;
        }
        cur = null; hi = 0;
        if (li >= layers.length) return finalHandler(req, res, err);
        const L = layers[li++];
        if (L.method !== null && L.method !== method && !(method === 'HEAD' && L.method === 'GET')) continue;
        try {
          if (!matches(L, path, req)) continue;
        } catch (e) {
          err = e;
          continue;
        }
        cur = L;
      }
    }
    next(err0);
  }

  // ---------------------------------------------------------------- Marg

  Marg = {
    on(event, fn) {
      if (event !== 'request') throw new Error("Marg.on: unknown event '" + event + "' (only 'request' exists)");
      addLayer(null, '/', [fn], false, 'on');
      return Marg;
    },
    use(path, ...fns) {
      if (typeof path === 'function' || Array.isArray(path)) { fns.unshift(path); path = '/'; }
      addLayer(null, path, fns, false, 'use');
      return Marg;
    },
    all(path, ...fns) { addLayer(null, path, fns, true, 'all'); return Marg; },
    get(path, ...fns) {
      if (fns.length === 0 && typeof path === 'string') return settings[path];
      addLayer('GET', path, fns, true, 'get');
      return Marg;
    },
    set(name, value) { settings[name] = value; return Marg; },
    route(path) {
      const chain = {};
      for (const m of ['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'all']) {
        chain[m] = (...fns) => { Marg[m](path, ...fns); return chain; };
      }
      return chain;
    },
    listen(port, cb) {
      if (typeof port === 'function') { cb = port; port = undefined; }
      if (port !== undefined) {
        const p = Number(port);
        if (!Number.isInteger(p) || p < 0 || p > 65535) throw new RangeError('Marg.listen: invalid port ' + port);
        shared[SH_PORT] = p;
      }
      if (typeof cb === 'function') G.setTimeout(cb, 0);
      return Marg;
    },
  };
  for (const m of ['post', 'put', 'patch', 'delete', 'head', 'options']) {
    const M = m.toUpperCase();
    Marg[m] = (path, ...fns) => { addLayer(M, path, fns, true, m); return Marg; };
  }
  Object.defineProperty(G, 'Marg', { value: Marg, writable: false, configurable: false, enumerable: false });

  // ---------------------------------------------------------------- entry points

  // One VM entry: the batch (SH_BATCH slots; `targets` holds the targets, preceded by the
  // method for unusual methods, back to back), `bodies` (array by batch index, or undefined),
  // `dropped` (ids Rust answered or gave up on since the last tick: 504, 503, closed
  // connection; or undefined), then due timers.
  function tick(targets, bodies, dropped, urls) {
    const nowMs = shared[SH_NOW];
    inTick = true;
    if (dropped !== undefined) {
      for (let i = 0; i < dropped.length; i++) awaiting.delete(dropped[i]);
      awaitingChanged();
    }
    const n = shared[SH_BATCH_LEN];
    let off = shared[SH_RESUME_OFFSET];
    for (let i = shared[SH_RESUME]; i < n; i++) {
      const b = SH_BATCH + i * 5;
      const id = shared[b];
      const m = shared[b + 1];
      let method;
      if (m < 7) {
        method = METHODS[m];
      } else {
        method = targets.slice(off, off + shared[b + 2]);
        off += shared[b + 2];
      }
      // A hot target comes as a ready string (length -1 - its slot in Rust's table of hot
      // targets; its path/query split is cached here too); the others are slices of the
      // batch's concatenated targets.
      const tl = shared[b + 3];
      let url, parts;
      if (tl < 0) {
        url = urls[-1 - tl];
        parts = urlParts.get(url);
        if (parts === undefined) {
          parts = splitTarget(url);
          if (urlParts.size >= 512) urlParts.clear();
          urlParts.set(url, parts);
        }
      } else {
        url = targets.slice(off, off + tl);
        off += tl;
        parts = splitTarget(url);
      }
      shared[SH_RESUME] = i + 1;
      shared[SH_RESUME_OFFSET] = off;
      shared[SH_CURRENT] = id;
      const req = new Request(id, method, url, parts, shared[b + 4], bodies === undefined ? undefined : bodies[i]);
      const res = new Response(id, req);
      req.res = res;
      try {
        route(req, res);
      } catch (e) {
        try { finalHandler(req, res, e); } catch (e2) { consoleObj.error('internal error:', e2); }
      }
    }
    if (shared[SH_NEXT_TIMER] <= nowMs) runTimers(nowMs);
    shared[SH_CURRENT] = -2;
    inTick = false;
    return shared[SH_OUT_COUNT] === 0 ? undefined : outText;
  }

  // After an entry that ended in an exception with responses queued (the watchdog stopped
  // it): the queued text, for Rust to take.
  function flush() {
    inTick = false;
    return shared[SH_OUT_COUNT] === 0 ? undefined : outText;
  }

  function loadMain(file) {
    G.require = makeRequire(dirname(file));
    loadFile(file);
  }

  // Promises that reject with nobody listening (not handler promises: those go to the error
  // handlers) are logged.
  function onUnhandledRejection(promise, reason) {
    consoleObj.error('Unhandled promise rejection:', reason);
  }

  return { tick, flush, loadMain, onUnhandledRejection, outBig };
})

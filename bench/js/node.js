// Node node:http peer of the JS benchmark (bench/js.sh).
const http = require('node:http');
const port = Number(process.env.PORT || 3002);
const json = { message: 'Hello, World!' };
const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'user ' + i, email: 'user' + i + '@example.com', active: i % 3 !== 0, score: i * 1.5 }));
const page = '<!doctype html><title>marg</title>' + '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n'.repeat(250);
function send(res, type, body) {
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
http
  .createServer((req, res) => {
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    if (path === '/') return send(res, 'text/plain; charset=utf-8', 'Hello, World!');
    if (path === '/json') return send(res, 'application/json; charset=utf-8', JSON.stringify(json));
    if (path === '/list') return send(res, 'application/json; charset=utf-8', JSON.stringify(items));
    if (path === '/page') return send(res, 'text/html; charset=utf-8', page);
    const m = /^\/users\/([^/]+)$/.exec(path);
    if (m) {
      const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
      return send(res, 'application/json; charset=utf-8', JSON.stringify({ id: m[1], q: params.get('q') ?? undefined }));
    }
    res.writeHead(404).end();
  })
  .listen(port, '127.0.0.1');

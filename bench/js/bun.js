// Bun.serve peer of the JS benchmark (bench/js.sh).
const port = Number(process.env.PORT || 3001);
const json = { message: 'Hello, World!' };
const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'user ' + i, email: 'user' + i + '@example.com', active: i % 3 !== 0, score: i * 1.5 }));
const page = '<!doctype html><title>marg</title>' + '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n'.repeat(250);
Bun.serve({
  port,
  hostname: '127.0.0.1',
  routes: {
    '/': () => new Response('Hello, World!', { headers: { 'Content-Type': 'text/plain; charset=utf-8' } }),
    '/json': () => Response.json(json),
    '/users/:id': (req) => Response.json({ id: req.params.id, q: new URL(req.url).searchParams.get('q') }),
    '/list': () => Response.json(items),
    '/page': () => new Response(page, { headers: { 'Content-Type': 'text/html; charset=utf-8' } }),
  },
  fetch() {
    return new Response('Not Found', { status: 404 });
  },
});

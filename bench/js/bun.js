// Bun.serve peer of the JS benchmark (bench/js.sh).
const port = Number(process.env.PORT || 3001);
const json = { message: 'Hello, World!' };
Bun.serve({
  port,
  hostname: '127.0.0.1',
  routes: {
    '/': () => new Response('Hello, World!', { headers: { 'Content-Type': 'text/plain; charset=utf-8' } }),
    '/json': () => Response.json(json),
    '/users/:id': (req) => Response.json({ id: req.params.id, q: new URL(req.url).searchParams.get('q') }),
  },
  fetch() {
    return new Response('Not Found', { status: 404 });
  },
});

// A small JSON CRUD API: routing with params, middleware, body parsing, error handling,
// and local modules loaded with require().
//
//   marg serve examples/api.js --workers 1
//   curl -s localhost:3000/todos
//   curl -s -X POST localhost:3000/todos -H 'content-type: application/json' -d '{"title":"write docs"}'
//   curl -s -X PATCH localhost:3000/todos/1 -H 'content-type: application/json' -d '{"done":true}'
//   curl -s -X DELETE localhost:3000/todos/1
//
// Each worker thread has its own JS VM, so this in-memory store is per worker: run it with
// --workers 1 (or keep state in a database) when the data must be shared.
const { validateTodo, HttpError } = require('./lib/todos.js');
const seed = require('./lib/seed.json');

const todos = new Map(seed.map((t) => [t.id, t]));
let nextId = Math.max(0, ...todos.keys()) + 1;

// Middleware: a request id and timing header on every response.
let counter = 0;
Marg.use((req, res, next) => {
  const started = performance.now();
  res.set('X-Request-Id', String(++counter));
  res.locals.started = started;
  next();
});

// Middleware on a path prefix: a toy API key check for writes under /todos.
Marg.use('/todos', (req, res, next) => {
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.get('x-api-key') === 'wrong') {
    return next(new HttpError(401, 'bad api key'));
  }
  next();
});

Marg.get('/', (req, res) => res.json({ name: 'todo api', endpoints: ['/todos', '/todos/:id'] }));

Marg.get('/todos', (req, res) => {
  let list = [...todos.values()];
  if (req.query.done !== undefined) list = list.filter((t) => String(t.done) === req.query.done);
  const limit = Number(req.query.limit || list.length);
  res.json(list.slice(0, limit));
});

Marg.get('/todos/:id', (req, res, next) => {
  const t = todos.get(Number(req.params.id));
  if (!t) return next(new HttpError(404, `todo ${req.params.id} not found`));
  res.json(t);
});

Marg.post('/todos', (req, res) => {
  const input = validateTodo(req.body, { partial: false });
  const todo = { id: nextId++, title: input.title, done: input.done ?? false };
  todos.set(todo.id, todo);
  res.status(201).set('Location', `/todos/${todo.id}`).json(todo);
});

Marg.patch('/todos/:id', async (req, res) => {
  const t = todos.get(Number(req.params.id));
  if (!t) throw new HttpError(404, `todo ${req.params.id} not found`);
  Object.assign(t, validateTodo(await req.json(), { partial: true }));
  res.json(t);
});

Marg.delete('/todos/:id', (req, res) => {
  if (!todos.delete(Number(req.params.id))) throw new HttpError(404, `todo ${req.params.id} not found`);
  res.sendStatus(204);
});

Marg.get('/boom', () => {
  throw new Error('something broke');
});

// Error middleware: four parameters. Known errors become JSON; others are logged and 500.
Marg.use((err, req, res, next) => {
  if (err instanceof HttpError || err.status === 400) {
    return res.status(err.status).json({ error: err.message });
  }
  console.error('unexpected error in', req.method, req.path, err);
  res.status(500).json({ error: 'internal error' });
});

// Anything else: JSON 404.
Marg.use((req, res) => res.status(404).json({ error: `no route for ${req.method} ${req.path}` }));

Marg.listen(3000);

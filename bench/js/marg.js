// Marg peer of the JS benchmark (bench/js.sh): the same handler logic as bun.js, node.js
// and express.js.
const json = { message: 'Hello, World!' };
const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'user ' + i, email: 'user' + i + '@example.com', active: i % 3 !== 0, score: i * 1.5 }));
const page = '<!doctype html><title>marg</title>' + '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n'.repeat(250);
Marg.get('/', (req, res) => res.type('text').send('Hello, World!'));
Marg.get('/json', (req, res) => res.json(json));
Marg.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }));
Marg.get('/list', (req, res) => res.json(items));
Marg.get('/page', (req, res) => res.type('html').send(page));

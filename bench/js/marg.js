// Marg peer of the JS benchmark (bench/js.sh): the same handler logic as bun.js, node.js
// and express.js.
const json = { message: 'Hello, World!' };
Marg.get('/', (req, res) => res.type('text').send('Hello, World!'));
Marg.get('/json', (req, res) => res.json(json));
Marg.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }));

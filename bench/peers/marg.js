// Marg JS peer (`marg-js` in bench/run.py): the same endpoints through the
// JavaScript bridge.
Marg.get('/json', (req, res) => res.json({ message: 'Hello, World!' }));
Marg.get('/', (req, res) => res.type('text/plain').send('Hello, World!'));
Marg.listen();

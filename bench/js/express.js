// Express 5 peer of the JS benchmark (bench/js.sh).
const express = require('express');
const port = Number(process.env.PORT || 3003);
const app = express();
app.set('etag', false);
app.set('x-powered-by', false);
const json = { message: 'Hello, World!' };
app.get('/', (req, res) => res.type('text').send('Hello, World!'));
app.get('/json', (req, res) => res.json(json));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }));
app.listen(port, '127.0.0.1');

// Express 5 peer of the JS benchmark (bench/js.sh).
const express = require('express');
const port = Number(process.env.PORT || 3003);
const app = express();
app.set('etag', false);
app.set('x-powered-by', false);
const json = { message: 'Hello, World!' };
const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'user ' + i, email: 'user' + i + '@example.com', active: i % 3 !== 0, score: i * 1.5 }));
const page = '<!doctype html><title>marg</title>' + '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n'.repeat(250);
app.get('/', (req, res) => res.type('text').send('Hello, World!'));
app.get('/json', (req, res) => res.json(json));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }));
app.get('/list', (req, res) => res.json(items));
app.get('/page', (req, res) => res.type('html').send(page));
app.listen(port, '127.0.0.1');

// The smallest Marg app: `marg serve examples/hello.js` (what `make run` serves).
Marg.get('/', (req, res) => {
  res.send('Hello, World!');
});

Marg.listen(3000);

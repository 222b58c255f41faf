// Async handlers, timers and promises.
//
//   marg serve examples/async.js
//   curl -s localhost:3000/delay?ms=100
//   curl -s localhost:3000/parallel
//   curl -s localhost:3000/return
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// An async handler: the response is sent when it calls res.send.
Marg.get('/delay', async (req, res) => {
  const ms = Math.min(Number(req.query.ms) || 10, 5000);
  const t0 = performance.now();
  await sleep(ms);
  res.json({ requested: ms, waited: Math.round(performance.now() - t0) });
});

// Several timers at once; the handler finishes when all have fired.
Marg.get('/parallel', async (req, res) => {
  const results = await Promise.all([30, 10, 20].map(async (ms) => {
    await sleep(ms);
    return ms;
  }));
  res.json({ order: results });
});

// Returning a value from an async handler sends it (objects as JSON).
Marg.get('/return', async () => ({ ok: true, at: new Date(0).toISOString() }));

// A rejected promise becomes a 500 (stack in the server log).
Marg.get('/fail', async () => {
  await sleep(5);
  throw new Error('failed after a delay');
});

// setInterval + clearInterval.
Marg.get('/ticks', (req, res) => {
  let n = 0;
  const timer = setInterval(() => {
    n += 1;
    if (n === 3) {
      clearInterval(timer);
      res.send(`ticked ${n} times`);
    }
  }, 5);
});

// queueMicrotask runs before timers.
Marg.get('/order', (req, res) => {
  const order = [];
  setTimeout(() => {
    order.push('timeout');
    res.json(order);
  }, 0);
  queueMicrotask(() => order.push('microtask'));
  Promise.resolve().then(() => order.push('promise'));
  order.push('sync');
});

Marg.listen(3000);

// Bun.serve peer: plaintext on every path, JSON on /json.
const port = Number(process.env.PORT || 3001);
const json = { message: "Hello, World!" };
Bun.serve({
  port,
  hostname: "127.0.0.1",
  fetch(req) {
    const url = req.url;
    if (url.endsWith("/json")) return Response.json(json);
    return new Response("Hello, World!", { headers: { "Content-Type": "text/plain" } });
  },
});
console.log(`bun listening on ${port}`);

// Node 20 node:http peer: plaintext on every path, JSON on /json.
const http = require("node:http");
const port = Number(process.env.PORT || 3002);
http
  .createServer((req, res) => {
    if (req.url === "/json") {
      const body = JSON.stringify({ message: "Hello, World!" });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    } else {
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 13 });
      res.end("Hello, World!");
    }
  })
  .listen(port, "127.0.0.1", () => console.log(`node listening on ${port}`));

// Express 5 peer: plaintext on /, JSON on /json.
const express = require("express");
const port = Number(process.env.PORT || 3003);
const app = express();
app.set("etag", false);
app.set("x-powered-by", false);
app.get("/json", (req, res) => res.json({ message: "Hello, World!" }));
app.get("/", (req, res) => res.type("text/plain").send("Hello, World!"));
app.listen(port, "127.0.0.1", () => console.log(`express listening on ${port}`));

// Validation helpers for examples/api.js (a CommonJS module loaded with require).
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }
}

function validateTodo(body, { partial }) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'expected a JSON object');
  }
  const out = {};
  if ('title' in body || !partial) {
    if (typeof body.title !== 'string' || body.title.trim() === '') {
      throw new HttpError(400, 'title must be a non-empty string');
    }
    out.title = body.title.trim();
  }
  if ('done' in body) {
    if (typeof body.done !== 'boolean') throw new HttpError(400, 'done must be a boolean');
    out.done = body.done;
  }
  return out;
}

module.exports = { HttpError, validateTodo };

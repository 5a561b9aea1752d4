// Runs one script of the script panel, away from the page: a worker has no
// DOM and no access to the page's storage, and the page stops a script by
// ending its worker. The script sees `db` (the HTTP API with the signed-in
// token) and `print`; what it prints, returns or throws goes back to the page.

import { Api, ApiError, keyOf, keyValue } from "./api.js";

const AsyncFunction = (async () => {}).constructor;

function show(value) {
  if (typeof value === "string") return value;
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

class Collection {
  constructor(api, name) {
    this.api = api;
    this.name = name;
  }

  /** The value at `key`, or `fallback` (undefined) when there is none. */
  async get(key, fallback = undefined) {
    try {
      return JSON.parse((await this.api.get(this.name, keyOf(key))).raw);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return fallback;
      throw error;
    }
  }

  async set(key, value) {
    await this.api.put(this.name, keyOf(key), JSON.stringify(value));
  }

  /** Whether there was an item to delete. */
  async delete(key) {
    try {
      await this.api.delete(this.name, keyOf(key));
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return false;
      throw error;
    }
  }

  async count() {
    return this.api.count(this.name);
  }

  /** Every [key, value], paged lazily: `for await (const [k, v] of c.items())`. */
  async *items({ prefix = "" } = {}) {
    for await (const item of this.api.items(this.name, { prefix })) {
      yield [keyValue(item.key), JSON.parse(item.raw)];
    }
  }

  /** Every [key, value] that the query (POST .../query body) matches. */
  async *query(body = {}) {
    let cursor = null;
    do {
      const page = await this.api.query(this.name, { ...body, cursor });
      for (const item of page.items) yield [keyValue(item.key), JSON.parse(item.raw)];
      cursor = page.next_cursor;
    } while (cursor);
  }
}

self.onmessage = async ({ data: { token, code } }) => {
  const api = new Api(token);
  const db = {
    collection: (name) => new Collection(api, name),
    collections: () => api.collections(),
  };
  const print = (...values) => self.postMessage({ kind: "out", text: values.map(show).join(" ") });
  try {
    const result = await new AsyncFunction("db", "print", code)(db, print);
    if (result !== undefined) self.postMessage({ kind: "out", text: show(result) });
    self.postMessage({ kind: "done" });
  } catch (error) {
    self.postMessage({ kind: "error", text: String(error?.stack || error) });
  }
};

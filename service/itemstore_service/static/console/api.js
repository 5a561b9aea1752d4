// The public HTTP API, as the console and its script worker use it. Keys are
// typed: {type: "str"|"int"|"float"|"bool", text, json} where `text` is the
// path segment and `json` the key as JSON text (exact, as the service sent it).

import { rawElements, rawMembers } from "./rawjson.js";

export const KEY_TYPES = ["str", "int", "float", "bool"];

/** An error answer of the service: `problem` is its problem+json body
 * parsed, `body` its text. */
export class ApiError extends Error {
  constructor(status, problem, body) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.body = body;
    this.code = problem.code;
  }
}

/** The typed key `text` of `type`, checked as the service would. */
export function typedKey(text, type = "str") {
  if (type === "str") return { type, text, json: JSON.stringify(text) };
  if (type === "bool") {
    if (text !== "true" && text !== "false") throw new Error("a bool key is true or false");
    return { type, text, json: text };
  }
  const pattern = type === "int" ? /^-?\d+$/ : /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
  if (!pattern.test(text)) throw new Error(`${JSON.stringify(text)} is not an ${type} key`);
  return { type, text, json: text };
}

/** The typed key of a JavaScript value (a string, a number or a boolean). */
export function keyOf(value) {
  if (typeof value === "string") return typedKey(value, "str");
  if (typeof value === "boolean") return typedKey(String(value), "bool");
  if (typeof value === "number" && Number.isFinite(value)) {
    return typedKey(String(value), Number.isInteger(value) ? "int" : "float");
  }
  if (value && typeof value === "object" && KEY_TYPES.includes(value.type)) return value;
  throw new Error(`a key is a string, a number or a boolean, not ${JSON.stringify(value)}`);
}

/** The typed key of its JSON text as the service wrote it. */
export function keyFromJson(json) {
  if (json.startsWith('"')) return { type: "str", text: JSON.parse(json), json };
  if (json === "true" || json === "false") return { type: "bool", text: json, json };
  return { type: /[.eE]/.test(json) ? "float" : "int", text: json, json };
}

/** What a script sees of a key: a string, a number or a boolean. */
export function keyValue(key) {
  return JSON.parse(key.json);
}

export class Api {
  /** `token` is sent as a bearer token; empty for an open service. */
  constructor(token) {
    this.token = token;
  }

  async call(method, path, { body, headers = {}, params = {} } = {}) {
    const query = new URLSearchParams(params).toString();
    const url = path + (query ? `?${query}` : "");
    const sent = { ...headers };
    if (this.token) sent.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers: sent, body, cache: "no-store" });
    const text = await response.text();
    if (!response.ok) {
      let problem;
      try {
        problem = JSON.parse(text);
      } catch {
        problem = { title: text || response.statusText };
      }
      throw new ApiError(response.status, problem, text);
    }
    return { status: response.status, headers: response.headers, text };
  }

  async json(method, path, options) {
    const answer = await this.call(method, path, options);
    return answer.text ? JSON.parse(answer.text) : null;
  }

  info() {
    return this.json("GET", "/");
  }

  /** Every collection name, walking the pages. */
  async collections() {
    const names = [];
    let cursor = null;
    do {
      const page = await this.json("GET", "/collections", { params: cursor ? { cursor } : {} });
      names.push(...page.collections.map((c) => c.name));
      cursor = page.next_cursor;
    } while (cursor);
    return names;
  }

  async count(name) {
    return (await this.json("GET", `/collections/${encodeURIComponent(name)}`)).count;
  }

  async clear(name) {
    return (await this.json("DELETE", `/collections/${encodeURIComponent(name)}`)).deleted;
  }

  itemPath(name, key) {
    return `/collections/${encodeURIComponent(name)}/items/${encodeURIComponent(key.text)}`;
  }

  /** One page of items: [{key, raw, expires_at}], raw being the value's JSON text. */
  async page(name, { limit = 50, cursor = null, prefix = "" } = {}) {
    const params = { limit: String(limit) };
    if (cursor) params.cursor = cursor;
    if (prefix) params.prefix = prefix;
    const answer = await this.call("GET", `/collections/${encodeURIComponent(name)}/items`, {
      params,
    });
    return pageOf(answer.text);
  }

  /** Every item, page after page, as an async iterator of {key, raw, expires_at}. */
  async *items(name, { prefix = "", pageSize = 100 } = {}) {
    let cursor = null;
    do {
      const page = await this.page(name, { limit: pageSize, cursor, prefix });
      yield* page.items;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /** The ETag of each key (null when absent), in one batch call. */
  async etags(name, keys) {
    if (keys.length === 0) return [];
    const ops = keys.map((key) => `{"op":"get","key":${key.json}}`).join(",");
    const answer = await this.json("POST", `/collections/${encodeURIComponent(name)}/batch`, {
      body: `{"ops":[${ops}]}`,
    });
    return answer.results.map((result) => result.etag ?? null);
  }

  /** {raw, etag, expires} of an item; ApiError 404 when absent. */
  async get(name, key) {
    const answer = await this.call("GET", this.itemPath(name, key), {
      params: { key_type: key.type },
    });
    return {
      raw: answer.text,
      etag: answer.headers.get("ETag"),
      expires: answer.headers.get("Expires"),
    };
  }

  /** Store the JSON text `raw`; `ifMatch` (an ETag) or `ifAbsent` make it
   * conditional (ApiError 412 with the current value and ETag otherwise). */
  async put(name, key, raw, { ifMatch = null, ifAbsent = false } = {}) {
    const headers = {};
    if (ifMatch) headers["If-Match"] = ifMatch;
    if (ifAbsent) headers["If-None-Match"] = "*";
    return this.json("PUT", this.itemPath(name, key), {
      body: raw,
      headers,
      params: { key_type: key.type },
    });
  }

  /** Remove an item; ApiError 404 when absent, 412 when `ifMatch` does not hold. */
  async delete(name, key, { ifMatch = null } = {}) {
    return this.json("DELETE", this.itemPath(name, key), {
      headers: ifMatch ? { "If-Match": ifMatch } : {},
      params: { key_type: key.type },
    });
  }

  /** Write [{key, raw}] in batch puts, each within the service's `limits`
   * (max_batch_ops, max_batch_bytes); `onProgress(written)` after each batch. */
  async putMany(name, items, limits, onProgress = () => {}) {
    const encoder = new TextEncoder();
    const room = limits.max_batch_bytes - 64; // the body's own braces and commas
    let ops = [];
    let bytes = 0;
    let written = 0;
    const send = async () => {
      await this.call("POST", `/collections/${encodeURIComponent(name)}/batch`, {
        body: `{"ops":[${ops.join(",")}]}`,
        headers: { Prefer: "return=minimal" },
      });
      written += ops.length;
      onProgress(written);
      ops = [];
      bytes = 0;
    };
    for (const item of items) {
      const op = `{"op":"put","key":${item.key.json},"value":${item.raw}}`;
      const size = encoder.encode(op).length + 1;
      if (ops.length && (ops.length === limits.max_batch_ops || bytes + size > room)) await send();
      ops.push(op);
      bytes += size;
    }
    if (ops.length) await send();
  }

  /** One page of a query (POST /collections/{name}/query), when the service has it. */
  async query(name, body) {
    const answer = await this.call("POST", `/collections/${encodeURIComponent(name)}/query`, {
      body: JSON.stringify(body),
    });
    return pageOf(answer.text);
  }

  /** Whether the service answers queries (probed with an empty one). */
  async hasQuery() {
    try {
      await this.query("console-probe", { limit: 1 });
      return true;
    } catch (error) {
      // 404 or 405: no such route. Any other answer (400, 403 ...) comes from the route.
      return error instanceof ApiError && error.status !== 404 && error.status !== 405;
    }
  }
}

/** A listing or query page: {items: [{key, raw, expires_at}], next_cursor, ...}. */
export function pageOf(text) {
  const members = rawMembers(text);
  const page = JSON.parse(text);
  page.items = rawElements(members.items).map((raw, i) => {
    const item = rawMembers(raw);
    return {
      key: keyFromJson(item.key),
      raw: item.value ?? null,
      expires_at: page.items[i].expires_at ?? null,
    };
  });
  return page;
}

// The console's page: sign-in, collections, items, the item editor, import and
// export, and the script panel. Everything goes through the public HTTP API
// (api.js) with the token kept in sessionStorage. Item content is only ever
// put into the page as text (textContent), never as HTML.

import { Api, ApiError, KEY_TYPES, keyFromJson, typedKey } from "./api.js";
import { createEditor, editorText, setEditorText } from "./codemirror.js";
import { compactJson, indentJson, rawMembers } from "./rawjson.js";

const TOKEN = "itemstore.token";
const PAGE_SIZE = 50;
const EXAMPLE_SCRIPT = `// Sum a field over a collection.
let total = 0;
for await (const [key, value] of db.collection("users").items()) {
  total += value.age ?? 0;
}
print("total age:", total);
`;

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  limits: null, // the service's, from GET /
  hasQuery: false,
  collection: null,
  cursors: [null], // the cursor of each page seen so far; the last one is shown
  nextCursor: null,
  prefix: "",
  query: null,
  item: null, // {key, etag, isNew} of the item in the editor
  worker: null,
  pageLoad: 0, // the latest page load: an earlier one that ends later is dropped
};

// -- small helpers --------------------------------------------------------------

function element(tag, text = "", className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
  message.hidden = !text;
}

function describe(error) {
  if (error instanceof ApiError) {
    const code = error.code ? ` (${error.code})` : "";
    return `${error.status}${code}: ${error.message}`;
  }
  return String(error.message || error);
}

/** Run `action`, showing its failure instead of losing it. */
async function guarded(action) {
  try {
    return await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut("The service refused the token: sign in again.");
    } else {
      say(describe(error), true);
    }
    return undefined;
  }
}

/** `raw` indented when it is JSON (numbers kept as written), else as it is. */
function pretty(raw) {
  try {
    JSON.parse(raw);
  } catch {
    return raw;
  }
  return indentJson(raw);
}

function show(viewId) {
  for (const view of document.querySelectorAll("main > section")) view.hidden = view.id !== viewId;
}

function fillKeyTypes() {
  for (const select of document.querySelectorAll("select.key-types")) {
    for (const type of KEY_TYPES) select.append(new Option(type, type));
  }
}

// -- sign-in --------------------------------------------------------------------

async function signIn(token) {
  const api = new Api(token);
  const info = await api.info();
  await api.json("GET", "/collections", { params: { limit: "1" } }); // checks the token
  sessionStorage.setItem(TOKEN, token);
  state.api = api;
  state.limits = info.limits;
  $("service-info").textContent = `${info.service} ${info.version} · ${info.backend}`;
  $("nav").hidden = false;
  state.hasQuery = await api.hasQuery();
  say("");
  route();
}

function signOut(reason = "") {
  finishScript("");
  sessionStorage.removeItem(TOKEN);
  state.api = null;
  $("nav").hidden = true;
  $("service-info").textContent = "";
  show("sign-in-view");
  say(reason, Boolean(reason));
}

// -- collections ----------------------------------------------------------------

async function showCollections() {
  show("collections-view");
  const body = $("collections");
  const names = await state.api.collections();
  const counts = await Promise.all(names.map((name) => state.api.count(name)));
  body.replaceChildren(
    ...names.map((name, i) => {
      const row = element("tr");
      const cell = element("td");
      const link = element("a", name);
      link.href = `#/c/${encodeURIComponent(name)}`;
      cell.append(link);
      row.append(cell, element("td", String(counts[i]), "number"));
      return row;
    }),
  );
  if (names.length === 0) {
    const row = element("tr");
    row.append(element("td", "No collections yet: create one below."));
    body.append(row);
  }
}

async function createCollection(event) {
  event.preventDefault();
  const name = $("new-collection-name").value.trim();
  const key = typedKey($("new-collection-key").value, $("new-collection-key-type").value);
  const raw = $("new-collection-value").value;
  JSON.parse(raw); // a syntax error is shown before anything is sent
  await state.api.put(name, key, raw, { ifAbsent: true });
  location.hash = `#/c/${encodeURIComponent(name)}`;
}

// -- items ----------------------------------------------------------------------

async function openCollection(name) {
  if (state.collection !== name) {
    state.collection = name;
    state.cursors = [null];
    state.prefix = "";
    state.query = null;
    $("prefix").value = "";
  }
  show("items-view");
  $("collection-name").textContent = name;
  $("query").hidden = !state.hasQuery;
  await loadPage();
}

async function loadPage() {
  const load = ++state.pageLoad;
  const api = state.api;
  const name = state.collection;
  const cursor = state.cursors.at(-1);
  const page = state.query
    ? await api.query(name, { ...state.query, limit: PAGE_SIZE, cursor })
    : await api.page(name, { limit: PAGE_SIZE, cursor, prefix: state.prefix });
  const [etags, count] = await Promise.all([
    api.etags(name, page.items.map((item) => item.key)),
    api.count(name),
  ]);
  if (load !== state.pageLoad) return; // a later load (a query, another page) shows instead
  state.nextCursor = page.next_cursor;
  $("collection-count").textContent = `${count} item${count === 1 ? "" : "s"}`;
  const withExpiry = page.items.some((item) => item.expires_at !== null);
  $("items-table").classList.toggle("no-expiry", !withExpiry);
  $("items").replaceChildren(
    ...page.items.map((item, i) => {
      const row = element("tr");
      const raw = item.raw ?? ""; // a keys_only query sends no values
      const value = element("td", raw, "value");
      value.title = raw.slice(0, 2000);
      const expires = item.expires_at === null ? "" : new Date(item.expires_at * 1000).toISOString();
      const key = element("td", "", "key");
      key.append(element("button", item.key.text, "open")); // the keyboard's way in
      row.append(
        key,
        element("td", item.key.type, "type-cell"),
        value,
        element("td", etags[i] ?? "", "etag"),
        element("td", expires, "expiry"),
      );
      row.addEventListener("click", () => guarded(() => openItem(item.key))); // the whole row
      return row;
    }),
  );
  $("page-number").textContent = `Page ${state.cursors.length}`;
  $("previous").disabled = state.cursors.length === 1;
  $("next").disabled = !state.nextCursor;
}

function restart() {
  state.cursors = [null];
  return loadPage();
}

// -- the item editor ----------------------------------------------------------------

let itemEditor = null;

function editorFor(text) {
  if (itemEditor === null) itemEditor = createEditor($("item-editor"), text);
  else setEditorText(itemEditor, text);
}

function resetItemDialog() {
  $("conflict").hidden = true;
  $("item-error").textContent = "";
}

async function openItem(key) {
  const stored = await state.api.get(state.collection, key);
  state.item = { key, etag: stored.etag, isNew: false };
  resetItemDialog();
  $("item-title").textContent = "Item";
  $("item-key").value = key.text;
  $("item-key-type").value = key.type;
  $("item-key").disabled = $("item-key-type").disabled = true;
  $("item-delete").hidden = false;
  $("item-meta").textContent = `ETag ${stored.etag}${stored.expires ? ` · expires ${stored.expires}` : ""}`;
  $("item-dialog").showModal();
  editorFor(pretty(stored.raw));
}

function newItem() {
  state.item = { key: null, etag: null, isNew: true };
  resetItemDialog();
  $("item-title").textContent = "New item";
  $("item-key").value = "";
  $("item-key-type").value = "str";
  $("item-key").disabled = $("item-key-type").disabled = false;
  $("item-delete").hidden = true;
  $("item-meta").textContent = "";
  $("item-dialog").showModal();
  editorFor("{}");
}

/** The editor's value, compact, every number as typed. */
function editedValue() {
  const raw = editorText(itemEditor);
  try {
    JSON.parse(raw);
  } catch (error) {
    throw new Error(`The value is not JSON: ${error.message}`);
  }
  return compactJson(raw);
}

async function saveItem({ overwriteEtag = null } = {}) {
  const item = state.item;
  $("item-error").textContent = "";
  let raw;
  try {
    raw = editedValue();
    if (item.isNew) item.key = typedKey($("item-key").value, $("item-key-type").value);
  } catch (error) {
    $("item-error").textContent = error.message;
    return;
  }
  try {
    const answer = await state.api.put(state.collection, item.key, raw, {
      ifMatch: overwriteEtag ?? item.etag,
      ifAbsent: item.isNew && overwriteEtag === null,
    });
    $("item-dialog").close();
    say(`Saved ${item.key.text} (ETag ${answer.etag}).`);
    await loadPage();
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) showConflict(error, raw);
    else $("item-error").textContent = describe(error);
  }
}

function showConflict(error, mine) {
  const current = error.problem.current === null ? null : pretty(rawMembers(error.body).current);
  state.item.conflictEtag = error.problem.etag;
  let why = "someone changed this item since you opened it";
  if (state.item.isNew) why = "an item with this key exists already";
  else if (current === null) why = "this item was deleted since you opened it";
  $("conflict-text").textContent = `Not saved: ${why}. Nothing was overwritten.`;
  $("conflict-current").textContent = current ?? "(no item)";
  $("conflict-yours").textContent = pretty(mine);
  $("conflict-overwrite").hidden = current === null;
  $("conflict").hidden = false;
}

async function reloadItem() {
  const key = state.item.key;
  if (state.item.isNew) {
    state.item.isNew = false;
    $("item-key").disabled = $("item-key-type").disabled = true;
  }
  const stored = await state.api.get(state.collection, key);
  state.item.etag = stored.etag;
  $("item-meta").textContent = `ETag ${stored.etag}`;
  setEditorText(itemEditor, pretty(stored.raw));
  resetItemDialog();
}

async function deleteItem() {
  const item = state.item;
  if (!confirm(`Delete item ${item.key.text} (${item.key.type}) from ${state.collection}?`)) return;
  try {
    await state.api.delete(state.collection, item.key, { ifMatch: item.etag });
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) {
      showConflict(error, editorText(itemEditor));
      $("conflict-text").textContent = "Not deleted: the item changed since you opened it.";
      $("conflict-overwrite").hidden = true;
      return;
    }
    throw error;
  }
  $("item-dialog").close();
  say(`Deleted ${item.key.text}.`);
  await loadPage();
}

// -- clear, export, import ----------------------------------------------------------

function askClear() {
  $("clear-name").textContent = state.collection;
  $("clear-confirm").value = "";
  $("clear-go").disabled = true;
  $("clear-dialog").showModal();
}

async function clearCollection() {
  const deleted = await state.api.clear(state.collection);
  say(`Cleared ${state.collection}: ${deleted} items deleted.`);
  await restart();
}

function progress(done, total) {
  const bar = $("progress");
  bar.hidden = done >= total;
  bar.max = Math.max(total, 1);
  bar.value = done;
}

async function exportCollection() {
  const name = state.collection;
  const total = await state.api.count(name);
  const lines = [];
  progress(0, total);
  for await (const item of state.api.items(name, { pageSize: state.limits.max_page_size })) {
    lines.push(`{"key":${item.key.json},"value":${item.raw}}\n`);
    progress(lines.length, total);
  }
  progress(1, 1);
  const link = element("a");
  link.href = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
  link.download = `${name}.jsonl`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  say(`Exported ${lines.length} items of ${name}.`);
}

/** [{key, raw}] of a JSON Lines text; every line is checked before anything is written. */
function parseLines(text) {
  const items = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      throw new Error(`line ${i + 1} is not JSON: ${error.message}`);
    }
    if (parsed === null || typeof parsed !== "object" || !("key" in parsed) || !("value" in parsed)) {
      throw new Error(`line ${i + 1} is not an object with "key" and "value"`);
    }
    if (!["string", "number", "boolean"].includes(typeof parsed.key)) {
      throw new Error(`line ${i + 1}: a key is a string, a number or a boolean`);
    }
    const members = rawMembers(line);
    items.push({ key: keyFromJson(members.key), raw: members.value });
  });
  return items;
}

async function importFile(file) {
  const items = parseLines(await file.text());
  progress(0, items.length);
  await state.api.putMany(state.collection, items, state.limits, (written) =>
    progress(written, items.length),
  );
  say(`Imported ${items.length} items into ${state.collection}.`);
  await restart();
}

// -- the script panel ---------------------------------------------------------------

let scriptEditor = null;

function showScript() {
  show("script-view");
  if (scriptEditor === null) {
    scriptEditor = createEditor($("script-editor"), EXAMPLE_SCRIPT, { language: "javascript" });
  }
}

function finishScript(text) {
  state.worker?.terminate();
  state.worker = null;
  $("run").disabled = false;
  $("stop").disabled = true;
  $("script-state").textContent = text;
}

function runScript() {
  const output = $("output");
  output.textContent = "";
  const worker = new Worker("script-worker.js", { type: "module" });
  state.worker = worker;
  $("run").disabled = true;
  $("stop").disabled = false;
  $("script-state").textContent = "running…";
  worker.onmessage = ({ data }) => {
    if (data.kind === "out") output.append(`${data.text}\n`);
    else if (data.kind === "error") {
      output.append(element("span", `${data.text}\n`, "danger-text"));
      finishScript("failed");
    } else finishScript("done");
  };
  worker.onerror = (event) => {
    output.append(element("span", `${event.message || "the script could not start"}\n`, "danger-text"));
    finishScript("failed");
  };
  worker.postMessage({ token: state.api.token, code: editorText(scriptEditor) });
}

// -- routing and wiring -------------------------------------------------------------

function route() {
  if (!state.api) return;
  const hash = location.hash;
  if (hash === "#/script") showScript();
  else if (hash.startsWith("#/c/")) guarded(() => openCollection(decodeURIComponent(hash.slice(4))));
  else guarded(showCollections);
}

function on(id, event, handler) {
  $(id).addEventListener(event, (e) => guarded(() => handler(e)));
}

function wire() {
  fillKeyTypes();
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("token").value);
      $("token").value = "";
    } catch (error) {
      say(error instanceof ApiError && error.status === 401 ? "Wrong token." : describe(error), true);
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  on("new-collection", "submit", createCollection);
  on("search", "submit", (event) => {
    event.preventDefault();
    state.prefix = $("prefix").value;
    state.query = null;
    return restart();
  });
  on("query", "submit", (event) => {
    event.preventDefault();
    state.query = JSON.parse($("query-body").value);
    return restart();
  });
  on("query-reset", "click", () => {
    state.query = null;
    return restart();
  });
  on("previous", "click", () => {
    state.cursors.pop();
    return loadPage();
  });
  on("next", "click", () => {
    state.cursors.push(state.nextCursor);
    return loadPage();
  });
  on("new-item", "click", newItem);
  on("item-save", "click", () => saveItem());
  on("item-delete", "click", deleteItem);
  on("conflict-overwrite", "click", () => saveItem({ overwriteEtag: state.item.conflictEtag }));
  on("conflict-reload", "click", reloadItem);
  on("clear", "click", askClear);
  $("clear-confirm").addEventListener("input", () => {
    $("clear-go").disabled = $("clear-confirm").value !== state.collection;
  });
  $("clear-dialog").addEventListener("close", () => {
    if ($("clear-dialog").returnValue === "clear") guarded(clearCollection);
  });
  on("export", "click", exportCollection);
  on("import", "change", async () => {
    const file = $("import").files[0];
    $("import").value = "";
    if (file) await importFile(file);
  });
  on("run", "click", runScript);
  $("stop").addEventListener("click", () => finishScript("stopped"));
  window.addEventListener("hashchange", route);
}

wire();
const saved = sessionStorage.getItem(TOKEN);
if (saved === null) show("sign-in-view");
else signIn(saved).catch(() => signOut("Sign in again."));

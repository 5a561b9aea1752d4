"""The console in a real browser (chromium, headless) against a real service
process: every action is checked behind the console's back, over HTTP with the
SDK or raw requests."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from itemstore import Client
from itemstore_service.app import create_app
from itemstore_service.config import Config
from tests.console.conftest import TOKEN
from tests.live_service import Served, serve

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[dev]')")
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(60)


def sign_in(page: Page, service: Served, token: str = TOKEN) -> None:
    page.goto(f"{service.url}/console/")
    page.fill("#token", token)
    page.click("#sign-in button")


def open_collection(page: Page, service: Served, name: str) -> None:
    sign_in(page, service)
    expect(page.locator("#collections-view")).to_be_visible()
    page.click(f"#collections a:text-is('{name}')")
    expect(page.locator("#collection-name")).to_have_text(name)


def replace_editor_text(page: Page, editor: str, text: str) -> None:
    """Select all and paste ``text``, as a user would."""
    content = page.locator(f"{editor} .cm-content")
    content.click()
    page.keyboard.press("Control+A")
    content.evaluate(PASTE, text)


PASTE = """(target, text) => {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    target.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
}"""


def raw_items(service: Served, name: str) -> list[tuple[str, str]]:
    """(key, value) of every item as JSON text exactly as the service sends it."""
    request = urllib.request.Request(
        f"{service.url}/collections/{name}/items?limit=1000",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request) as answer:
        page = orjson.loads(answer.read())
    assert page["next_cursor"] is None
    return [
        (orjson.dumps(item["key"]).decode(), orjson.dumps(item["value"]).decode())
        for item in page["items"]
    ]


def stored_text(service: Served, name: str, key: str) -> bytes:
    """The body of GET /collections/{name}/items/{key}: the value as stored."""
    request = urllib.request.Request(
        f"{service.url}/collections/{name}/items/{key}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request) as answer:
        body: bytes = answer.read()
    return body


# -- signing in ------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_the_right_one_kept_for_the_tab_only(
    page: Page, service: Served
) -> None:
    sign_in(page, service, token="not-the-token")
    expect(page.locator("#message")).to_have_text("Wrong token.")
    expect(page.locator("#collections-view")).to_be_hidden()

    sign_in(page, service)
    expect(page.locator("#collections-view")).to_be_visible()
    expect(page.locator("#service-info")).to_contain_text("sqlite")
    assert TOKEN not in page.url
    assert page.context.cookies() == []
    # A reload in the same tab stays signed in (sessionStorage); signing out forgets it.
    page.reload()
    expect(page.locator("#collections-view")).to_be_visible()
    page.click("#sign-out")
    page.reload()
    expect(page.locator("#sign-in-view")).to_be_visible()


def test_the_token_goes_only_in_the_authorization_header(page: Page, service: Served) -> None:
    requests: list[tuple[str, str | None]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    sign_in(page, service)
    expect(page.locator("#collections-view")).to_be_visible()
    page.click("nav a[href='#/script']")
    api_calls = [auth for url, auth in requests if "/collections" in url]
    assert api_calls and all(auth == f"Bearer {TOKEN}" for auth in api_calls)
    assert not any(TOKEN in url for url, _ in requests)
    # Static files go out without it.
    assert all(auth is None for url, auth in requests if "/console/" in url)


def test_a_service_without_a_token_is_signed_into_with_none(page: Page, tmp_path: Path) -> None:
    with serve(tmp_path) as open_service:
        with Client(open_service.url) as sdk:
            sdk.collection("notes")["n1"] = "hello"
        sign_in(page, open_service, token="")
        row = page.locator("#collections tr", has=page.locator("a:text-is('notes')"))
        expect(row.locator("td.number")).to_have_text("1")


def test_the_collections_page_lists_each_collection_with_its_count(
    page: Page, service: Served, sdk: Client, collection_name: str, screenshots: Path
) -> None:
    sdk.collection(collection_name).update({f"user-{i}": {"age": 20 + i} for i in range(7)})
    sdk.collection(f"{collection_name}-orders").update({"o1": {"total": 12.5}})
    sign_in(page, service)
    row = page.locator("#collections tr", has=page.locator(f"a:text-is('{collection_name}')"))
    expect(row.locator("td.number")).to_have_text("7")
    orders = page.locator("#collections tr", has_text=f"{collection_name}-orders")
    expect(orders.locator("td.number")).to_have_text("1")
    page.screenshot(path=screenshots / "collections.png")


# -- items -----------------------------------------------------------------------


def test_paging_through_250_items_shows_each_once(
    page: Page, any_service: Served, collection_name: str
) -> None:
    expected = {f"k{i:03d}" for i in range(250)}
    with Client(any_service.url, token=TOKEN) as sdk:
        items = sdk.collection(collection_name)
        items.update({key: {"n": 1} for key in expected})
        assert set(items) == expected  # the service holds them all, before the console looks
    open_collection(page, any_service, collection_name)
    expect(page.locator("#collection-count")).to_have_text("250 items")

    seen: list[str] = []
    for number in range(1, 6):
        expect(page.locator("#page-number")).to_have_text(f"Page {number}")
        expect(page.locator("#items tr")).to_have_count(50)
        seen += page.locator("#items td.key").all_inner_texts()
        if number < 5:
            page.click("#next")
    expect(page.locator("#next")).to_be_disabled()
    assert len(seen) == 250
    assert set(seen) == expected
    page.click("#previous")
    expect(page.locator("#page-number")).to_have_text("Page 4")
    assert page.locator("#items td.key").all_inner_texts() == seen[150:200]


def test_prefix_search_lists_the_matching_keys(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sdk.collection(collection_name).update({"ada": 1, "adam": 2, "bob": 3})
    open_collection(page, service, collection_name)
    page.fill("#prefix", "ad")
    page.click("#search button")
    expect(page.locator("#items td.key")).to_have_text(["ada", "adam"])


def test_an_edited_value_is_saved_and_read_back_over_http(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    users = sdk.collection(collection_name)
    users["ada"] = {"age": 36, "ratio": 1.0, "big": 2**60 + 1, "tags": []}
    before = raw_items(service, collection_name)
    open_collection(page, service, collection_name)
    page.click("#items tr:has(button.open:text-is('ada'))")
    # The editor shows the stored text indented, every number as stored.
    expect(page.locator("#item-editor .cm-content")).to_contain_text('"tags": []')
    assert page.locator("#item-editor .cm-line").all_inner_texts() == [
        "{",
        '  "age": 36,',
        '  "ratio": 1.0,',
        '  "big": 1152921504606846977,',
        '  "tags": []',
        "}",
    ]
    etag_shown = page.locator("#item-meta").inner_text()
    page.click("#item-save")  # saved unchanged: stored unchanged, byte for byte
    expect(page.locator("#item-dialog")).to_be_hidden()
    assert raw_items(service, collection_name) == before
    assert stored_text(service, collection_name, "ada") == orjson.dumps(users["ada"])
    assert b'"ratio":1.0,"big":1152921504606846977' in stored_text(service, collection_name, "ada")
    page.locator("#items button.open:text-is('ada')").press("Enter")  # from the keyboard

    replace_editor_text(page, "#item-editor", '{"age": 37, "langs": ["en", "fr"], "ratio": 1.0}')
    page.click("#item-save")
    expect(page.locator("#item-dialog")).to_be_hidden()
    assert users["ada"] == {"age": 37, "langs": ["en", "fr"], "ratio": 1.0}
    # The value is stored as typed: 1.0 stays a float (no re-serialising in the browser).
    assert raw_items(service, collection_name) == [
        ('"ada"', '{"age":37,"langs":["en","fr"],"ratio":1.0}')
    ]
    row = page.locator("#items tr:has(button.open:text-is('ada'))")
    expect(row.locator("td.value")).to_have_text('{"age":37,"langs":["en","fr"],"ratio":1.0}')
    assert row.locator("td.etag").inner_text() not in etag_shown


def test_a_syntax_error_is_shown_and_nothing_is_sent(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sdk.collection(collection_name)["ada"] = {"age": 36}
    open_collection(page, service, collection_name)
    page.click("#items tr:has(button.open:text-is('ada'))")
    replace_editor_text(page, "#item-editor", '{"age": 37,')
    expect(page.locator("#item-editor .cm-lint-marker-error")).to_be_visible()
    page.click("#item-save")
    expect(page.locator("#item-error")).to_contain_text("The value is not JSON")
    assert sdk.collection(collection_name)["ada"] == {"age": 36}


def test_a_conflicting_save_shows_both_values_and_changes_nothing(
    page: Page, service: Served, sdk: Client, collection_name: str, screenshots: Path
) -> None:
    users = sdk.collection(collection_name)
    users["ada"] = {"name": "Ada", "visits": 1}
    open_collection(page, service, collection_name)
    page.click("#items tr:has(button.open:text-is('ada'))")
    expect(page.locator("#item-editor .cm-content")).to_contain_text('"visits": 1')
    users["ada"] = {"name": "Ada", "visits": 2}  # someone else writes meanwhile

    replace_editor_text(page, "#item-editor", '{"name": "Ada Lovelace", "visits": 1}')
    page.click("#item-save")
    expect(page.locator("#conflict")).to_be_visible()
    expect(page.locator("#conflict-text")).to_contain_text("someone changed this item")
    expect(page.locator("#conflict-current")).to_contain_text('"visits": 2')
    expect(page.locator("#conflict-yours")).to_contain_text('"Ada Lovelace"')
    assert users["ada"] == {"name": "Ada", "visits": 2}
    page.screenshot(path=screenshots / "item-conflict.png")

    page.click("#conflict-reload")  # take theirs: the editor shows the stored value
    expect(page.locator("#conflict")).to_be_hidden()
    expect(page.locator("#item-editor .cm-content")).to_contain_text('"visits": 2')
    assert users["ada"] == {"name": "Ada", "visits": 2}


def test_create_then_delete_an_item_with_a_typed_key(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    users = sdk.collection(collection_name)
    users["first"] = 1
    open_collection(page, service, collection_name)
    page.click("#new-item")
    page.fill("#item-key", "42")
    page.select_option("#item-key-type", "int")
    replace_editor_text(page, "#item-editor", '{"answer": true}')
    page.click("#item-save")
    expect(page.locator("#item-dialog")).to_be_hidden()
    assert users[42] == {"answer": True}
    assert "42" not in users  # the int key, not the text "42"
    row = page.locator("#items tr:has(button.open:text-is('42'))")
    expect(row.locator("td.type-cell")).to_have_text("int")

    # A new item under a key that exists is refused, showing what is there.
    page.click("#new-item")
    page.fill("#item-key", "42")
    page.select_option("#item-key-type", "int")
    replace_editor_text(page, "#item-editor", '"mine"')
    page.click("#item-save")
    expect(page.locator("#conflict-text")).to_contain_text("exists already")
    expect(page.locator("#conflict-current")).to_contain_text('"answer": true')
    assert users[42] == {"answer": True}
    page.click("#conflict-overwrite")  # then written over, knowingly
    expect(page.locator("#item-dialog")).to_be_hidden()
    assert users[42] == "mine"

    row.click()
    page.once("dialog", lambda dialog: dialog.dismiss())  # asked, and declined
    page.click("#item-delete")
    expect(page.locator("#item-dialog")).to_be_visible()
    assert users[42] == "mine"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#item-delete")
    expect(page.locator("#item-dialog")).to_be_hidden()
    expect(row).to_have_count(0)
    assert 42 not in users
    assert len(users) == 1


def test_a_new_collection_is_made_by_writing_its_first_item(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sign_in(page, service)
    page.click("#collections-view summary")
    page.fill("#new-collection-name", collection_name)
    page.fill("#new-collection-key", "1.5")
    page.select_option("#new-collection-key-type", "float")
    page.fill("#new-collection-value", '{"first": true}')
    page.click("#new-collection button")
    expect(page.locator("#collection-name")).to_have_text(collection_name)
    expect(page.locator("#items td.type-cell")).to_have_text(["float"])
    assert dict(sdk.collection(collection_name).items()) == {1.5: {"first": True}}


def test_clearing_a_collection_asks_for_its_name_typed(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    items = sdk.collection(collection_name)
    items.update({"a": 1, "b": 2})
    open_collection(page, service, collection_name)
    page.click("#clear")
    page.fill("#clear-confirm", "not-the-name")
    expect(page.locator("#clear-go")).to_be_disabled()
    page.fill("#clear-confirm", collection_name)
    page.click("#clear-go")
    expect(page.locator("#collection-count")).to_have_text("0 items")
    assert len(items) == 0


def test_an_xss_shaped_value_and_key_stay_text(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    sdk.collection(collection_name)[attack] = {"bio": attack}
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    open_collection(page, service, collection_name)
    expect(page.locator("#items td.key")).to_have_text(attack)
    expect(page.locator("#items td.value")).to_have_text(orjson.dumps({"bio": attack}).decode())
    page.click("#items tr")
    expect(page.locator("#item-editor .cm-content")).to_contain_text(attack)
    assert page.locator("img").count() == 0
    assert page.locator("main script, dialog script").count() == 0


def has_query_endpoint() -> bool:
    app = create_app(Config())
    templates = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    return "/collections/{name}/query" in templates


def test_the_query_box_shows_only_when_the_service_has_the_query_endpoint(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sdk.collection(collection_name).update({"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}})
    open_collection(page, service, collection_name)
    query_box = page.locator("#query")
    if not has_query_endpoint():
        expect(query_box).to_be_hidden()
    else:
        expect(query_box).to_be_visible()
        page.fill("#query-body", '{"where": {"n?gte": 2}}')
        page.click("#query button[type=submit]")
        expect(page.locator("#items td.key")).to_have_text(["b", "c"])
        page.click("#query-reset")
        expect(page.locator("#items td.key")).to_have_text(["a", "b", "c"])
    # No item here expires, so no expiry column either.
    expect(page.locator("#items-table th.expiry")).to_be_hidden()


def test_a_page_that_answers_late_does_not_replace_a_later_one(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    """The first listing of a collection is held back until a query, sent
    after it, is shown: the listing's late answer must not replace it."""
    sdk.collection(collection_name).update({"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}})
    held: list[Route] = []

    def hold_the_first_listing(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(f"**/collections/{collection_name}/items?*", hold_the_first_listing)
    open_collection(page, service, collection_name)
    page.fill("#query-body", '{"where": {"n?gte": 2}}')
    page.click("#query button[type=submit]")
    expect(page.locator("#items td.key")).to_have_text(["b", "c"])
    with page.expect_response(f"**/collections/{collection_name}/items?*"):
        held[0].continue_()
    page.wait_for_timeout(500)  # what the late page would need to be drawn
    expect(page.locator("#items td.key")).to_have_text(["b", "c"])


# -- import and export -------------------------------------------------------------


def test_export_then_import_reproduces_a_collection(
    page: Page, service: Served, sdk: Client, collection_name: str, tmp_path: Path
) -> None:
    source = sdk.collection(collection_name)
    source.update({f"s{i:03d}": {"i": i, "tags": ["x", i]} for i in range(230)})
    source.update({7: "seven", 2.5: [1.0, 2**60], True: None, "exact": 1.0, "é/ü ?#": {}})
    expected = raw_items(service, collection_name)
    open_collection(page, service, collection_name)

    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path / "export.jsonl"
    download.value.save_as(exported)
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected) == 235
    expect(page.locator("#message")).to_have_text(f"Exported 235 items of {collection_name}.")

    source.clear()
    assert len(source) == 0
    page.set_input_files("#import", exported)
    expect(page.locator("#message")).to_have_text(f"Imported 235 items into {collection_name}.")
    assert raw_items(service, collection_name) == expected
    expect(page.locator("#collection-count")).to_have_text("235 items")


def test_a_large_import_goes_in_batches_within_the_byte_limit(
    page: Page, service: Served, sdk: Client, collection_name: str, tmp_path: Path
) -> None:
    big = "x" * 300_000  # 30 of these are twice max_batch_bytes (4 MiB)
    upload = tmp_path / "big.jsonl"
    upload.write_bytes(b"".join(orjson.dumps({"key": i, "value": big}) + b"\n" for i in range(30)))
    sign_in(page, service)
    expect(page.locator("#collections-view")).to_be_visible()
    page.goto(f"{service.url}/console/#/c/{collection_name}")  # empty: not listed yet
    expect(page.locator("#collection-count")).to_have_text("0 items")
    page.set_input_files("#import", upload)
    expect(page.locator("#message")).to_have_text(f"Imported 30 items into {collection_name}.")
    items = sdk.collection(collection_name)
    assert len(items) == 30
    assert items[29] == big


def test_an_import_with_a_bad_line_writes_nothing(
    page: Page, service: Served, sdk: Client, collection_name: str, tmp_path: Path
) -> None:
    sdk.collection(collection_name)["keep"] = 1
    upload = tmp_path / "bad.jsonl"
    upload.write_text('{"key": "a", "value": 1}\n{"key": "b", "value": \n', encoding="utf-8")
    open_collection(page, service, collection_name)
    page.set_input_files("#import", upload)
    expect(page.locator("#message")).to_contain_text("line 2 is not JSON")
    assert dict(sdk.collection(collection_name).items()) == {"keep": 1}


# -- the script panel --------------------------------------------------------------


def run_script(page: Page, code: str) -> None:
    replace_editor_text(page, "#script-editor", code)
    page.click("#run")


def test_a_script_that_sums_a_field_prints_the_sum(
    page: Page, service: Served, sdk: Client, collection_name: str, screenshots: Path
) -> None:
    sdk.collection(collection_name).update(
        {f"order-{i:03d}": {"total": i, "paid": i % 2 == 0} for i in range(1, 151)}
    )
    sign_in(page, service)
    page.click("nav a[href='#/script']")
    run_script(
        page,
        f"""const orders = db.collection("{collection_name}");
let sum = 0, paid = 0;
for await (const [key, order] of orders.items()) {{
  sum += order.total;
  if (order.paid) paid += 1;
}}
await orders.set("summary", {{sum, paid}});
print("sum of totals:", sum);
print("paid orders:", paid);
print("summary:", await orders.get("summary"));
""",
    )
    expect(page.locator("#script-state")).to_have_text("done")
    expect(page.locator("#output")).to_contain_text(f"sum of totals: {sum(range(1, 151))}")
    expect(page.locator("#output")).to_contain_text("paid orders: 75")
    assert sdk.collection(collection_name)["summary"] == {"sum": 11325, "paid": 75}
    page.screenshot(path=screenshots / "script.png")


def test_a_script_walks_a_query(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    if not has_query_endpoint():
        pytest.skip("this service has no query endpoint")
    sdk.collection(collection_name).update({f"u{i}": {"age": 20 + i} for i in range(30)})
    sign_in(page, service)
    page.click("nav a[href='#/script']")
    run_script(
        page,
        f"""const users = db.collection("{collection_name}"), keys = [];
for await (const [key, user] of users.query({{where: {{"age?gte": 45}}}})) keys.push(key);
print(keys.sort().join(","));""",
    )
    expect(page.locator("#script-state")).to_have_text("done")
    expect(page.locator("#output")).to_have_text("u25,u26,u27,u28,u29")


def test_a_script_error_is_printed_and_a_running_script_can_be_stopped(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sign_in(page, service)
    page.click("nav a[href='#/script']")
    run_script(page, 'await db.collection("bad name!").get("x");')
    expect(page.locator("#script-state")).to_have_text("failed")
    expect(page.locator("#output")).to_contain_text("collection")

    run_script(
        page,
        f"""for (let i = 0; ; i++) {{
  await db.collection("{collection_name}").set("tick", i);
}}""",
    )
    expect(page.locator("#stop")).to_be_enabled()
    page.wait_for_timeout(300)
    page.click("#stop")
    expect(page.locator("#script-state")).to_have_text("stopped")
    expect(page.locator("#run")).to_be_enabled()
    ticks = sdk.collection(collection_name)["tick"]
    page.wait_for_timeout(300)
    assert sdk.collection(collection_name)["tick"] == ticks  # the worker is gone


def test_the_script_example_of_the_docs_runs(page: Page, service: Served, sdk: Client) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text("utf-8")
    (example,) = re.findall(r"```js\n(.*?)```", docs, flags=re.DOTALL)
    sdk.collection("users").pop("ada", None)
    sign_in(page, service)
    page.click("nav a[href='#/script']")
    run_script(page, example)
    expect(page.locator("#script-state")).to_have_text("done")
    output = page.locator("#output").inner_text().splitlines()
    assert output[:5] == ["{", '  "name": "Ada",', '  "age": 36', "}", "0"]  # get, then count
    assert "ada" not in sdk.collection("users")


# -- layout ----------------------------------------------------------------------------


def test_the_items_page_is_readable_on_a_phone(
    page: Page, service: Served, sdk: Client, collection_name: str
) -> None:
    sdk.collection(collection_name).update({f"k{i}": {"text": "x" * 300} for i in range(5)})
    page.set_viewport_size({"width": 390, "height": 844})
    open_collection(page, service, collection_name)
    body = page.locator("body").bounding_box()
    assert body is not None and body["width"] <= 390
    for button in ("#new-item", "#export", "#clear", "#next"):
        box = page.locator(button).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, button
    assert re.fullmatch(r"5 items", page.locator("#collection-count").inner_text())

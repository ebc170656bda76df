"""The review app in real headless Chromium (Debian's `chromium`, driven by playwright) against a real server."""
import shutil

import pytest

from quarry_al.engine.review.auth import add_reviewer
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from reviewdb import LABELS, make_review_db  # item i0007's teacher label is shipping
from webserver import running_server

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
SCRIPT = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def run(tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=12, texts={6: SCRIPT})
    with Store(db) as store:
        tokens = {name: add_reviewer(store, name) for name in ("ana", "bo")}
    with running_server(db) as url:
        yield db, url, tokens


def open_queue(browser, url, token):
    # bypass_csp lets playwright evaluate its wait functions; it also means the escaping test below
    # holds without the Content-Security-Policy's help.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_selector("#card:not([hidden])")
    return page, errors


def shown(page) -> str:
    return page.get_attribute("#card", "data-item-id")


def press_and_wait(page, key: str) -> str:
    before = shown(page)
    page.keyboard.press(key)
    page.wait_for_function("b => document.querySelector('#card').dataset.itemId !== b || "
                           "document.querySelector('#queue').dataset.state === 'empty'", arg=before)
    return shown(page)


def decisions(db):
    with Store(db) as store:
        return ReviewQueue(store).log()


def test_keyboard_review_correction_and_dashboard(browser, run):
    db, url, tokens = run
    page, errors = open_queue(browser, url, tokens["ana"])
    first = shown(page)
    assert page.text_content("#text") == SCRIPT  # shown as text: no script ran, no element made
    assert page.title() != "pwned" and page.locator("#text img, #text script").count() == 0
    assert page.text_content("#teacher-label") == "billing" and "0.90" in page.text_content("#teacher-confidence")
    assert page.text_content("#student-label") == "shipping"
    assert "raw answer 6" in page.text_content("#raw")
    assert page.locator("#similar li").count() >= 1

    second = press_and_wait(page, "Enter")  # accept the teacher's label
    third = press_and_wait(page, "3")  # pick the third label
    fourth = press_and_wait(page, "s")  # skip
    assert len({first, second, third, fourth}) == 4
    page.wait_for_function("document.querySelector('#done').textContent === '3'")
    log = decisions(db)
    assert [(r.item_id, r.kind, r.label, r.reviewer) for r in log] == [
        (first, "accept", "billing", "ana"), (second, "relabel", LABELS[2], "ana"),
        (third, "skip", None, "ana")]

    page.keyboard.press("u")  # bring back the skipped item to correct it
    page.wait_for_function("document.querySelector('#queue').dataset.state === 'correcting'")
    assert shown(page) == third and "Correcting" in page.text_content("#mode")
    assert press_and_wait(page, "1") == fourth  # the correction is saved, the put-aside item returns
    page.wait_for_function("document.querySelector('#notice').textContent === 'Corrected.'")
    log = decisions(db)
    assert (log[-1].item_id, log[-1].label, log[-1].supersedes) == (third, "billing", log[2].id)

    page.goto(f"{url}/dashboard")
    assert page.text_content("#decided") == "3" and page.text_content("#skipped") == "0"
    row = page.locator('tr[data-reviewer="ana"]')
    assert row.locator(".decisions").text_content() == "3" and row.locator(".corrections").text_content() == "1"
    page.go_back()
    page.wait_for_selector("#card:not([hidden])")
    press_and_wait(page, "a")
    page.wait_for_function("document.querySelector('#done').textContent === '1'")
    page.goto(f"{url}/dashboard")
    assert page.text_content("#decided") == "4"  # the dashboard follows the decisions
    assert errors == []


def test_two_browsers_never_get_the_same_item(browser, run):
    db, url, tokens = run
    ana, _ = open_queue(browser, url, tokens["ana"])
    bo, _ = open_queue(browser, url, tokens["bo"])
    seen = {"ana": [shown(ana)], "bo": [shown(bo)]}
    for _ in range(4):
        for name, page in (("ana", ana), ("bo", bo)):
            seen[name].append(press_and_wait(page, "Enter"))
    assert not set(seen["ana"]) & set(seen["bo"])
    for page in (ana, bo):  # the last decision's POST has come back
        page.wait_for_function("document.querySelector('#done').textContent === '4'")
    by_reviewer = {}
    for record in decisions(db):
        by_reviewer.setdefault(record.reviewer, []).append(record.item_id)
    assert by_reviewer["ana"] == seen["ana"][:4] and by_reviewer["bo"] == seen["bo"][:4]


def test_a_refused_decision_is_reported_on_the_page(browser, run):
    db, url, tokens = run
    page, _ = open_queue(browser, url, tokens["ana"])
    page.wait_for_function("document.querySelector('#pending').textContent !== '?'")  # prefetch answered
    with Store(db) as store:
        add_reviewer(store, "ana")  # a new token: the session ends server-side
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Not recorded (403)')")
    assert decisions(db) == []

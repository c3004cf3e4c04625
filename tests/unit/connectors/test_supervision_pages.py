import io
import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from openpyxl import load_workbook

from connectors.runtime.web_server import WebServer
from connectors.supervision import charts
from connectors.supervision.pages import COOKIE, LedgerView, session_value, templates
from connectors.supervision.stage import latest_report, supervision_app, survey_of_task
from routing.monthly import facts_at
from routing.supervision import ComplaintFigures, figures_of, with_complaints
from tests.supervision_data import BOOK, CALENDAR, entry, november, sh

TOKEN = "supervision-token-0123456789"
NOW = sh(11, 20, 12)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    entries = {e["task_id"]: e for e in november()}
    view = LedgerView(lambda: list(entries.values()), entries.get, BOOK, CALENDAR, now=lambda: NOW)
    server = WebServer(supervision_app(view, TOKEN), host="127.0.0.1", port=0, name="supervision-test")
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
            yield http
    finally:
        server.stop()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cell(html: str, row_attr: str, cls: str) -> str:
    """The text of the cell of class ``cls`` in the row carrying ``row_attr``."""
    row = html[html.index(row_attr) :]
    match = re.search(rf'class="n {cls}">([^<]*)<', row)
    assert match is not None
    return match.group(1)


def test_a_page_without_the_token_redirects_to_the_login_form(client: httpx.Client) -> None:
    """No cookie and no bearer: 303 to /login; a wrong bearer token too."""
    for headers in ({}, bearer("wrong-token-0123456789")):
        answer = client.get("/", headers=headers)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")


def test_login_sets_an_httponly_cookie_holding_no_token(client: httpx.Client) -> None:
    """The right token signs in with an HttpOnly, SameSite cookie whose value is not the token."""
    answer = client.post("/login", data={"token": TOKEN})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie and session_value(TOKEN) in cookie
    assert client.get("/").status_code == 200


def test_a_wrong_token_at_login_is_refused_with_401(client: httpx.Client) -> None:
    """A wrong token gets the form again, 401, with the reason, and no cookie."""
    answer = client.post("/login", data={"token": "not-the-token"})
    assert answer.status_code == 401
    assert "口令不正确" in answer.text
    assert "set-cookie" not in answer.headers
    client.cookies.set(COOKIE, "forged")
    assert client.get("/").status_code == 303


def test_the_overview_shows_the_figures_per_utility_district_and_city(client: httpx.Client) -> None:
    """The overview's totals and rows carry the figures the aggregation computes, with Chinese labels."""
    html = client.get("/", headers=bearer()).text
    figures = figures_of(facts_at(november(), BOOK, CALENDAR, NOW), now=NOW)
    assert re.search(r'id="total-tasks">(\d+)<', html).group(1) == str(figures.total.tasks)  # type: ignore[union-attr]
    for group in figures.by_utility:
        assert cell(html, f'data-key="{group.key}"', "tasks") == str(group.tasks)
        assert cell(html, f'data-key="{group.key}"', "breached-tasks") == str(group.breached)
    assert cell(html[html.index('id="districts"') :], 'data-key="370613"', "breached-clocks") == "2"
    for label in ("烟台市 莱山区", "聊城市", "yantai-gas（供气）", "按时", "超时", "已受理", "<svg"):
        assert label in html


def test_the_utility_page_lists_its_tasks_linked_to_their_timelines(client: httpx.Client) -> None:
    """A utility's page counts its tasks and links each to its timeline."""
    html = client.get("/utilities/yantai-water", headers=bearer()).text
    assert re.search(r'id="utility-tasks">(\d+)<', html).group(1) == "4"  # type: ignore[union-attr]
    assert 'href="/tasks/yantai-water-00003"' in html
    assert client.get("/utilities/nobody", headers=bearer()).status_code == 404


def test_the_task_page_has_the_facts_of_tasks_show(client: httpx.Client) -> None:
    """Stages with working hours, each rule with its citation, its clocks' due, state and limit."""
    html = client.get("/tasks/yantai-water-00002", headers=bearer()).text
    assert "已联系（CONTACTED）" in html
    assert "市政公用单位接到报装申请后" in html  # the first-contact rule's quoted sentence
    first = html[html.index('class="clocks" data-rule="shandong-000-first-contact"') :]
    assert 'data-state="breached"' in first[: first.index("</table>")]
    assert "2026-11-02 12:00" in first  # due: three working hours after 09:00
    assert client.get("/tasks/nobody", headers=bearer()).status_code == 404


def test_a_task_no_rule_governs_says_what_applies(client: httpx.Client) -> None:
    """An approval-system task outside every rule shows the policy's uncovered text."""
    html = client.get("/tasks/yantai-water-00006", headers=bearer()).text
    assert 'id="uncovered"' in html


def test_the_monthly_workbook_downloads_for_a_bearer_and_not_without(client: httpx.Client) -> None:
    """The workbook is served as xlsx to the token's holder; 401 without; 422 for a bad month."""
    assert client.get("/report/monthly?month=2026-11").status_code == 401
    answer = client.get("/report/monthly?month=2026-11", headers=bearer())
    assert answer.status_code == 200
    assert "ubridge-monthly-2026-11.xlsx" in answer.headers["content-disposition"]
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["单位", "区县", "用户类别", "规则", "环节用时", "超时清单", "逾期清单"]
    assert client.get("/report/monthly?month=2026-13", headers=bearer()).status_code == 422


def test_complaint_figures_are_shown_when_present() -> None:
    """The overview shows complaint columns and the satisfaction line only once the figures carry them."""
    figures = figures_of(facts_at(november(), BOOK, CALENDAR, NOW), now=NOW)
    page = templates().get_template("overview.html")
    assert "投诉办理中" not in page.render(figures=figures, charts=charts, month="2026-11")
    complaints = ComplaintFigures(open=2, overdue=1, cleared=5, satisfaction=0.996, target=0.995)
    attached = with_complaints(figures, {("total", ""): complaints, ("utility", "yantai-gas"): complaints})
    html = page.render(figures=attached, charts=charts, month="2026-11")
    assert "投诉办理中" in html and "满意度 99.6%（目标 99.5%）" in html


def test_chart_labels_are_escaped() -> None:
    """A label with markup is drawn as text, never as markup."""
    figures = figures_of(facts_at(november(), BOOK, CALENDAR, NOW), now=NOW)
    svg = charts.outcome_bars([replace(figures.by_utility[0], label="<b>")])
    assert "&lt;b&gt;" in svg and "<b>" not in svg


def test_the_event_clock_reads_the_figures_at_the_latest_report() -> None:
    """With ledger.clock event the view's now is the latest updated_at of the entries; wall time without any."""
    entries = november()
    assert latest_report(lambda: entries)() == max(e["updated_at"] for e in entries)
    assert latest_report(list)() > sh(11, 20)


@pytest.mark.parametrize(("refresh_s", "shown"), [(3600.0, "7"), (0.0, "8")])
def test_the_figures_are_computed_again_once_older_than_refresh_s(refresh_s: float, shown: str) -> None:
    """Within refresh_s the pages share one computation; with 0 every page sees the latest entries."""
    entries = {e["task_id"]: e for e in november()}
    view = LedgerView(lambda: list(entries.values()), entries.get, BOOK, CALENDAR, now=lambda: NOW, refresh_s=refresh_s)
    server = WebServer(supervision_app(view, TOKEN), host="127.0.0.1", port=0, name="supervision-test")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/"
        assert 'id="total-tasks">7<' in httpx.get(url, headers=bearer()).text
        extra = entry("yantai-gas", 50, sh(11, 3, 9), [])
        entries[extra["task_id"]] = extra
        assert f'id="total-tasks">{shown}<' in httpx.get(url, headers=bearer()).text
    finally:
        server.stop()


def test_a_login_body_larger_than_a_form_is_refused_with_413(client: httpx.Client) -> None:
    """The login form is read up to 4 KiB; a larger body is refused before it is parsed."""
    answer = client.post("/login", data={"token": "x" * 5000})
    assert answer.status_code == 413
    assert "set-cookie" not in answer.headers


def test_the_task_page_shows_its_joint_survey_once_as_it_stands_last() -> None:
    """The survey as the follower holds it last (agreed): the task's page says 已约定 once, with the other utility."""
    entries = {e["task_id"]: e for e in november()}
    slot = sh(11, 24, 9)
    survey = {"survey_id": "survey-7", "state": "PROPOSED", "round": 1, "slot_start": slot,
              "slot_end": sh(11, 24, 11), "lead_department": "烟台市住房和城乡建设局",
              "participants": [{"utility_id": "yantai-water", "task_id": "yantai-water-00002"},
                               {"utility_id": "yantai-gas", "task_id": "yantai-gas-00001"}]}  # fmt: skip
    agreed = {**survey, "state": "AGREED"}
    view = LedgerView(
        lambda: list(entries.values()),
        entries.get,
        BOOK,
        CALENDAR,
        now=lambda: NOW,
        survey=survey_of_task(lambda: [agreed]),
    )
    server = WebServer(supervision_app(view, TOKEN), host="127.0.0.1", port=0, name="supervision-test")
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
            html = http.get("/tasks/yantai-water-00002", headers=bearer()).text
            other = http.get("/tasks/yantai-water-00003", headers=bearer()).text
    finally:
        server.stop()
    assert html.count('id="survey"') == 1
    assert 'data-state="AGREED"' in html and "已约定" in html and "yantai-gas" in html
    assert "2026-11-24 09:00" in html and "烟台市住房和城乡建设局" in html
    assert 'id="survey"' not in other

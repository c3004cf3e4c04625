import argparse
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from prometheus_client import CollectorRegistry
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from connectors.registry import Context, Runnable, stage_specs
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from connectors.supervision import cli
from connectors.supervision.stage import STAGE, SupervisionView
from routing.monthly import facts_at, monthly
from routing.records import TaskLedgerEntry
from routing.supervision import figures_of
from schemas import Codec
from tests.supervision_data import BOOK, CALENDAR, entry, november, sh
from tests.support import settings_for, wait_until

pytestmark = pytest.mark.integration

CODEC = Codec.default()
TOKEN = "department-token-0123456789"
PARTITIONS = 3


@dataclass
class Served:
    """The supervision stage serving a changelog holding ``entries``."""

    kafka: KafkaSettings
    changelog: str
    url: str
    entries: list[TaskLedgerEntry]

    def write(self, *entries: TaskLedgerEntry, tombstones: tuple[str, ...] = ()) -> None:
        """Write entries as the ledger stage does (Avro value, task id key), and tombstones."""
        producer = make_producer(self.kafka)
        for item in entries:
            value = CODEC.encode("TaskLedgerEntry", dict(item))
            key = item["task_id"].encode()
            producer.send(self.changelog, key=key, value=value, partition=sum(key) % PARTITIONS)
        for task_id in tombstones:
            for partition in range(PARTITIONS):
                producer.send(self.changelog, key=task_id.encode(), value=None, partition=partition)
        producer.flush()
        producer.close()


@pytest.fixture(scope="module")
def served(kafka_bootstrap: str) -> Iterator[Served]:
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    settings = settings_for(kafka_bootstrap, prefix, supervision={"port": 0, "token": TOKEN, "refresh_s": 0})
    changelog = settings.topic("ledger_changelog")
    ensure_topics(settings.kafka, [TopicSpec(changelog, PARTITIONS, compacted=True)])
    entries = november()
    gone = entry("yantai-water", 99, sh(11, 3, 9), [])
    served = Served(settings.kafka, changelog, "", entries)
    served.write(*entries, gone)
    producer = make_producer(settings.kafka)  # a held status on the changelog: not a task, skipped
    producer.send(changelog, key=b"held/ubridge.task-status.v1/7", value=b"\x00not-an-entry", partition=0)
    producer.flush()
    producer.close()
    served.write(tombstones=(gone["task_id"],))
    spec = next(spec for spec in stage_specs(settings) if spec.name == STAGE)
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    stage: Runnable = spec.build(Context(settings, metrics, stop, CODEC))
    assert isinstance(stage, SupervisionView)
    thread = threading.Thread(target=stage.run, daemon=True)
    thread.start()
    wait_until(lambda: stage.state.ready, timeout_s=60, what="the supervision view to serve")
    served.url = f"http://127.0.0.1:{stage.port}"
    try:
        yield served
    finally:
        stop.set()
        thread.join(30)


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def cell(html: str, key: str, cls: str) -> int:
    row = html[html.index(f'data-key="{key}"') :]
    match = re.search(rf'class="n {cls}">(\d+)<', row)
    assert match is not None
    return int(match.group(1))


def test_the_view_serves_the_figures_of_the_changelogs_entries(served: Served) -> None:
    """Per utility and district the page's counts are those of the entries written; tombstoned and held ones not."""
    html = httpx.get(served.url + "/", headers=bearer()).text
    figures = figures_of(facts_at(served.entries, BOOK, CALENDAR, datetime.now(UTC)), now=datetime.now(UTC))
    assert re.search(r'id="total-tasks">(\d+)<', html).group(1) == str(len(served.entries))  # type: ignore[union-attr]
    for group in figures.by_utility:
        assert cell(html, group.key, "tasks") == group.tasks
        assert cell(html, group.key, "breached-tasks") == group.breached
        assert cell(html, group.key, "met-clocks") == sum(rule.met for rule in group.rules)
    districts = html[html.index('id="districts"') :]
    for group in figures.by_district:
        assert cell(districts, group.key, "breached-clocks") == sum(rule.breached for rule in group.rules)
    assert httpx.get(served.url + "/tasks/yantai-water-00099", headers=bearer()).status_code == 404


def test_the_view_follows_entries_written_while_it_serves(served: Served) -> None:
    """An entry written after start appears on its utility's page, and its timeline opens."""
    later = entry("weifang-heat", 1, sh(11, 16, 9), [("CONTACTED", sh(11, 16, 10))], region="370702", service="HEAT")
    served.write(later)

    def shown() -> bool:
        return httpx.get(served.url + "/utilities/weifang-heat", headers=bearer()).status_code == 200

    wait_until(shown, timeout_s=30, what="the new entry in the view")
    html = httpx.get(served.url + "/tasks/weifang-heat-00001", headers=bearer()).text
    assert "已联系（CONTACTED）" in html and "供热" in html


def test_report_monthly_writes_a_workbook_whose_figures_are_the_ledgers(served: Served, tmp_path: Path) -> None:
    """The CLI's workbook, reopened: per utility and district rows, the breached and overdue lists match."""
    output = tmp_path / "november.xlsx"
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "monthly", "--month", "2026-11", "--bootstrap", served.kafka.bootstrap,
         "--topic-prefix", served.kafka.topic_prefix, "--output", str(output)]
    )  # fmt: skip
    assert args.func(args) == 0
    expected = monthly(served.entries, BOOK, CALENDAR, month="2026-11", now=datetime.now(UTC))
    book = load_workbook(output)
    units = {row[0]: row[2:8] for row in book["单位"].iter_rows(min_row=3, values_only=True)}
    for group in expected.figures.by_utility:
        if group.key == "weifang-heat":
            continue  # written by another test of this module
        met, breached = sum(r.met for r in group.rules), sum(r.breached for r in group.rules)
        assert units[group.key] == (group.tasks, group.closed, group.open, group.breached, met, breached)
    districts = {row[0]: row[2] for row in book["区县"].iter_rows(min_row=3, values_only=True)}
    assert districts["370613"] == 1 and districts["371502"] == 1
    breached_ids = {row[0] for row in book["超时清单"].iter_rows(min_row=2, values_only=True)}
    assert breached_ids == {task.task_id for task in expected.breached}
    overdue_ids = {row[0] for row in book["逾期清单"].iter_rows(min_row=2, values_only=True)}
    assert overdue_ids == {task.task_id for task in expected.overdue}
    assert book["单位"]._charts and book["环节用时"]._charts  # openpyxl reads the charts back there


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    # Debian's driver, named explicitly, so selenium never looks for (or downloads) one of its own
    service = ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(browser: webdriver.Chrome, url: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(url + "/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()
    # the click returns before the answer is shown: wait for the overview, or for the form with its reason
    WebDriverWait(browser, 30).until(lambda b: not b.current_url.endswith("/login") or b.find_elements(By.ID, "error"))


def test_a_browser_refused_a_wrong_token_stays_on_the_login_form(served: Served, browser: webdriver.Chrome) -> None:
    """Chromium: a wrong token gets the form again with its reason; the overview still redirects to login."""
    sign_in(browser, served.url, "not-the-department-token")
    assert browser.find_element(By.ID, "error").text == "口令不正确"
    browser.get(served.url + "/")
    assert browser.current_url == served.url + "/login"


def test_a_browser_signs_in_sees_the_ledgers_figures_and_drills_down(served: Served, browser: webdriver.Chrome) -> None:
    """Chromium: after login the overview's figures are the ledger's; utility → task opens the task's timeline."""
    sign_in(browser, served.url, TOKEN)
    assert browser.current_url == served.url + "/"
    figures = figures_of(facts_at(served.entries, BOOK, CALENDAR, datetime.now(UTC)), now=datetime.now(UTC))
    for group in figures.by_utility:
        if group.key == "weifang-heat":
            continue  # written by another test of this module
        row = browser.find_element(By.CSS_SELECTOR, f'#utilities tr[data-key="{group.key}"]')
        assert int(row.find_element(By.CLASS_NAME, "tasks").text) == group.tasks
        assert int(row.find_element(By.CLASS_NAME, "breached-tasks").text) == group.breached
    assert browser.find_elements(By.CSS_SELECTOR, "svg rect.breached")
    browser.find_element(By.LINK_TEXT, "yantai-water（供水）").click()
    browser.find_element(By.LINK_TEXT, "yantai-water-00002").click()
    assert browser.find_element(By.ID, "task-id").text == "yantai-water-00002"
    clocks = browser.find_element(By.CSS_SELECTOR, 'table.clocks[data-rule="shandong-000-first-contact"]')
    assert clocks.find_element(By.CSS_SELECTOR, 'tr[data-clock="first_contact"] td.state').text == "超时"
    stages = [row.get_attribute("data-stage") for row in browser.find_elements(By.CSS_SELECTOR, "#stages tbody tr")]
    assert stages == [span["stage"] for span in served.entries[1]["stages"]]

"""The monthly dispatch report as an Excel workbook (openpyxl), for the CLI and the supervision view's download.

Sheets: 单位 and 区县 (tasks, closed, open, breached; per rule met and breached summed; a bar chart of met and
breached per group), 规则 (every group's counts per rule), 环节用时 (median and p90 working hours per stage, with
a chart of the utilities' medians), 超时清单 (the month's tasks with a breached rule) and 逾期清单 (tasks open past
due at the month's end). Complaint columns (投诉…, 满意度) appear when the figures carry them.

Example:
    >>> write_workbook(monthly(entries, book, calendar, month="2026-11", now=now), Path("2026-11.xlsx"))
"""

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Final

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.worksheet.worksheet import Worksheet

from connectors.supervision.labels import LEVEL_LABELS, OUTCOME_LABELS, STAGE_LABELS, local
from routing.monthly import MonthlyReport
from routing.services import shipped_services
from routing.supervision import GroupFigures, TaskFacts

GROUP_HEADER: Final = ("编码", "名称", "任务数", "已办结", "办理中", "超时任务", "按时（各规则）", "超时（各规则）")
COMPLAINT_HEADER: Final = ("投诉办理中", "投诉逾期", "已清零", "满意度", "满意度分值")
RULE_HEADER: Final = ("层级", "编码", "名称", "规则", "办理中", "按时办结", "超时", "终止")
STAGE_HEADER: Final = ("层级", "编码", "名称", "环节", "件数", "中位数（工作小时）", "P90（工作小时）")
TASK_HEADER: Final = ("任务", "单位", "业务", "区划", "受理时间", "当前环节", "规则", "结果", "时限")


def write_workbook(report: MonthlyReport, target: Path | IO[bytes]) -> None:
    """Write the report's workbook to a file or a binary stream."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook has its sheet
    figures = report.figures
    sheet.title = "单位"
    _groups(sheet, report, figures.by_utility, figures.has_complaints)
    _groups(book.create_sheet("区县"), report, figures.by_district, figures.has_complaints)
    _groups(book.create_sheet("用户类别"), report, figures.by_category, figures.has_complaints)
    _rules(book.create_sheet("规则"), (*figures.by_city, *figures.by_district, *figures.by_utility))
    _stages(book.create_sheet("环节用时"), figures.by_utility, figures.by_district)
    _tasks(book.create_sheet("超时清单"), report.breached, only_breached=True)
    _tasks(book.create_sheet("逾期清单"), report.overdue, only_breached=False)
    book.save(target)


def _title(sheet: Worksheet, report: MonthlyReport, what: str) -> None:
    sheet.append([f"{report.month} 水气暖报装办理情况（{what}），截至 {local(report.read_at)}（北京时间）"])


def _groups(sheet: Worksheet, report: MonthlyReport, groups: Iterable[GroupFigures], complaints: bool) -> None:
    _title(sheet, report, sheet.title)
    sheet.append([*GROUP_HEADER, *(COMPLAINT_HEADER if complaints else ())])
    rows = 0
    for group in groups:
        row: list[object] = [
            group.key,
            group.label,
            group.tasks,
            group.closed,
            group.open,
            group.breached,
            sum(rule.met for rule in group.rules),
            sum(rule.breached for rule in group.rules),
        ]
        if complaints:
            c = group.complaints
            row += [None] * 5 if c is None else [c.open, c.overdue, c.cleared, c.satisfaction, c.weighted_score]
        sheet.append(row)
        rows += 1
    if rows:
        chart = BarChart()
        chart.title = f"{sheet.title}：按时与超时"
        chart.add_data(Reference(sheet, min_col=7, max_col=8, min_row=2, max_row=rows + 2), titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=2, min_row=3, max_row=rows + 2))
        sheet.add_chart(chart, f"B{rows + 5}")


def _rules(sheet: Worksheet, groups: Iterable[GroupFigures]) -> None:
    sheet.append(list(RULE_HEADER))
    for group in groups:
        for rule in group.rules:
            sheet.append(
                [
                    LEVEL_LABELS[group.level],
                    group.key,
                    group.label,
                    rule.rule_id,
                    rule.open,
                    rule.met,
                    rule.breached,
                    rule.ended,
                ]
            )


def _stages(sheet: Worksheet, utilities: tuple[GroupFigures, ...], districts: tuple[GroupFigures, ...]) -> None:
    sheet.append(list(STAGE_HEADER))
    for group in (*utilities, *districts):
        for stage in group.stages:
            sheet.append(
                [
                    LEVEL_LABELS[group.level],
                    group.key,
                    group.label,
                    STAGE_LABELS.get(stage.stage, stage.stage),
                    stage.count,
                    round(stage.median_h, 2),
                    round(stage.p90_h, 2),
                ]
            )
    rows = sum(len(group.stages) for group in utilities)
    if rows:
        chart = BarChart()
        chart.title = "单位各环节用时中位数（工作小时）"
        chart.add_data(Reference(sheet, min_col=6, min_row=1, max_row=rows + 1), titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=3, max_col=4, min_row=2, max_row=rows + 1))
        sheet.add_chart(chart, "I2")


def _tasks(sheet: Worksheet, tasks: Iterable[TaskFacts], *, only_breached: bool) -> None:
    sheet.append(list(TASK_HEADER))
    for task in tasks:
        for rule in task.rules:
            if rule.outcome != "breached" or (not only_breached and rule.stopped is not None):
                continue
            sheet.append(
                [
                    task.task_id,
                    task.utility_id,
                    shipped_services().name(task.service),
                    task.region_code,
                    local(task.created_at),
                    STAGE_LABELS.get(task.stage or "", task.stage or ""),
                    rule.rule_id,
                    OUTCOME_LABELS[rule.outcome],
                    local(rule.due),
                ]
            )

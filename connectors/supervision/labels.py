"""The Chinese words the supervision view and the monthly workbook use for stages, outcomes and clock states."""

from datetime import datetime
from typing import Final

from routing.calendar import SHANGHAI

STAGE_LABELS: Final[dict[str, str]] = {
    "RECEIVED": "已受理",
    "CONTACTED": "已联系",
    "SURVEYED": "已踏勘",
    "PLAN_CONFIRMED": "方案确认",
    "EXTERNAL_WORKS": "外线施工",
    "CONNECTED": "已通水通气",
    "CLOSED": "已办结",
    "REJECTED": "已退回",
}
OUTCOME_LABELS: Final[dict[str, str]] = {
    "open": "办理中",
    "met": "按时办结",
    "breached": "超时",
    "ended": "终止",
    "unjudged": "不计时",
}
STATE_LABELS: Final[dict[str, str]] = {
    "met": "按时",
    "done": "已完成",
    "breached": "超时",
    "open": "计时中",
    "warning": "临近时限",
    "not_started": "未开始",
    "rejected": "已退回",
    "cancelled": "已撤销",
}
SURVEY_LABELS: Final[dict[str, str]] = {"PROPOSED": "协商中", "AGREED": "已约定", "SEPARATE": "分别踏勘"}
LEVEL_LABELS: Final[dict[str, str]] = {"total": "全部", "city": "市", "district": "区县", "utility": "单位"}


def local(moment: datetime | None) -> str:
    """``moment`` in Asia/Shanghai to the minute; empty for None."""
    return "" if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")

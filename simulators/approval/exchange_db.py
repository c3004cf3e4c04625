"""Simulated 前置库 (exchange database) of a city's 工改系统: the national data-sharing tables (DESIGN §4.1).

The approval system pushes its records into five ``SPGL_*`` tables; a utility with a *query account* reads
them incrementally by ``lsh``. :class:`ExchangeWriter` turns the events of
:class:`~simulators.approval.generator.EventGenerator` into those rows:

* ``SPGL_XMJBXXB`` project basic info: one row when a project first appears, and an update (same
  ``dfsjzj``, higher ``lsh``) when its construction-permit stage begins (planned start/end move);
* ``SPGL_XMSPSXBLXXB`` approval-item instances, one per ``spsxslbm``;
* ``SPGL_XMSPSXBLXXXXB`` handling details, one per event (``blzt`` 1 received, 11 granted, 13 refused);
* ``SPGL_XMSPSXPFWJXXB`` approval result documents (permits) and ``SPGL_XMQTFJXXB`` other attachments
  (drawings), each with a SHA-256 digest, committed with the detail that granted them and before it.

Every row carries the common fields ``lsh``, ``dfsjzj``, ``xzqhdm``, ``sjyxbs`` (1 valid, 0 withdrawn) and
``sjwxyy`` (why withdrawn). ``lsh`` comes from one counter shared by the five tables, so it increases per
table and also shows the order in which rows were committed.

Two dialects (``dialect``): ``xmdm`` writes the project code and the standard stage (``dybzspjdxh``) on
each item-instance row; ``gcdm`` keys items and documents by the engineering code (``gcdm``) and leaves the
stage to the local approval-process tables, which the writer fills once: ``SPGL_DFXMSPLCXXB`` (one process
per city, version ``1.0``), ``SPGL_DFXMSPLCJDXXB`` (its local stages 10…40 with their standard stage) and
``SPGL_DFXMSPLCJDSXXXB`` (each item code in its local stage). The key columns carry indexes, as an exchange
database upserting on them does.

Faults: ``withdraw_rate`` follows a handling detail with a copy marked ``sjyxbs=0`` and a reason;
``out_of_order_rate`` commits the first detail of a new item instance before its instance row (and its
project row, when new): those parents are held back until the next :meth:`ExchangeWriter.write` or
:meth:`ExchangeWriter.flush`, so they get a higher ``lsh``.

Example:
    >>> from sqlalchemy import create_engine
    >>> engine = create_engine("sqlite://")
    >>> create_exchange_tables(engine)
    >>> writer = ExchangeWriter(engine, seed=7)
    >>> writer.write(EventGenerator(seed=7).generate(20))
    >>> writer.flush()

Command line: ``python -m simulators.approval.exchange_db --url sqlite:///x.db --events 1000 [--dialect gcdm]``.
"""

from __future__ import annotations

import argparse
import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

from simulators.approval.generator import (
    BLSJ_FORMAT,
    RECEIVED,
    STAGE_ITEMS,
    EventGenerator,
    org_code_check,
    uscc_check,
)

PROJECTS = "SPGL_XMJBXXB"
ITEMS = "SPGL_XMSPSXBLXXB"
DETAILS = "SPGL_XMSPSXBLXXXXB"
APPROVALS = "SPGL_XMSPSXPFWJXXB"
ATTACHMENTS = "SPGL_XMQTFJXXB"
TABLES = (PROJECTS, ITEMS, DETAILS, APPROVALS, ATTACHMENTS)
PROCESSES = "SPGL_DFXMSPLCXXB"
PROCESS_STAGES = "SPGL_DFXMSPLCJDXXB"
PROCESS_ITEMS = "SPGL_DFXMSPLCJDSXXXB"
DIALECTS = ("xmdm", "gcdm")
PROCESS_VERSION = "1.0"

WITHDRAW_REASONS = ("数据填报错误，撤回重报", "办件信息有误，已作废", "重复推送，撤销本条", "申请人撤回申请")
_DEPARTMENTS = {1: "自然资源和规划局", 2: "自然资源和规划局", 3: "住房和城乡建设局", 4: "住房和城乡建设局"}
_TIME_LIMIT_DAYS = {1: 20, 2: 15, 3: 7, 4: 12}
_OPINIONS = {1: "材料齐全，予以受理", 11: "经审查，符合法定条件，准予许可", 13: "经审查，不符合法定条件，不予许可"}
_REGION_CENTRES = {"3706": (121.45, 37.46), "3715": (115.98, 36.45), "3701": (117.12, 36.65), "3702": (120.38, 36.07)}
_ORG_ALPHABET = "0123456789"
_PERMIT_STAGE = 3

metadata = MetaData()


def _common(name: str, *columns: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        # Not a key: real exchange databases hold rows with a NULL or repeated lsh, and the reader copes.
        Column("lsh", BigInteger, index=True, comment="流水号"),
        Column("dfsjzj", String(64), nullable=False, comment="地方数据主键"),
        Column("xzqhdm", String(6), nullable=False, comment="行政区划代码"),
        *columns,
        Column("sjyxbs", Integer, nullable=False, default=1, comment="数据有效标识 1有效 0无效"),
        Column("sjwxyy", String(200), comment="数据无效原因"),
    )


PROJECT_TABLE = _common(
    PROJECTS,
    Column("xmdm", String(24), nullable=False, comment="项目代码"),
    Column("xmmc", String(200), comment="项目名称"),
    Column("gcdm", String(32), comment="工程代码"),
    Column("jsdd", String(300), comment="建设地点"),
    Column("jsddxzqh", String(6), comment="建设地点行政区划"),
    Column("xmjwdzb", String(64), comment="项目经纬度坐标"),
    Column("jsdw", String(200), comment="建设单位"),
    Column("jsdwdm", String(18), comment="建设单位统一社会信用代码"),
    Column("jsxz", String(8), comment="建设性质"),
    Column("ztze", Numeric(16, 4), comment="总投资额（万元）"),
    Column("ydmj", Numeric(14, 2), comment="用地面积（平方米）"),
    Column("jzmj", Numeric(14, 2), comment="建筑面积（平方米）"),
    Column("nkgsj", Date, comment="拟开工时间"),
    Column("njcsj", Date, comment="拟建成时间"),
)
ITEM_TABLE = _common(
    ITEMS,
    Column("xmdm", String(24), comment="项目代码（XMDM 方言）"),
    Column("gcdm", String(32), comment="工程代码"),
    Column("splcbm", String(40), comment="审批流程编码（GCDM 方言）"),
    Column("splcbbh", String(8), comment="审批流程版本号"),
    Column("spsxbm", String(16), comment="审批事项编码"),
    Column("spsxslbm", String(40), nullable=False, comment="审批事项实例编码"),
    Column("spsxmc", String(200), comment="审批事项名称"),
    Column("spbmmc", String(100), comment="审批部门名称"),
    Column("dybzspjdxh", Integer, comment="对应标准审批阶段序号（XMDM 方言）"),
    Column("sxblsx", Integer, comment="事项办理时限（工作日）"),
    Column("slsj", DateTime, comment="受理时间"),
    Column("lxr", String(50), comment="联系人"),
    Column("lxrsjh", String(20), comment="联系人手机号"),
)
DETAIL_TABLE = _common(
    DETAILS,
    Column("spsxslbm", String(40), nullable=False, comment="审批事项实例编码"),
    Column("blzt", Integer, nullable=False, comment="办理状态"),
    Column("blsj", DateTime, comment="办理时间"),
    Column("blyj", String(500), comment="办理意见"),
    Column("dwmc", String(100), comment="办理单位名称"),
    Column("dwtyshxydm", String(18), comment="办理单位统一社会信用代码"),
)
APPROVAL_TABLE = _common(
    APPROVALS,
    Column("xmdm", String(24), comment="项目代码"),
    Column("gcdm", String(32), comment="工程代码"),
    Column("spsxslbm", String(40), comment="审批事项实例编码"),
    Column("pfwh", String(100), comment="批复文号"),
    Column("pfwjbt", String(200), comment="批复文件标题"),
    Column("pfrq", Date, comment="批复日期"),
    Column("yxqx", Date, comment="有效期限"),
    Column("fjdz", String(500), comment="批复文件附件地址"),
    Column("fjzy", String(64), comment="附件摘要 SHA-256"),
)
ATTACHMENT_TABLE = _common(
    ATTACHMENTS,
    Column("xmdm", String(24), comment="项目代码"),
    Column("gcdm", String(32), comment="工程代码"),
    Column("spsxslbm", String(40), comment="审批事项实例编码"),
    Column("fjbh", String(100), comment="附件编号"),
    Column("fjmc", String(200), comment="附件名称"),
    Column("fjlx", String(20), comment="附件类型"),
    Column("fjdz", String(500), comment="附件地址"),
    Column("fjzy", String(64), comment="附件摘要 SHA-256"),
)
PROCESS_TABLE = _common(
    PROCESSES,
    Column("splcbm", String(40), nullable=False, comment="审批流程编码"),
    Column("splcbbh", String(8), nullable=False, comment="审批流程版本号"),
    Column("splcmc", String(200), comment="审批流程名称"),
    Column("splclx", Integer, comment="审批流程类型"),
)
PROCESS_STAGE_TABLE = _common(
    PROCESS_STAGES,
    Column("splcbm", String(40), nullable=False, comment="审批流程编码"),
    Column("splcbbh", String(8), nullable=False, comment="审批流程版本号"),
    Column("spjdxh", Integer, nullable=False, comment="审批阶段序号（地方）"),
    Column("spjdmc", String(100), comment="审批阶段名称"),
    Column("dybzspjdxh", Integer, comment="对应标准审批阶段序号"),
)
PROCESS_ITEM_TABLE = _common(
    PROCESS_ITEMS,
    Column("splcbm", String(40), nullable=False, comment="审批流程编码"),
    Column("splcbbh", String(8), nullable=False, comment="审批流程版本号"),
    Column("spjdxh", Integer, nullable=False, comment="审批阶段序号（地方）"),
    Column("spsxbm", String(16), nullable=False, comment="审批事项编码"),
    Column("spsxmc", String(200), comment="审批事项名称"),
)
for _table, _columns in (
    (PROJECT_TABLE, ("xmdm", "gcdm")),
    (ITEM_TABLE, ("spsxslbm", "xmdm", "gcdm")),
    (DETAIL_TABLE, ("spsxslbm", "dfsjzj")),
    (APPROVAL_TABLE, ("xmdm", "gcdm")),
    (ATTACHMENT_TABLE, ("xmdm", "gcdm")),
    (PROCESS_STAGE_TABLE, ("splcbm",)),
    (PROCESS_ITEM_TABLE, ("splcbm",)),
):
    for _column in _columns:
        Index(f"ix_{_table.name.lower()}_{_column}", _table.c[_column])
_BY_NAME = {table.name: table for table in metadata.sorted_tables}
TABLE_COLUMNS = {name: [column.name for column in table.c] for name, table in _BY_NAME.items()}
_STAGE_NAMES = {1: "立项用地规划许可阶段", 2: "工程建设许可阶段", 3: "施工许可阶段", 4: "竣工验收阶段"}


def create_exchange_tables(engine: Engine) -> None:
    """Create the ``SPGL_*`` tables, process tables included (those missing), in ``engine``'s database."""
    metadata.create_all(engine)


def _parse_time(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), BLSJ_FORMAT)  # noqa: DTZ007 - the standard stores local time
    except ValueError:
        return None


class ExchangeWriter:
    """Writes generated approval events into the exchange tables, as the approval system's push job does."""

    def __init__(
        self,
        engine: Engine,
        seed: int = 7,
        *,
        withdraw_rate: float = 0.0,
        out_of_order_rate: float = 0.0,
        dialect: str = "xmdm",
    ) -> None:
        """Create a writer; it continues the ``lsh`` and the projects already in the database.

        Args:
            engine: The exchange database (tables created with :func:`create_exchange_tables`).
            seed: Seed for keys, coordinates and faults; equal seeds and calls write equal rows.
            withdraw_rate: Chance that a handling detail is followed by its withdrawal (``sjyxbs=0``).
            out_of_order_rate: Chance that a new item instance's first detail is committed before its parents.
            dialect: ``xmdm`` or ``gcdm`` (items keyed by engineering code, stage from the process tables).
        """
        if not (0.0 <= withdraw_rate <= 1.0 and 0.0 <= out_of_order_rate <= 1.0):
            message = "rates must lie in [0, 1]"
            raise ValueError(message)
        if dialect not in DIALECTS:
            message = f"dialect must be one of {', '.join(DIALECTS)}"
            raise ValueError(message)
        self._gcdm = dialect == "gcdm"
        self._engine = engine
        self._rng = random.Random(seed)
        self._withdraw_rate = withdraw_rate
        self._out_of_order_rate = out_of_order_rate
        self._late: list[tuple[str, dict[str, Any]]] = []
        self.withdrawn: list[str] = []  # dfsjzj of withdrawn handling details, for tests
        self._projects: dict[str, dict[str, Any]] = {}
        self._items: set[str] = set()
        self._documents: set[tuple[str, str]] = set()
        with engine.connect() as conn:
            self._lsh = max((conn.scalar(select(func.max(t.c.lsh))) or 0) for t in _BY_NAME.values())
            for row in conn.execute(select(PROJECT_TABLE).order_by(PROJECT_TABLE.c.lsh)).mappings():
                self._projects[row["xmdm"]] = dict(row)
            self._items = set(conn.scalars(select(ITEM_TABLE.c.spsxslbm)))
            self._documents = {(r.gcdm, r.pfwh) for r in conn.execute(select(APPROVAL_TABLE))}
            self._documents |= {(r.gcdm, r.fjbh) for r in conn.execute(select(ATTACHMENT_TABLE))}
            self._processes = set(conn.scalars(select(PROCESS_TABLE.c.splcbm)))

    @property
    def last_lsh(self) -> int:
        """The highest ``lsh`` written so far."""
        return self._lsh

    def write(self, events: list[dict[str, Any]]) -> int:
        """Write the rows of ``events`` (and parents held back by the previous call) in one transaction.

        Returns:
            The number of rows written.
        """
        rows, self._late = self._late, []
        for event in events:
            rows.extend(self._rows(event))
        return self._insert(rows)

    def flush(self) -> int:
        """Commit the parents still held back by ``out_of_order_rate``; returns the number of rows."""
        rows, self._late = self._late, []
        return self._insert(rows)

    def numbered(self, events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """The rows of ``events`` (and of parents held back before) with their ``lsh``, by table, not written.

        For bulk loaders (``COPY``) that write the rows themselves; the writer's state moves on as if written.
        """
        rows, self._late = self._late, []
        for event in events:
            rows.extend(self._rows(event))
        return self._number(rows)

    def _number(self, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        by_table: dict[str, list[dict[str, Any]]] = {}
        for name, row in rows:
            self._lsh += 1
            by_table.setdefault(name, []).append({**row, "lsh": self._lsh})
        return by_table

    def _insert(self, rows: list[tuple[str, dict[str, Any]]]) -> int:
        if not rows:
            return 0
        by_table = self._number(rows)
        with self._engine.begin() as conn:  # one commit: the order of the inserts inside it is invisible
            for name, table_rows in by_table.items():
                conn.execute(insert(_BY_NAME[name]), table_rows)
        return len(rows)

    def _key(self) -> str:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex

    def _rows(self, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        rows: list[tuple[str, dict[str, Any]]] = []
        parents: list[tuple[str, dict[str, Any]]] = []
        xmdm, stage, status = event["xmdm"], event["dybzspjdxh"], event["blzt"]
        if xmdm not in self._projects:
            parents.append((PROJECTS, self._project_row(event)))
        elif stage == _PERMIT_STAGE and status == RECEIVED and not self._held_back(xmdm):
            parents.append((PROJECTS, self._project_update(event)))  # the construction permit fixes the dates
        if event["spsxslbm"] not in self._items:
            self._items.add(event["spsxslbm"])
            if self._gcdm and _process_code(event["jsddxzqh"]) not in self._processes:
                rows.extend(self._process_rows(event["jsddxzqh"]))  # published before any item names it
            parents.append((ITEMS, self._item_row(event)))
        late = any(name == ITEMS for name, _ in parents) and self._rng.random() < self._out_of_order_rate
        (self._late if late else rows).extend(parents)
        rows.extend(self._document_rows(event))
        detail = self._detail_row(event)
        rows.append((DETAILS, detail))
        if self._rng.random() < self._withdraw_rate:
            rows.append((DETAILS, {**detail, "sjyxbs": 0, "sjwxyy": self._rng.choice(WITHDRAW_REASONS)}))
            self.withdrawn.append(detail["dfsjzj"])
        return rows

    def _held_back(self, xmdm: str) -> bool:
        return any(row is self._projects[xmdm] for _, row in self._late)

    def _project_row(self, event: dict[str, Any]) -> dict[str, Any]:
        region = event["jsddxzqh"]
        lon, lat = _REGION_CENTRES.get(region[:4], (117.0, 36.6))
        start = (_parse_time(event["blsj"]) or datetime(2026, 11, 2)).date() + timedelta(days=120)  # noqa: DTZ001
        row = {
            "dfsjzj": self._key(),
            "xzqhdm": region,
            "xmdm": event["xmdm"],
            "xmmc": event.get("xmmc"),
            "gcdm": f"{event['xmdm']}-001",
            "jsdd": event.get("jsdd"),
            "jsddxzqh": region,
            "xmjwdzb": f"{lon + self._rng.uniform(-0.08, 0.08):.6f},{lat + self._rng.uniform(-0.05, 0.05):.6f}",
            "jsdw": event.get("jsdw"),
            "jsdwdm": event.get("jsdwdm"),
            "jsxz": event.get("jsxz"),
            "ztze": event.get("ztze"),
            "ydmj": event.get("ydmj"),
            "jzmj": event.get("jzmj"),
            "nkgsj": start,
            "njcsj": start + timedelta(days=self._rng.randint(540, 1100)),
            "sjyxbs": 1,
            "sjwxyy": None,
        }
        self._projects[event["xmdm"]] = row
        return row

    def _project_update(self, event: dict[str, Any]) -> dict[str, Any]:
        previous = self._projects[event["xmdm"]]
        blsj = _parse_time(event["blsj"])
        start = (blsj.date() if blsj else previous["nkgsj"]) + timedelta(days=self._rng.randint(10, 40))
        row = {**previous, "nkgsj": start, "njcsj": start + timedelta(days=self._rng.randint(540, 1100))}
        row.pop("lsh", None)
        self._projects[event["xmdm"]] = row
        return row

    def _process_rows(self, region: str) -> list[tuple[str, dict[str, Any]]]:
        code = _process_code(region)
        self._processes.add(code)
        common = {"xzqhdm": region[:4] + "00", "splcbm": code, "splcbbh": PROCESS_VERSION, "sjyxbs": 1, "sjwxyy": None}
        rows: list[tuple[str, dict[str, Any]]] = [
            (
                PROCESSES,
                {**common, "dfsjzj": self._key(), "splcmc": "工程建设项目审批流程（一般社会投资项目）", "splclx": 1},
            )
        ]
        for stage, items in STAGE_ITEMS.items():
            local = stage * 10  # the city numbers its own stages; the table maps them to the standard's
            names = {"spjdxh": local, "spjdmc": _STAGE_NAMES[stage], "dybzspjdxh": stage}
            rows.append((PROCESS_STAGES, {**common, "dfsjzj": self._key(), **names}))
            for item_code, item_name, *_ in items:
                item = {"spjdxh": local, "spsxbm": item_code, "spsxmc": item_name}
                rows.append((PROCESS_ITEMS, {**common, "dfsjzj": self._key(), **item}))
        return rows

    def _item_row(self, event: dict[str, Any]) -> dict[str, Any]:
        stage = event["dybzspjdxh"]
        process = {"splcbm": _process_code(event["jsddxzqh"]), "splcbbh": PROCESS_VERSION} if self._gcdm else {}
        return {
            "dfsjzj": self._key(),
            "xzqhdm": event["jsddxzqh"],
            "xmdm": None if self._gcdm else event["xmdm"],
            "gcdm": f"{event['xmdm']}-001",
            **process,
            "spsxbm": event.get("spsxbm"),
            "spsxslbm": event["spsxslbm"],
            "spsxmc": event.get("spsxmc"),
            "spbmmc": _DEPARTMENTS.get(stage, "行政审批服务局"),
            "dybzspjdxh": stage if isinstance(stage, int) and not self._gcdm else None,
            "sxblsx": _TIME_LIMIT_DAYS.get(stage, 10),
            "slsj": _parse_time(event["blsj"]),
            "lxr": event.get("lxr"),
            "lxrsjh": event.get("lxrsjh"),
            "sjyxbs": 1,
            "sjwxyy": None,
        }

    def _detail_row(self, event: dict[str, Any]) -> dict[str, Any]:
        region, status = event["jsddxzqh"], event["blzt"]
        return {
            "dfsjzj": self._key(),
            "xzqhdm": region,
            "spsxslbm": event["spsxslbm"],
            "blzt": status,
            "blsj": _parse_time(event["blsj"]),
            "blyj": _OPINIONS.get(status, "办理中"),
            "dwmc": f"{_DEPARTMENTS.get(event['dybzspjdxh'], '行政审批服务局')}",
            "dwtyshxydm": _department_uscc(region, event["dybzspjdxh"]),
            "sjyxbs": 1,
            "sjwxyy": None,
        }

    def _document_rows(self, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        rows: list[tuple[str, dict[str, Any]]] = []
        blsj = _parse_time(event["blsj"])
        day = blsj.date() if blsj else None
        for document in event.get("fjxx") or ():
            seen = (f"{event['xmdm']}-001", document["wjbh"])
            if seen in self._documents:
                continue
            self._documents.add(seen)
            common = {"dfsjzj": self._key(), "xzqhdm": event["jsddxzqh"], "gcdm": f"{event['xmdm']}-001"}
            common["xmdm"] = None if self._gcdm else event["xmdm"]
            common |= {"spsxslbm": event["spsxslbm"], "fjdz": document.get("xzdz"), "fjzy": document.get("sha256")}
            common |= {"sjyxbs": 1, "sjwxyy": None}
            if document.get("wjlx") == "DRAWING":
                extra = {"fjbh": document["wjbh"], "fjmc": document["wjmc"], "fjlx": "图纸"}
                rows.append((ATTACHMENTS, common | extra))
            else:
                valid_until = None if day is None else _years_later(day, 3)
                extra = {"pfwh": document["wjbh"], "pfwjbt": document["wjmc"], "pfrq": day, "yxqx": valid_until}
                rows.append((APPROVALS, common | extra))
        return rows


def _process_code(region: str) -> str:
    return f"SPLC{region[:4]}00-01"


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _department_uscc(region: str, stage: object) -> str:
    # Government bodies register as 11 (机关); the organisation code is derived from region and stage.
    body = f"{region[2:]}{stage if isinstance(stage, int) else 0:02d}"[:8].rjust(8, "0")
    body = "".join(char if char in _ORG_ALPHABET else "0" for char in body)
    first17 = f"11{region}{body}{org_code_check(body)}"
    return first17 + uscc_check(first17)


def main(argv: list[str] | None = None) -> None:
    """Create the tables in ``--url`` and fill them with ``--events`` generated events."""
    parser = argparse.ArgumentParser(prog="python -m simulators.approval.exchange_db", description=__doc__)
    parser.add_argument("--url", default="sqlite:///exchange.db", help="SQLAlchemy URL of the exchange DB")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--withdraw-rate", type=float, default=0.0)
    parser.add_argument("--out-of-order-rate", type=float, default=0.0)
    parser.add_argument("--dialect", choices=DIALECTS, default="xmdm")
    args = parser.parse_args(argv)
    engine = create_engine(args.url)
    create_exchange_tables(engine)
    writer = ExchangeWriter(
        engine,
        args.seed,
        withdraw_rate=args.withdraw_rate,
        out_of_order_rate=args.out_of_order_rate,
        dialect=args.dialect,
    )
    rows = writer.write(EventGenerator(seed=args.seed).generate(args.events)) + writer.flush()
    engine.dispose()
    print(f"{rows} rows written to {args.url}, last lsh {writer.last_lsh}")


if __name__ == "__main__":
    main()

"""``im.dau_overage`` and ``im.group_overage``: per app (an IM plan belongs to one
SDKAppID), one charge per account with a line per app. The trial edition is free: its
usage is reported with a zero line."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rating.account import AccountView
from rating.draft import ChargeDraft, line
from rating.packages import PackageLedger
from rating.periods import Period
from rating.pricers.images import started_blocks


def price_im(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    dau_lines, group_lines = [], []
    dau_usage: dict[str, dict[str, str]] = {}
    group_usage: dict[str, dict[str, str]] = {}
    for app, summary in sorted(summaries.items()):
        plan_name = view.im_plan(app, period)
        plan = catalog.im_plans[plan_name]
        dims = {"sdk_app_id": str(app), "plan": plan_name}
        dau, groups = summary["peak_dau"], summary["groups"]
        dau_usage[str(app)] = {"peak_dau": str(dau)}
        group_usage[str(app)] = {"groups": str(groups)}
        if plan.free:
            dau_lines.append(line(dims, Decimal(0), "block", Decimal(0), Decimal(0)))
            group_lines.append(line(dims, Decimal(0), "block", Decimal(0), Decimal(0)))
            continue
        blocks = started_blocks(dau, plan.included_dau, plan.dau_block)
        dau_lines.append(line(dims, Decimal(blocks), f"{plan.dau_block} DAU",
                              plan.dau_block_price, plan.dau_block_price * blocks))
        blocks = started_blocks(groups, plan.included_groups, plan.group_block)
        group_lines.append(line(dims, Decimal(blocks), f"{plan.group_block} groups",
                                plan.group_block_price, plan.group_block_price * blocks))
    return [
        ChargeDraft("im", "im.dau_overage", tuple(dau_lines), dau_usage),
        ChargeDraft("im", "im.group_overage", tuple(group_lines), group_usage),
    ]

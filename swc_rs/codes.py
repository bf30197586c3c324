"""The users' codes (DOMAIN.md): QTYPE, BYD, QDCS, QDTYPE, RST, X_REASON, colours."""

from __future__ import annotations

SPOIL = "弃土（渣）场"
BORROW = "取土（石）场"
OTHER = "其他扰动"
NOT_PROJECT = "非生产建设项目"
QTYPES = (SPOIL, BORROW, OTHER, NOT_PROJECT)

COMPLIANT = "合规"
UNAPPROVED = "疑似未批先建"
OVERRUN = "疑似超出防治责任范围"
SITE_CHANGE = "疑似建设地点变更"
UNAPPROVED_SPOIL = "疑似未批先弃"
BYD_DESK = (COMPLIANT, UNAPPROVED, OVERRUN, SITE_CHANGE, UNAPPROVED_SPOIL)
#: Field verdicts drop 疑似.
BYD_FIELD = (COMPLIANT, "未批先建", "超出防治责任范围", "建设地点变更", "未批先弃")
SUSPECTED_PREFIX = "疑似"

QDCS = ("未开工", "停工", "施工", "完工", "已验收")
QDTYPE = ("新增", "续建（范围扩大）", "续建（范围缩小）", "续建（范围不变）", "完工")
NEW = QDTYPE[0]
RST = ("未复核", "已复核", "无法核实")
NOT_CHECKED = RST[0]
X_REASON = ("耕地翻耕", "季节性植被变化", "云及阴影", "水位变化", "配准误差", "自然灾害", "既有设施", "其他")

RED, YELLOW, GREEN = "红", "黄", "绿"
COLOURS = (RED, YELLOW, GREEN)
COLOUR_RANK = {GREEN: 0, YELLOW: 1, RED: 2}

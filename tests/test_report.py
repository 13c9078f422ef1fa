"""The search's reporter prints any controller's notes and the interrupted flag from typed
plan fields (``Plan.notes``, ``Plan.interrupted``), whichever controller made the plan."""

from __future__ import annotations

import json

from embsearch.data.synthetic import make_synthetic
from embsearch.plan import Plan
from embsearch.report import plan_lines
from embsearch.search_spaces import FieldDimsSpace


def test_notes_and_interruption_are_printed_for_any_controller(tmp_path):
    ds = make_synthetic(rows=500, seed=0)
    space = FieldDimsSpace(ds.schema, width=8)
    plan = space.to_plan(space.uniform(8), "someone_elses", 10**9)
    plain = list(plan_lines(plan, tmp_path))
    assert not plan.notes and not plan.interrupted
    plan.add_note("gate kept the uniform plan")
    plan.add_note("second remark")
    plan.extra["interrupted"] = True
    lines = list(plan_lines(plan, tmp_path))
    assert "  gate kept the uniform plan" in lines and "  second remark" in lines
    assert any("search interrupted" in line for line in lines)
    assert len(lines) == len(plain) + 3
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))  # notes survive plan.json
    assert again.notes == ["gate kept the uniform plan", "second remark"] and again.interrupted

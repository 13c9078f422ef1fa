"""Ctrl-C during a sample-based search keeps every finished evaluation and the best plan."""

import json

import numpy as np

from embsearch.cli import main
from embsearch.controllers import registry
from embsearch.controllers.base import AskTellController


class Interrupting(AskTellController):
    """Random search whose evaluator raises KeyboardInterrupt on its fourth call."""

    name = "interrupting"
    family = "custom"
    paper = "test double"

    def start(self, ctx, budget):
        self.rng, self.space, self.budget, self.calls = (
            np.random.default_rng(0),
            ctx.space,
            budget,
            0,
        )

    def evaluator(self, ctx, budget):
        def score(cand):
            self.calls += 1
            if self.calls == 4:
                raise KeyboardInterrupt
            return float(self.space.bytes_of(cand))  # bigger is "better"

        return score

    def ask(self):
        return self.space.repair(self.space.sample(self.rng), self.budget)

    def tell(self, candidate, score):
        pass

    def done(self):
        return False


def test_ctrl_c_keeps_history_and_best_plan(tmp_path, monkeypatch, capsys):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    monkeypatch.setitem(registry.BUILTIN, "interrupting", f"{__name__}:Interrupting")
    out = tmp_path / "run"
    rc = main(
        [
            "search",
            "--controller",
            "interrupting",
            "--budget",
            "30%",
            "--out",
            str(out),
            "--quiet",
            "--epochs",
            "1",
        ]
    )
    assert rc == 0
    assert "interrupted" in capsys.readouterr().out
    history = json.loads((out / "search.json").read_text())["history"]
    evaluations = [e for e in history if e.get("event") == "evaluation"]
    assert len(evaluations) == 3
    plan = json.loads((out / "plan.json").read_text())
    assert plan["extra"]["interrupted"] is True
    assert plan["table_bytes"] == max(e["bytes"] for e in evaluations) <= plan["budget_bytes"]
    assert not (out / "model.pt").exists()
    assert (
        main(["export", str(out), "--out", str(tmp_path / "exp")]) == 2
    )  # nothing trained to export
    assert main(["retrain", str(out), "--quiet", "--epochs", "1"]) == 0

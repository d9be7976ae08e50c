import pytest

from conftest import invoke
from ftdecide.decide import expr, rules
from ftdecide.core.errors import InputError
from ftdecide.decide.recommend import default_rule_paths
from ftdecide.decide.rulenames import schema as rule_schema

S = rule_schema()


@pytest.mark.parametrize(
    "cond,env,expected",
    [
        ('task == "math"', {"task": "math"}, True),
        ("dataset_size >= 1_000_000", {"dataset_size": 999_999}, False),
        ('fits.full and quality == "best"', {"fits.full": True, "quality": "best"}, True),
        ('task in ["chat", "code"]', {"task": "code"}, True),
        ('task not in ["chat", "code"]', {"task": "code"}, False),
        ("not fits.lora or cost.qlora * 2 < budget", {"fits.lora": True, "cost.qlora": 10.0, "budget": 25.0}, True),
        ("min(epochs, 3) == 3 and abs(-seq_len) > 100", {"epochs": 5, "seq_len": 2048}, True),
        ("1 < epochs <= 3", {"epochs": 4}, False),
    ],
)
def test_conditions(cond, env, expected):
    assert expr.evaluate(expr.parse(cond, S), env) is expected


@pytest.mark.parametrize(
    "cond,col,msg",
    [
        ("task > 3", 8, "type error"),
        ("tsk == 'chat'", 1, "unknown name 'tsk'"),
        ("__import__('os')", 1, "not allowed"),
        ("task.__class__ == 'x'", 1, "unknown name"),
        ("dataset_size", 1, "must be true or false"),
        ("task == == 1", 9, "syntax error"),
        ("dataset_size >= )", 17, "unmatched"),
        ("[x for x in y]", 1, "not allowed"),
        ("task in task", 9, "list literal"),
        ("lambda: 1", 1, "not allowed"),
    ],
)
def test_condition_errors_name_the_column(cond, col, msg):
    with pytest.raises(expr.ExprError, match=msg) as e:
        expr.parse(cond, S)
    assert e.value.col == col


def test_depth_bound():
    deep = "not " * 40 + "fits.full"
    with pytest.raises(expr.ExprError, match="deeper"):
        expr.parse(deep, S)


def test_division_by_zero_at_evaluation_names_the_rule(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("version: 1\nrules:\n  - id: div\n    when: budget / (gpus - 1) > 1\n    note: x\n")
    rs = rules.load_rules([str(f)], S)
    with pytest.raises(InputError, match=r"r.yaml:3:\d+: rule 'div': division by zero"):
        rules.evaluate(rs, {"budget": 5.0, "gpus": 1})


BAD = """version: 1
rules:
  - id: ok-rule
    when: task == "chat"
  - id: typo-field
    when: task == "chat"
    prefr: lora
  - id: bad-cond
    when: task > 3
  - id: conflict
    when: "true"
    prefer: full
    forbid: [full]
  - id: ok-rule
    when: fits.full
"""


def test_check_reports_every_problem_with_line_and_rule(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    found = [(p.line, p.rule) for p in rules.check_file(str(f), S)]
    assert found == [(7, "typo-field"), (9, "bad-cond"), (13, "conflict"), (14, "ok-rule")]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("a: [1, 2\n", "h.yaml:2:1: did not find expected"),
        ("!!python/object/apply:os.system ['echo hi']\n", "Python tags"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        (
            "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else 'b' + str(i - 1)}" + ",*a" * 9 + "]\n" for i in range(12)),
            "alias",
        ),
    ],
)
def test_hostile_yaml_is_one_problem(tmp_path, text, msg):
    f = tmp_path / "h.yaml"
    f.write_text(text)
    probs = rules.check_file(str(f), S)
    assert len(probs) == 1 and msg in str(probs[0])


def test_override_and_priority(tmp_path):
    team = tmp_path / "team.yaml"
    team.write_text(
        "version: 1\ndisable: [code-capacity]\nrules:\n  - id: default-lora\n    when: 'true'\n    prefer: qlora\n    set: {rank: 8}\n"
    )
    rs = rules.load_rules(default_rule_paths() + [str(team)], S)
    ids = [lr.rule.id for lr in rs.rules]
    assert "code-capacity" not in ids and ids.count("default-lora") == 1
    env = (
        {k: 0 for k, t in S.items() if t == "number"}
        | {k: "x" for k, t in S.items() if t == "string"}
        | {k: True for k, t in S.items() if t == "bool"}
    )
    env.update(task="chat", budget=1e9, dataset_size=50_000)
    out = rules.evaluate(rs, env)
    assert out.settings["rank"] == 16  # chat-instruction (priority 20) beats the replaced default (priority 0)
    assert out.setting_rule["rank"] == "chat-instruction"


def test_an_unknown_method_in_a_rule_file_reads_as_written(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text('version: 1\nrules:\n  - id: x\n    when: "true"\n    prefer: houlsby\n')
    r = invoke(["rules", "check", str(f)])
    assert r.exit_code == 2
    assert r.stderr.strip().startswith(f"ftdecide: error: {f}:5:1: prefer: unknown method 'houlsby' (choose from full,")

import json
import random
from pathlib import Path

import pytest

from proxy.load.prompts import BUILTIN_QUESTIONS, OutputLength, Prompt, load_jsonl


def test_builtin_set_has_the_labs_twelve_questions() -> None:
    assert len(BUILTIN_QUESTIONS) == 12
    assert len(set(BUILTIN_QUESTIONS)) == 12


def test_jsonl_reads_prompt_and_messages_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    path.write_text(
        json.dumps({"prompt": "Why?"}) + "\n\n" + json.dumps({"messages": messages}) + "\n"
    )
    prompts = load_jsonl(path)
    assert prompts[0] == Prompt(text="Why?")
    assert prompts[0].as_messages() == [{"role": "user", "content": "Why?"}]
    assert prompts[1].as_messages() == messages
    assert prompts[1].as_text() == "Be brief.\nHi?"


@pytest.mark.parametrize("line", ["not json", '{"text": "x"}', '{"messages": []}', "[1]"])
def test_jsonl_names_the_bad_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=":2:"):
        load_jsonl(path)


def test_fixed_output_length_is_max_tokens() -> None:
    length = OutputLength.parse(None, 64)
    assert {length.draw(random.Random(s)) for s in range(5)} == {64}


def test_lognormal_draws_are_seeded_capped_and_near_the_mean() -> None:
    length = OutputLength.parse("lognormal:100,0.5", 400)
    draws = [length.draw(random.Random(7)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(1)
    many = [length.draw(rng) for _ in range(4000)]
    assert min(many) >= 1 and max(many) <= 400
    assert 90 < sum(many) / len(many) < 110
    assert len(set(many)) > 50


@pytest.mark.parametrize("spec", ["uniform:1,2", "lognormal:100", "lognormal:x,1", "lognormal:0,1"])
def test_bad_output_length_spec_is_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        OutputLength.parse(spec, 128)

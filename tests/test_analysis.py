"""The analysis model: which load sites exist and what is known about each."""

from __future__ import annotations

import pytest

from bnblint.analysis.builder import ModelBuilder, build_model
from bnblint.analysis.model import LoadSite, ModuleModel, State
from bnblint.analysis.values import Overridden
from bnblint.parse import parse_ast

HEAD = "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"


def model_of(body: str) -> ModuleModel:
    source = HEAD + body
    return build_model(parse_ast(source), source)


def only_site(body: str) -> LoadSite:
    loads = model_of(body).loads
    assert len(loads) == 1
    return loads[0]


def test_inline_config_is_known_4bit() -> None:
    site = only_site(
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config="
        "BitsAndBytesConfig(load_in_4bit=True))\n"
    )
    assert site.quantization_state is State.KNOWN
    assert site.quantization is not None and site.quantization.mode == "4bit"
    assert site.device_map.state is State.ABSENT
    assert site.dtype.state is State.ABSENT


def test_binding_that_reaches_the_call_wins() -> None:
    site = only_site(
        "c = BitsAndBytesConfig(load_in_4bit=True)\n"
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=c)\n"
        "c = BitsAndBytesConfig(load_in_8bit=True)\n"
    )
    assert site.quantization is not None and site.quantization.mode == "4bit"


@pytest.mark.parametrize(
    "body",
    [
        "def f(cfg):\n    AutoModelForCausalLM.from_pretrained('x', quantization_config=cfg)\n",
        "def f(**kw):\n    AutoModelForCausalLM.from_pretrained('x', **kw)\n",
        "import sys\nc = BitsAndBytesConfig(load_in_4bit='4' in sys.argv)\n"
        "AutoModelForCausalLM.from_pretrained('x', quantization_config=c)\n",
        "for c in configs:\n    AutoModelForCausalLM.from_pretrained('x', quantization_config=c)\n",
    ],
)
def test_unknown_quantization_stays_unknown(body: str) -> None:
    site = only_site(body)
    assert site.quantization_state is State.UNKNOWN
    assert site.quantization is None


def test_dtype_and_device_map_known_unknown_absent() -> None:
    site = only_site(
        "import os\n"
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config=BitsAndBytesConfig("
        "load_in_4bit=True), dtype=torch.bfloat16, device_map=os.environ['DM'])\n"
    )
    assert site.dtype.state is State.KNOWN and site.known_dtype is not None
    assert site.known_dtype.name == "bfloat16"
    assert site.device_map.state is State.UNKNOWN


def test_unknown_splat_makes_absent_keys_unknown() -> None:
    site = only_site(
        "def f(extra):\n"
        "    return AutoModelForCausalLM.from_pretrained('x', quantization_config="
        "BitsAndBytesConfig(load_in_4bit=True), **extra)\n"
    )
    assert site.quantization_state is State.KNOWN
    assert site.device_map.state is State.UNKNOWN
    assert site.dtype.state is State.UNKNOWN


def test_branches_join_into_conditional_quantization() -> None:
    loads = model_of(
        "import sys\nkw = {}\nif sys.argv[1:]:\n"
        "    kw['quantization_config'] = BitsAndBytesConfig(load_in_4bit=True)\n"
        "AutoModelForCausalLM.from_pretrained('x', **kw)\n"
    ).loads
    # One site per path: with the config (conditional), and without quantization.
    assert [s.quantization is not None for s in loads] == [True, False]
    assert loads[0].quantization is not None and loads[0].quantization.conditional


def test_different_configs_on_branches_are_one_site_each() -> None:
    loads = model_of(
        "import sys\nif sys.argv[1:]:\n    c = BitsAndBytesConfig(load_in_4bit=True)\n"
        "else:\n    c = BitsAndBytesConfig(load_in_8bit=True)\n"
        "AutoModelForCausalLM.from_pretrained('x', quantization_config=c)\n"
    ).loads
    assert [s.quantization.mode for s in loads if s.quantization] == ["4bit", "8bit"]
    assert all(s.quantization and s.quantization.conditional for s in loads)
    assert loads[0].call is loads[1].call


def test_default_rebuilt_in_body_reaches_the_load() -> None:
    loads = model_of(
        "def build(p, quantization_config=None):\n"
        "    if quantization_config is None:\n"
        "        quantization_config = BitsAndBytesConfig(load_in_4bit=True)\n"
        "    return AutoModelForCausalLM.from_pretrained(\n"
        "        p, quantization_config=quantization_config)\n"
    ).loads
    # Two paths: the default rebuilt here (4-bit), and the caller's own config (unknown).
    site = next(s for s in loads if s.quantization is not None)
    assert site.quantization is not None and site.quantization.mode == "4bit"
    assert site.quantization.conditional  # a caller may pass its own config
    assert len(loads) == 2


def test_unknown_merge_keeps_keys_but_not_values() -> None:
    site = only_site(
        "def f(p, opts):\n"
        "    kw = {'load_in_8bit': True, 'device_map': 'auto'}\n"
        "    kw.update(opts)\n"
        "    kw['dtype'] = torch.float16\n"
        "    return AutoModelForCausalLM.from_pretrained(p, **kw)\n"
    )
    entries = site.kwargs.entries
    assert set(entries) == {"load_in_8bit", "device_map", "dtype"}
    assert isinstance(entries["load_in_8bit"].value, Overridden)
    assert site.known_dtype is not None and site.known_dtype.name == "float16"
    assert not site.kwargs.complete


def test_pop_and_del_remove_keys_on_their_path() -> None:
    site = only_site(
        "kw = {'load_in_8bit': True, 'device_map': 'auto', 'x': 1}\n"
        "kw.pop('load_in_8bit')\ndel kw['x']\n"
        "AutoModelForCausalLM.from_pretrained('m', **kw)\n"
    )
    assert set(site.kwargs.entries) == {"device_map"} and site.kwargs.complete


def test_instance_attribute_set_in_init_reaches_another_method() -> None:
    site = only_site(
        "class Loader:\n"
        "    def __init__(self, path):\n"
        "        self.path = path\n"
        "        self.model_args = {'load_in_4bit': True}\n"
        "    def load(self):\n"
        "        return AutoModelForCausalLM.from_pretrained(self.path, **self.model_args)\n"
    )
    assert "load_in_4bit" in site.kwargs.entries and site.kwargs.complete


def test_project_class_without_transformers_base_is_not_a_loader() -> None:
    model = model_of(
        "from mylib import Loader\n"
        "class Mine:\n    pass\n"
        "Loader.from_pretrained('x', load_in_4bit=True)\n"
        "Mine.from_pretrained('x', load_in_4bit=True)\n"
        "class Chat(AutoModelForCausalLM):\n    pass\n"
        "Chat.from_pretrained('x', load_in_4bit=True)\n"
    )
    assert [s.receiver for s in model.loads] == ["transformers.AutoModelForCausalLM"]


def test_helper_function_and_module_config_in_function() -> None:
    model = model_of(
        "CFG = BitsAndBytesConfig(load_in_8bit=True)\n"
        "def make():\n    return BitsAndBytesConfig(load_in_4bit=True)\n"
        "def a():\n    return AutoModelForCausalLM.from_pretrained('x', quantization_config=CFG)\n"
        "def b():\n"
        "    return AutoModelForCausalLM.from_pretrained('x', quantization_config=make())\n"
    )
    modes = [s.quantization.mode for s in model.loads if s.quantization]
    assert sorted(modes) == ["4bit", "8bit"]


@pytest.mark.parametrize(
    ("body", "receiver"),
    [
        (
            "import transformers as tf\ntf.AutoModelForCausalLM.from_pretrained('x')\n",
            "transformers.AutoModelForCausalLM",
        ),
        (
            "from transformers import AutoModel as M\nM.from_pretrained('x').eval()\n",
            "transformers.AutoModel",
        ),
        (
            "cls = AutoModelForCausalLM\ncls.from_pretrained('x')\n",
            "transformers.AutoModelForCausalLM",
        ),
    ],
)
def test_receivers_through_aliases(body: str, receiver: str) -> None:
    assert only_site(body).receiver == receiver


@pytest.mark.parametrize(
    "body",
    [
        "from unsloth import FastLanguageModel\nFastLanguageModel.from_pretrained('x')\n",
        "from transformers import AutoTokenizer\nAutoTokenizer.from_pretrained('x')\n",
        "from diffusers import FluxPipeline\nFluxPipeline.from_pretrained('x')\n",
        "from transformers import AutoConfig\nAutoConfig.from_pretrained('x')\n",
    ],
)
def test_non_targets_are_not_load_sites(body: str) -> None:
    assert model_of(body).loads == []


def test_pipeline_merges_model_kwargs() -> None:
    site = only_site(
        "from transformers import pipeline\n"
        "pipeline('text-generation', model='x', device_map='auto', model_kwargs={"
        "'quantization_config': BitsAndBytesConfig(load_in_8bit=True), 'dtype': torch.float16})\n"
    )
    assert site.api == "pipeline"
    assert site.quantization is not None and site.quantization.mode == "8bit"
    assert site.device_map.state is State.KNOWN
    assert site.known_dtype is not None and site.known_dtype.name == "float16"


def test_model_uses_and_torch_alias() -> None:
    model = model_of(
        "m = AutoModelForCausalLM.from_pretrained('x', quantization_config="
        "BitsAndBytesConfig(load_in_4bit=True))\nm.half()\nm = m.to(torch.float16)\n"
    )
    assert [(u.method, u.whole_statement, u.assigned_to) for u in model.uses] == [
        ("half", True, None),
        ("to", False, "m"),
    ]
    assert model.torch_alias == "torch"


def test_distributed_context_ignores_comments() -> None:
    assert model_of("# we used to use Trainer here\n").distributed is None
    assert model_of("import os\nr = os.environ['LOCAL_RANK']\n").distributed is not None
    assert model_of("import torch.distributed as dist\n").distributed is not None


def test_skipping_irrelevant_bodies_changes_nothing() -> None:
    """The stdlib-AST index only skips bodies that cannot add to the model: for every fixture,
    the model is the same with and without it."""
    from fixture_cases import cases

    for path in cases():
        if path.suffix != ".py":
            continue
        source = path.read_text(encoding="latin-1" if "crlf" in path.name else "utf-8")
        tree = parse_ast(source)
        full = ModelBuilder(tree, source).build()  # no index: every body walked
        fast = build_model(tree, source)
        assert [s.call for s in full.loads] == [s.call for s in fast.loads], path
        assert [u.call for u in full.uses] == [u.call for u in fast.uses], path
        assert [c.node for c in full.configs] == [c.node for c in fast.configs], path


def test_index_skips_bodies_without_relevant_words() -> None:
    from bnblint.analysis.relevance import FunctionIndex
    from bnblint.pipeline import parse_ast

    source = (
        "KW = {'device_map': 'auto'}\n"
        "class A:\n    def helper(self):\n        return 1\n"
        "    def load(self):\n        def inner():\n            return X.from_pretrained('m')\n"
        "def uses_kw():\n    return KW\n"
    )
    index = FunctionIndex(parse_ast(source))
    names = frozenset({"KW"})
    assert not index.may_matter(("A", "helper"), names)
    assert index.may_matter(("A", "load"), names)  # through its nested function
    assert index.may_matter(("A", "load", "inner"), names)
    assert index.may_matter(("uses_kw",), names)
    assert not index.may_matter(("uses_kw",), frozenset())
    assert index.may_matter(("missing",), names)  # unknown paths are walked

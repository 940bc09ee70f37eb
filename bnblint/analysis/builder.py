"""Build the analysis model: one ordered walk over a module's statements.

The walk is a tiny abstract interpreter. Each scope keeps an environment (name -> static value)
that is updated statement by statement, so the binding that reaches a call is the one written
before it. Branches are walked on copies and joined into ``Choice`` values. Function bodies get
their own environment whose parent is the module's; unknown inputs (parameters, loop targets,
anything not evaluable) are ``Unknown`` so rules stay silent on them.

No LibCST metadata providers are used: scope and qualified-name resolution cost several times the
parse itself (see the core issue's measurements), and this walk needs only what it tracks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Union

import libcst as cst

from bnblint.analysis.model import LoadSite, ModelUse, ModuleModel, resolve_quantization
from bnblint.analysis.names import FOREIGN_NAMES, FOREIGN_ROOTS, NON_MODEL_SUFFIXES
from bnblint.analysis.relevance import FunctionIndex
from bnblint.analysis.values import (
    TORCH_DTYPES,
    BnbConfig,
    Choice,
    Dtype,
    Entry,
    Function,
    Literal,
    LoadResult,
    Mapping,
    OtherConfig,
    Symbol,
    Unknown,
    Value,
    flatten,
)

BNB_CONFIG_NAMES = frozenset(
    {
        "BitsAndBytesConfig",
        "transformers.BitsAndBytesConfig",
        "transformers.utils.quantization_config.BitsAndBytesConfig",
        "transformers.utils.BitsAndBytesConfig",
    }
)
PIPELINE_IGNORED = frozenset({"load_in_4bit", "load_in_8bit", "quantization_config"})
PIPELINE_NAMES = frozenset({"pipeline", "transformers.pipeline", "transformers.pipelines.pipeline"})
# Methods that return the model itself, so ``M.from_pretrained(...).eval()`` is still the model.
SELF_RETURNING = frozenset({"eval", "train", "requires_grad_", "cuda", "cpu", "to"})

UNBOUND = Unknown(None, "possibly unbound")
NONE = Literal(None, None)

Scope = Union[cst.Module, cst.FunctionDef, cst.ClassDef]


class Env:
    """Name bindings of one scope, with the module scope as parent."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Env | None = None, vars: dict[str, Value] | None = None) -> None:
        self.vars: dict[str, Value] = {} if vars is None else vars
        self.parent = parent

    def lookup(self, name: str) -> Value | None:
        if name in self.vars:
            return self.vars[name]
        return self.parent.lookup(name) if self.parent is not None else None

    def copy(self) -> Env:
        return Env(self.parent, dict(self.vars))

    def join(self, branches: Sequence[Env]) -> None:
        """Make this env the merge of ``branches`` (each a copy of it that ran one path)."""
        names = set().union(*(b.vars for b in branches))
        for name in names:
            values = [b.vars.get(name, UNBOUND) for b in branches]
            first = values[0]
            if all(v is first for v in values):
                self.vars[name] = first
            else:
                unique: list[Value] = []
                for v in values:
                    if not any(v is u for u in unique):
                        unique.append(v)
                self.vars[name] = Choice(tuple(unique))


def qualname(value: Value | None) -> str | None:
    return value.qualname if isinstance(value, Symbol) else None


def _literal(node: cst.BaseExpression) -> Value:
    try:
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            v = node.evaluated_value
            return Literal(v, node) if isinstance(v, str) else Unknown(node)
        if isinstance(node, (cst.Integer, cst.Float)):
            return Literal(node.evaluated_value, node)
    except Exception:  # malformed literal: leave it to Python to complain
        pass
    return Unknown(node)


class _CallFinder(cst.CSTVisitor):
    """Collects the calls inside one statement's expressions, not inside nested scopes."""

    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


class ModelBuilder:
    def __init__(self, module: cst.Module, source: str, index: FunctionIndex | None = None) -> None:
        self.module = module
        self.source = source
        self.index = index
        self.paths: dict[int, tuple[str, ...]] = {}  # def/class node -> its FunctionIndex path
        self.loads: list[LoadSite] = []
        self.uses: list[ModelUse] = []
        self.sites: dict[int, LoadSite] = {}
        self.configs: dict[int, BnbConfig] = {}
        self.functions: dict[int, Function] = {}
        self.def_envs: dict[int, Env] = {}
        self.done_functions: set[int] = set()
        self.running: set[int] = set()
        self.pending: list[tuple[cst.FunctionDef | cst.ClassDef, Env]] = []
        self.returns: list[list[Value]] = []
        self.scopes: list[Scope] = []
        self.blocks: list[int] = []  # ids of the suites being walked (LoadSite.block)

    # -- driver ---------------------------------------------------------------------------

    def build(self) -> ModuleModel:
        module_env = Env()
        self.scopes.append(self.module)
        self.block(self.module.body, module_env)
        interesting = _interesting_names(module_env)
        while self.pending:
            node, parent = self.pending.pop(0)
            if isinstance(node, cst.FunctionDef):
                if self.index is None or self.index.may_matter(
                    self.paths.get(id(node), ()), interesting
                ):
                    self.run_function(node, parent)
            else:
                self.scopes.append(node)
                self.blocks = [id(node)]
                self.block(node.body.body, Env(parent))
                self.blocks = []
                self.scopes.pop()
        torch_alias = None
        for name, value in module_env.vars.items():
            if qualname(value) == "torch" and (torch_alias is None or name == "torch"):
                torch_alias = name
        configs = {id(c.node): c for c in self.configs.values() if not c.is_dict}
        for site in self.loads:
            for config in site.configs:
                if config.is_dict:
                    configs.setdefault(id(config.node), self.configs.get(id(config.node), config))
        module_names = {name: qualname(value) for name, value in module_env.vars.items()}
        return ModuleModel(
            self.module,
            self.loads,
            self.uses,
            torch_alias,
            self.source,
            list(configs.values()),
            module_names,
        )

    def run_function(self, node: cst.FunctionDef, parent: Env) -> list[Value]:
        fn = self.function(node)
        if id(node) in self.done_functions or id(node) in self.running:
            return fn.returns
        self.running.add(id(node))
        env = Env(parent)
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            env.vars[p.name.value] = Unknown(p, "a parameter")
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                env.vars[star.name.value] = Unknown(star, "a parameter")
        self.returns.append(fn.returns)
        self.scopes.append(node)
        blocks, self.blocks = self.blocks, [id(node)]  # a call runs it from elsewhere
        body = node.body
        self.block(body.body if isinstance(body, cst.IndentedBlock) else [body], env)
        self.blocks = blocks
        self.scopes.pop()
        self.returns.pop()
        self.running.discard(id(node))
        self.done_functions.add(id(node))
        return fn.returns

    def function(self, node: cst.FunctionDef) -> Function:
        fn = self.functions.get(id(node))
        if fn is None:
            fn = self.functions[id(node)] = Function(node)
        return fn

    # -- statements -----------------------------------------------------------------------

    def block(self, stmts: Iterable[cst.CSTNode], env: Env) -> None:
        for stmt in stmts:
            self.statement(stmt, env)

    def statement(self, stmt: cst.CSTNode, env: Env) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.scan(small, env, small)
                self.small(small, env)
        elif isinstance(stmt, cst.SimpleStatementSuite):
            for small in stmt.body:
                self.scan(small, env, small)
                self.small(small, env)
        elif isinstance(stmt, cst.If):
            self.scan(stmt.test, env)
            then = env.copy()
            self.suite(stmt.body, then)
            other = env.copy()
            if stmt.orelse is not None:
                if isinstance(stmt.orelse, cst.If):
                    self.statement(stmt.orelse, other)
                else:
                    self.suite(stmt.orelse.body, other)
            env.join([then, other])
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self.scan(stmt.iter, env)
            else:
                self.scan(stmt.test, env)
            body = env.copy()
            if isinstance(stmt, cst.For):
                self.bind_unknown(stmt.target, body)
            self.suite(stmt.body, body)
            branches = [env.copy(), body]
            if stmt.orelse is not None:
                after = env.copy()
                after.join([env.copy(), body])
                self.suite(stmt.orelse.body, after)
                branches.append(after)
            env.join(branches)
        elif isinstance(stmt, (cst.Try, cst.TryStar)):
            body = env.copy()
            self.suite(stmt.body, body)
            branches = [body]
            for handler in stmt.handlers:
                h = env.copy()
                h.join([env.copy(), body])
                if handler.name is not None:
                    self.bind_unknown(handler.name.name, h)
                self.suite(handler.body, h)
                branches.append(h)
            if stmt.orelse is not None:
                self.suite(stmt.orelse.body, body)
            env.join(branches)
            if stmt.finalbody is not None:
                self.suite(stmt.finalbody.body, env)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.scan(item.item, env)
                if item.asname is not None:
                    self.bind_unknown(item.asname.name, env)
            self.suite(stmt.body, env)
        elif isinstance(stmt, cst.FunctionDef):
            env.vars[stmt.name.value] = self.function(stmt)
            self.def_envs[id(stmt)] = env
            self.paths[id(stmt)] = (*self.paths.get(id(self.scopes[-1]), ()), stmt.name.value)
            self.pending.append((stmt, env))
        elif isinstance(stmt, cst.ClassDef):
            env.vars[stmt.name.value] = Unknown(stmt, "a class")
            self.paths[id(stmt)] = (*self.paths.get(id(self.scopes[-1]), ()), stmt.name.value)
            self.pending.append((stmt, env))
        elif isinstance(stmt, cst.Match):
            self.scan(stmt.subject, env)
            branches = [env.copy()]
            for case in stmt.cases:
                c = env.copy()
                self.suite(case.body, c)
                branches.append(c)
            env.join(branches)

    def suite(self, body: cst.BaseSuite, env: Env) -> None:
        self.blocks.append(id(body))
        if isinstance(body, cst.IndentedBlock):
            self.block(body.body, env)
        elif isinstance(body, cst.SimpleStatementSuite):
            self.statement(body, env)
        self.blocks.pop()

    def small(self, stmt: cst.BaseSmallStatement, env: Env) -> None:
        if isinstance(stmt, cst.Assign):
            value = self.eval(stmt.value, env)
            for target in stmt.targets:
                self.assign(target.target, value, stmt, env)
        elif isinstance(stmt, cst.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, env), stmt, env)
        elif isinstance(stmt, cst.AugAssign):
            self.bind_unknown(stmt.target, env)
        elif isinstance(stmt, cst.Expr):
            self.mutation(stmt.value, env)
        elif isinstance(stmt, cst.Import):
            for alias in stmt.names:
                dotted = _dotted(alias.name)
                if alias.asname is not None:
                    self.bind(alias.asname.name, Symbol(dotted, alias), env)
                else:
                    root = dotted.split(".")[0]
                    env.vars[root] = Symbol(root, alias)
        elif isinstance(stmt, cst.ImportFrom):
            if stmt.relative or stmt.module is None:
                base = "." * len(stmt.relative) + (_dotted(stmt.module) if stmt.module else "")
            else:
                base = _dotted(stmt.module)
            if isinstance(stmt.names, cst.ImportStar):
                return
            for alias in stmt.names:
                name = _dotted(alias.name)
                target = alias.asname.name if alias.asname is not None else alias.name
                self.bind(target, Symbol(f"{base}.{name}", alias), env)
        elif isinstance(stmt, cst.Return):
            if self.returns:
                value = NONE if stmt.value is None else self.eval(stmt.value, env)
                self.returns[-1].append(value)
        elif isinstance(stmt, cst.Del):
            self.bind_unknown(stmt.target, env)

    def bind(self, target: cst.BaseExpression, value: Value, env: Env) -> None:
        if isinstance(target, cst.Name):
            env.vars[target.value] = value
        else:
            self.bind_unknown(target, env)

    def bind_unknown(self, target: cst.CSTNode, env: Env) -> None:
        if isinstance(target, cst.Name):
            env.vars[target.value] = Unknown(target)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.bind_unknown(element.value, env)
        elif isinstance(target, cst.StarredElement):
            self.bind_unknown(target.value, env)
        elif isinstance(target, cst.Del):
            self.bind_unknown(target.target, env)

    def assign(self, target: cst.BaseExpression, value: Value, stmt: cst.CSTNode, env: Env) -> None:
        if isinstance(target, cst.Name):
            env.vars[target.value] = value
        elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            # kw["quantization_config"] = cfg
            key = _subscript_key(target)
            name = target.value.value
            container = env.lookup(name)
            if key is None:
                self.invalidate(name, container, env)
            else:
                self.set_key(name, container, key, Entry(value, stmt), env)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            # cfg.bnb_4bit_compute_dtype = torch.bfloat16
            name = target.value.value
            container = env.lookup(name)
            if isinstance(container, BnbConfig) and not container.is_dict:
                env.vars[name] = container.with_option(target.attr.value, Entry(value, stmt))
        else:
            self.bind_unknown(target, env)

    def set_key(self, name: str, container: Value | None, key: str, entry: Entry, env: Env) -> None:
        if isinstance(container, Mapping):
            env.vars[name] = container.with_entry(key, entry)
        elif isinstance(container, BnbConfig) and container.is_dict:
            env.vars[name] = container.with_option(key, entry)

    def invalidate(self, name: str, container: Value | None, env: Env) -> None:
        """A mutation the analysis cannot follow: absent keys may now be present."""
        if isinstance(container, Mapping):
            env.vars[name] = Mapping(container.entries, container.node, complete=False)
        elif isinstance(container, BnbConfig):
            env.vars[name] = BnbConfig(
                Mapping(container.options.entries, container.options.node, complete=False),
                container.node,
                container.is_dict,
            )

    def mutation(self, expr: cst.BaseExpression, env: Env) -> None:
        """``kw.update(...)``, ``kw.setdefault(...)`` and other in-place changes of a dict."""
        if not (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and isinstance(expr.func.value, cst.Name)
        ):
            return
        name = expr.func.value.value
        container = env.lookup(name)
        if not isinstance(container, (Mapping, BnbConfig)):
            return
        method = expr.func.attr.value
        if method == "update":
            update = self.mapping_from_args(expr.args, expr, env, positional=True)
            for key, entry in update.entries.items():
                self.set_key(name, env.lookup(name), key, entry, env)
            if not update.complete:
                self.invalidate(name, env.lookup(name), env)
        elif method == "setdefault" and expr.args:
            key_value = self.eval(expr.args[0].value, env)
            current = env.lookup(name)
            entries = current.entries if isinstance(current, Mapping) else None
            if isinstance(key_value, Literal) and isinstance(key_value.value, str):
                if entries is not None and key_value.value not in entries:
                    default = self.eval(expr.args[1].value, env) if len(expr.args) > 1 else NONE
                    self.set_key(name, current, key_value.value, Entry(default, expr), env)
            else:
                self.invalidate(name, current, env)
        elif method in {"pop", "clear", "popitem", "__setitem__"}:
            self.invalidate(name, container, env)

    # -- calls inside a statement ---------------------------------------------------------

    def scan(self, node: cst.CSTNode, env: Env, statement: cst.CSTNode | None = None) -> None:
        """Record load sites and model method calls in one statement, in evaluation order."""
        finder = _CallFinder()
        node.visit(finder)
        # Inner calls are evaluated first (arguments before the call that receives them).
        for call in reversed(finder.calls):
            if id(call) in self.sites:
                continue
            site = self.load_site(call, env)
            if site is not None:
                site.block = tuple(self.blocks)
                self.sites[id(call)] = site
                self.loads.append(site)
                resolve_quantization(site)
            elif isinstance(call.func, cst.Attribute):
                receiver = self.eval(call.func.value, env)
                if isinstance(receiver, LoadResult):
                    self.uses.append(self.model_use(receiver, call, env, statement))

    def model_use(
        self, receiver: LoadResult, call: cst.Call, env: Env, statement: cst.CSTNode | None
    ) -> ModelUse:
        site = receiver.site
        assert isinstance(site, LoadSite) and isinstance(call.func, cst.Attribute)
        args = tuple(self.eval(a.value, env) for a in call.args if a.keyword is None and not a.star)
        whole = isinstance(statement, cst.Expr) and statement.value is call
        assigned = None
        if (
            isinstance(statement, cst.Assign)
            and statement.value is call
            and len(statement.targets) == 1
            and isinstance(statement.targets[0].target, cst.Name)
        ):
            assigned = statement.targets[0].target.value
        return ModelUse(
            site,
            call.func.attr.value,
            call,
            args,
            self.mapping_from_args([a for a in call.args if a.keyword is not None], call, env),
            statement,
            whole,
            assigned,
            tuple(self.blocks),
        )

    def load_site(self, call: cst.Call, env: Env) -> LoadSite | None:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            receiver = self.eval(func.value, env)
            name = qualname(receiver)
            if name is not None and _foreign(name):
                return None
            if isinstance(receiver, Choice) and any(
                _foreign(qualname(o) or "") for o in receiver.options
            ):
                return None
            kwargs = self.mapping_from_args(call.args, call, env)
            return LoadSite(call, "from_pretrained", name, kwargs, self.scopes[-1])
        if qualname(self.eval(func, env)) in PIPELINE_NAMES:
            kwargs = self.mapping_from_args(call.args, call, env)
            # pipeline() hands only model_kwargs (and its own device_map/dtype) to the model:
            # a quantization keyword given to pipeline() itself is silently ignored.
            ignored = {k: e for k, e in kwargs.entries.items() if k in PIPELINE_IGNORED}
            kwargs = Mapping(
                {k: e for k, e in kwargs.entries.items() if k not in PIPELINE_IGNORED},
                kwargs.node,
                kwargs.complete,
            )
            model_kwargs = kwargs.entries.get("model_kwargs")
            inner = None
            if model_kwargs is not None:
                entries = {k: e for k, e in kwargs.entries.items() if k != "model_kwargs"}
                inner = self.as_mapping(model_kwargs.value)
                complete = kwargs.complete
                if inner is None:
                    complete = False
                else:
                    entries = {**inner.entries, **entries}
                    complete = complete and inner.complete
                kwargs = Mapping(entries, call, complete)
            site = LoadSite(call, "pipeline", "transformers.pipeline", kwargs, self.scopes[-1])
            site.model_kwargs = inner
            site.ignored = ignored
            return site
        return None

    # -- expressions ----------------------------------------------------------------------

    def eval(self, node: cst.BaseExpression, env: Env) -> Value:
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None"):
                return Literal({"True": True, "False": False, "None": None}[node.value], node)
            value = env.lookup(node.value)
            return Symbol(node.value, node) if value is None else value
        if isinstance(node, cst.Attribute):
            base = self.eval(node.value, env)
            if isinstance(base, Symbol):
                name = f"{base.qualname}.{node.attr.value}"
                if base.qualname == "torch" and node.attr.value in TORCH_DTYPES:
                    return Dtype(TORCH_DTYPES[node.attr.value], node)
                return Symbol(name, node)
            return Unknown(node)
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float)):
            return _literal(node)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = self.eval(node.expression, env)
            if isinstance(inner, Literal) and isinstance(inner.value, (int, float)):
                if not isinstance(inner.value, bool):
                    return Literal(-inner.value, node)
            return Unknown(node)
        if isinstance(node, (cst.List, cst.Tuple)):
            items = [self.eval(e.value, env) for e in node.elements]
            if all(isinstance(i, Literal) for i in items) and not any(
                isinstance(e, cst.StarredElement) for e in node.elements
            ):
                values = [i.value for i in items if isinstance(i, Literal)]
                return Literal(values if isinstance(node, cst.List) else tuple(values), node)
            return Unknown(node)
        if isinstance(node, cst.Dict):
            return self.dict_literal(node, env)
        if isinstance(node, cst.IfExp):
            return Choice((self.eval(node.body, env), self.eval(node.orelse, env)), node)
        if isinstance(node, cst.Call):
            return self.call(node, env)
        return Unknown(node)

    def call(self, node: cst.Call, env: Env) -> Value:
        site = self.sites.get(id(node))
        if site is not None:
            return LoadResult(site, node)
        func = self.eval(node.func, env)
        name = qualname(func)
        if name in BNB_CONFIG_NAMES:
            config = self.configs.get(id(node))
            if config is None:
                options = self.mapping_from_args(node.args, node, env)
                if any(a.keyword is None and a.star == "" for a in node.args):
                    # BitsAndBytesConfig(True): a positional load_in_8bit, not in ``options``.
                    options = Mapping(options.entries, node, complete=False)
                config = self.configs[id(node)] = BnbConfig(options, node)
            return config
        if name is not None and _other_quant_config(name):
            return OtherConfig(name, node)
        if name == "dict":
            return self.as_config(self.mapping_from_args(node.args, node, env, positional=True))
        if isinstance(func, Function):
            returns = self.run_function(func.node, self.def_envs.get(id(func.node), env))
            if not returns:
                return NONE
            return returns[0] if len(returns) == 1 else Choice(tuple(returns), node)
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in SELF_RETURNING:
            receiver = self.eval(node.func.value, env)
            if isinstance(receiver, LoadResult):
                return receiver
        return Unknown(node)

    def dict_literal(self, node: cst.Dict, env: Env) -> Value:
        entries: dict[str, Entry] = {}
        complete = True
        for element in node.elements:
            if isinstance(element, cst.StarredDictElement):
                inner = self.as_mapping(self.eval(element.value, env))
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
                continue
            key = self.eval(element.key, env)
            if isinstance(key, Literal) and isinstance(key.value, str):
                entries[key.value] = Entry(self.eval(element.value, env), element, node)
            else:
                complete = False
        return self.as_config(Mapping(entries, node, complete))

    def as_config(self, mapping: Mapping) -> Value:
        """A dict with bitsandbytes keys is a dict config; anything else a plain mapping."""
        if any(k in mapping.entries for k in ("load_in_4bit", "load_in_8bit")) and not any(
            k in mapping.entries for k in ("quantization_config", "device_map")
        ):
            config = self.configs.get(id(mapping.node))
            if config is None or config.options is not mapping:
                config = self.configs[id(mapping.node)] = BnbConfig(mapping, mapping.node, True)
            return config
        return mapping

    def as_mapping(self, value: Value) -> Mapping | None:
        if isinstance(value, Mapping):
            return value
        if isinstance(value, BnbConfig):
            return value.options
        if isinstance(value, Choice):
            return self.merge_choice(value)
        return None

    def merge_choice(self, value: Choice) -> Mapping | None:
        """A mapping that is one of several: keys differing between options become choices."""
        options = [self.as_mapping(o) for o in value.options]
        if any(o is None for o in options):
            return None
        maps = [o for o in options if o is not None]
        entries: dict[str, Entry] = {}
        for key in {k for m in maps for k in m.entries}:
            found = [m.entries.get(key) for m in maps]
            first = found[0]
            if first is not None and all(f is first for f in found):
                entries[key] = first
            else:
                node = next(f.node for f in found if f is not None)
                choice = Choice(tuple(NONE if f is None else f.value for f in found))
                entries[key] = Entry(choice, node)
        return Mapping(entries, maps[0].node, all(m.complete for m in maps))

    def mapping_from_args(
        self, args: Sequence[cst.Arg], node: cst.CSTNode, env: Env, positional: bool = False
    ) -> Mapping:
        """The keywords a call receives, ``**splats`` merged in order.

        ``positional``: positional arguments are mappings too (``dict(m, k=v)``, ``d.update(m)``).
        """
        entries: dict[str, Entry] = {}
        complete = True
        for arg in args:
            if arg.keyword is not None:
                entries[arg.keyword.value] = Entry(self.eval(arg.value, env), arg, node)
            elif arg.star == "**":
                inner = self.as_mapping(self.eval(arg.value, env))
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
            elif arg.star == "" and positional:
                inner = self.as_mapping(self.eval(arg.value, env))
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
        return Mapping(entries, node, complete)


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _subscript_key(target: cst.Subscript) -> str | None:
    if len(target.slice) != 1:
        return None
    index = target.slice[0].slice
    if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
        value = index.value.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _foreign(name: str) -> bool:
    parts = name.split(".")
    if parts[0] in FOREIGN_ROOTS or parts[-1] in FOREIGN_NAMES:
        return True
    return parts[-1].endswith(NON_MODEL_SUFFIXES)


def _other_quant_config(name: str) -> bool:
    """Quantization configs that are not transformers' bitsandbytes one."""
    last = name.split(".")[-1]
    if name.split(".")[0] == "diffusers":
        return last.endswith("Config")
    return last.endswith("Config") and (
        "Quant" in last
        or last
        in {
            "GPTQConfig",
            "AwqConfig",
            "AqlmConfig",
            "EetqConfig",
            "HqqConfig",
            "TorchAoConfig",
            "BitNetConfig",
            "HiggsConfig",
            "VptqConfig",
            "SpQRConfig",
            "FbgemmFp8Config",
            "CompressedTensorsConfig",
            "FineGrainedFP8Config",
        }
    )


def _interesting_names(env: Env) -> frozenset[str]:
    """Module-level names a function body may use to reach a model, a config or a kwargs dict."""
    names = set()
    for name, value in env.vars.items():
        for v in flatten(value):
            if isinstance(v, (LoadResult, BnbConfig, OtherConfig, Mapping)):
                names.add(name)
            elif isinstance(v, Symbol) and v.qualname.rsplit(".", 1)[-1] in (
                "BitsAndBytesConfig",
                "pipeline",
            ):
                names.add(name)
    return frozenset(names)


def build_model(module: cst.Module, source: str, tree: ast.Module | None = None) -> ModuleModel:
    """The analysis model of a module; ``tree`` (its stdlib AST, when the caller has it) lets
    the walk skip function bodies that cannot matter."""
    index = FunctionIndex(tree) if tree is not None else None
    return ModelBuilder(module, source, index).build()
